//! Tags through the SDK: TagResource, UntagResource and ListResourceTags.

use std::collections::BTreeMap;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::Tag;

use crate::harness::{TestServer, create_key, error_code};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .expect("a valid tag")
}

async fn tags_of(client: &Client, key_id: &str) -> BTreeMap<String, String> {
    let page = client
        .list_resource_tags()
        .key_id(key_id)
        .send()
        .await
        .expect("ListResourceTags succeeds");
    assert!(!page.truncated(), "a handful of tags fits on one page");
    page.tags()
        .iter()
        .map(|tag| (tag.tag_key().to_owned(), tag.tag_value().to_owned()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn tag_untag_and_list() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "tagged").await;

    let initially = tags_of(&client, &key_id).await;
    client
        .tag_resource()
        .key_id(&key_id)
        .tags(tag("team", "storage"))
        .tags(tag("env", "test"))
        .send()
        .await
        .expect("TagResource succeeds");
    let tagged = tags_of(&client, &key_id).await;
    client
        .tag_resource()
        .key_id(&arn)
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("retagging by ARN succeeds");
    let retagged = tags_of(&client, &key_id).await;
    client
        .untag_resource()
        .key_id(&key_id)
        .tag_keys("team")
        .tag_keys("never-set")
        .send()
        .await
        .expect("UntagResource succeeds, ignoring absent keys");
    let untagged = tags_of(&client, &arn).await;

    assert!(initially.is_empty());
    assert_eq!(tagged, map(&[("env", "test"), ("team", "storage")]));
    assert_eq!(
        retagged,
        map(&[("env", "prod"), ("team", "storage")]),
        "a tag key's value is replaced"
    );
    assert_eq!(untagged, map(&[("env", "prod")]));
}

#[tokio::test]
async fn tags_are_per_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (first, _) = create_key(&client, "first").await;
    let (second, _) = create_key(&client, "second").await;

    client
        .tag_resource()
        .key_id(&first)
        .tags(tag("only", "first"))
        .send()
        .await
        .expect("TagResource succeeds");

    assert_eq!(tags_of(&client, &first).await, map(&[("only", "first")]));
    assert!(tags_of(&client, &second).await.is_empty());
}

#[tokio::test]
async fn tag_keys_beginning_with_aws_are_refused() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "tagged").await;

    let reserved = error_code(
        client
            .tag_resource()
            .key_id(&key_id)
            .tags(tag("aws:createdBy", "me"))
            .send()
            .await,
    );
    let mixed = error_code(
        client
            .tag_resource()
            .key_id(&key_id)
            .tags(tag("fine", "yes"))
            .tags(tag("aws:no", "no"))
            .send()
            .await,
    );
    let untag = error_code(
        client
            .untag_resource()
            .key_id(&key_id)
            .tag_keys("aws:createdBy")
            .send()
            .await,
    );

    assert_eq!(reserved, "TagException");
    assert_eq!(mixed, "TagException");
    assert_eq!(untag, "TagException");
    assert!(
        tags_of(&client, &key_id).await.is_empty(),
        "a refused request adds no tag at all"
    );
}

#[tokio::test]
async fn list_resource_tags_pages_through_every_tag_exactly_once() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "many tags").await;
    let mut request = client.tag_resource().key_id(&key_id);
    for index in 0..5 {
        request = request.tags(tag(&format!("k{index}"), &format!("v{index}")));
    }
    request.send().await.expect("TagResource succeeds");

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_resource_tags()
            .key_id(&key_id)
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListResourceTags succeeds");
        pages += 1;
        assert!(page.tags().len() <= 2);
        seen.extend(
            page.tags()
                .iter()
                .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())),
        );
        if !page.truncated() {
            break;
        }
        marker = Some(
            page.next_marker()
                .expect("a truncated page has a NextMarker")
                .to_owned(),
        );
        assert!(pages < 10, "pagination must end");
    }

    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "no tag is listed twice: {seen:?}");
    let expected: BTreeMap<String, String> =
        (0..5).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    assert_eq!(seen.into_iter().collect::<BTreeMap<_, _>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_requests_lose_no_tag() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "contended").await;

    let mut tasks = Vec::new();
    for index in 0..16 {
        let client = client.clone();
        let key_id = key_id.clone();
        tasks.push(tokio::spawn(async move {
            client
                .tag_resource()
                .key_id(&key_id)
                .tags(tag(&format!("t{index}"), ""))
                .send()
                .await
                .map(drop)
        }));
    }
    for task in tasks {
        task.await
            .expect("the task does not panic")
            .expect("TagResource succeeds");
    }
    let tags = tags_of(&client, &key_id).await;

    let expected: BTreeMap<String, String> =
        (0..16).map(|i| (format!("t{i}"), String::new())).collect();
    assert_eq!(
        tags, expected,
        "every concurrent tag is kept, empty values included"
    );
}
