//! Aliases through the SDK: CreateAlias, UpdateAlias, DeleteAlias and ListAliases.

use std::collections::HashSet;

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;

use crate::harness::{TestServer, alias_arn, create_key, error_code, failure};

async fn alias_names(client: &Client, key_id: Option<&str>) -> Vec<String> {
    let page = client
        .list_aliases()
        .set_key_id(key_id.map(str::to_owned))
        .send()
        .await
        .expect("ListAliases succeeds");
    page.aliases()
        .iter()
        .filter_map(|alias| alias.alias_name().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_alias_names_its_key_and_is_listed() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "aliased").await;
    let before = server.now_secs();

    client
        .create_alias()
        .alias_name("alias/app")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias succeeds");
    let described = client
        .describe_key()
        .key_id("alias/app")
        .send()
        .await
        .expect("DescribeKey by alias succeeds");
    let encrypted = client
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new(b"via alias".as_slice()))
        .send()
        .await
        .expect("Encrypt by alias succeeds");
    let listed = client
        .list_aliases()
        .send()
        .await
        .expect("ListAliases succeeds");

    assert_eq!(
        described.key_metadata().map(|m| m.key_id()),
        Some(key_id.as_str())
    );
    assert_eq!(
        encrypted.key_id(),
        Some(arn.as_str()),
        "Encrypt by alias names the key, not the alias"
    );
    let entry = listed
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/app"))
        .expect("the alias is listed");
    assert_eq!(entry.target_key_id(), Some(key_id.as_str()));
    assert_eq!(entry.alias_arn(), Some(alias_arn("alias/app").as_str()));
    let created = entry.creation_date().expect("a CreationDate").as_secs_f64();
    assert!(
        (created - before).abs() < 5.0,
        "CreationDate {created} is the server's now ({before})"
    );
    assert!(!listed.truncated());
}

#[tokio::test]
async fn list_aliases_filtered_by_key_shows_only_that_keys_aliases() {
    let server = TestServer::start().await;
    let client = server.client();
    let (first, first_arn) = create_key(&client, "first").await;
    let (second, _) = create_key(&client, "second").await;
    let (lonely, _) = create_key(&client, "no aliases").await;
    for (alias, target) in [
        ("alias/one", &first),
        ("alias/two", &first),
        ("alias/three", &second),
    ] {
        client
            .create_alias()
            .alias_name(alias)
            .target_key_id(target)
            .send()
            .await
            .expect("CreateAlias succeeds");
    }

    let of_first: HashSet<String> = alias_names(&client, Some(&first))
        .await
        .into_iter()
        .collect();
    let of_first_by_arn: HashSet<String> = alias_names(&client, Some(&first_arn))
        .await
        .into_iter()
        .collect();
    let of_second = alias_names(&client, Some(&second)).await;
    let of_lonely = alias_names(&client, Some(&lonely)).await;
    let all: HashSet<String> = alias_names(&client, None).await.into_iter().collect();

    let expected_first = HashSet::from(["alias/one".to_owned(), "alias/two".to_owned()]);
    assert_eq!(of_first, expected_first);
    assert_eq!(of_first_by_arn, expected_first);
    assert_eq!(of_second, vec!["alias/three".to_owned()]);
    assert!(of_lonely.is_empty());
    assert!(all.is_superset(&HashSet::from([
        "alias/one".to_owned(),
        "alias/two".to_owned(),
        "alias/three".to_owned()
    ])));
}

#[tokio::test]
async fn list_aliases_pages_through_every_alias_exactly_once() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "many aliases").await;
    let mut created = HashSet::new();
    for index in 0..5 {
        let name = format!("alias/page-{index}");
        client
            .create_alias()
            .alias_name(&name)
            .target_key_id(&key_id)
            .send()
            .await
            .expect("CreateAlias succeeds");
        created.insert(name);
    }

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let page = client
            .list_aliases()
            .key_id(&key_id)
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListAliases succeeds");
        assert!(page.aliases().len() <= 2);
        seen.extend(
            page.aliases()
                .iter()
                .filter_map(|a| a.alias_name().map(str::to_owned)),
        );
        if !page.truncated() {
            marker = None;
            break;
        }
        marker = Some(
            page.next_marker()
                .expect("a truncated page has a NextMarker")
                .to_owned(),
        );
    }

    assert!(marker.is_none(), "pagination ended");
    assert_eq!(seen.len(), 5, "no alias is listed twice: {seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn update_alias_points_it_at_another_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (first, _) = create_key(&client, "first").await;
    let (second, second_arn) = create_key(&client, "second").await;
    client
        .create_alias()
        .alias_name("alias/moving")
        .target_key_id(&first)
        .send()
        .await
        .expect("CreateAlias succeeds");

    client
        .update_alias()
        .alias_name("alias/moving")
        .target_key_id(&second)
        .send()
        .await
        .expect("UpdateAlias succeeds");
    let described = client
        .describe_key()
        .key_id("alias/moving")
        .send()
        .await
        .expect("DescribeKey succeeds");
    let encrypted = client
        .encrypt()
        .key_id(alias_arn("alias/moving"))
        .plaintext(Blob::new(b"x".as_slice()))
        .send()
        .await
        .expect("Encrypt by alias ARN succeeds");

    assert_eq!(
        described.key_metadata().map(|m| m.key_id()),
        Some(second.as_str())
    );
    assert_eq!(encrypted.key_id(), Some(second_arn.as_str()));
    assert!(alias_names(&client, Some(&first)).await.is_empty());
    assert_eq!(
        alias_names(&client, Some(&second)).await,
        vec!["alias/moving".to_owned()]
    );
}

#[tokio::test]
async fn delete_alias_removes_it_but_not_its_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "kept").await;
    client
        .create_alias()
        .alias_name("alias/gone")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias succeeds");

    client
        .delete_alias()
        .alias_name("alias/gone")
        .send()
        .await
        .expect("DeleteAlias succeeds");
    let by_alias = error_code(client.describe_key().key_id("alias/gone").send().await);
    let key = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("the key is still there");
    let again = error_code(client.delete_alias().alias_name("alias/gone").send().await);
    client
        .create_alias()
        .alias_name("alias/gone")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("the name is free again");

    assert_eq!(by_alias, "NotFoundException");
    assert_eq!(
        key.key_metadata().map(|m| m.key_id()),
        Some(key_id.as_str())
    );
    assert_eq!(again, "NotFoundException");
    assert!(!alias_names(&client, None).await.is_empty());
}

#[tokio::test]
async fn alias_names_are_unique() {
    let server = TestServer::start().await;
    let client = server.client();
    let (first, _) = create_key(&client, "first").await;
    let (second, _) = create_key(&client, "second").await;
    client
        .create_alias()
        .alias_name("alias/taken")
        .target_key_id(&first)
        .send()
        .await
        .expect("CreateAlias succeeds");

    let same_key = error_code(
        client
            .create_alias()
            .alias_name("alias/taken")
            .target_key_id(&first)
            .send()
            .await,
    );
    let other_key = error_code(
        client
            .create_alias()
            .alias_name("alias/taken")
            .target_key_id(&second)
            .send()
            .await,
    );
    let described = client
        .describe_key()
        .key_id("alias/taken")
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert_eq!(same_key, "AlreadyExistsException");
    assert_eq!(other_key, "AlreadyExistsException");
    assert_eq!(
        described.key_metadata().map(|m| m.key_id()),
        Some(first.as_str()),
        "the alias did not move"
    );
}

#[tokio::test]
async fn reserved_alias_names_are_refused() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "key").await;

    let reserved = failure(
        client
            .create_alias()
            .alias_name("alias/aws/s3")
            .target_key_id(&key_id)
            .send()
            .await,
    );
    let listed = alias_names(&client, Some(&key_id)).await;

    assert_eq!(reserved.code, "InvalidAliasNameException");
    assert!(listed.is_empty(), "nothing was created: {listed:?}");
}

#[tokio::test]
async fn operations_on_aliases_that_do_not_exist_are_not_found() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "key").await;

    let update = error_code(
        client
            .update_alias()
            .alias_name("alias/missing")
            .target_key_id(&key_id)
            .send()
            .await,
    );
    let delete = error_code(
        client
            .delete_alias()
            .alias_name("alias/missing")
            .send()
            .await,
    );
    let describe = error_code(client.describe_key().key_id("alias/missing").send().await);
    let encrypt = error_code(
        client
            .encrypt()
            .key_id("alias/missing")
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    let missing_target = error_code(
        client
            .create_alias()
            .alias_name("alias/new")
            .target_key_id("00000000-0000-4000-8000-000000000000")
            .send()
            .await,
    );

    assert_eq!(update, "NotFoundException");
    assert_eq!(delete, "NotFoundException");
    assert_eq!(describe, "NotFoundException");
    assert_eq!(encrypt, "NotFoundException");
    assert_eq!(missing_target, "NotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_alias_name_succeed_exactly_once() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut keys = Vec::new();
    for index in 0..8 {
        keys.push(create_key(&client, &format!("contender {index}")).await.0);
    }

    let mut tasks = Vec::new();
    for key_id in keys.clone() {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .create_alias()
                .alias_name("alias/contested")
                .target_key_id(key_id)
                .send()
                .await
        }));
    }
    let mut successes = 0;
    for task in tasks {
        match task.await.expect("the task does not panic") {
            Ok(_) => successes += 1,
            Err(error) => assert_eq!(error_code::<(), _, _>(Err(error)), "AlreadyExistsException"),
        }
    }
    let described = client
        .describe_key()
        .key_id("alias/contested")
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert_eq!(successes, 1);
    let winner = described
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .expect("KeyMetadata");
    assert!(keys.contains(&winner));
}
