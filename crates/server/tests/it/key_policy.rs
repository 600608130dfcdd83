//! Key policies through the SDK: GetKeyPolicy, PutKeyPolicy and ListKeyPolicies.

use serde_json::Value;

use crate::harness::{ACCOUNT, TestServer, create_key, error_code};

fn policy_allowing_root(sid: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "custom",
        "Statement": [{
            "Sid": sid,
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
            "Action": "kms:*",
            "Resource": "*",
        }],
    })
    .to_string()
}

#[tokio::test]
async fn a_new_key_has_the_default_policy() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "policy").await;

    let output = client
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");
    let named = client
        .get_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .send()
        .await
        .expect("by name");

    let policy: Value =
        serde_json::from_str(output.policy().expect("a policy")).expect("the policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("a Statement array");
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    assert!(
        statements.iter().any(|s| s["Effect"] == "Allow"
            && s["Principal"]["AWS"] == root.as_str()
            && s["Action"] == "kms:*"),
        "the default policy lets the account root do everything: {policy}"
    );
    assert_eq!(output.policy_name(), Some("default"));
    assert_eq!(named.policy(), output.policy());
}

#[tokio::test]
async fn put_key_policy_replaces_the_policy_verbatim() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "policy").await;
    let replacement = policy_allowing_root("replaced");

    client
        .put_key_policy()
        .key_id(&key_id)
        .policy(&replacement)
        .send()
        .await
        .expect("PutKeyPolicy succeeds");
    let after = client
        .get_key_policy()
        .key_id(&arn)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");
    let second = policy_allowing_root("again");
    client
        .put_key_policy()
        .key_id(&arn)
        .policy_name("default")
        .policy(&second)
        .send()
        .await
        .expect("PutKeyPolicy by ARN with the default name succeeds");
    let again = client
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");

    assert_eq!(after.policy(), Some(replacement.as_str()));
    assert_eq!(again.policy(), Some(second.as_str()));
}

#[tokio::test]
async fn list_key_policies_lists_only_default() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "policy").await;

    let output = client
        .list_key_policies()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListKeyPolicies succeeds");
    let limited = client
        .list_key_policies()
        .key_id(&key_id)
        .limit(1)
        .send()
        .await
        .expect("with Limit 1");

    assert_eq!(output.policy_names(), &["default".to_owned()]);
    assert!(!output.truncated());
    assert_eq!(limited.policy_names(), &["default".to_owned()]);
    assert!(!limited.truncated());
}

#[tokio::test]
async fn policy_names_other_than_default_are_not_found() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "policy").await;

    let get = error_code(
        client
            .get_key_policy()
            .key_id(&key_id)
            .policy_name("other")
            .send()
            .await,
    );
    let put = error_code(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy_name("other")
            .policy(policy_allowing_root("x"))
            .send()
            .await,
    );

    assert_eq!(get, "NotFoundException");
    assert_eq!(put, "NotFoundException");
}

#[tokio::test]
async fn malformed_policies_are_refused_and_leave_the_policy_alone() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "policy").await;
    let before = client
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");

    let not_json = error_code(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy("{ this is not json")
            .send()
            .await,
    );
    let not_object = error_code(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy("[1, 2, 3]")
            .send()
            .await,
    );
    let no_statement = error_code(
        client
            .put_key_policy()
            .key_id(&key_id)
            .policy(r#"{"Version":"2012-10-17"}"#)
            .send()
            .await,
    );
    let on_create = error_code(client.create_key().policy("{ nope").send().await);
    let after = client
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");

    assert_eq!(not_json, "MalformedPolicyDocumentException");
    assert_eq!(not_object, "MalformedPolicyDocumentException");
    assert_eq!(no_statement, "MalformedPolicyDocumentException");
    assert_eq!(on_create, "MalformedPolicyDocumentException");
    assert_eq!(after.policy(), before.policy());
}

#[tokio::test]
async fn create_key_with_a_policy_keeps_it() {
    let server = TestServer::start().await;
    let client = server.client();
    let policy = policy_allowing_root("at creation");

    let created = client
        .create_key()
        .policy(&policy)
        .send()
        .await
        .expect("CreateKey with a policy succeeds");
    let key_id = created.key_metadata().expect("KeyMetadata").key_id();
    let output = client
        .get_key_policy()
        .key_id(key_id)
        .send()
        .await
        .expect("GetKeyPolicy succeeds");

    assert_eq!(output.policy(), Some(policy.as_str()));
}
