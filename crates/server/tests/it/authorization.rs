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

#[tokio::test(flavor = "multi_thread")]
async fn source_vpc_and_vpc_endpoint_conditions_follow_the_network_settings() {
    let dir = crate::harness::TempDir::new("vpc");
    let server = TestServer::start_in(dir.path(), |config| {
        config.network.vpcs.push(strongroom_protocol::VpcMapping {
            range: "127.0.0.0/8".parse().expect("a range"),
            vpc_id: "vpc-0a1b2c3d".to_owned(),
            vpc_endpoint_id: Some("vpce-0a1b2c3d".to_owned()),
        });
    })
    .await;
    let client = server.client();
    let only_through = |vpce: &str| {
        policy(&format!(
            r#"{{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"NotAction":"kms:Encrypt","Resource":"*"}},
            {{"Sid":"ThroughEndpoint","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"Action":"kms:Encrypt","Resource":"*",
              "Condition":{{"StringEquals":{{"aws:SourceVpce":"{vpce}","aws:SourceVpc":"vpc-0a1b2c3d"}}}}}}"#
        ))
    };
    let (ours, _) = create_key(&client, "our endpoint").await;
    client
        .put_key_policy()
        .key_id(&ours)
        .policy(only_through("vpce-0a1b2c3d"))
        .send()
        .await
        .expect("PutKeyPolicy");
    encrypt(&client, &ours, b"through the endpoint", &[]).await;
    let (theirs, _) = create_key(&client, "another endpoint").await;
    client
        .put_key_policy()
        .key_id(&theirs)
        .policy(only_through("vpce-ffff"))
        .send()
        .await
        .expect("PutKeyPolicy");
    let code = failure(
        client
            .encrypt()
            .key_id(&theirs)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_principal_calls_on_behalf_of_a_caller_with_kms_via_service() {
    let (_dir, server) = server_with_s3_principal("via-service").await;
    let caller = server.client();
    let s3 = server.client_for("SVCS3EXAMPLE", REGION);
    let (key_id, key_arn) = create_key(&caller, "only through s3").await;
    let through_s3 = policy(&format!(
        r#"{{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"NotAction":"kms:Encrypt","Resource":"*"}},
        {{"Sid":"ViaS3","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"Action":"kms:Encrypt","Resource":"*",
          "Condition":{{"StringEquals":{{"kms:ViaService":"s3.us-east-1.amazonaws.com","kms:CallerAccount":"{OWNER}"}}}}}}"#
    ));
    caller
        .put_key_policy()
        .key_id(&key_id)
        .policy(through_s3)
        .send()
        .await
        .expect("PutKeyPolicy");

    let direct = failure(
        caller
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    );
    assert_eq!(direct.code, "AccessDeniedException");
    let on_behalf = |client: &aws_sdk_kms::Client| {
        client
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"object key"))
            .customize()
            .mutate_request(|request| {
                request
                    .headers_mut()
                    .insert(strongroom_protocol::ON_BEHALF_OF_HEADER, "test");
            })
    };
    let encrypted = on_behalf(&s3)
        .send()
        .await
        .expect("Encrypt through the s3 service principal succeeds");
    assert_eq!(encrypted.key_id(), Some(key_arn.as_str()));
    // Only service principals may act for others, and they must name whom they act for.
    let code = failure(on_behalf(&caller).send().await).code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(
        s3.encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_services_first_use_of_its_alias_creates_the_aws_managed_key() {
    let (_dir, server) = server_with_s3_principal("managed-key").await;
    let caller = server.client();
    let s3 = server.client_for("SVCS3EXAMPLE", REGION);
    // Without the service, the alias does not exist.
    let code = failure(caller.describe_key().key_id("alias/aws/s3").send().await).code;
    assert_eq!(code, "NotFoundException");

    let encrypt_via_s3 = || {
        s3.encrypt()
            .key_id("alias/aws/s3")
            .plaintext(Blob::new(b"object key"))
            .customize()
            .mutate_request(|request| {
                request
                    .headers_mut()
                    .insert(strongroom_protocol::ON_BEHALF_OF_HEADER, "test");
            })
    };
    let first = encrypt_via_s3()
        .send()
        .await
        .expect("the first use creates the managed key");
    let second = encrypt_via_s3()
        .send()
        .await
        .expect("the second use finds it");
    assert_eq!(first.key_id(), second.key_id());

    let described = caller
        .describe_key()
        .key_id("alias/aws/s3")
        .send()
        .await
        .expect("the account reads metadata");
    let metadata = described.key_metadata().expect("metadata");
    assert_eq!(metadata.key_manager().map(|m| m.as_str()), Some("AWS"));
    let key_id = metadata.key_id().to_owned();
    // The account cannot use it directly, nor manage it.
    let code = failure(
        caller
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(caller.schedule_key_deletion().key_id(&key_id).send().await).code;
    assert!(
        code == "AccessDeniedException" || code == "UnsupportedOperationException",
        "{code}"
    );
    let status = caller
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("rotation status");
    assert!(status.key_rotation_enabled());
    server.stop().await;
}

/// A server on which access key `SVCS3EXAMPLE` (secret `test`) is the `s3` service principal; the
/// directory must outlive the server.
async fn server_with_s3_principal(label: &str) -> (crate::harness::TempDir, TestServer) {
    let dir = crate::harness::TempDir::new(label);
    let server = TestServer::start_in(dir.path(), |config| {
        config
            .service_principals
            .push(strongroom_server::ServicePrincipal {
                service: "s3".to_owned(),
                access_key_id: "SVCS3EXAMPLE".to_owned(),
                secret: zeroize::Zeroizing::new("test".to_owned()),
            });
    })
    .await;
    (dir, server)
}

/// A key policy for a multi-Region key: the owner may do everything but `guarded`, which is allowed only
/// under `condition`.
fn guarded_policy(guarded: &str, condition: &str) -> String {
    policy(&format!(
        r#"{{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"NotAction":"{guarded}","Resource":"*"}},
        {{"Sid":"Guarded","Effect":"Allow","Principal":{{"AWS":"{OWNER}"}},"Action":"{guarded}","Resource":"*",
          "Condition":{condition}}}"#
    ))
}

/// Lets the replica in `region` leave its Creating state.
async fn settle(server: &TestServer) {
    server.clock().advance(
        strongroom_service::multi_region::TRANSIENT_STATE + std::time::Duration::from_secs(1),
    );
}

/// `kms:ReplicaRegion` (ReplicateKey), `kms:PrimaryRegion` (UpdatePrimaryRegion) and
/// `kms:MultiRegionKeyType` (both) come from the request and the key's place in its set.
#[tokio::test(flavor = "multi_thread")]
async fn multi_region_condition_keys_follow_the_request() {
    let server = TestServer::start().await;
    let east = server.client();
    let created = east
        .create_key()
        .multi_region(true)
        .policy(guarded_policy(
            "kms:ReplicateKey",
            r#"{"StringEquals":{"kms:ReplicaRegion":["eu-west-1","ap-south-1"],"kms:MultiRegionKeyType":"PRIMARY"}}"#,
        ))
        .send()
        .await
        .expect("CreateKey");
    let key_id = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let refused = failure(
        east.replicate_key()
            .key_id(&key_id)
            .replica_region("us-west-2")
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    assert!(
        refused.message.contains("kms:ReplicateKey"),
        "{}",
        refused.message
    );
    // The replicas' policies allow UpdatePrimaryRegion only towards ap-south-1, and only on a replica.
    let replica_policy = guarded_policy(
        "kms:UpdatePrimaryRegion",
        r#"{"StringEquals":{"kms:PrimaryRegion":"ap-south-1","kms:MultiRegionKeyType":"REPLICA"}}"#,
    );
    for region in ["eu-west-1", "ap-south-1"] {
        east.replicate_key()
            .key_id(&key_id)
            .replica_region(region)
            .policy(&replica_policy)
            .send()
            .await
            .expect("ReplicateKey to an allowed Region");
    }
    settle(&server).await;

    // The primary's own policy governs its half of UpdatePrimaryRegion: allow it towards either Region
    // while the key is the primary.
    east.put_key_policy()
        .key_id(&key_id)
        .policy(guarded_policy(
            "kms:UpdatePrimaryRegion",
            r#"{"StringEquals":{"kms:PrimaryRegion":["eu-west-1","ap-south-1"],"kms:MultiRegionKeyType":"PRIMARY"}}"#,
        ))
        .send()
        .await
        .expect("PutKeyPolicy");
    let refused = failure(
        east.update_primary_region()
            .key_id(&key_id)
            .primary_region("eu-west-1")
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "AccessDeniedException",
        "the replica's policy names ap-south-1 only"
    );
    assert!(
        refused
            .message
            .contains(&format!("arn:aws:kms:eu-west-1:{OWNER}:key/{key_id}")),
        "{}",
        refused.message
    );
    east.update_primary_region()
        .key_id(&key_id)
        .primary_region("ap-south-1")
        .send()
        .await
        .expect("UpdatePrimaryRegion towards ap-south-1");
    settle(&server).await;
    let south = server.client_for("test", "ap-south-1");
    let described = south
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    let config = described
        .key_metadata()
        .and_then(|m| m.multi_region_configuration())
        .expect("a multi-Region configuration");
    assert_eq!(
        config.multi_region_key_type(),
        Some(&aws_sdk_kms::types::MultiRegionKeyType::Primary)
    );
    // us-east-1 is a replica now: its policy (PRIMARY only) refuses moving the primary back through it.
    let refused = failure(
        south
            .update_primary_region()
            .key_id(&key_id)
            .primary_region("us-east-1")
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    server.stop().await;
}

/// `kms:MultiRegion` on key operations, and `kms:ReEncryptOnSameKey` on both halves of ReEncrypt.
#[tokio::test(flavor = "multi_thread")]
async fn multi_region_and_same_key_re_encryption_conditions() {
    let server = TestServer::start().await;
    let client = server.client();
    let only_multi_region = guarded_policy("kms:Encrypt", r#"{"Bool":{"kms:MultiRegion":"true"}}"#);
    let multi = client
        .create_key()
        .multi_region(true)
        .policy(&only_multi_region)
        .send()
        .await
        .expect("CreateKey");
    let multi_id = multi.key_metadata().expect("metadata").key_id().to_owned();
    encrypt(&client, &multi_id, b"multi-Region", &[]).await;
    let single = client
        .create_key()
        .policy(&only_multi_region)
        .send()
        .await
        .expect("CreateKey");
    let single_id = single.key_metadata().expect("metadata").key_id().to_owned();
    let refused = failure(
        client
            .encrypt()
            .key_id(&single_id)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException");

    // Both keys allow ReEncrypt only onto the same key.
    let same_key_only = guarded_policy(
        "kms:ReEncrypt*",
        r#"{"Bool":{"kms:ReEncryptOnSameKey":"true"}}"#,
    );
    let (first, _) = create_key(&client, "first").await;
    let (second, _) = create_key(&client, "second").await;
    for key in [&first, &second] {
        client
            .put_key_policy()
            .key_id(key)
            .policy(&same_key_only)
            .send()
            .await
            .expect("PutKeyPolicy");
    }
    let ciphertext = encrypt(&client, &first, b"rewrapped", &[]).await;
    let rewrapped = client
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .destination_key_id(&first)
        .send()
        .await
        .expect("ReEncrypt onto the same key");
    assert!(
        rewrapped
            .source_key_id()
            .is_some_and(|id| id.ends_with(&first))
    );
    let refused = failure(
        client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .destination_key_id(&second)
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains("kms:ReEncryptFrom"),
        "{}",
        refused.message
    );
    server.stop().await;
}

/// CreateKey's request-side condition keys (`kms:MultiRegionKeyType`, `kms:BypassPolicyLockoutSafetyCheck`)
/// reach identity policies, and ReplicateKey also needs kms:CreateKey from them, as a new key in the
/// replica's Region.
#[tokio::test(flavor = "multi_thread")]
async fn create_key_and_replicate_key_conditions_in_identity_policies() {
    use crate::iam::{Keys, iam, kms, user_with_key};
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let maker = user_with_key(&endpoint, "maker").await;
    let as_maker = kms(&endpoint, &maker);
    let rules = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"kms:CreateKey","Resource":"*",
         "Condition":{"StringEquals":{"kms:MultiRegionKeyType":"PRIMARY"}}},
        {"Effect":"Allow","Action":"kms:PutKeyPolicy","Resource":"*"},
        {"Effect":"Deny","Action":"kms:CreateKey","Resource":"*","Condition":{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}}]}"#;
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("maker")
        .policy_name("primaries")
        .policy_document(rules)
        .send()
        .await
        .expect("PutUserPolicy");
    let refused = failure(as_maker.create_key().send().await);
    assert_eq!(
        refused.code, "AccessDeniedException",
        "a single-Region key has no kms:MultiRegionKeyType"
    );
    let created = as_maker
        .create_key()
        .multi_region(true)
        .send()
        .await
        .expect("a multi-Region primary is allowed");
    let key_id = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let refused = failure(
        as_maker
            .create_key()
            .multi_region(true)
            .bypass_policy_lockout_safety_check(true)
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused
            .message
            .contains("with an explicit deny in an identity-based policy"),
        "{}",
        refused.message
    );

    // ReplicateKey: the key policy delegates to IAM; kms:ReplicateKey alone is not enough.
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("maker")
        .policy_name("replicate")
        .policy_document(crate::iam::allow("kms:ReplicateKey"))
        .send()
        .await
        .expect("PutUserPolicy");
    let refused = failure(
        as_maker
            .replicate_key()
            .key_id(&key_id)
            .replica_region("eu-west-1")
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains("kms:CreateKey"),
        "{}",
        refused.message
    );
    let replica_rules = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*",
        "Condition":{"StringEquals":{"kms:MultiRegionKeyType":"REPLICA","aws:RequestedRegion":"eu-west-1"}}}]}"#;
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("maker")
        .policy_name("replicas")
        .policy_document(replica_rules)
        .send()
        .await
        .expect("PutUserPolicy");
    let refused = failure(
        as_maker
            .replicate_key()
            .key_id(&key_id)
            .replica_region("ap-south-1")
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    as_maker
        .replicate_key()
        .key_id(&key_id)
        .replica_region("eu-west-1")
        .send()
        .await
        .expect("ReplicateKey into eu-west-1");
    server.stop().await;
}

/// `kms:MultiRegionKeyType` on every operation on a multi-Region key: the key's place in its set, kept
/// with the cached key, changed at once by UpdatePrimaryRegion and read again after a restart. A
/// single-Region key has none.
#[tokio::test(flavor = "multi_thread")]
async fn multi_region_key_type_on_every_key_operation() {
    let dir = crate::harness::TempDir::new("multi-region-key-type");
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let east = server.client();
    let west = server.client_for("test", "eu-west-1");
    let primary_only = guarded_policy(
        "kms:Encrypt",
        r#"{"StringEquals":{"kms:MultiRegionKeyType":"PRIMARY"}}"#,
    );
    let created = east
        .create_key()
        .multi_region(true)
        .policy(&primary_only)
        .send()
        .await
        .expect("CreateKey");
    let key_id = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    // The primary of a set never replicated is a primary too.
    encrypt(&east, &key_id, b"alone", &[]).await;
    east.replicate_key()
        .key_id(&key_id)
        .replica_region("eu-west-1")
        .policy(&primary_only)
        .send()
        .await
        .expect("ReplicateKey");
    settle(&server).await;
    let try_encrypt = |client: &aws_sdk_kms::Client| {
        let request = client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"where"));
        async move { request.send().await.map(|_| ()) }
    };
    try_encrypt(&east).await.expect("the primary encrypts");
    let refused = failure(try_encrypt(&west).await);
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    assert!(
        refused
            .message
            .contains(&format!("arn:aws:kms:eu-west-1:{OWNER}:key/{key_id}")),
        "{}",
        refused.message
    );
    // A condition on the replica's type holds for the replica, on another operation.
    west.put_key_policy()
        .key_id(&key_id)
        .policy(guarded_policy(
            "kms:DescribeKey",
            r#"{"StringEquals":{"kms:MultiRegionKeyType":"REPLICA"}}"#,
        ))
        .send()
        .await
        .expect("PutKeyPolicy on the replica");
    west.describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey of a replica");
    west.put_key_policy()
        .key_id(&key_id)
        .policy(&primary_only)
        .send()
        .await
        .expect("PutKeyPolicy on the replica");

    let (single, _) = create_key(&east, "single-Region").await;
    east.put_key_policy()
        .key_id(&single)
        .policy(&primary_only)
        .send()
        .await
        .expect("PutKeyPolicy");
    let refused = failure(
        east.encrypt()
            .key_id(&single)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "a single-Region key");

    east.update_primary_region()
        .key_id(&key_id)
        .primary_region("eu-west-1")
        .send()
        .await
        .expect("UpdatePrimaryRegion");
    settle(&server).await;
    try_encrypt(&west).await.expect("the new primary encrypts");
    let refused = failure(try_encrypt(&east).await);
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);

    // After a restart, the keys read their places from the stored set.
    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let east = server.client();
    let west = server.client_for("test", "eu-west-1");
    try_encrypt(&west).await.expect("the primary encrypts");
    let refused = failure(try_encrypt(&east).await);
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    server.stop().await;
}

/// The lockout safety check judges the next PutKeyPolicy with the key's own `kms:ResourceAliases` and
/// `kms:MultiRegionKeyType`, so identity policies that allow PutKeyPolicy only on such keys neither
/// trip the check needlessly nor slip past it.
#[tokio::test(flavor = "multi_thread")]
async fn the_lockout_check_sees_the_keys_aliases_and_multi_region_type() {
    use crate::iam::{Keys, iam, kms, user_with_key};
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = server.client();
    let delegating = policy(&owner_admin());
    let locked = policy(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:root"}},"Action":"kms:Encrypt","Resource":"*"}}"#
    ));

    // An alias steward may change the policies of keys that carry alias/guarded, and only those.
    let steward = user_with_key(&endpoint, "steward").await;
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("steward")
        .policy_name("guarded-keys")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:PutKeyPolicy","Resource":"*",
                "Condition":{"ForAnyValue:StringEquals":{"kms:ResourceAliases":"alias/guarded"}}}]}"#,
        )
        .send()
        .await
        .expect("PutUserPolicy");
    let as_steward = kms(&endpoint, &steward);
    let (guarded, _) = create_key(&root, "guarded").await;
    root.create_alias()
        .alias_name("alias/guarded")
        .target_key_id(&guarded)
        .send()
        .await
        .expect("CreateAlias");
    as_steward
        .put_key_policy()
        .key_id(&guarded)
        .policy(&delegating)
        .send()
        .await
        .expect("the new policy still lets the steward change it: the key keeps alias/guarded");
    let refused = failure(
        as_steward
            .put_key_policy()
            .key_id(&guarded)
            .policy(&locked)
            .send()
            .await,
    );
    assert_eq!(refused.code, "MalformedPolicyDocumentException");
    let (plain, _) = create_key(&root, "plain").await;
    let refused = failure(
        as_steward
            .put_key_policy()
            .key_id(&plain)
            .policy(&delegating)
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);

    // A multi-Region steward may change (and create) only multi-Region primary keys.
    let regional = user_with_key(&endpoint, "regional").await;
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("regional")
        .policy_name("primaries")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"},
                {"Effect":"Allow","Action":"kms:PutKeyPolicy","Resource":"*",
                 "Condition":{"StringEquals":{"kms:MultiRegionKeyType":"PRIMARY"}}}]}"#,
        )
        .send()
        .await
        .expect("PutUserPolicy");
    let as_regional = kms(&endpoint, &regional);
    let created = as_regional
        .create_key()
        .multi_region(true)
        .send()
        .await
        .expect("a primary's default policy lets its creator change it later");
    let primary = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    as_regional
        .put_key_policy()
        .key_id(&primary)
        .policy(&delegating)
        .send()
        .await
        .expect("PutKeyPolicy on the primary");
    let refused = failure(as_regional.create_key().send().await);
    assert_eq!(
        refused.code, "MalformedPolicyDocumentException",
        "a single-Region key would be out of the creator's reach"
    );
    server.stop().await;
}
