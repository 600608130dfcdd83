//! GetKeyLastUsage end to end: the last successful cryptographic operation on a key, with its request id
//! and audit event id, per key and per Region, kept across a restart.

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::operation::get_key_last_usage::GetKeyLastUsageOutput;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyLastUsageTrackingOperation;
use serde_json::{Value, json};
use strongroom_service::multi_region::TRANSIENT_STATE;

use crate::harness::{Signer, TempDir, TestServer, create_key, encrypt, failure, key_arn};

async fn last_usage(client: &Client, key: &str) -> GetKeyLastUsageOutput {
    client
        .get_key_last_usage()
        .key_id(key)
        .send()
        .await
        .expect("GetKeyLastUsage succeeds")
}

fn operation(usage: &GetKeyLastUsageOutput) -> Option<KeyLastUsageTrackingOperation> {
    usage
        .key_last_usage()
        .and_then(|last| last.operation())
        .cloned()
}

/// The event ids of the audit records with `request_id`, found with CloudTrail's LookupEvents.
async fn event_ids_of(server: &TestServer, request_id: &str) -> Vec<String> {
    let signer = Signer {
        service: "cloudtrail",
        ..Signer::dev()
    };
    let (status, response) = server
        .raw_as(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &json!({}).to_string(),
            Some(signer),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    response["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let record: Value = serde_json::from_str(entry["CloudTrailEvent"].as_str()?).ok()?;
            (record["requestID"].as_str() == Some(request_id))
                .then(|| record["eventID"].as_str().map(str::to_owned))
                .flatten()
        })
        .collect()
}

#[tokio::test]
async fn reports_the_last_successful_cryptographic_operation() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "tracked").await;
    let created = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey")
        .key_metadata()
        .and_then(|m| m.creation_date().cloned())
        .expect("a creation date");

    let unused = last_usage(&client, &key_id).await;
    assert_eq!(unused.key_id(), Some(key_id.as_str()));
    assert!(
        unused.key_last_usage().is_some(),
        "an empty KeyLastUsage, not none"
    );
    assert_eq!(operation(&unused), None);
    assert_eq!(unused.key_creation_date(), Some(&created));
    // Tracking began when the server first started, before the key existed.
    assert_eq!(unused.tracking_start_date(), Some(&created));

    server.clock().advance(std::time::Duration::from_secs(5));
    let encrypted = client
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(b"tracked".as_slice()))
        .send()
        .await
        .expect("Encrypt");
    let request_id = encrypted.request_id().expect("a request id").to_owned();
    let after_encrypt = last_usage(&client, &arn).await;
    let last = after_encrypt.key_last_usage().expect("KeyLastUsage");
    assert_eq!(
        last.operation(),
        Some(&KeyLastUsageTrackingOperation::Encrypt)
    );
    assert_eq!(last.kms_request_id(), Some(request_id.as_str()));
    assert_eq!(
        last.timestamp().map(|t| t.secs()),
        Some(server.now_secs() as i64)
    );
    let event_ids = event_ids_of(&server, &request_id).await;
    assert_eq!(event_ids.len(), 1, "{event_ids:?}");
    assert_eq!(last.cloud_trail_event_id(), Some(event_ids[0].as_str()));

    // Decrypt replaces it; requests that fail or do no cryptography do not.
    let ciphertext = encrypted.ciphertext_blob().expect("ciphertext").clone();
    client
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(
        operation(&last_usage(&client, &key_id).await),
        Some(KeyLastUsageTrackingOperation::Decrypt)
    );
    let failed = failure(
        client
            .decrypt()
            .ciphertext_blob(ciphertext)
            .encryption_context("wrong", "context")
            .send()
            .await,
    );
    assert_eq!(failed.code, "InvalidCiphertextException");
    client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    let dry_run = client
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"dry".as_slice()))
        .dry_run(true)
        .send()
        .await;
    assert!(
        dry_run.is_err(),
        "a dry run answers DryRunOperationException"
    );
    assert_eq!(
        operation(&last_usage(&client, &key_id).await),
        Some(KeyLastUsageTrackingOperation::Decrypt)
    );

    // Another key is tracked on its own.
    let (other_key, _) = create_key(&client, "untouched").await;
    let other = last_usage(&client, &other_key).await;
    assert_eq!(operation(&other), None);
    assert!(
        other.tracking_start_date() > unused.tracking_start_date(),
        "a key created later is tracked from its creation"
    );
}

#[tokio::test]
async fn re_encrypt_counts_for_both_keys() {
    let server = TestServer::start().await;
    let client = server.client();
    let (source, _) = create_key(&client, "source").await;
    let (destination, _) = create_key(&client, "destination").await;
    let ciphertext = encrypt(&client, &source, b"moving", &[]).await;
    let re_encrypted = client
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .destination_key_id(&destination)
        .send()
        .await
        .expect("ReEncrypt");
    let request_id = re_encrypted.request_id().expect("a request id").to_owned();
    for key in [&source, &destination] {
        let usage = last_usage(&client, key).await;
        let last = usage.key_last_usage().expect("KeyLastUsage");
        assert_eq!(
            last.operation(),
            Some(&KeyLastUsageTrackingOperation::ReEncrypt)
        );
        assert_eq!(last.kms_request_id(), Some(request_id.as_str()));
    }
}

#[tokio::test]
async fn names_keys_by_id_or_arn_of_the_callers_own_account_only() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "mine").await;
    client
        .create_alias()
        .alias_name("alias/tracked")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");

    let by_alias = failure(
        client
            .get_key_last_usage()
            .key_id("alias/tracked")
            .send()
            .await,
    );
    assert_eq!(by_alias.code, "ValidationException");
    assert!(by_alias.message.contains("alias"), "{}", by_alias.message);
    let unknown = failure(
        client
            .get_key_last_usage()
            .key_id(key_arn("0f0f0f0f-0000-4000-8000-000000000000"))
            .send()
            .await,
    );
    assert_eq!(unknown.code, "NotFoundException");

    let other = server.client_for("444455556666", "us-east-1");
    let by_arn = failure(other.get_key_last_usage().key_id(&arn).send().await);
    assert_eq!(by_arn.code, "AccessDeniedException");
    let by_id = failure(other.get_key_last_usage().key_id(&key_id).send().await);
    assert_eq!(by_id.code, "NotFoundException");
    let malformed = failure(
        client
            .get_key_last_usage()
            .key_id("arn:aws:kms:us-east-1:111122223333:not-a-key")
            .send()
            .await,
    );
    assert!(
        ["InvalidArnException", "NotFoundException"].contains(&malformed.code.as_str()),
        "{malformed:?}"
    );
}

#[tokio::test]
async fn each_key_of_a_multi_region_set_has_its_own_usage() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", "eu-west-1");
    let key_id = east
        .create_key()
        .multi_region(true)
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    east.replicate_key()
        .key_id(&key_id)
        .replica_region("eu-west-1")
        .send()
        .await
        .expect("ReplicateKey");
    server.clock().advance(TRANSIENT_STATE);
    let ciphertext = encrypt(&east, &key_id, b"east", &[]).await;
    west.decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await
        .expect("Decrypt in the replica Region");
    assert_eq!(
        operation(&last_usage(&east, &key_id).await),
        Some(KeyLastUsageTrackingOperation::Encrypt)
    );
    assert_eq!(
        operation(&last_usage(&west, &key_id).await),
        Some(KeyLastUsageTrackingOperation::Decrypt)
    );
}

#[tokio::test]
async fn usage_survives_a_restart() {
    let data_dir = TempDir::new("last-usage-restart");
    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "restart").await;
    let generated = client
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateDataKey");
    let request_id = generated.request_id().expect("a request id").to_owned();
    let before = last_usage(&client, &key_id).await;
    server.stop().await;

    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let after = last_usage(&client, &key_id).await;
    let last = after.key_last_usage().expect("KeyLastUsage");
    assert_eq!(
        last.operation(),
        Some(&KeyLastUsageTrackingOperation::GenerateDataKey)
    );
    assert_eq!(last.kms_request_id(), Some(request_id.as_str()));
    assert_eq!(after.key_last_usage(), before.key_last_usage());
    assert_eq!(
        after.tracking_start_date(),
        before.tracking_start_date(),
        "tracking began once, at the first start"
    );
}
