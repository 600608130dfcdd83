//! Secrets Manager end to end with the official `aws-sdk-secretsmanager` (and once with the AWS CLI):
//! versions and staging labels, deletion with a recovery window, idempotent retries, values envelope-
//! encrypted under KMS keys whose policies decide who reads them, IAM policies on `secretsmanager:`
//! actions, nothing in plaintext at rest or in the audit trail, and secrets surviving `kill -9`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, ProcessServer, REGION, Signer, TempDir, TestServer, failure};

const DAY: u64 = 24 * 60 * 60;

/// A Secrets Manager client for `endpoint`, signing with `access_key` and `secret`, without retries.
fn client_with(endpoint: &str, access_key: &str, secret: &str) -> Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            access_key,
            secret,
            None,
            None,
            "strongroom-it-secrets",
        ))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// A client for the default account's root (`test`).
fn client(endpoint: &str) -> Client {
    client_with(endpoint, "test", "test")
}

async fn create(client: &Client, name: &str, value: &str) -> (String, String) {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret");
    (
        created.arn().expect("an ARN").to_owned(),
        created.version_id().expect("a version").to_owned(),
    )
}

async fn get(client: &Client, secret_id: &str) -> String {
    client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .expect("GetSecretValue")
        .secret_string()
        .expect("a string value")
        .to_owned()
}

fn code<T: std::fmt::Debug, E, R: std::fmt::Debug>(
    result: Result<T, aws_sdk_secretsmanager::error::SdkError<E, R>>,
) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
{
    failure(result).code
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_move_their_staging_labels() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());

    let (arn, first) = create(&sm, "prod/db", "v1-password").await;
    assert!(
        arn.starts_with(&format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-"
        )),
        "{arn}"
    );
    let suffix = arn.rsplit('-').next().expect("a suffix");
    assert_eq!(suffix.len(), 6, "{arn}");
    assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()), "{arn}");
    assert_eq!(get(&sm, "prod/db").await, "v1-password");
    assert_eq!(get(&sm, &arn).await, "v1-password", "by full ARN");
    let partial = arn[..arn.len() - 7].to_owned();
    assert_eq!(get(&sm, &partial).await, "v1-password", "by partial ARN");

    let put = sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string("v2-password")
        .send()
        .await
        .expect("PutSecretValue");
    let second = put.version_id().expect("a version").to_owned();
    assert_ne!(second, first);
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    assert_eq!(get(&sm, "prod/db").await, "v2-password");

    let previous = sm
        .get_secret_value()
        .secret_id("prod/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("GetSecretValue AWSPREVIOUS");
    assert_eq!(previous.secret_string(), Some("v1-password"));
    assert_eq!(previous.version_id(), Some(first.as_str()));
    assert_eq!(previous.version_stages(), ["AWSPREVIOUS"]);
    let by_id = sm
        .get_secret_value()
        .secret_id("prod/db")
        .version_id(&second)
        .send()
        .await
        .expect("GetSecretValue by VersionId");
    assert_eq!(by_id.secret_string(), Some("v2-password"));
    assert_eq!(
        code(
            sm.get_secret_value()
                .secret_id("prod/db")
                .version_id(&first)
                .version_stage("AWSCURRENT")
                .send()
                .await
        ),
        "ResourceNotFoundException",
        "VersionId and VersionStage must name the same version"
    );

    // A third version: AWSPREVIOUS moves again, the first version keeps no label; a custom label moves too.
    let third = sm
        .put_secret_value()
        .secret_id(&arn)
        .secret_binary(Blob::new(vec![0u8, 1, 2, 255]))
        .version_stages("AWSCURRENT")
        .version_stages("blue")
        .send()
        .await
        .expect("PutSecretValue binary")
        .version_id()
        .expect("a version")
        .to_owned();
    let binary = sm
        .get_secret_value()
        .secret_id("prod/db")
        .send()
        .await
        .expect("GetSecretValue binary");
    assert_eq!(
        binary.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(vec![0u8, 1, 2, 255])
    );
    assert_eq!(binary.secret_string(), None);
    let described = sm
        .describe_secret()
        .secret_id("prod/db")
        .send()
        .await
        .expect("DescribeSecret");
    let stages = described.version_ids_to_stages().expect("stages");
    assert_eq!(
        stages.len(),
        2,
        "the first version has no label left: {stages:?}"
    );
    assert_eq!(stages[&second], ["AWSPREVIOUS"]);
    let mut current = stages[&third].clone();
    current.sort();
    assert_eq!(current, ["AWSCURRENT", "blue"]);
    assert_eq!(
        described.kms_key_id(),
        None,
        "the AWS managed key is not shown"
    );
    assert!(described.last_accessed_date().is_some());
    assert!(described.deleted_date().is_none());

    // A label alone moves without touching AWSCURRENT.
    let pending = sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string("v4-pending")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue AWSPENDING");
    assert_eq!(pending.version_stages(), ["AWSPENDING"]);
    assert_eq!(
        sm.get_secret_value()
            .secret_id("prod/db")
            .version_stage("AWSPENDING")
            .send()
            .await
            .expect("AWSPENDING")
            .secret_string(),
        Some("v4-pending")
    );
    assert!(
        sm.get_secret_value()
            .secret_id("prod/db")
            .send()
            .await
            .expect("AWSCURRENT")
            .secret_binary()
            .is_some(),
        "AWSCURRENT stays on the binary version"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_describe_and_list() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    sm.create_secret()
        .name("app/api-key")
        .description("The payment API key")
        .secret_string("k-1")
        .tags(Tag::builder().key("team").value("payments").build())
        .send()
        .await
        .expect("CreateSecret with tags");
    server.clock().advance(Duration::from_secs(10));
    // A secret without a value has no version until one is put.
    let empty = sm
        .create_secret()
        .name("app/empty")
        .send()
        .await
        .expect("CreateSecret without a value");
    assert_eq!(empty.version_id(), None);
    assert_eq!(
        code(sm.get_secret_value().secret_id("app/empty").send().await),
        "ResourceNotFoundException"
    );
    server.clock().advance(Duration::from_secs(10));
    create(&sm, "other/thing", "x").await;

    let described = sm
        .describe_secret()
        .secret_id("app/api-key")
        .send()
        .await
        .expect("DescribeSecret");
    assert_eq!(described.description(), Some("The payment API key"));
    assert_eq!(described.tags().len(), 1);
    assert_eq!(described.tags()[0].key(), Some("team"));
    assert!(described.created_date().is_some());
    assert!(described.last_accessed_date().is_none(), "never read yet");

    let all = sm.list_secrets().send().await.expect("ListSecrets");
    let names: Vec<&str> = all.secret_list().iter().filter_map(|s| s.name()).collect();
    assert_eq!(
        names,
        ["app/api-key", "app/empty", "other/thing"],
        "oldest first"
    );
    assert!(
        all.secret_list()[0]
            .secret_versions_to_stages()
            .is_some_and(|stages| stages.len() == 1)
    );

    let filtered = sm
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("app/")
                .build(),
        )
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values("pay")
                .build(),
        )
        .send()
        .await
        .expect("ListSecrets with filters");
    let names: Vec<&str> = filtered
        .secret_list()
        .iter()
        .filter_map(|s| s.name())
        .collect();
    assert_eq!(names, ["app/api-key"]);

    // Pages of two, newest first.
    let first = sm
        .list_secrets()
        .max_results(2)
        .sort_order(aws_sdk_secretsmanager::types::SortOrderType::Desc)
        .send()
        .await
        .expect("page 1");
    assert_eq!(first.secret_list().len(), 2);
    assert_eq!(first.secret_list()[0].name(), Some("other/thing"));
    let token = first.next_token().expect("a next page").to_owned();
    let second = sm
        .list_secrets()
        .max_results(2)
        .sort_order(aws_sdk_secretsmanager::types::SortOrderType::Desc)
        .next_token(token)
        .send()
        .await
        .expect("page 2");
    assert_eq!(second.secret_list().len(), 1);
    assert_eq!(second.secret_list()[0].name(), Some("app/api-key"));
    assert_eq!(second.next_token(), None);
    assert_eq!(
        code(sm.list_secrets().next_token("forged").send().await),
        "InvalidNextTokenException"
    );

    // Refusals with the model's error codes.
    assert_eq!(
        code(
            sm.create_secret()
                .name("app/api-key")
                .secret_string("y")
                .send()
                .await
        ),
        "ResourceExistsException"
    );
    assert_eq!(
        code(
            sm.create_secret()
                .name("bad name!")
                .secret_string("y")
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    assert_eq!(
        code(
            sm.create_secret()
                .name("both")
                .secret_string("y")
                .secret_binary(Blob::new(b"y".to_vec()))
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    assert_eq!(
        code(sm.create_secret().name("x".repeat(513)).send().await),
        "ValidationException"
    );
    assert_eq!(
        code(sm.describe_secret().secret_id("nope").send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            sm.get_secret_value()
                .secret_id(format!(
                    "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/api-key-zzzzzz"
                ))
                .send()
                .await
        ),
        "ResourceNotFoundException",
        "an ARN with the wrong suffix names no secret"
    );
    assert_eq!(
        code(sm.put_secret_value().secret_id("app/empty").send().await),
        "InvalidRequestException",
        "a version needs a value"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_waits_for_the_recovery_window_unless_forced() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    let (arn, _) = create(&sm, "db", "s3cr3t").await;

    for (window, force) in [(Some(6), None), (Some(31), None), (Some(7), Some(true))] {
        let mut request = sm.delete_secret().secret_id("db");
        if let Some(days) = window {
            request = request.recovery_window_in_days(days);
        }
        if let Some(force) = force {
            request = request.force_delete_without_recovery(force);
        }
        assert_eq!(
            code(request.send().await),
            "InvalidParameterException",
            "{window:?} {force:?}"
        );
    }

    let now = server.now_secs();
    let deleted = sm
        .delete_secret()
        .secret_id("db")
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("DeleteSecret");
    assert_eq!(deleted.arn(), Some(arn.as_str()));
    let date = deleted.deletion_date().expect("a deletion date").secs() as f64;
    assert!(
        (date - (now + 7.0 * DAY as f64)).abs() < 5.0,
        "{date} vs {now}"
    );

    assert_eq!(
        code(sm.get_secret_value().secret_id("db").send().await),
        "InvalidRequestException"
    );
    assert_eq!(
        code(
            sm.put_secret_value()
                .secret_id("db")
                .secret_string("z")
                .send()
                .await
        ),
        "InvalidRequestException"
    );
    assert_eq!(
        code(sm.delete_secret().secret_id("db").send().await),
        "InvalidRequestException",
        "already scheduled"
    );
    assert_eq!(
        code(
            sm.create_secret()
                .name("db")
                .secret_string("z")
                .send()
                .await
        ),
        "InvalidRequestException",
        "the name is taken until the secret is gone"
    );
    let described = sm
        .describe_secret()
        .secret_id("db")
        .send()
        .await
        .expect("DescribeSecret still works");
    assert!(described.deleted_date().is_some());
    let listed = sm.list_secrets().send().await.expect("ListSecrets");
    assert!(
        listed.secret_list().is_empty(),
        "scheduled secrets are hidden"
    );
    let planned = sm
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .expect("ListSecrets with planned deletions");
    assert_eq!(planned.secret_list().len(), 1);

    let restored = sm
        .restore_secret()
        .secret_id("db")
        .send()
        .await
        .expect("RestoreSecret");
    assert_eq!(restored.arn(), Some(arn.as_str()));
    assert_eq!(get(&sm, "db").await, "s3cr3t");

    // The default window is 30 days; after it the secret is gone and its name is free.
    let deleted = sm
        .delete_secret()
        .secret_id("db")
        .send()
        .await
        .expect("DeleteSecret with the default window");
    let date = deleted.deletion_date().expect("a deletion date").secs() as f64;
    assert!((date - (server.now_secs() + 30.0 * DAY as f64)).abs() < 5.0);
    server.clock().advance(Duration::from_secs(29 * DAY));
    assert_eq!(
        code(sm.get_secret_value().secret_id("db").send().await),
        "InvalidRequestException",
        "still recoverable on day 29"
    );
    server.clock().advance(Duration::from_secs(DAY + 1));
    assert_eq!(
        code(sm.describe_secret().secret_id("db").send().await),
        "ResourceNotFoundException"
    );
    let (new_arn, _) = create(&sm, "db", "fresh").await;
    assert_ne!(new_arn, arn, "a re-created secret has a new ARN");
    assert_eq!(
        code(sm.get_secret_value().secret_id(&arn).send().await),
        "ResourceNotFoundException",
        "the old ARN does not name the new secret"
    );

    // Forced deletion is immediate, also for a secret already scheduled, and idempotent.
    sm.delete_secret()
        .secret_id("db")
        .recovery_window_in_days(10)
        .send()
        .await
        .expect("schedule");
    sm.delete_secret()
        .secret_id("db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("force");
    assert_eq!(
        code(sm.describe_secret().secret_id("db").send().await),
        "ResourceNotFoundException"
    );
    sm.delete_secret()
        .secret_id("db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("forcing the deletion of a missing secret succeeds");
    assert_eq!(
        code(sm.restore_secret().secret_id("db").send().await),
        "ResourceNotFoundException"
    );
    create(&sm, "db", "again").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_request_tokens_make_retries_idempotent() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    let token = "11111111-2222-4333-8444-555555555555";
    let created = sm
        .create_secret()
        .name("retry")
        .secret_string("one")
        .client_request_token(token)
        .send()
        .await
        .expect("CreateSecret");
    assert_eq!(created.version_id(), Some(token));
    let again = sm
        .create_secret()
        .name("retry")
        .secret_string("one")
        .client_request_token(token)
        .send()
        .await
        .expect("a retry of CreateSecret succeeds");
    assert_eq!(again.arn(), created.arn());
    assert_eq!(
        code(
            sm.create_secret()
                .name("retry")
                .secret_string("two")
                .client_request_token(token)
                .send()
                .await
        ),
        "ResourceExistsException"
    );

    let put_token = "aaaaaaaa-2222-4333-8444-555555555555";
    for _ in 0..2 {
        let put = sm
            .put_secret_value()
            .secret_id("retry")
            .secret_string("two")
            .client_request_token(put_token)
            .send()
            .await
            .expect("PutSecretValue and its retry");
        assert_eq!(put.version_id(), Some(put_token));
        assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    }
    assert_eq!(
        code(
            sm.put_secret_value()
                .secret_id("retry")
                .secret_string("three")
                .client_request_token(put_token)
                .send()
                .await
        ),
        "ResourceExistsException"
    );
    assert_eq!(
        code(
            sm.put_secret_value()
                .secret_id("retry")
                .secret_binary(Blob::new(b"two".to_vec()))
                .client_request_token(put_token)
                .send()
                .await
        ),
        "ResourceExistsException",
        "the same bytes as binary are another value"
    );
    let described = sm
        .describe_secret()
        .secret_id("retry")
        .send()
        .await
        .expect("DescribeSecret");
    let stages = described.version_ids_to_stages().expect("stages");
    assert_eq!(
        stages.len(),
        2,
        "the retry made no third version: {stages:?}"
    );
    assert_eq!(stages[token], ["AWSPREVIOUS"]);
    assert_eq!(get(&sm, "retry").await, "two");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn values_are_protected_by_the_kms_key_and_its_policy() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    let kms = server.client();

    // Without a KmsKeyId the AWS managed key is made on first use, usable only through Secrets Manager.
    create(&sm, "managed", "m-value").await;
    let managed = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .expect("the AWS managed key exists")
        .key_metadata()
        .expect("metadata")
        .clone();
    assert_eq!(
        managed.key_manager(),
        Some(&aws_sdk_kms::types::KeyManagerType::Aws)
    );
    let direct = kms
        .encrypt()
        .key_id("alias/aws/secretsmanager")
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(
        failure(direct).code,
        "AccessDeniedException",
        "the managed key serves only through Secrets Manager"
    );

    // A customer managed key, named by alias.
    let (key_id, key_arn) = crate::harness::create_key(&kms, "secrets key").await;
    kms.create_alias()
        .alias_name("alias/app-secrets")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    sm.create_secret()
        .name("custom")
        .kms_key_id("alias/app-secrets")
        .secret_string("c-value")
        .send()
        .await
        .expect("CreateSecret with a KmsKeyId");
    let described = sm
        .describe_secret()
        .secret_id("custom")
        .send()
        .await
        .expect("DescribeSecret");
    assert_eq!(described.kms_key_id(), Some("alias/app-secrets"));
    assert_eq!(get(&sm, "custom").await, "c-value");

    // A disabled key cannot decrypt or encrypt.
    kms.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(
        code(sm.get_secret_value().secret_id("custom").send().await),
        "DecryptionFailure"
    );
    assert_eq!(
        code(
            sm.put_secret_value()
                .secret_id("custom")
                .secret_string("new")
                .send()
                .await
        ),
        "EncryptionFailure"
    );
    kms.enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKey");
    assert_eq!(get(&sm, "custom").await, "c-value");
    assert_eq!(
        code(
            sm.create_secret()
                .name("no-key")
                .kms_key_id("alias/missing")
                .secret_string("v")
                .send()
                .await
        ),
        "EncryptionFailure"
    );

    // A key policy that denies kms:Decrypt through Secrets Manager: the secret is written but not read.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Sid":"NoReads","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
          "Condition":{{"StringEquals":{{"kms:ViaService":"secretsmanager.{REGION}.amazonaws.com"}}}}}}]}}"#
    );
    let locked = kms
        .create_key()
        .policy(policy)
        .send()
        .await
        .expect("CreateKey with a policy")
        .key_metadata()
        .expect("metadata")
        .arn()
        .expect("an ARN")
        .to_owned();
    sm.create_secret()
        .name("write-only")
        .kms_key_id(&locked)
        .secret_string("w-value")
        .send()
        .await
        .expect("GenerateDataKey is allowed");
    let refused = failure(sm.get_secret_value().secret_id("write-only").send().await);
    assert_eq!(refused.code, "AccessDeniedException", "{refused:?}");
    assert!(!refused.message.contains("w-value"));
    assert!(key_arn.starts_with("arn:aws:kms:"));
    server.stop().await;
}

/// A user's access key, made by the default root through IAM.
async fn user(endpoint: &str, name: &str, policy: &str) -> (String, String) {
    let admin = crate::iam::iam(endpoint, &crate::iam::Keys::dev());
    admin
        .create_user()
        .user_name(name)
        .send()
        .await
        .expect("CreateUser");
    admin
        .put_user_policy()
        .user_name(name)
        .policy_name("secrets")
        .policy_document(policy)
        .send()
        .await
        .expect("PutUserPolicy");
    let created = admin
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("CreateAccessKey");
    let key = created.access_key().expect("an access key");
    (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_policies_decide_who_may_use_secrets() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = client(&endpoint);
    create(&root, "app/one", "one").await;
    create(&root, "ops/two", "two").await;
    let (key_id, _) = crate::harness::create_key(&server.client(), "app key").await;
    root.create_secret()
        .name("app/custom")
        .kms_key_id(&key_id)
        .secret_string("custom")
        .send()
        .await
        .expect("CreateSecret");

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],
          "Resource":"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/*"}}]}}"#
    );
    let (access_key, secret) = user(&endpoint, "alice", &policy).await;
    let alice = client_with(&endpoint, &access_key, &secret);

    assert_eq!(
        get(&alice, "app/one").await,
        "one",
        "the managed key serves account users"
    );
    assert_eq!(
        code(alice.get_secret_value().secret_id("ops/two").send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(alice.get_secret_value().secret_id("ops/ghost").send().await),
        "AccessDeniedException",
        "a caller without permission does not learn what exists"
    );
    assert_eq!(
        code(alice.get_secret_value().secret_id("app/ghost").send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            alice
                .create_secret()
                .name("app/new")
                .secret_string("n")
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(alice.list_secrets().send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            alice
                .put_secret_value()
                .secret_id("app/one")
                .secret_string("x")
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    // A customer managed key whose policy delegates to IAM also needs kms:Decrypt in her policies.
    assert_eq!(
        code(
            alice
                .get_secret_value()
                .secret_id("app/custom")
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    let with_kms = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
        {"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"},
        {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:*:*:secret:ops/*"}]}"#;
    let (access_key, secret) = user(&endpoint, "bob", with_kms).await;
    let bob = client_with(&endpoint, &access_key, &secret);
    assert_eq!(get(&bob, "app/custom").await, "custom");
    assert_eq!(
        code(bob.get_secret_value().secret_id("ops/two").send().await),
        "AccessDeniedException",
        "an explicit deny wins"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_recorded_in_the_audit_trail_without_values() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    let marker = "audit-secret-marker-5d2e";
    create(&sm, "audited", marker).await;
    get(&sm, "audited").await;
    let _ = sm.get_secret_value().secret_id("missing").send().await;

    let records = trail_records(&server, "secretsmanager.amazonaws.com", marker).await;
    let names: Vec<&str> = records
        .iter()
        .filter_map(|r| r["eventName"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["CreateSecret", "GetSecretValue"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(
        records
            .iter()
            .all(|r| r["requestParameters"].is_null() && r["responseElements"].is_null())
    );
    assert!(
        records
            .iter()
            .any(|r| r["errorCode"] == "ResourceNotFoundException")
    );

    // The KMS calls Secrets Manager made for the caller are the caller's, invoked by Secrets
    // Manager, as CloudTrail records them: GenerateDataKey when the value was stored, Decrypt when
    // it was read, each naming the secret in its encryption context and the key it used.
    let arn = sm
        .describe_secret()
        .secret_id("audited")
        .send()
        .await
        .expect("describe")
        .arn
        .expect("an ARN");
    let kms_records: Vec<Value> = trail_records(&server, "kms.amazonaws.com", marker)
        .await
        .into_iter()
        .filter(|r| r["userIdentity"]["invokedBy"] == "secretsmanager.amazonaws.com")
        .collect();
    for operation in ["GenerateDataKey", "Decrypt"] {
        let record = kms_records
            .iter()
            .find(|r| r["eventName"] == operation)
            .unwrap_or_else(|| panic!("no {operation} on the caller's behalf: {kms_records:?}"));
        assert_eq!(record["userIdentity"]["accountId"], "111122223333");
        assert_eq!(record["sourceIPAddress"], "secretsmanager.amazonaws.com");
        assert_eq!(
            record["requestParameters"]["encryptionContext"]["SecretARN"],
            arn.as_str(),
            "{record}"
        );
        assert!(record["errorCode"].is_null(), "{record}");
        let key_arn = record["resources"][0]["ARN"].as_str().expect("the key");
        assert!(
            key_arn.starts_with("arn:aws:kms:us-east-1:111122223333:key/"),
            "{record}"
        );
    }
    server.stop().await;
}

/// The CloudTrail records LookupEvents returns for `event_source`, after checking that `marker` (a
/// secret value) appears nowhere in the answer.
async fn trail_records(server: &TestServer, event_source: &str, marker: &str) -> Vec<Value> {
    let body = json!({"LookupAttributes": [
        {"AttributeKey": "EventSource", "AttributeValue": event_source}
    ]});
    let signer = Signer {
        service: "cloudtrail",
        ..Signer::dev()
    };
    let (status, response) = server
        .raw_as(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &body.to_string(),
            Some(signer),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert!(!response.to_string().contains(marker));
    response["Events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|entry| {
            serde_json::from_str(entry["CloudTrailEvent"].as_str().expect("a record"))
                .expect("JSON")
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read the data directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn values_are_never_stored_in_plaintext_and_survive_kill_9() {
    let dir = TempDir::new("secrets-at-rest");
    let marker = "plaintext-secret-marker-41b9e7";
    let binary_marker = b"binary-secret-marker-8c03aa";
    let server = ProcessServer::start_dev(dir.path());
    let endpoint = format!("http://{}", server.address());
    let sm = client(&endpoint);
    create(&sm, "durable", marker).await;
    sm.create_secret()
        .name("durable-binary")
        .secret_binary(Blob::new(binary_marker.to_vec()))
        .send()
        .await
        .expect("CreateSecret binary");
    server.kill9();

    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    let database = dir.path().join(strongroom_server::DATABASE_FILE);
    assert!(files.contains(&database), "{files:?}");
    let mut searched = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("read a data file");
        searched += bytes.len();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "{} holds the secret in plaintext",
            file.display()
        );
        assert!(
            !contains(&bytes, binary_marker),
            "{} holds the binary secret in plaintext",
            file.display()
        );
    }
    // The rows are there, so the search looked at what was written: the name is stored in the clear.
    let all: Vec<u8> = files
        .iter()
        .flat_map(|file| std::fs::read(file).unwrap_or_default())
        .collect();
    assert!(
        contains(&all, b"durable-binary"),
        "searched {searched} bytes"
    );

    let server = ProcessServer::start_dev(dir.path());
    let sm = client(&format!("http://{}", server.address()));
    assert_eq!(get(&sm, "durable").await, marker);
    let binary = sm
        .get_secret_value()
        .secret_id("durable-binary")
        .send()
        .await
        .expect("GetSecretValue after restart");
    assert_eq!(
        binary.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(binary_marker.to_vec())
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_operations_say_so() {
    let server = TestServer::start().await;
    let sm = client(&server.endpoint());
    create(&sm, "s", "v").await;
    let refused = failure(
        sm.update_secret()
            .secret_id("s")
            .description("d")
            .send()
            .await,
    );
    assert_eq!(refused.code, "UnsupportedOperationException");
    assert!(refused.message.contains("UpdateSecret"), "{refused:?}");
    server.stop().await;
}

/// The AWS CLI v1 as `cargo xtask ci` installs it (see `cloudhsm.rs`).
fn aws_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("STRONGROOM_AWS_CLI") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/awscli/bin/aws")
}

/// Runs `aws secretsmanager <args>` against `server`; returns whether it succeeded, stdout and stderr.
async fn aws_secretsmanager(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let cli = aws_cli();
    let output = tokio::process::Command::new(&cli)
        .args([
            "--endpoint-url",
            &server.endpoint(),
            "--output",
            "json",
            "secretsmanager",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `cargo xtask ci`, which installs the AWS CLI there",
                cli.display()
            )
        });
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_v1_manages_secrets() {
    let server = TestServer::start().await;
    let json =
        |text: &str| -> Value { serde_json::from_str(text).expect("the AWS CLI prints JSON") };
    let (ok, out, err) = aws_secretsmanager(
        &server,
        &[
            "create-secret",
            "--name",
            "cli/db",
            "--secret-string",
            "cli-pass-1",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let arn = json(&out)["ARN"].as_str().expect("an ARN").to_owned();
    let (ok, out, err) = aws_secretsmanager(
        &server,
        &[
            "put-secret-value",
            "--secret-id",
            &arn,
            "--secret-string",
            "cli-pass-2",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        aws_secretsmanager(&server, &["get-secret-value", "--secret-id", "cli/db"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(json(&out)["SecretString"], "cli-pass-2");
    let (ok, out, err) = aws_secretsmanager(
        &server,
        &[
            "get-secret-value",
            "--secret-id",
            "cli/db",
            "--version-stage",
            "AWSPREVIOUS",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(json(&out)["SecretString"], "cli-pass-1");
    let (ok, out, err) = aws_secretsmanager(&server, &["list-secrets"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(json(&out)["SecretList"][0]["Name"], "cli/db");
    let (ok, out, err) = aws_secretsmanager(
        &server,
        &[
            "delete-secret",
            "--secret-id",
            "cli/db",
            "--recovery-window-in-days",
            "7",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        aws_secretsmanager(&server, &["get-secret-value", "--secret-id", "cli/db"]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("InvalidRequestException"), "{err}");
    let (ok, out, err) =
        aws_secretsmanager(&server, &["restore-secret", "--secret-id", "cli/db"]).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        aws_secretsmanager(&server, &["describe-secret", "--secret-id", "cli/db"]).await;
    assert!(ok, "{out}{err}");
    assert!(json(&out)["DeletedDate"].is_null());
    server.stop().await;
}
