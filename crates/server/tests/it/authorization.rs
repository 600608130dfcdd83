//! Key policies enforced end to end: cross-account use, explicit denies, conditions, and the lockout
//! safety check.
//!
//! Every caller here is an account root (the `--dev` credentials); IAM users and roles come later.

use aws_sdk_kms::primitives::Blob;

use crate::harness::{TestServer, create_key, decrypt, encrypt, failure};

const OWNER: &str = "111122223333";
const OTHER: &str = "444455556666";
const REGION: &str = "us-east-1";

fn policy(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

fn owner_admin() -> String {
    format!(
        r#"{{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:root"}},"Action":"kms:*","Resource":"*"}}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn another_account_needs_the_key_policy_to_name_it() {
    let server = TestServer::start().await;
    let owner = server.client();
    let other = server.client_for(OTHER, REGION);
    let (key_id, key_arn) = create_key(&owner, "lent key").await;

    // The default key policy names only the owner's account.
    let denied = failure(
        other
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    );
    assert_eq!(denied.code, "AccessDeniedException");
    assert!(
        denied
            .message
            .contains(&format!("arn:aws:iam::{OTHER}:root"))
            && denied.message.contains("kms:Encrypt")
            && denied
                .message
                .contains("because no resource-based policy allows the kms:Encrypt action"),
        "{}",
        denied.message
    );

    let lend = policy(&format!(
        r#"{},{{"Sid":"Lend","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},
        "Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}}"#,
        owner_admin()
    ));
    owner
        .put_key_policy()
        .key_id(&key_id)
        .policy(lend)
        .send()
        .await
        .expect("PutKeyPolicy succeeds");

    let ciphertext = encrypt(&other, &key_arn, b"borrowed", &[("tenant", "b")]).await;
    assert_eq!(
        decrypt(&other, &ciphertext, &[("tenant", "b")]).await,
        b"borrowed"
    );
    // The owner decrypts what the other account encrypted: same key.
    assert_eq!(
        decrypt(&owner, &ciphertext, &[("tenant", "b")]).await,
        b"borrowed"
    );
    let described = other
        .describe_key()
        .key_id(&key_arn)
        .send()
        .await
        .expect("DescribeKey succeeds");
    assert_eq!(
        described.key_metadata().map(|m| m.key_id()),
        Some(key_id.as_str())
    );

    // Actions the policy does not lend stay refused, and management operations never cross accounts.
    let code = failure(
        other
            .generate_data_key()
            .key_id(&key_arn)
            .number_of_bytes(16)
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(other.disable_key().key_id(&key_arn).send().await).code;
    assert_eq!(code, "AccessDeniedException");
    // A bare key id names a key in the caller's own account, where it does not exist.
    let code = failure(
        other
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "NotFoundException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_deny_wins_over_any_allow() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "deny decrypt").await;
    let ciphertext = encrypt(&client, &key_id, b"secret", &[]).await;
    let deny = policy(&format!(
        r#"{},{{"Sid":"NoDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}}"#,
        owner_admin()
    ));
    client
        .put_key_policy()
        .key_id(&key_id)
        .policy(deny)
        .send()
        .await
        .expect("PutKeyPolicy succeeds");

    let denied = failure(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    assert_eq!(denied.code, "AccessDeniedException");
    assert!(
        denied
            .message
            .contains("with an explicit deny in a resource-based policy"),
        "{}",
        denied.message
    );
    // Encrypt is still allowed by the Owner statement.
    encrypt(&client, &key_id, b"more", &[]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_on_the_encryption_context_are_enforced() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "tenant-bound").await;
    let bound = policy(&format!(
        r#"{{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"NotAction":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}},
        {{"Sid":"TenantA","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
          "Condition":{{"StringEquals":{{"kms:EncryptionContext:tenant":"a"}}}}}}"#
    ));
    client
        .put_key_policy()
        .key_id(&key_id)
        .policy(bound)
        .send()
        .await
        .expect("PutKeyPolicy succeeds");

    let ciphertext = encrypt(&client, &key_id, b"for a", &[("tenant", "a")]).await;
    assert_eq!(
        decrypt(&client, &ciphertext, &[("tenant", "a")]).await,
        b"for a"
    );
    let code = failure(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x"))
            .encryption_context("tenant", "b")
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lockout_safety_check_refuses_a_policy_that_locks_the_caller_out() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "lockout").await;
    let locked = policy(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:root"}},"Action":"kms:Encrypt","Resource":"*"}}"#
    ));
    let refused = failure(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy(&locked)
            .send()
            .await,
    );
    assert_eq!(refused.code, "MalformedPolicyDocumentException");
    assert!(
        refused.message.contains("BypassPolicyLockoutSafetyCheck"),
        "{}",
        refused.message
    );
    let refused = failure(client.create_key().policy(&locked).send().await);
    assert_eq!(refused.code, "MalformedPolicyDocumentException");

    // With the check bypassed the policy is accepted, and the caller can no longer read or change it.
    client
        .put_key_policy()
        .key_id(&key_id)
        .policy(&locked)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .expect("PutKeyPolicy with the bypass succeeds");
    let code = failure(client.get_key_policy().key_id(&key_id).send().await).code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy(policy(&owner_admin()))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    encrypt(&client, &key_id, b"still encrypts", &[]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_key_policies_say_what_is_wrong() {
    let server = TestServer::start().await;
    let client = server.client();
    let bad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEqualz":{"kms:CallerAccount":"1"}}}]}"#;
    let refused = failure(client.create_key().policy(bad).send().await);
    assert_eq!(refused.code, "MalformedPolicyDocumentException");
    assert!(
        refused.message.contains("StringEqualz"),
        "{}",
        refused.message
    );
    server.stop().await;
}
