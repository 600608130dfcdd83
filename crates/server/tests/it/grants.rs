//! Grants end to end: a grant lends operations on a key to another principal, with encryption-context
//! constraints, until it is retired or revoked.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantOperation};

use crate::harness::{ACCOUNT, TestServer, create_key, decrypt, encrypt, failure};
use crate::iam::{Keys, allow, assume, iam, kms, trust_account, user_with_key};

const OTHER: &str = "444455556666";
const OTHER_ROOT: &str = "arn:aws:iam::444455556666:root";

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_lends_operations_to_another_account_under_its_constraints() {
    let server = TestServer::start().await;
    let owner = server.client();
    let other = server.client_for(OTHER, "us-east-1");
    let (key_id, key_arn) = create_key(&owner, "granted").await;
    let denied = failure(
        other
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    );
    assert_eq!(denied.code, "AccessDeniedException");

    let created = owner
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(OTHER_ROOT)
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_subset("tenant", "b")
                .build(),
        )
        .send()
        .await
        .expect("CreateGrant succeeds");
    let grant_id = created.grant_id().expect("a grant id").to_owned();
    assert_eq!(grant_id.len(), 64);
    let token = created.grant_token().expect("a grant token").to_owned();

    // Allowed with the constrained context, refused without it, and only for the granted operations.
    let ciphertext = encrypt(
        &other,
        &key_arn,
        b"lent",
        &[("tenant", "b"), ("extra", "1")],
    )
    .await;
    assert_eq!(
        decrypt(&other, &ciphertext, &[("tenant", "b"), ("extra", "1")]).await,
        b"lent"
    );
    let code = failure(
        other
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(
        other
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .encryption_context("tenant", "c")
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    let code = failure(other.describe_key().key_id(&key_arn).send().await).code;
    assert_eq!(code, "AccessDeniedException");
    // The grant token is accepted where requests carry grant tokens.
    other
        .encrypt()
        .key_id(&key_arn)
        .plaintext(Blob::new(b"x"))
        .encryption_context("tenant", "b")
        .grant_tokens(&token)
        .send()
        .await
        .expect("Encrypt with the grant token succeeds");

    let listed = owner
        .list_grants()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListGrants succeeds");
    let grants = listed.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grantee_principal(), Some(OTHER_ROOT));
    assert_eq!(grants[0].key_id(), Some(key_arn.as_str()));
    let subset = grants[0]
        .constraints()
        .and_then(|c| c.encryption_context_subset())
        .cloned()
        .unwrap_or_default();
    assert_eq!(subset.get("tenant").map(String::as_str), Some("b"));

    // The grantee may not retire a grant that does not allow RetireGrant; the issuing account may.
    let code = failure(other.retire_grant().grant_token(&token).send().await).code;
    assert_eq!(code, "AccessDeniedException");
    owner
        .retire_grant()
        .key_id(&key_arn)
        .grant_id(&grant_id)
        .send()
        .await
        .expect("RetireGrant succeeds");
    let code = failure(
        other
            .encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x"))
            .encryption_context("tenant", "b")
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "AccessDeniedException");
    assert!(
        owner
            .list_grants()
            .key_id(&key_id)
            .send()
            .await
            .expect("ListGrants")
            .grants()
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_names_are_idempotent_and_bad_grants_are_refused() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, key_arn) = create_key(&client, "names").await;
    let create = || {
        client
            .create_grant()
            .key_id(&key_id)
            .grantee_principal(OTHER_ROOT)
            .retiring_principal(OTHER_ROOT)
            .operations(GrantOperation::Decrypt)
            .name("nightly-job")
    };
    let first = create().send().await.expect("CreateGrant succeeds");
    let second = create().send().await.expect("CreateGrant again succeeds");
    assert_eq!(first.grant_id(), second.grant_id());
    assert_ne!(first.grant_token(), second.grant_token());

    let code = failure(
        client
            .create_grant()
            .key_id(&key_id)
            .grantee_principal(OTHER_ROOT)
            .operations(GrantOperation::Sign)
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "ValidationException");
    let code = failure(
        client
            .revoke_grant()
            .key_id(&key_id)
            .grant_id("0".repeat(64))
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "NotFoundException");
    let grant_id = first.grant_id().expect("a grant id");
    let code = failure(
        client
            .revoke_grant()
            .key_id(&key_id)
            .grant_id(grant_id)
            .dry_run(true)
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "DryRunOperationException");
    let code = failure(
        client
            .describe_key()
            .key_id(&key_id)
            .grant_tokens("not-a-token")
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "InvalidGrantTokenException");

    // The retiring principal sees the grant in ListRetirableGrants; revoking removes it.
    let other = server.client_for(OTHER, "us-east-1");
    let retirable = other
        .list_retirable_grants()
        .retiring_principal(OTHER_ROOT)
        .send()
        .await
        .expect("listed");
    assert!(
        retirable
            .grants()
            .iter()
            .any(|g| g.grant_id() == Some(grant_id)),
        "{retirable:?}"
    );
    client
        .revoke_grant()
        .key_id(&key_arn)
        .grant_id(grant_id)
        .send()
        .await
        .expect("RevokeGrant succeeds");
    let code = failure(
        client
            .revoke_grant()
            .key_id(&key_id)
            .grant_id(grant_id)
            .send()
            .await,
    )
    .code;
    assert_eq!(code, "NotFoundException");
    server.stop().await;
}

/// A key policy can limit CreateGrant with the grant condition keys: which operations, which grantee,
/// and whether the grant must carry an encryption-context constraint.
#[tokio::test(flavor = "multi_thread")]
async fn key_policies_limit_create_grant_with_the_grant_condition_keys() {
    let server = TestServer::start().await;
    let owner = server.client();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Root",
                "Effect": "Allow",
                "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "NoEncryptGrants",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": { "ForAnyValue:StringEquals": { "kms:GrantOperations": ["Encrypt"] } }
            },
            {
                "Sid": "OnlyConstrainedGrants",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": { "Null": { "kms:GrantConstraintType": "true" } }
            },
            {
                "Sid": "OnlyAppRoles",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {
                    "StringNotLike": { "kms:GranteePrincipal": "arn:aws:iam::111122223333:role/app-*" }
                }
            }
        ]
    });
    let created = owner
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .expect("CreateKey with the policy");
    let key_id = created.key_metadata().unwrap().key_id().to_owned();
    let constraint = || {
        GrantConstraints::builder()
            .encryption_context_equals("tenant", "a")
            .build()
    };
    let attempt = |grantee: &'static str, operation: GrantOperation, constrained: bool| {
        let owner = owner.clone();
        let key_id = key_id.clone();
        let constraints = constrained.then(constraint);
        async move {
            owner
                .create_grant()
                .key_id(key_id)
                .grantee_principal(grantee)
                .operations(operation)
                .set_constraints(constraints)
                .send()
                .await
        }
    };
    let app = "arn:aws:iam::111122223333:role/app-billing";
    attempt(app, GrantOperation::Decrypt, true)
        .await
        .expect("a constrained Decrypt grant to an app role is allowed");
    for (what, result) in [
        (
            "an Encrypt grant",
            attempt(app, GrantOperation::Encrypt, true).await,
        ),
        (
            "no constraint",
            attempt(app, GrantOperation::Decrypt, false).await,
        ),
        (
            "another grantee",
            attempt(
                "arn:aws:iam::111122223333:role/ops",
                GrantOperation::Decrypt,
                true,
            )
            .await,
        ),
    ] {
        assert_eq!(failure(result).code, "AccessDeniedException", "{what}");
    }
}

/// Creates a Decrypt grant on `key_id` for a role of the default account, with `retiring` as its retiring
/// principal, and returns its id.
async fn decrypt_grant(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    retiring: Option<&str>,
) -> String {
    client
        .create_grant()
        .key_id(key_id)
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:role/app"))
        .operations(GrantOperation::Decrypt)
        .set_retiring_principal(retiring.map(str::to_owned))
        .send()
        .await
        .expect("CreateGrant succeeds")
        .grant_id()
        .expect("a grant id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_principals_retire_grants_their_account_delegates_and_role_sessions_retire_as_their_role()
 {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let owner = server.client();
    let (key_id, key_arn) = create_key(&owner, "grants retired by IAM principals").await;
    let admin = iam(&endpoint, &Keys::dev());
    let operator_keys = user_with_key(&endpoint, "operator").await;
    admin
        .put_user_policy()
        .user_name("operator")
        .policy_name("retire-grants")
        .policy_document(allow("kms:RetireGrant"))
        .send()
        .await
        .expect("PutUserPolicy");
    let bystander_keys = user_with_key(&endpoint, "bystander").await;
    admin
        .put_user_policy()
        .user_name("bystander")
        .policy_name("everything-but-retiring")
        .policy_document(allow("kms:Describe*"))
        .send()
        .await
        .expect("PutUserPolicy");
    let role = admin
        .create_role()
        .role_name("grant-retirer")
        .assume_role_policy_document(trust_account())
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().expect("a role").arn().to_owned();
    let session_keys = assume(&endpoint, &Keys::dev(), &role_arn, "cleanup").await;
    let operator = kms(&endpoint, &operator_keys);
    let bystander = kms(&endpoint, &bystander_keys);
    let session = kms(&endpoint, &session_keys);

    // The account that created the grant delegates retiring it to IAM users allowed kms:RetireGrant.
    let delegated = decrypt_grant(&owner, &key_id, None).await;
    let refused = failure(
        bystander
            .retire_grant()
            .key_id(&key_arn)
            .grant_id(&delegated)
            .send()
            .await,
    );
    operator
        .retire_grant()
        .key_id(&key_arn)
        .grant_id(&delegated)
        .send()
        .await
        .expect("an IAM user allowed kms:RetireGrant retires a grant of its account");
    // A grant whose retiring principal is a role may be retired by the role's sessions.
    let by_role = decrypt_grant(&owner, &key_id, Some(&role_arn)).await;
    session
        .retire_grant()
        .key_id(&key_arn)
        .grant_id(&by_role)
        .send()
        .await
        .expect("a session of the retiring role retires the grant");
    let remaining = owner
        .list_grants()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListGrants succeeds");

    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains("user/bystander"),
        "{}",
        refused.message
    );
    assert!(remaining.grants().is_empty(), "{:?}", remaining.grants());
    server.stop().await;
}

/// On CreateGrant, `kms:EncryptionContext:*` and `kms:EncryptionContextKeys` test the grant's constraint
/// (EncryptionContextEquals or EncryptionContextSubset), as AWS documents.
#[tokio::test(flavor = "multi_thread")]
async fn create_grant_encryption_context_conditions_test_the_constraint() {
    let server = TestServer::start().await;
    let owner = server.client();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
                "NotAction": "kms:CreateGrant",
                "Resource": "*"
            },
            {
                "Sid": "OnlyItGrants",
                "Effect": "Allow",
                "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "kms:EncryptionContext:Department": "IT" },
                    "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": ["department", "project"] }
                }
            }
        ]
    });
    let created = owner
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .expect("CreateKey with the policy");
    let key_id = created.key_metadata().unwrap().key_id().to_owned();
    let attempt = |constraints: Option<GrantConstraints>| {
        let owner = owner.clone();
        let key_id = key_id.clone();
        async move {
            owner
                .create_grant()
                .key_id(key_id)
                .grantee_principal("arn:aws:iam::111122223333:role/app")
                .operations(GrantOperation::Decrypt)
                .set_constraints(constraints)
                .send()
                .await
        }
    };
    attempt(Some(
        GrantConstraints::builder()
            .encryption_context_equals("department", "IT")
            .build(),
    ))
    .await
    .expect("EncryptionContextEquals department=IT is allowed");
    attempt(Some(
        GrantConstraints::builder()
            .encryption_context_subset("department", "IT")
            .encryption_context_subset("project", "ledger")
            .build(),
    ))
    .await
    .expect("EncryptionContextSubset department=IT, project=ledger is allowed");
    for (what, constraints) in [
        ("no constraint", None),
        (
            "another department",
            Some(
                GrantConstraints::builder()
                    .encryption_context_equals("department", "HR")
                    .build(),
            ),
        ),
        (
            "a key the policy does not list",
            Some(
                GrantConstraints::builder()
                    .encryption_context_subset("department", "IT")
                    .encryption_context_subset("owner", "ops")
                    .build(),
            ),
        ),
    ] {
        let refused = failure(attempt(constraints).await);
        assert_eq!(refused.code, "AccessDeniedException", "{what}");
        assert!(
            refused.message.contains("kms:CreateGrant"),
            "{what}: {}",
            refused.message
        );
    }
    server.stop().await;
}
