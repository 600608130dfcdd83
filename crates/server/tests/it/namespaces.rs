//! Namespaces: keys and aliases belong to one account and one Region, and are invisible elsewhere.

use std::collections::HashSet;

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;

use crate::harness::{TestServer, alias_arn, create_key, encrypt, error_code};

const OTHER_ACCOUNT: &str = "444455556666";

async fn key_ids(client: &Client) -> HashSet<String> {
    let page = client.list_keys().send().await.expect("ListKeys succeeds");
    page.keys()
        .iter()
        .filter_map(|k| k.key_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn keys_in_one_region_are_invisible_in_another() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", "eu-west-1");
    let (key_id, arn) = create_key(&east, "in us-east-1").await;
    east.create_alias()
        .alias_name("alias/regional")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");

    let listed = key_ids(&west).await;
    let by_id = error_code(west.describe_key().key_id(&key_id).send().await);
    let by_arn = error_code(west.describe_key().key_id(&arn).send().await);
    let by_alias = error_code(west.describe_key().key_id("alias/regional").send().await);
    let by_alias_arn = error_code(
        west.describe_key()
            .key_id(alias_arn("alias/regional"))
            .send()
            .await,
    );
    let encrypt_by_id = error_code(
        west.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    let aliases = west
        .list_aliases()
        .send()
        .await
        .expect("ListAliases succeeds");

    assert!(!listed.contains(&key_id), "eu-west-1 does not list the key");
    assert_eq!(by_id, "NotFoundException");
    assert_eq!(by_arn, "NotFoundException");
    assert_eq!(by_alias, "NotFoundException");
    assert_eq!(by_alias_arn, "NotFoundException");
    assert_eq!(encrypt_by_id, "NotFoundException");
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name() != Some("alias/regional"))
    );
}

#[tokio::test]
async fn each_region_has_its_own_aliases_and_ciphertexts() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", "eu-west-1");
    let (east_key, _) = create_key(&east, "east").await;
    let (west_key, west_arn) = create_key(&west, "west").await;

    east.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&east_key)
        .send()
        .await
        .expect("CreateAlias east");
    west.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&west_key)
        .send()
        .await
        .expect("same name in west");
    let west_ciphertext = encrypt(&west, "alias/shared", b"west", &[]).await;
    let decrypted_in_east = error_code(
        east.decrypt()
            .ciphertext_blob(Blob::new(west_ciphertext.clone()))
            .send()
            .await,
    );
    let described = west
        .describe_key()
        .key_id("alias/shared")
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert!(
        west_arn.starts_with("arn:aws:kms:eu-west-1:111122223333:key/"),
        "{west_arn}"
    );
    assert_eq!(
        described.key_metadata().map(|m| m.key_id()),
        Some(west_key.as_str())
    );
    assert!(
        ["NotFoundException", "InvalidCiphertextException"].contains(&decrypted_in_east.as_str()),
        "a eu-west-1 ciphertext does not decrypt in us-east-1: {decrypted_in_east}"
    );
    assert_eq!(key_ids(&east).await, HashSet::from([east_key]));
    assert_eq!(key_ids(&west).await, HashSet::from([west_key]));
}

#[tokio::test]
async fn another_account_cannot_see_the_keys() {
    let server = TestServer::start().await;
    let mine = server.client();
    let theirs = server.client_for(OTHER_ACCOUNT, "us-east-1");
    let (key_id, _) = create_key(&mine, "mine").await;
    mine.create_alias()
        .alias_name("alias/mine")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let (their_key, their_arn) = create_key(&theirs, "theirs").await;

    let listed = key_ids(&theirs).await;
    let by_id = error_code(theirs.describe_key().key_id(&key_id).send().await);
    let by_alias = error_code(theirs.describe_key().key_id("alias/mine").send().await);
    let aliases = theirs
        .list_aliases()
        .send()
        .await
        .expect("ListAliases succeeds");

    assert_eq!(
        listed,
        HashSet::from([their_key]),
        "the other account lists only its own key"
    );
    assert!(
        their_arn.starts_with(&format!("arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/")),
        "{their_arn}"
    );
    assert_eq!(by_id, "NotFoundException");
    assert_eq!(by_alias, "NotFoundException");
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name() != Some("alias/mine"))
    );
}

#[tokio::test]
async fn naming_another_accounts_key_by_arn_is_access_denied() {
    let server = TestServer::start().await;
    let mine = server.client();
    let theirs = server.client_for(OTHER_ACCOUNT, "us-east-1");
    let (key_id, arn) = create_key(&mine, "mine").await;
    mine.create_alias()
        .alias_name("alias/mine")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let ciphertext = encrypt(&mine, &key_id, b"secret", &[]).await;

    let describe = error_code(theirs.describe_key().key_id(&arn).send().await);
    let encrypt = error_code(
        theirs
            .encrypt()
            .key_id(&arn)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    let by_alias_arn = error_code(
        theirs
            .describe_key()
            .key_id(alias_arn("alias/mine"))
            .send()
            .await,
    );
    let disable = error_code(theirs.disable_key().key_id(&arn).send().await);
    let decrypt = error_code(
        theirs
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    let still_enabled = mine
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert_eq!(describe, "AccessDeniedException");
    assert_eq!(encrypt, "AccessDeniedException");
    assert_eq!(by_alias_arn, "AccessDeniedException");
    assert_eq!(disable, "AccessDeniedException");
    assert_eq!(decrypt, "AccessDeniedException");
    assert!(
        still_enabled.key_metadata().is_some_and(|m| m.enabled()),
        "the other account changed nothing"
    );
}
