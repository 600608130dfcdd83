//! Key lifecycle through the SDK: CreateKey, DescribeKey, ListKeys with pagination, EnableKey,
//! DisableKey and UpdateKeyDescription.

use std::collections::HashSet;

use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType,
};

use crate::harness::{
    ACCOUNT, REGION, TestServer, create_key, encrypt, error_code, failure, key_arn,
};

#[tokio::test]
async fn create_key_returns_enabled_symmetric_metadata() {
    let server = TestServer::start().await;
    let client = server.client();
    let before = server.now_secs();

    let created = client
        .create_key()
        .description("first key")
        .send()
        .await
        .expect("CreateKey succeeds");
    let metadata = created.key_metadata().expect("KeyMetadata");

    let key_id = metadata.key_id();
    assert_eq!(key_id.len(), 36, "a key id is a UUID: {key_id}");
    assert_eq!(metadata.arn(), Some(key_arn(key_id).as_str()));
    assert_eq!(metadata.aws_account_id(), Some(ACCOUNT));
    assert_eq!(metadata.description(), Some("first key"));
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
    assert!(metadata.enabled());
    assert_eq!(metadata.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(metadata.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(metadata.origin(), Some(&OriginType::AwsKms));
    assert_eq!(metadata.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(
        metadata.encryption_algorithms(),
        &[EncryptionAlgorithmSpec::SymmetricDefault]
    );
    assert_eq!(metadata.multi_region(), Some(false));
    assert!(
        metadata.deletion_date().is_none(),
        "a new key is not pending deletion"
    );
    let created_at = metadata
        .creation_date()
        .expect("a CreationDate")
        .as_secs_f64();
    assert!(
        (created_at - before).abs() < 5.0,
        "CreationDate {created_at} is the server's now ({before})"
    );

    let described = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    assert_eq!(
        described.key_metadata(),
        Some(metadata),
        "DescribeKey returns what CreateKey returned"
    );
}

#[tokio::test]
async fn create_key_without_description_has_an_empty_one() {
    let server = TestServer::start().await;
    let client = server.client();

    let created = client
        .create_key()
        .send()
        .await
        .expect("CreateKey succeeds");
    let metadata = created.key_metadata().expect("KeyMetadata");

    assert_eq!(metadata.description(), Some(""));
    assert_eq!(
        metadata
            .arn()
            .map(|arn| arn.starts_with(&format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/"))),
        Some(true)
    );
}

#[tokio::test]
async fn describe_key_of_a_key_that_does_not_exist_is_not_found() {
    let server = TestServer::start().await;
    let client = server.client();

    let missing = "00000000-0000-4000-8000-000000000000";
    let by_id = failure(client.describe_key().key_id(missing).send().await);
    let by_arn = error_code(client.describe_key().key_id(key_arn(missing)).send().await);
    let by_alias = error_code(
        client
            .describe_key()
            .key_id("alias/nothing-here")
            .send()
            .await,
    );

    assert_eq!(by_id.code, "NotFoundException");
    assert!(
        by_id.message.contains(missing),
        "the message names the key: {}",
        by_id.message
    );
    assert_eq!(by_arn, "NotFoundException");
    assert_eq!(by_alias, "NotFoundException");
}

#[tokio::test]
async fn list_keys_pages_through_every_key_exactly_once() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut created = HashSet::new();
    for index in 0..7 {
        created.insert(create_key(&client, &format!("key {index}")).await.0);
    }

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListKeys succeeds");
        pages += 1;
        assert!(page.keys().len() <= 2, "a page holds at most Limit keys");
        for entry in page.keys() {
            let key_id = entry.key_id().expect("a KeyId").to_owned();
            assert_eq!(entry.key_arn(), Some(key_arn(&key_id).as_str()));
            seen.push(key_id);
        }
        if !page.truncated() {
            assert!(
                page.next_marker().is_none(),
                "the last page has no NextMarker"
            );
            break;
        }
        let next = page
            .next_marker()
            .expect("a truncated page has a NextMarker")
            .to_owned();
        marker = Some(next);
        assert!(pages < 20, "pagination must end");
    }

    assert_eq!(pages, 4, "7 keys at 2 per page take 4 pages");
    assert_eq!(
        seen.len(),
        created.len(),
        "no key is listed twice: {seen:?}"
    );
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn list_keys_without_limit_returns_all_keys_untruncated() {
    let server = TestServer::start().await;
    let client = server.client();
    let first = create_key(&client, "a").await.0;
    let second = create_key(&client, "b").await.0;

    let page = client.list_keys().send().await.expect("ListKeys succeeds");

    let ids: HashSet<&str> = page
        .keys()
        .iter()
        .filter_map(|entry| entry.key_id())
        .collect();
    assert_eq!(ids, HashSet::from([first.as_str(), second.as_str()]));
    assert!(!page.truncated());
}

#[tokio::test]
async fn list_keys_refuses_limits_out_of_range_and_foreign_markers() {
    let server = TestServer::start().await;
    let client = server.client();
    create_key(&client, "a").await;

    let zero = error_code(client.list_keys().limit(0).send().await);
    let too_many = error_code(client.list_keys().limit(1001).send().await);
    let bad_marker = error_code(client.list_keys().marker("not-a-marker").send().await);

    assert_eq!(zero, "ValidationException");
    assert_eq!(too_many, "ValidationException");
    assert_eq!(bad_marker, "InvalidMarkerException");
}

#[tokio::test]
async fn disable_and_enable_change_state_and_usability() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "toggle").await;

    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");
    let disabled = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    let refused = failure(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(b"x".as_slice().into())
            .send()
            .await,
    );
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("disabling a disabled key succeeds");

    client
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKey succeeds");
    let enabled = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    client
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("enabling an enabled key succeeds");
    let ciphertext = encrypt(&client, &key_id, b"after enable", &[]).await;

    let disabled = disabled.key_metadata().expect("KeyMetadata");
    assert_eq!(disabled.key_state(), Some(&KeyState::Disabled));
    assert!(!disabled.enabled());
    assert_eq!(refused.code, "DisabledException");
    assert_eq!(refused.message, format!("{arn} is disabled."));
    let enabled = enabled.key_metadata().expect("KeyMetadata");
    assert_eq!(enabled.key_state(), Some(&KeyState::Enabled));
    assert!(enabled.enabled());
    assert!(!ciphertext.is_empty());
}

#[tokio::test]
async fn update_key_description_replaces_the_description() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "old words").await;

    client
        .update_key_description()
        .key_id(&key_id)
        .description("new words")
        .send()
        .await
        .expect("by id");
    let after_id = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    client
        .update_key_description()
        .key_id(&arn)
        .description("")
        .send()
        .await
        .expect("by ARN, to empty");
    let after_arn = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert_eq!(
        after_id.key_metadata().and_then(|m| m.description()),
        Some("new words")
    );
    assert_eq!(
        after_arn.key_metadata().and_then(|m| m.description()),
        Some("")
    );
}

#[tokio::test]
async fn create_key_refuses_reserved_tag_keys_and_accepts_others() {
    let server = TestServer::start().await;
    let client = server.client();
    let tag = |key: &str| {
        aws_sdk_kms::types::Tag::builder()
            .tag_key(key)
            .tag_value("v")
            .build()
            .expect("a tag")
    };

    let reserved = error_code(client.create_key().tags(tag("aws:owner")).send().await);
    let created = client
        .create_key()
        .tags(tag("owner"))
        .send()
        .await
        .expect("CreateKey with a tag succeeds");
    let key_id = created.key_metadata().expect("KeyMetadata").key_id();
    let tags = client
        .list_resource_tags()
        .key_id(key_id)
        .send()
        .await
        .expect("ListResourceTags succeeds");

    assert_eq!(reserved, "TagException");
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].tag_key(), "owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrently_created_keys_are_each_listed_once() {
    let server = TestServer::start().await;
    let client = server.client();

    let mut tasks = Vec::new();
    for index in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            create_key(&client, &format!("parallel {index}")).await.0
        }));
    }
    let mut created = HashSet::new();
    for task in tasks {
        created.insert(task.await.expect("the task does not panic"));
    }
    let mut listed = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_keys()
            .limit(7)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListKeys succeeds");
        listed.extend(
            page.keys()
                .iter()
                .filter_map(|k| k.key_id().map(str::to_owned)),
        );
        match page.next_marker() {
            Some(next) if page.truncated() => marker = Some(next.to_owned()),
            _ => break,
        }
    }

    assert_eq!(created.len(), 20, "every key id is new");
    assert_eq!(listed.len(), 20, "no key is listed twice: {listed:?}");
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn keys_pending_deletion_are_still_listed() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "pending").await;
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    let page = client.list_keys().send().await.expect("ListKeys succeeds");

    assert!(
        page.keys()
            .iter()
            .any(|k| k.key_id() == Some(key_id.as_str()))
    );
}
