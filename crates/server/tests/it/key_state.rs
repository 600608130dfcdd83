//! The key-state table: what each operation does to Disabled keys and keys pending deletion, with AWS's
//! exact messages, the deletion window, cancelling deletion, and deletion once the window has passed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState, Tag};

use crate::harness::{Failure, TempDir, TestServer, create_key, encrypt, error_code, failure};

const DAY: u64 = 86_400;

/// Every cryptographic operation on `key_id`, each with the error it failed with (or `None`).
async fn crypto_failures(
    client: &Client,
    key_id: &str,
    ciphertext: &[u8],
    other_key: &str,
) -> Vec<(&'static str, Option<Failure>)> {
    let plaintext = || Blob::new(b"x".as_slice());
    let outcome = |result: Result<(), Failure>| result.err();
    vec![
        (
            "Encrypt",
            outcome(
                client
                    .encrypt()
                    .key_id(key_id)
                    .plaintext(plaintext())
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure),
            ),
        ),
        (
            "Decrypt",
            outcome(
                client
                    .decrypt()
                    .ciphertext_blob(Blob::new(ciphertext))
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure),
            ),
        ),
        (
            "GenerateDataKey",
            outcome(
                client
                    .generate_data_key()
                    .key_id(key_id)
                    .key_spec(DataKeySpec::Aes256)
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure),
            ),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            outcome(
                client
                    .generate_data_key_without_plaintext()
                    .key_id(key_id)
                    .number_of_bytes(16)
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure),
            ),
        ),
        (
            "ReEncrypt to the key",
            outcome({
                let other_ciphertext = encrypt(client, other_key, b"y", &[]).await;
                client
                    .re_encrypt()
                    .ciphertext_blob(Blob::new(other_ciphertext))
                    .destination_key_id(key_id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure)
            }),
        ),
        (
            "ReEncrypt from the key",
            outcome(
                client
                    .re_encrypt()
                    .ciphertext_blob(Blob::new(ciphertext))
                    .destination_key_id(other_key)
                    .send()
                    .await
                    .map(drop)
                    .map_err(to_failure),
            ),
        ),
    ]
}

fn to_failure<E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    error: aws_sdk_kms::error::SdkError<E, R>,
) -> Failure {
    failure::<(), E, R>(Err(error))
}

#[tokio::test]
async fn cryptography_with_a_disabled_key_is_disabled_exception() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "disabled").await;
    let (other, _) = create_key(&client, "other").await;
    let ciphertext = encrypt(&client, &key_id, b"sealed", &[]).await;
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");

    let failures = crypto_failures(&client, &key_id, &ciphertext, &other).await;

    for (operation, failure) in failures {
        let failure =
            failure.unwrap_or_else(|| panic!("{operation} succeeded with a disabled key"));
        assert_eq!(failure.code, "DisabledException", "{operation}");
        assert_eq!(
            failure.message,
            format!("{arn} is disabled."),
            "{operation}"
        );
    }
}

#[tokio::test]
async fn a_disabled_key_can_still_be_viewed_and_managed() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "disabled").await;
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");
    let tag = Tag::builder()
        .tag_key("k")
        .tag_value("v")
        .build()
        .expect("a tag");

    let results = [
        (
            "DescribeKey",
            client
                .describe_key()
                .key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "GetKeyPolicy",
            client
                .get_key_policy()
                .key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "ListKeyPolicies",
            client
                .list_key_policies()
                .key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "TagResource",
            client
                .tag_resource()
                .key_id(&key_id)
                .tags(tag)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "ListResourceTags",
            client
                .list_resource_tags()
                .key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "UpdateKeyDescription",
            client
                .update_key_description()
                .key_id(&key_id)
                .description("d")
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "CreateAlias",
            client
                .create_alias()
                .alias_name("alias/disabled")
                .target_key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
        (
            "GetKeyRotationStatus",
            client
                .get_key_rotation_status()
                .key_id(&key_id)
                .send()
                .await
                .map(drop)
                .err()
                .map(|e| format!("{e:?}")),
        ),
    ];

    for (operation, error) in results {
        assert_eq!(error, None, "{operation} works on a disabled key");
    }
}

#[tokio::test]
async fn schedule_key_deletion_makes_the_key_pending_deletion() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "doomed").await;
    let now = server.now_secs();

    let scheduled = client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    let described = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey works while pending");

    assert_eq!(scheduled.key_id(), Some(arn.as_str()));
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    let deletion = scheduled
        .deletion_date()
        .expect("a DeletionDate")
        .as_secs_f64();
    assert!(
        (deletion - (now + 7.0 * DAY as f64)).abs() < 60.0,
        "deleted seven days from now"
    );
    let metadata = described.key_metadata().expect("KeyMetadata");
    assert_eq!(metadata.key_state(), Some(&KeyState::PendingDeletion));
    assert!(!metadata.enabled());
    assert_eq!(
        metadata.deletion_date().map(|d| d.as_secs_f64()),
        Some(deletion)
    );
}

#[tokio::test]
async fn the_deletion_window_defaults_to_30_days_and_must_be_7_to_30() {
    let server = TestServer::start().await;
    let client = server.client();
    let now = server.now_secs();
    let (default_id, _) = create_key(&client, "default window").await;
    let (longest_id, _) = create_key(&client, "longest window").await;
    let (refused_id, _) = create_key(&client, "refused").await;

    let by_default = client
        .schedule_key_deletion()
        .key_id(&default_id)
        .send()
        .await
        .expect("schedule");
    let longest = client
        .schedule_key_deletion()
        .key_id(&longest_id)
        .pending_window_in_days(30)
        .send()
        .await
        .expect("30");
    let six = error_code(
        client
            .schedule_key_deletion()
            .key_id(&refused_id)
            .pending_window_in_days(6)
            .send()
            .await,
    );
    let thirty_one = error_code(
        client
            .schedule_key_deletion()
            .key_id(&refused_id)
            .pending_window_in_days(31)
            .send()
            .await,
    );
    let untouched = client
        .describe_key()
        .key_id(&refused_id)
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert_eq!(by_default.pending_window_in_days(), Some(30));
    let deletion = by_default
        .deletion_date()
        .expect("a DeletionDate")
        .as_secs_f64();
    assert!((deletion - (now + 30.0 * DAY as f64)).abs() < 60.0);
    assert_eq!(longest.pending_window_in_days(), Some(30));
    assert_eq!(six, "ValidationException");
    assert_eq!(thirty_one, "ValidationException");
    assert_eq!(
        untouched.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Enabled)
    );
}

#[tokio::test]
async fn a_key_pending_deletion_refuses_cryptography_and_changes() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "doomed").await;
    let (other, _) = create_key(&client, "other").await;
    let ciphertext = encrypt(&client, &key_id, b"sealed", &[]).await;
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    let pending = format!("{arn} is pending deletion.");
    let tag = Tag::builder()
        .tag_key("k")
        .tag_value("v")
        .build()
        .expect("a tag");

    let crypto = crypto_failures(&client, &key_id, &ciphertext, &other).await;
    let management = [
        (
            "EnableKey",
            failure(client.enable_key().key_id(&key_id).send().await),
        ),
        (
            "DisableKey",
            failure(client.disable_key().key_id(&key_id).send().await),
        ),
        (
            "ScheduleKeyDeletion",
            failure(client.schedule_key_deletion().key_id(&key_id).send().await),
        ),
        (
            "UpdateKeyDescription",
            failure(
                client
                    .update_key_description()
                    .key_id(&key_id)
                    .description("d")
                    .send()
                    .await,
            ),
        ),
        (
            "TagResource",
            failure(client.tag_resource().key_id(&key_id).tags(tag).send().await),
        ),
        (
            "UntagResource",
            failure(
                client
                    .untag_resource()
                    .key_id(&key_id)
                    .tag_keys("k")
                    .send()
                    .await,
            ),
        ),
        (
            "CreateAlias",
            failure(
                client
                    .create_alias()
                    .alias_name("alias/doomed")
                    .target_key_id(&key_id)
                    .send()
                    .await,
            ),
        ),
    ];

    for (operation, failure) in crypto {
        let failure =
            failure.unwrap_or_else(|| panic!("{operation} succeeded with a key pending deletion"));
        assert_eq!(failure.code, "KMSInvalidStateException", "{operation}");
        assert_eq!(failure.message, pending, "{operation}");
    }
    for (operation, failure) in management {
        assert_eq!(failure.code, "KMSInvalidStateException", "{operation}");
        assert_eq!(failure.message, pending, "{operation}");
    }
}

#[tokio::test]
async fn a_key_pending_deletion_can_still_be_viewed_and_its_policy_changed() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "doomed").await;
    client
        .create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias succeeds");
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    let policy = client
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy works while pending");
    let policy = policy.policy().expect("a policy").to_owned();

    let put = client
        .put_key_policy()
        .key_id(&key_id)
        .policy(&policy)
        .send()
        .await;
    let tags = client.list_resource_tags().key_id(&key_id).send().await;
    let policies = client.list_key_policies().key_id(&key_id).send().await;
    let aliases = client
        .list_aliases()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListAliases works while pending");
    let deleted_alias = client
        .delete_alias()
        .alias_name("alias/doomed")
        .send()
        .await;

    assert!(put.is_ok(), "PutKeyPolicy works while pending: {put:?}");
    assert!(
        tags.is_ok(),
        "ListResourceTags works while pending: {tags:?}"
    );
    assert!(
        policies.is_ok(),
        "ListKeyPolicies works while pending: {policies:?}"
    );
    assert_eq!(aliases.aliases().len(), 1);
    assert!(
        deleted_alias.is_ok(),
        "DeleteAlias works while pending: {deleted_alias:?}"
    );
}

#[tokio::test]
async fn update_alias_refuses_a_destination_pending_deletion_but_not_a_source() {
    let server = TestServer::start().await;
    let client = server.client();
    let (source, _) = create_key(&client, "source").await;
    let (destination, destination_arn) = create_key(&client, "destination").await;
    client
        .create_alias()
        .alias_name("alias/a")
        .target_key_id(&source)
        .send()
        .await
        .expect("CreateAlias succeeds");
    client
        .create_alias()
        .alias_name("alias/b")
        .target_key_id(&source)
        .send()
        .await
        .expect("CreateAlias succeeds");
    client
        .schedule_key_deletion()
        .key_id(&destination)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    let to_pending = failure(
        client
            .update_alias()
            .alias_name("alias/a")
            .target_key_id(&destination)
            .send()
            .await,
    );
    client
        .schedule_key_deletion()
        .key_id(&source)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    client
        .cancel_key_deletion()
        .key_id(&destination)
        .send()
        .await
        .expect("cancel");
    let from_pending = client
        .update_alias()
        .alias_name("alias/b")
        .target_key_id(&destination)
        .send()
        .await;

    assert_eq!(to_pending.code, "KMSInvalidStateException");
    assert_eq!(
        to_pending.message,
        format!("{destination_arn} is pending deletion.")
    );
    assert!(
        from_pending.is_ok(),
        "moving an alias away from a key pending deletion works: {from_pending:?}"
    );
}

#[tokio::test]
async fn cancel_key_deletion_leaves_the_key_disabled() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "reprieved").await;
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    let cancelled = client
        .cancel_key_deletion()
        .key_id(&arn)
        .send()
        .await
        .expect("CancelKeyDeletion succeeds");
    let described = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    let encrypt_refused = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    client
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKey succeeds");
    let ciphertext = encrypt(&client, &key_id, b"alive", &[]).await;

    assert_eq!(cancelled.key_id(), Some(arn.as_str()));
    let metadata = described.key_metadata().expect("KeyMetadata");
    assert_eq!(metadata.key_state(), Some(&KeyState::Disabled));
    assert!(
        metadata.deletion_date().is_none(),
        "no DeletionDate after cancelling"
    );
    assert_eq!(encrypt_refused, "DisabledException");
    assert!(!ciphertext.is_empty());
}

#[tokio::test]
async fn cancel_key_deletion_of_a_key_not_pending_deletion_is_invalid_state() {
    let server = TestServer::start().await;
    let client = server.client();
    let (enabled, enabled_arn) = create_key(&client, "enabled").await;
    let (disabled, _) = create_key(&client, "disabled").await;
    client
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .expect("DisableKey succeeds");

    let of_enabled = failure(client.cancel_key_deletion().key_id(&enabled).send().await);
    let of_disabled = error_code(client.cancel_key_deletion().key_id(&disabled).send().await);

    assert_eq!(of_enabled.code, "KMSInvalidStateException");
    assert!(
        of_enabled
            .message
            .starts_with(&format!("{enabled_arn} is not pending deletion")),
        "AWS's message: {}",
        of_enabled.message
    );
    assert_eq!(of_disabled, "KMSInvalidStateException");
}

#[tokio::test]
async fn once_the_window_passes_the_key_and_its_aliases_are_gone() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "doomed").await;
    let (survivor, _) = create_key(&client, "survivor").await;
    client
        .create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias succeeds");
    client
        .create_alias()
        .alias_name("alias/survivor")
        .target_key_id(&survivor)
        .send()
        .await
        .expect("CreateAlias");
    let ciphertext = encrypt(&client, &key_id, b"lost", &[]).await;
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    server.clock().advance(Duration::from_secs(7 * DAY - 60));
    let just_before = client.describe_key().key_id(&key_id).send().await;
    server.clock().advance(Duration::from_secs(120));
    let describe = error_code(client.describe_key().key_id(&key_id).send().await);
    let describe_arn = error_code(client.describe_key().key_id(&arn).send().await);
    let encrypt_after = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    let decrypt_after = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .send()
            .await,
    );
    let by_alias = error_code(client.describe_key().key_id("alias/doomed").send().await);
    let aliases = client
        .list_aliases()
        .send()
        .await
        .expect("ListAliases succeeds");
    let keys = client.list_keys().send().await.expect("ListKeys succeeds");

    assert!(
        just_before.is_ok(),
        "the key exists until its DeletionDate: {just_before:?}"
    );
    assert_eq!(describe, "NotFoundException");
    assert_eq!(describe_arn, "NotFoundException");
    assert_eq!(encrypt_after, "NotFoundException");
    assert_eq!(decrypt_after, "NotFoundException");
    assert_eq!(by_alias, "NotFoundException");
    let names: HashSet<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert!(
        !names.contains("alias/doomed"),
        "the deleted key's alias is gone: {names:?}"
    );
    assert!(
        names.contains("alias/survivor"),
        "other aliases stay: {names:?}"
    );
    let ids: HashSet<&str> = keys.keys().iter().filter_map(|k| k.key_id()).collect();
    assert!(!ids.contains(key_id.as_str()));
    assert!(ids.contains(survivor.as_str()));
    client
        .create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&survivor)
        .send()
        .await
        .expect("the name is free");
}

#[tokio::test]
async fn the_scheduler_deletes_keys_nobody_touches() {
    let data_dir = TempDir::new("scheduler");
    let server = TestServer::start_in(data_dir.path(), |config| {
        config.scheduler_interval = Duration::from_millis(20)
    })
    .await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "forgotten").await;
    client
        .create_alias()
        .alias_name("alias/forgotten")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    server.clock().advance(Duration::from_secs(8 * DAY));
    // ListKeys and ListAliases read the store without touching the key, so only the scheduler can delete it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut listed = true;
    while Instant::now() < deadline {
        let keys = client.list_keys().send().await.expect("ListKeys succeeds");
        let aliases = client
            .list_aliases()
            .send()
            .await
            .expect("ListAliases succeeds");
        listed = keys
            .keys()
            .iter()
            .any(|k| k.key_id() == Some(key_id.as_str()))
            || aliases
                .aliases()
                .iter()
                .any(|a| a.alias_name() == Some("alias/forgotten"));
        if !listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(!listed, "the scheduler deleted the key and its alias");
    server.stop().await;
}

#[tokio::test]
async fn a_deletion_done_on_access_is_permanent_after_a_restart() {
    let data_dir = TempDir::new("deleted-restart");
    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "doomed").await;
    client
        .create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let ciphertext = encrypt(&client, &key_id, b"lost", &[]).await;
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    server.clock().advance(Duration::from_secs(8 * DAY));
    let gone = error_code(client.describe_key().key_id(&key_id).send().await);
    server.stop().await;

    let restarted = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = restarted.client();
    let describe = error_code(client.describe_key().key_id(&key_id).send().await);
    let decrypt = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .send()
            .await,
    );
    let aliases = client
        .list_aliases()
        .send()
        .await
        .expect("ListAliases succeeds");
    let keys = client.list_keys().send().await.expect("ListKeys succeeds");

    assert_eq!(gone, "NotFoundException");
    assert_eq!(
        describe, "NotFoundException",
        "the deletion was stored, not only cached"
    );
    assert_eq!(decrypt, "NotFoundException");
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name() != Some("alias/doomed"))
    );
    assert!(
        keys.keys()
            .iter()
            .all(|k| k.key_id() != Some(key_id.as_str()))
    );
}
