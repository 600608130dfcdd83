//! The issue's authorization scenarios end to end, with the AWS SDKs for IAM, STS and KMS: roles are made
//! through IAM and assumed through STS, and each scenario checks both what is allowed and what is refused.
//!
//! The scenarios: key administrators and key users named by statement; persistent-resource grants gated
//! by `kms:GrantIsForAWSResource`; account 111122223333 lending a key to 444455556666 (key policy and the
//! borrower's IAM policy, each half alone failing); `kms:KeyOrigin` on CreateKey; `kms:ViaService` limited
//! to two services; `aws:SourceVpc` and `aws:SourceVpce`.
//! Services act for IAM users and for role sessions alike: the on-behalf-of headers carry the caller's
//! access key and, for a session, its session token.
//! Root-only versions of some of these (a lending key policy, one service, one VPC endpoint) are in
//! `authorization`.

use aws_sdk_kms::Client;
use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kms::error::BoxError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantOperation, KeyState, OriginType};

use crate::harness::{ACCOUNT, Failure, TempDir, TestServer, failure};
use crate::iam::{Keys, assume, iam, kms, user_with_key};

const BORROWER: &str = "444455556666";
const REGION: &str = "us-east-1";

fn policy(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

/// The statement of AWS's default key policy that lets the account's IAM policies decide.
fn enable_iam_policies() -> String {
    format!(
        r#"{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}}"#
    )
}

fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn key_arn(key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}")
}

/// The root keys of a `--dev` account other than the default.
fn root_of(account: &str) -> Keys {
    Keys {
        access_key_id: account.to_owned(),
        secret: "test".to_owned(),
        token: None,
    }
}

/// Creates role `name` in the account of `admin`, trusting that account's root, and returns its ARN.
async fn create_role(endpoint: &str, admin: &Keys, account: &str, name: &str) -> String {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let created = iam(endpoint, admin)
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole");
    let arn = created
        .role()
        .map(|role| role.arn().to_owned())
        .expect("a role");
    assert_eq!(arn, role_arn(account, name));
    arn
}

/// A role in the default account, assumed by the account's root: a KMS client for the session.
async fn role_session(endpoint: &str, name: &str) -> (String, Client) {
    let (arn, session) = role_session_keys(endpoint, name).await;
    (arn, kms(endpoint, &session))
}

/// A role in the default account, assumed by the account's root: the role's ARN and the session's keys.
async fn role_session_keys(endpoint: &str, name: &str) -> (String, Keys) {
    let arn = create_role(endpoint, &Keys::dev(), ACCOUNT, name).await;
    let session = assume(endpoint, &Keys::dev(), &arn, &format!("{name}-session")).await;
    (arn, session)
}

async fn put_role_policy(endpoint: &str, admin: &Keys, role: &str, document: &str) {
    iam(endpoint, admin)
        .put_role_policy()
        .role_name(role)
        .policy_name("kms")
        .policy_document(document)
        .send()
        .await
        .expect("PutRolePolicy");
}

async fn put_key_policy(client: &Client, key_id: &str, document: &str) {
    client
        .put_key_policy()
        .key_id(key_id)
        .policy(document)
        .send()
        .await
        .expect("PutKeyPolicy");
}

async fn new_key(client: &Client) -> String {
    let created = client.create_key().send().await.expect("CreateKey");
    created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned()
}

async fn try_encrypt(client: &Client, key: &str) -> Result<Vec<u8>, Failure> {
    match client
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"scenario"))
        .send()
        .await
    {
        Ok(output) => Ok(output
            .ciphertext_blob()
            .map(|blob| blob.as_ref().to_vec())
            .unwrap_or_default()),
        Err(error) => Err(failure::<(), _, _>(Err(error))),
    }
}

async fn try_decrypt(client: &Client, ciphertext: &[u8]) -> Result<Vec<u8>, Failure> {
    match client
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await
    {
        Ok(output) => Ok(output
            .plaintext()
            .map(|blob| blob.as_ref().to_vec())
            .unwrap_or_default()),
        Err(error) => Err(failure::<(), _, _>(Err(error))),
    }
}

/// Asserts an AccessDeniedException naming `action`, and returns its message.
fn refused<T: std::fmt::Debug>(result: Result<T, Failure>, action: &str) -> String {
    match result {
        Ok(value) => panic!("{action} should have been refused, but it returned {value:?}"),
        Err(failure) => {
            assert_eq!(failure.code, "AccessDeniedException", "{}", failure.message);
            assert!(
                failure.message.contains(action),
                "the refusal names {action}: {}",
                failure.message
            );
            failure.message
        }
    }
}

/// Adds a header to every request a client sends: how a service names its caller, or how a trusted
/// proxy names the client.
#[derive(Debug)]
struct ExtraHeader {
    name: &'static str,
    value: String,
}

impl Intercept for ExtraHeader {
    fn name(&self) -> &'static str {
        "ExtraHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(self.name, self.value.clone());
        Ok(())
    }
}

/// A KMS client that signs as `keys` and adds header `name: value` to every request.
fn client_with_header(endpoint: &str, keys: &Keys, name: &'static str, value: &str) -> Client {
    with_header(kms(endpoint, keys), name, value)
}

/// `client`, adding header `name: value` to every request besides the headers it adds already.
fn with_header(client: Client, name: &'static str, value: &str) -> Client {
    let config = client
        .config()
        .to_builder()
        .interceptor(ExtraHeader {
            name,
            value: value.to_owned(),
        })
        .build();
    Client::from_conf(config)
}

/// A server whose service principals `s3`, `ec2` and `rds` sign with access keys `SVC<NAME>EXAMPLE`
/// (secret `test`); the directory must outlive the server.
async fn server_with_services(label: &str) -> (TempDir, TestServer) {
    let dir = TempDir::new(label);
    let server = TestServer::start_in(dir.path(), |config| {
        for service in ["s3", "ec2", "rds"] {
            config
                .service_principals
                .push(strongroom_server::ServicePrincipal {
                    service: service.to_owned(),
                    access_key_id: service_key(service),
                    secret: zeroize::Zeroizing::new("test".to_owned()),
                });
        }
    })
    .await;
    (dir, server)
}

fn service_key(service: &str) -> String {
    format!("SVC{}EXAMPLE", service.to_uppercase())
}

/// A client for service principal `service` acting for the holder of `caller` (its access key, and its
/// session token if it has one).
fn service_acting_for(endpoint: &str, service: &str, caller: &Keys) -> Client {
    let keys = Keys {
        access_key_id: service_key(service),
        secret: "test".to_owned(),
        token: None,
    };
    let client = client_with_header(
        endpoint,
        &keys,
        strongroom_protocol::ON_BEHALF_OF_HEADER,
        &caller.access_key_id,
    );
    match &caller.token {
        None => client,
        Some(token) => with_header(
            client,
            strongroom_protocol::ON_BEHALF_OF_TOKEN_HEADER,
            token,
        ),
    }
}

/// AWS's console key policy: administrators manage the key but cannot use it; users use it but cannot
/// manage it. Both are roles with no IAM policies of their own, named by the key policy.
#[tokio::test(flavor = "multi_thread")]
async fn key_administrators_and_key_users_by_statement() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = server.client();
    let key_id = new_key(&root).await;
    let (admin_arn, admin) = role_session(&endpoint, "KeyAdmin").await;
    let (user_arn, user) = role_session(&endpoint, "KeyUser").await;
    let document = policy(&format!(
        r#"{},
        {{"Sid":"Allow access for Key Administrators","Effect":"Allow","Principal":{{"AWS":"{admin_arn}"}},
          "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*",
                    "kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource",
                    "kms:ScheduleKeyDeletion","kms:CancelKeyDeletion","kms:RotateKeyOnDemand"],"Resource":"*"}},
        {{"Sid":"Allow use of the key","Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},
          "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}}"#,
        enable_iam_policies()
    ));
    put_key_policy(&root, &key_id, &document).await;

    // The user encrypts, decrypts and makes data keys.
    let ciphertext = try_encrypt(&user, &key_id)
        .await
        .expect("the user encrypts");
    assert_eq!(
        try_decrypt(&user, &ciphertext)
            .await
            .expect("the user decrypts"),
        b"scenario"
    );
    user.generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .expect("the user makes data keys");
    // The user cannot manage the key.
    let message = refused(
        user.schedule_key_deletion()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:ScheduleKeyDeletion",
    );
    assert_eq!(
        message,
        format!(
            "User: arn:aws:sts::{ACCOUNT}:assumed-role/KeyUser/KeyUser-session is not authorized to perform: \
             kms:ScheduleKeyDeletion on resource: {} because no identity-based policy allows the \
             kms:ScheduleKeyDeletion action",
            key_arn(&key_id)
        )
    );
    refused(
        user.disable_key()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:DisableKey",
    );
    refused(
        user.put_key_policy()
            .key_id(&key_id)
            .policy(&document)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:PutKeyPolicy",
    );

    // The administrator manages the key but cannot use it.
    refused(try_encrypt(&admin, &key_id).await, "kms:Encrypt");
    refused(try_decrypt(&admin, &ciphertext).await, "kms:Decrypt");
    admin
        .update_key_description()
        .key_id(&key_id)
        .description("managed by KeyAdmin")
        .send()
        .await
        .expect("the administrator updates the description");
    admin
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("the administrator enables rotation");
    admin
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("the administrator schedules deletion");
    admin
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .expect("the administrator cancels it");
    admin
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("the administrator enables the key again");
    let described = admin
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    let metadata = described.key_metadata().expect("metadata");
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
    assert_eq!(metadata.description(), Some("managed by KeyAdmin"));
    // The user's permissions were never the administrator's to use, and vice versa.
    assert!(try_encrypt(&user, &key_id).await.is_ok());
    server.stop().await;
}

/// "Allow attachment of persistent resources": grants only when an AWS service asks for them on the
/// principal's behalf (`kms:GrantIsForAWSResource`), for CreateGrant, ListGrants and RevokeGrant; a grant
/// made that way lets its grantee role decrypt.
#[tokio::test(flavor = "multi_thread")]
async fn persistent_resource_grants_need_an_aws_service() {
    let (_dir, server) = server_with_services("persistent-grants").await;
    let endpoint = server.endpoint();
    let root = server.client();
    let key_id = new_key(&root).await;
    let (user_arn, user) = role_session(&endpoint, "KeyUser").await;
    let (reader_arn, reader) = role_session(&endpoint, "Reader").await;
    let app = user_with_key(&endpoint, "app").await;
    let app_arn = format!("arn:aws:iam::{ACCOUNT}:user/app");
    let document = policy(&format!(
        r#"{},
        {{"Sid":"Allow use of the key","Effect":"Allow","Principal":{{"AWS":["{user_arn}","{app_arn}"]}},
          "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}},
        {{"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{{"AWS":["{user_arn}","{app_arn}"]}},
          "Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*",
          "Condition":{{"Bool":{{"kms:GrantIsForAWSResource":"true"}}}}}}"#,
        enable_iam_policies()
    ));
    put_key_policy(&root, &key_id, &document).await;
    let ciphertext = try_encrypt(&user, &key_id)
        .await
        .expect("the key user encrypts");

    // Directly, neither the role session nor the user may make or list grants.
    for client in [&user, &kms(&endpoint, &app)] {
        refused(
            client
                .create_grant()
                .key_id(&key_id)
                .grantee_principal(&reader_arn)
                .operations(GrantOperation::Decrypt)
                .send()
                .await
                .map_err(|e| failure::<(), _, _>(Err(e))),
            "kms:CreateGrant",
        );
        refused(
            client
                .list_grants()
                .key_id(&key_id)
                .send()
                .await
                .map_err(|e| failure::<(), _, _>(Err(e))),
            "kms:ListGrants",
        );
    }
    refused(try_decrypt(&reader, &ciphertext).await, "kms:Decrypt");

    // Through an AWS service the same requests are allowed.
    let via_ec2 = service_acting_for(&endpoint, "ec2", &app);
    let grant = via_ec2
        .create_grant()
        .key_id(key_arn(&key_id))
        .grantee_principal(&reader_arn)
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .expect("CreateGrant through ec2");
    let grant_id = grant.grant_id().expect("a grant id").to_owned();
    let listed = via_ec2
        .list_grants()
        .key_id(key_arn(&key_id))
        .send()
        .await
        .expect("ListGrants through ec2");
    assert_eq!(
        listed
            .grants()
            .iter()
            .map(|grant| grant.grant_id().unwrap_or_default())
            .collect::<Vec<_>>(),
        [grant_id.as_str()]
    );
    assert_eq!(
        try_decrypt(&reader, &ciphertext)
            .await
            .expect("the grant lets the reader decrypt"),
        b"scenario"
    );
    refused(try_encrypt(&reader, &key_id).await, "kms:Encrypt");
    // Revoking is gated the same way.
    refused(
        kms(&endpoint, &app)
            .revoke_grant()
            .key_id(&key_id)
            .grant_id(&grant_id)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:RevokeGrant",
    );
    via_ec2
        .revoke_grant()
        .key_id(key_arn(&key_id))
        .grant_id(&grant_id)
        .send()
        .await
        .expect("RevokeGrant through ec2");
    refused(try_decrypt(&reader, &ciphertext).await, "kms:Decrypt");
    server.stop().await;
}

/// Account 111122223333 lends a key to a role of account 444455556666: the key policy must allow the
/// borrowing account (or the role) and the borrower's IAM policy must allow the key; either half alone is
/// refused, each with its own reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_lent_to_another_account_needs_both_policies() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let owner = server.client();
    let key_id = new_key(&owner).await;
    let key = key_arn(&key_id);
    let borrower_root = root_of(BORROWER);
    let borrower_role = create_role(&endpoint, &borrower_root, BORROWER, "Borrower").await;
    let session = assume(&endpoint, &borrower_root, &borrower_role, "borrowing").await;
    let borrower = kms(&endpoint, &session);
    let session_arn = format!("arn:aws:sts::{BORROWER}:assumed-role/Borrower/borrowing");
    let ciphertext = try_encrypt(&owner, &key).await.expect("the owner encrypts");
    let use_the_key = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"{key}"}}]}}"#
    );
    let lend_to = |principal: &str| {
        policy(&format!(
            r#"{},
            {{"Sid":"Lend","Effect":"Allow","Principal":{{"AWS":"{principal}"}},
              "Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}}"#,
            enable_iam_policies()
        ))
    };

    // The borrower's IAM policy alone: the key policy does not name the account.
    put_role_policy(&endpoint, &borrower_root, "Borrower", &use_the_key).await;
    let message = refused(try_encrypt(&borrower, &key).await, "kms:Encrypt");
    assert_eq!(
        message,
        format!(
            "User: {session_arn} is not authorized to perform: kms:Encrypt on resource: {key} because no \
             resource-based policy allows the kms:Encrypt action"
        )
    );

    // The key policy alone: the borrower's account has not given the role the key.
    iam(&endpoint, &borrower_root)
        .delete_role_policy()
        .role_name("Borrower")
        .policy_name("kms")
        .send()
        .await
        .expect("DeleteRolePolicy");
    put_key_policy(
        &owner,
        &key_id,
        &lend_to(&format!("arn:aws:iam::{BORROWER}:root")),
    )
    .await;
    let message = refused(try_encrypt(&borrower, &key).await, "kms:Encrypt");
    assert_eq!(
        message,
        format!(
            "User: {session_arn} is not authorized to perform: kms:Encrypt on resource: {key} because no \
             identity-based policy allows the kms:Encrypt action"
        )
    );
    // Naming the role itself in the key policy does not spare the IAM policy across accounts.
    put_key_policy(&owner, &key_id, &lend_to(&borrower_role)).await;
    refused(try_encrypt(&borrower, &key).await, "kms:Encrypt");

    // Both halves: the borrower uses the key, and only as lent.
    put_role_policy(&endpoint, &borrower_root, "Borrower", &use_the_key).await;
    for principal in [
        borrower_role.clone(),
        format!("arn:aws:iam::{BORROWER}:root"),
    ] {
        put_key_policy(&owner, &key_id, &lend_to(&principal)).await;
        let borrowed = try_encrypt(&borrower, &key)
            .await
            .expect("the borrower encrypts");
        assert_eq!(
            try_decrypt(&owner, &borrowed)
                .await
                .expect("the owner decrypts"),
            b"scenario"
        );
        assert_eq!(
            try_decrypt(&borrower, &ciphertext)
                .await
                .expect("the borrower decrypts"),
            b"scenario"
        );
    }
    refused(
        borrower
            .generate_data_key()
            .key_id(&key)
            .number_of_bytes(16)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:GenerateDataKey",
    );
    // Even an IAM policy allowing everything does not reach management the key policy does not lend.
    put_role_policy(
        &endpoint,
        &borrower_root,
        "Borrower",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
    )
    .await;
    let management = failure(borrower.schedule_key_deletion().key_id(&key).send().await);
    assert_eq!(
        management.code, "AccessDeniedException",
        "{}",
        management.message
    );
    assert!(
        management.message.contains("own account"),
        "management operations never cross accounts: {}",
        management.message
    );
    server.stop().await;
}

/// `kms:KeyOrigin` in an identity policy: a role may create only keys for imported material, and may
/// describe only such keys (the condition also describes existing keys).
#[tokio::test(flavor = "multi_thread")]
async fn key_origin_limits_which_keys_a_role_creates() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = server.client();
    let (_, maker) = role_session(&endpoint, "KeyMaker").await;
    let document = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["kms:CreateKey","kms:DescribeKey"],"Resource":"*",
         "Condition":{"StringEquals":{"kms:KeyOrigin":"EXTERNAL"}}},
        {"Effect":"Allow","Action":"kms:PutKeyPolicy","Resource":"*"}]}"#;
    put_role_policy(&endpoint, &Keys::dev(), "KeyMaker", document).await;

    let created = maker
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .expect("a key for imported material is allowed");
    let metadata = created.key_metadata().expect("metadata");
    assert_eq!(metadata.origin(), Some(&OriginType::External));
    assert_eq!(metadata.key_state(), Some(&KeyState::PendingImport));
    let external_id = metadata.key_id().to_owned();
    let message = refused(
        maker
            .create_key()
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:CreateKey",
    );
    assert_eq!(
        message,
        format!(
            "User: arn:aws:sts::{ACCOUNT}:assumed-role/KeyMaker/KeyMaker-session is not authorized to \
             perform: kms:CreateKey on resource: * because no identity-based policy allows the \
             kms:CreateKey action"
        )
    );
    refused(
        maker
            .create_key()
            .origin(OriginType::AwsKms)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:CreateKey",
    );

    maker
        .describe_key()
        .key_id(&external_id)
        .send()
        .await
        .expect("DescribeKey of an EXTERNAL key");
    let ordinary = new_key(&root).await;
    refused(
        maker
            .describe_key()
            .key_id(&ordinary)
            .send()
            .await
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:DescribeKey",
    );
    server.stop().await;
}

/// `kms:ViaService` with two services: the key is usable through S3 and EC2 only, by a role session and by
/// an IAM user the services act for, never directly and not through RDS.
#[tokio::test(flavor = "multi_thread")]
async fn via_service_limited_to_two_services() {
    let (_dir, server) = server_with_services("two-services").await;
    let endpoint = server.endpoint();
    let root = server.client();
    let key_id = new_key(&root).await;
    let key = key_arn(&key_id);
    let (session_arn, session_keys) = role_session_keys(&endpoint, "Application").await;
    let session = kms(&endpoint, &session_keys);
    let app = user_with_key(&endpoint, "app").await;
    let app_arn = format!("arn:aws:iam::{ACCOUNT}:user/app");
    let document = policy(&format!(
        r#"{},
        {{"Sid":"Through S3 and EC2 only","Effect":"Allow","Principal":{{"AWS":["{session_arn}","{app_arn}"]}},
          "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*",
          "Condition":{{"StringEquals":{{"kms:ViaService":["s3.{REGION}.amazonaws.com","ec2.{REGION}.amazonaws.com"],
                                         "kms:CallerAccount":"{ACCOUNT}"}}}}}}"#,
        enable_iam_policies()
    ));
    put_key_policy(&root, &key_id, &document).await;

    let via_s3 = service_acting_for(&endpoint, "s3", &app);
    let via_ec2 = service_acting_for(&endpoint, "ec2", &app);
    let via_rds = service_acting_for(&endpoint, "rds", &app);
    let from_s3 = try_encrypt(&via_s3, &key)
        .await
        .expect("Encrypt through S3");
    assert_eq!(
        try_decrypt(&via_ec2, &from_s3)
            .await
            .expect("Decrypt through EC2"),
        b"scenario"
    );
    via_ec2
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateDataKey through EC2");

    let message = refused(try_encrypt(&via_rds, &key).await, "kms:Encrypt");
    assert!(message.contains(&app_arn), "{message}");
    refused(try_decrypt(&via_rds, &from_s3).await, "kms:Decrypt");
    refused(
        try_encrypt(&kms(&endpoint, &app), &key).await,
        "kms:Encrypt",
    );
    refused(try_decrypt(&session, &from_s3).await, "kms:Decrypt");
    refused(try_encrypt(&session, &key).await, "kms:Encrypt");

    // The role session through the services: the same rules, as the session.
    let session_via_s3 = service_acting_for(&endpoint, "s3", &session_keys);
    let session_via_ec2 = service_acting_for(&endpoint, "ec2", &session_keys);
    let session_via_rds = service_acting_for(&endpoint, "rds", &session_keys);
    let from_session = try_encrypt(&session_via_s3, &key)
        .await
        .expect("the session encrypts through S3");
    assert_eq!(
        try_decrypt(&session_via_ec2, &from_session)
            .await
            .expect("the session decrypts through EC2"),
        b"scenario"
    );
    assert_eq!(
        try_decrypt(&session_via_s3, &from_s3)
            .await
            .expect("the session decrypts what the user encrypted"),
        b"scenario"
    );
    let message = refused(try_encrypt(&session_via_rds, &key).await, "kms:Encrypt");
    assert!(
        message.contains(&format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/Application/Application-session"
        )),
        "{message}"
    );
    server.stop().await;
}

/// A service acts for a role session when it passes the session's token with its access key: the request
/// is authorized as the session (its role's identity policies, `kms:ViaService`), only while the session
/// lasts, and never with a missing or wrong token.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_acts_for_a_role_session_with_its_token() {
    let (_dir, server) = server_with_services("session-via-service").await;
    let endpoint = server.endpoint();
    let root = server.client();
    let key_id = new_key(&root).await;
    let key = key_arn(&key_id);
    // The default key policy delegates to IAM; the role may use the key only through S3.
    let (_, session) = role_session_keys(&endpoint, "Uploader").await;
    put_role_policy(
        &endpoint,
        &Keys::dev(),
        "Uploader",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
            "Condition":{{"StringEquals":{{"kms:ViaService":"s3.{REGION}.amazonaws.com"}}}}}}]}}"#
        ),
    )
    .await;
    let session_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/Uploader/Uploader-session");
    let message = refused(
        try_encrypt(&kms(&endpoint, &session), &key).await,
        "kms:Encrypt",
    );
    assert!(message.contains(&session_arn), "{message}");

    let via_s3 = service_acting_for(&endpoint, "s3", &session);
    let ciphertext = try_encrypt(&via_s3, &key)
        .await
        .expect("S3 encrypts for the session");
    assert_eq!(
        try_decrypt(&via_s3, &ciphertext)
            .await
            .expect("S3 decrypts for the session"),
        b"scenario"
    );
    let message = refused(
        try_encrypt(&service_acting_for(&endpoint, "ec2", &session), &key).await,
        "kms:Encrypt",
    );
    assert!(
        message.contains(&session_arn)
            && message.contains("because no identity-based policy allows the kms:Encrypt action"),
        "{message}"
    );

    // The session's access key alone, or with another token, names no one.
    for (what, token) in [
        ("no token", None),
        ("a forged token", Some("forged".to_owned())),
    ] {
        let caller = Keys {
            token,
            ..session.clone()
        };
        let failed = try_encrypt(&service_acting_for(&endpoint, "s3", &caller), &key)
            .await
            .expect_err(what);
        assert_eq!(failed.code, "UnrecognizedClientException", "{what}");
    }
    // Once the session ends, the service can no longer act for it.
    server.clock().advance(std::time::Duration::from_secs(3601));
    let failed = try_encrypt(&via_s3, &key)
        .await
        .expect_err("the session has ended");
    assert_eq!(failed.code, "ExpiredTokenException", "{}", failed.message);
    server.stop().await;
}

/// `aws:SourceVpc` in a key policy and `aws:SourceVpce` in a role's identity policy, for requests whose
/// client address a trusted proxy reports: VPC A has endpoints vpce-a1 (10.0.1.0/24) and vpce-a2
/// (10.0.3.0/24), VPC B has vpce-b1 (10.0.2.0/24); 203.0.113.9 is outside every VPC.
#[tokio::test(flavor = "multi_thread")]
async fn source_vpc_and_vpc_endpoint_decide_with_roles() {
    let dir = TempDir::new("vpc-roles");
    let server = TestServer::start_in(dir.path(), |config| {
        config
            .network
            .trusted_proxies
            .push("127.0.0.0/8".parse().expect("a range"));
        for (range, vpc, endpoint) in [
            ("10.0.1.0/24", "vpc-a", "vpce-a1"),
            ("10.0.2.0/24", "vpc-b", "vpce-b1"),
            ("10.0.3.0/24", "vpc-a", "vpce-a2"),
        ] {
            config.network.vpcs.push(strongroom_protocol::VpcMapping {
                range: range.parse().expect("a range"),
                vpc_id: vpc.to_owned(),
                vpc_endpoint_id: Some(endpoint.to_owned()),
            });
        }
    })
    .await;
    let endpoint = server.endpoint();
    let root = server.client();
    let role = create_role(&endpoint, &Keys::dev(), ACCOUNT, "InVpc").await;
    let session = assume(&endpoint, &Keys::dev(), &role, "in-vpc").await;
    let from = |address: &str| client_with_header(&endpoint, &session, "x-forwarded-for", address);

    // Key A: the key policy lets the role encrypt from VPC A, through any of its endpoints.
    let vpc_key = new_key(&root).await;
    put_key_policy(
        &root,
        &vpc_key,
        &policy(&format!(
            r#"{},
            {{"Sid":"From VPC A","Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":"kms:Encrypt","Resource":"*",
              "Condition":{{"StringEquals":{{"aws:SourceVpc":"vpc-a"}}}}}}"#,
            enable_iam_policies()
        )),
    )
    .await;
    for address in ["10.0.1.5", "10.0.3.5"] {
        try_encrypt(&from(address), &vpc_key)
            .await
            .unwrap_or_else(|f| panic!("from {address}: {f:?}"));
    }
    for address in ["10.0.2.5", "203.0.113.9"] {
        let message = refused(try_encrypt(&from(address), &vpc_key).await, "kms:Encrypt");
        assert!(
            message.contains("because no identity-based policy allows"),
            "the key policy delegates the rest to IAM, which allows nothing: {message}"
        );
    }

    // Key B: the default key policy; the role's IAM policy allows it only through endpoint vpce-a1, and
    // denies Decrypt through any other way.
    let endpoint_key = new_key(&root).await;
    let ciphertext = try_encrypt(&root, &endpoint_key)
        .await
        .expect("the root encrypts");
    let identity = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"{}",
          "Condition":{{"StringEquals":{{"aws:SourceVpce":"vpce-a1"}}}}}},
        {{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{{"StringNotEquals":{{"aws:SourceVpce":"vpce-a1"}}}}}}]}}"#,
        key_arn(&endpoint_key)
    );
    put_role_policy(&endpoint, &Keys::dev(), "InVpc", &identity).await;
    try_encrypt(&from("10.0.1.77"), &endpoint_key)
        .await
        .expect("through vpce-a1");
    assert_eq!(
        try_decrypt(&from("10.0.1.77"), &ciphertext)
            .await
            .expect("Decrypt through vpce-a1"),
        b"scenario"
    );
    // The same VPC through another endpoint is not enough.
    refused(
        try_encrypt(&from("10.0.3.5"), &endpoint_key).await,
        "kms:Encrypt",
    );
    for address in ["10.0.3.5", "10.0.2.5", "203.0.113.9"] {
        let message = refused(
            try_decrypt(&from(address), &ciphertext).await,
            "kms:Decrypt",
        );
        assert!(
            message.contains("with an explicit deny in an identity-based policy"),
            "from {address}: {message}"
        );
    }
    // Key A's rule still holds for its own action: Encrypt from VPC A through vpce-a2.
    try_encrypt(&from("10.0.3.5"), &vpc_key)
        .await
        .expect("key A from vpce-a2");
    server.stop().await;
}
