//! IAM and STS end to end: users, access keys, roles and sessions made with the AWS SDKs for IAM and STS
//! (as `aws iam … --endpoint-url` would), used to call KMS, and the Query protocol's wire format checked
//! with hand-signed requests.
//!
//! Tests that need KMS authorization to read IAM policies (an identity policy allowing `kms:Encrypt`
//! where the key policy delegates to the account) say so in their names: `…_through_identity_policies`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::harness::{ACCOUNT, ProcessServer, TempDir, TestServer, create_key, encrypt, failure};

const REGION: &str = "us-east-1";
const PATIENCE: Duration = Duration::from_secs(30);

/// Keys that sign as someone: an access key, its secret, and a session token for temporary ones.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) access_key_id: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
}

impl Keys {
    pub(crate) fn dev() -> Keys {
        Keys {
            access_key_id: "test".to_owned(),
            secret: "test".to_owned(),
            token: None,
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret,
            self.token.clone(),
            None,
            "strongroom-it-iam",
        )
    }
}

pub(crate) fn iam(endpoint: &str, keys: &Keys) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new(REGION))
        .credentials_provider(keys.credentials())
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_iam::config::timeout::TimeoutConfig::builder()
                .operation_timeout(PATIENCE)
                .build(),
        )
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

pub(crate) fn sts(endpoint: &str, keys: &Keys) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(REGION))
        .credentials_provider(keys.credentials())
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                .operation_timeout(PATIENCE)
                .build(),
        )
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

pub(crate) fn kms(endpoint: &str, keys: &Keys) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .credentials_provider(keys.credentials())
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_kms::config::timeout::TimeoutConfig::builder()
                .operation_timeout(PATIENCE)
                .build(),
        )
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates user `name` as the default root and returns a new access key of it.
pub(crate) async fn user_with_key(endpoint: &str, name: &str) -> Keys {
    let admin = iam(endpoint, &Keys::dev());
    admin
        .create_user()
        .user_name(name)
        .send()
        .await
        .expect("CreateUser");
    let created = admin
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("CreateAccessKey");
    let key = created.access_key().expect("an access key");
    Keys {
        access_key_id: key.access_key_id().to_owned(),
        secret: key.secret_access_key().to_owned(),
        token: None,
    }
}

/// Assumes `role_arn` as `keys` and returns the session's keys.
pub(crate) async fn assume(endpoint: &str, keys: &Keys, role_arn: &str, session: &str) -> Keys {
    let assumed = sts(endpoint, keys)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session)
        .send()
        .await
        .expect("AssumeRole");
    let credentials = assumed.credentials().expect("credentials");
    Keys {
        access_key_id: credentials.access_key_id().to_owned(),
        secret: credentials.secret_access_key().to_owned(),
        token: Some(credentials.session_token().to_owned()),
    }
}

pub(crate) fn allow(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
    )
}

pub(crate) fn trust_account() -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

/// A key policy that lets the owner's root administer the key and `principal` encrypt with it.
fn key_policy_for(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Sid":"Named","Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"kms:Encrypt","Resource":"*"}}]}}"#
    )
}

pub(crate) async fn try_encrypt(client: &aws_sdk_kms::Client, key: &str) -> Result<(), String> {
    match client
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"iam"))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(failure::<(), _, _>(Err(error)).code),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_caller_identity_names_root_user_and_assumed_role() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = sts(&endpoint, &Keys::dev())
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity as root");
    assert_eq!(root.account(), Some(ACCOUNT));
    assert_eq!(
        root.arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:root").as_str())
    );
    assert_eq!(root.user_id(), Some(ACCOUNT));

    let alice = user_with_key(&endpoint, "alice").await;
    let as_alice = sts(&endpoint, &alice)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity as a user");
    assert_eq!(
        as_alice.arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:user/alice").as_str())
    );
    assert!(as_alice.user_id().is_some_and(|id| id.starts_with("AIDA")));

    let role = iam(&endpoint, &Keys::dev())
        .create_role()
        .role_name("reader")
        .assume_role_policy_document(trust_account())
        .send()
        .await
        .expect("CreateRole");
    let role = role.role().expect("a role");
    let session = assume(&endpoint, &Keys::dev(), role.arn(), "who-am-i").await;
    assert!(session.access_key_id.starts_with("ASIA"));
    let as_session = sts(&endpoint, &session)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity as a role session");
    assert_eq!(
        as_session.arn(),
        Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/reader/who-am-i").as_str())
    );
    assert_eq!(
        as_session.user_id(),
        Some(format!("{}:who-am-i", role.role_id()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_operations_round_trip_through_the_sdk() {
    let server = TestServer::start().await;
    let admin = iam(&server.endpoint(), &Keys::dev());
    let created = admin
        .create_user()
        .user_name("bob")
        .path("/team/")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("dept")
                .value("crypto")
                .build()
                .expect("a tag"),
        )
        .send()
        .await
        .expect("CreateUser");
    let bob = created.user().expect("a user");
    assert_eq!(bob.arn(), format!("arn:aws:iam::{ACCOUNT}:user/team/bob"));
    let fetched = admin
        .get_user()
        .user_name("bob")
        .send()
        .await
        .expect("GetUser");
    assert_eq!(
        fetched.user().map(|user| user.user_id()),
        Some(bob.user_id())
    );
    assert_eq!(fetched.user().map(|user| user.tags().len()), Some(1));
    let listed = admin.list_users().send().await.expect("ListUsers");
    assert_eq!(listed.users().len(), 1);
    assert!(!listed.is_truncated());

    let duplicate = failure(admin.create_user().user_name("BOB").send().await);
    assert_eq!(duplicate.code, "EntityAlreadyExists");
    let missing = failure(admin.get_user().user_name("nobody").send().await);
    assert_eq!(missing.code, "NoSuchEntity");

    let document = allow("kms:Encrypt");
    admin
        .put_user_policy()
        .user_name("bob")
        .policy_name("encrypt")
        .policy_document(&document)
        .send()
        .await
        .expect("PutUserPolicy");
    let got = admin
        .get_user_policy()
        .user_name("bob")
        .policy_name("encrypt")
        .send()
        .await
        .expect("GetUserPolicy");
    // IAM returns documents URL-encoded, as the AWS CLI expects.
    assert_eq!(percent_decode(got.policy_document()), document);
    let names = admin
        .list_user_policies()
        .user_name("bob")
        .send()
        .await
        .expect("ListUserPolicies");
    assert_eq!(names.policy_names(), ["encrypt"]);
    let malformed = failure(
        admin
            .put_user_policy()
            .user_name("bob")
            .policy_name("bad")
            .policy_document("{\"Statement\":")
            .send()
            .await,
    );
    assert_eq!(malformed.code, "MalformedPolicyDocument");

    let policy = admin
        .create_policy()
        .policy_name("decrypt")
        .policy_document(allow("kms:Decrypt"))
        .send()
        .await
        .expect("CreatePolicy");
    let policy_arn = policy
        .policy()
        .and_then(|policy| policy.arn())
        .expect("a policy ARN")
        .to_owned();
    admin
        .attach_user_policy()
        .user_name("bob")
        .policy_arn(&policy_arn)
        .send()
        .await
        .expect("AttachUserPolicy");
    let attached = admin
        .list_attached_user_policies()
        .user_name("bob")
        .send()
        .await
        .expect("ListAttachedUserPolicies");
    assert_eq!(
        attached
            .attached_policies()
            .iter()
            .filter_map(|policy| policy.policy_arn())
            .collect::<Vec<_>>(),
        [policy_arn.as_str()]
    );
    let conflict = failure(admin.delete_user().user_name("bob").send().await);
    assert_eq!(conflict.code, "DeleteConflict");

    let key = admin
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .expect("CreateAccessKey");
    let key_id = key
        .access_key()
        .map(|key| key.access_key_id().to_owned())
        .expect("a key");
    admin
        .update_access_key()
        .user_name("bob")
        .access_key_id(&key_id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("UpdateAccessKey");
    let keys = admin
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .expect("ListAccessKeys");
    assert_eq!(
        keys.access_key_metadata()
            .first()
            .and_then(|key| key.status().cloned()),
        Some(aws_sdk_iam::types::StatusType::Inactive)
    );

    admin
        .delete_access_key()
        .user_name("bob")
        .access_key_id(&key_id)
        .send()
        .await
        .expect("DeleteAccessKey");
    admin
        .detach_user_policy()
        .user_name("bob")
        .policy_arn(&policy_arn)
        .send()
        .await
        .expect("DetachUserPolicy");
    admin
        .delete_policy()
        .policy_arn(&policy_arn)
        .send()
        .await
        .expect("DeletePolicy");
    admin
        .delete_user_policy()
        .user_name("bob")
        .policy_name("encrypt")
        .send()
        .await
        .expect("DeleteUserPolicy");
    admin
        .delete_user()
        .user_name("bob")
        .send()
        .await
        .expect("DeleteUser");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_need_iam_permissions_for_iam_calls() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let carol = user_with_key(&endpoint, "carol").await;
    let denied = failure(
        iam(&endpoint, &carol)
            .create_user()
            .user_name("mallory")
            .send()
            .await,
    );
    assert_eq!(denied.code, "AccessDenied");
    assert!(
        denied.message.contains("iam:CreateUser"),
        "{}",
        denied.message
    );
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("carol")
        .policy_name("users")
        .policy_document(allow("iam:*User"))
        .send()
        .await
        .expect("PutUserPolicy");
    iam(&endpoint, &carol)
        .create_user()
        .user_name("dave")
        .send()
        .await
        .expect("carol may create users now");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_policy_naming_a_user_lets_its_key_call_kms() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root_kms = server.client();
    let (key_id, _) = create_key(&root_kms, "for a named user").await;
    let erin = user_with_key(&endpoint, "erin").await;
    let as_erin = kms(&endpoint, &erin);
    assert_eq!(
        try_encrypt(&as_erin, &key_id).await,
        Err("AccessDeniedException".to_owned()),
        "the default key policy delegates to IAM policies, and erin has none"
    );
    root_kms
        .put_key_policy()
        .key_id(&key_id)
        .policy(key_policy_for(&format!("arn:aws:iam::{ACCOUNT}:user/erin")))
        .send()
        .await
        .expect("PutKeyPolicy");
    assert_eq!(try_encrypt(&as_erin, &key_id).await, Ok(()));

    // Deleting the key stops it at once, though its signing key was cached.
    iam(&endpoint, &Keys::dev())
        .delete_access_key()
        .user_name("erin")
        .access_key_id(&erin.access_key_id)
        .send()
        .await
        .expect("DeleteAccessKey");
    assert_eq!(
        try_encrypt(&as_erin, &key_id).await,
        Err("UnrecognizedClientException".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_calls_kms_through_identity_policies() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let (key_id, _) = create_key(&server.client(), "default key policy").await;
    let frank = user_with_key(&endpoint, "frank").await;
    let as_frank = kms(&endpoint, &frank);
    assert_eq!(
        try_encrypt(&as_frank, &key_id).await,
        Err("AccessDeniedException".to_owned()),
        "denied until an IAM policy allows it"
    );
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("frank")
        .policy_name("encrypt")
        .policy_document(allow("kms:Encrypt"))
        .send()
        .await
        .expect("PutUserPolicy");
    assert_eq!(
        try_encrypt(&as_frank, &key_id).await,
        Ok(()),
        "the default key policy delegates to the account, and frank's policy allows kms:Encrypt"
    );
    let ciphertext = encrypt(&server.client(), &key_id, b"secret", &[]).await;
    let decrypt = as_frank
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await;
    assert_eq!(
        failure(decrypt).code,
        "AccessDeniedException",
        "frank's policy does not allow kms:Decrypt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_session_calls_kms_through_identity_policies() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let (key_id, _) = create_key(&server.client(), "for a role").await;
    let admin = iam(&endpoint, &Keys::dev());
    let role = admin
        .create_role()
        .role_name("encryptor")
        .assume_role_policy_document(trust_account())
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role
        .role()
        .map(|role| role.arn().to_owned())
        .expect("a role");
    admin
        .put_role_policy()
        .role_name("encryptor")
        .policy_name("encrypt")
        .policy_document(allow("kms:Encrypt"))
        .send()
        .await
        .expect("PutRolePolicy");
    let session = assume(&endpoint, &Keys::dev(), &role_arn, "batch-job").await;
    assert_eq!(
        try_encrypt(&kms(&endpoint, &session), &key_id).await,
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_credentials_need_their_token_and_expire() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root_kms = server.client();
    let (key_id, _) = create_key(&root_kms, "for a session").await;
    let admin = iam(&endpoint, &Keys::dev());
    admin
        .create_role()
        .role_name("temp")
        .assume_role_policy_document(trust_account())
        .max_session_duration(7200)
        .send()
        .await
        .expect("CreateRole");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/temp");
    let session = assume(&endpoint, &Keys::dev(), &role_arn, "short").await;
    let session_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/temp/short");
    root_kms
        .put_key_policy()
        .key_id(&key_id)
        .policy(key_policy_for(&session_arn))
        .send()
        .await
        .expect("PutKeyPolicy");
    assert_eq!(
        try_encrypt(&kms(&endpoint, &session), &key_id).await,
        Ok(())
    );

    let tokenless = Keys {
        token: None,
        ..session.clone()
    };
    assert_eq!(
        try_encrypt(&kms(&endpoint, &tokenless), &key_id).await,
        Err("UnrecognizedClientException".to_owned())
    );
    let wrong_token = Keys {
        token: Some("forged".to_owned()),
        ..session.clone()
    };
    let refused = failure(
        sts(&endpoint, &wrong_token)
            .get_caller_identity()
            .send()
            .await,
    );
    assert_eq!(refused.code, "InvalidClientTokenId");

    // DurationSeconds is bounded by the role's maximum.
    let too_long = failure(
        sts(&endpoint, &Keys::dev())
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("long")
            .duration_seconds(7201)
            .send()
            .await,
    );
    assert_eq!(too_long.code, "ValidationError");

    server.clock().advance(Duration::from_secs(3601));
    assert_eq!(
        try_encrypt(&kms(&endpoint, &session), &key_id).await,
        Err("ExpiredTokenException".to_owned())
    );
    let expired = failure(sts(&endpoint, &session).get_caller_identity().send().await);
    assert_eq!(expired.code, "ExpiredToken");
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_policies_decide_who_may_assume_a_role() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let admin = iam(&endpoint, &Keys::dev());
    let grace = user_with_key(&endpoint, "grace").await;
    let henry = user_with_key(&endpoint, "henry").await;
    let trust_grace = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/grace"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    admin
        .create_role()
        .role_name("graces")
        .assume_role_policy_document(trust_grace)
        .send()
        .await
        .expect("CreateRole");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/graces");
    assume(&endpoint, &grace, &role_arn, "grace-session").await;
    let refused = failure(
        sts(&endpoint, &henry)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("henry-session")
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDenied");

    // A trust policy that names the account delegates to identity policies.
    admin
        .update_assume_role_policy()
        .role_name("graces")
        .policy_document(trust_account())
        .send()
        .await
        .expect("UpdateAssumeRolePolicy");
    let still_refused = failure(
        sts(&endpoint, &henry)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("henry-session")
            .send()
            .await,
    );
    assert_eq!(still_refused.code, "AccessDenied");
    admin
        .put_user_policy()
        .user_name("henry")
        .policy_name("assume")
        .policy_document(allow("sts:AssumeRole"))
        .send()
        .await
        .expect("PutUserPolicy");
    assume(&endpoint, &henry, &role_arn, "henry-session").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_session_token_gives_a_user_temporary_credentials() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let ivan = user_with_key(&endpoint, "ivan").await;
    let issued = sts(&endpoint, &ivan)
        .get_session_token()
        .duration_seconds(900)
        .send()
        .await
        .expect("GetSessionToken");
    let credentials = issued.credentials().expect("credentials");
    let session = Keys {
        access_key_id: credentials.access_key_id().to_owned(),
        secret: credentials.secret_access_key().to_owned(),
        token: Some(credentials.session_token().to_owned()),
    };
    let identity = sts(&endpoint, &session)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity with the session");
    assert_eq!(
        identity.arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:user/ivan").as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_protocol_speaks_xml() {
    let server = TestServer::start().await;
    let address: SocketAddr = server
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let dev = Keys::dev();

    let (status, body) = query(
        address,
        "iam",
        "Action=CreateUser&Version=2010-05-08&UserName=judy&Path=%2Fops%2F",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(
            "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateUserResult><User>"
        ),
        "{body}"
    );
    assert!(
        body.contains(&format!("<Arn>arn:aws:iam::{ACCOUNT}:user/ops/judy</Arn>")),
        "{body}"
    );
    assert!(body.contains("<ResponseMetadata><RequestId>"), "{body}");

    let (status, body) = query(
        address,
        "iam",
        "Action=GetUser&Version=2010-05-08&UserName=nobody",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body.contains("<Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>"),
        "{body}"
    );

    let (status, body) = query(
        address,
        "iam",
        "Action=CreateUser&Version=2010-05-08&UserName=judy",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 409);
    assert!(body.contains("<Code>EntityAlreadyExists</Code>"), "{body}");

    let (status, body) = query(
        address,
        "iam",
        "Action=DeleteUser&Version=2010-05-08&UserName=judy",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("<DeleteUserResponse") && !body.contains("<DeleteUserResult>"),
        "{body}"
    );

    let (status, body) = query(
        address,
        "iam",
        "Action=Frobnicate&Version=2010-05-08",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");

    let (status, body) = query(
        address,
        "iam",
        "Action=CreateUser&Version=2010-05-08",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingParameter</Code>"), "{body}");

    let (status, body) = query(
        address,
        "sts",
        "Action=GetCallerIdentity&Version=2011-06-15",
        Some(&dev),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"")
            && body.contains(&format!("<Account>{ACCOUNT}</Account>")),
        "{body}"
    );

    let (status, body) = query(
        address,
        "sts",
        "Action=GetCallerIdentity&Version=2011-06-15",
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );

    let stranger = Keys {
        access_key_id: "AKIANOTAREALKEY00000".to_owned(),
        secret: "x".to_owned(),
        token: None,
    };
    let (status, body) = query(
        address,
        "sts",
        "Action=GetCallerIdentity&Version=2011-06-15",
        Some(&stranger),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("<Code>InvalidClientTokenId</Code>"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn account_create_prints_a_root_key_the_server_accepts() {
    let dir = TempDir::new("account-create");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["account", "create", "--data-dir"])
        .arg(dir.path())
        .arg("444455556666")
        .output()
        .expect("run strongroom account create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("UTF-8 output");
    let value = |name: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in {printed}"))
            .to_owned()
    };
    assert!(printed.starts_with("[444455556666]\n"), "{printed}");
    let keys = Keys {
        access_key_id: value("aws_access_key_id"),
        secret: value("aws_secret_access_key"),
        token: None,
    };
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["account", "create", "--data-dir"])
        .arg(dir.path())
        .arg("444455556666")
        .output()
        .expect("run strongroom account create again");
    assert!(!again.status.success(), "an account is created once");

    let server = ProcessServer::start(dir.path(), &[]);
    let endpoint = format!("http://{}", server.address());
    let identity = sts(&endpoint, &keys)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity with the new root key");
    assert_eq!(identity.arn(), Some("arn:aws:iam::444455556666:root"));
    iam(&endpoint, &keys)
        .create_user()
        .user_name("first")
        .send()
        .await
        .expect("the new root creates a user in its account");
    let (key_id, _) = create_key(&kms(&endpoint, &keys), "the new account's first key").await;
    assert!(!key_id.is_empty());
}

/// Sends a form-encoded Query request for `service`, signed by `keys` when given; returns the status and
/// the body.
async fn query(
    address: SocketAddr,
    service: &str,
    body: &str,
    keys: Option<&Keys>,
) -> (u16, String) {
    let mut request = http::Request::post("/")
        .header(http::header::HOST, address.to_string())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    if let Some(keys) = keys {
        let identity: Identity = keys.credentials().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("valid signing parameters")
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().expect("ASCII header").to_owned(),
                )
            })
            .collect();
        let signable = SignableRequest::new(
            "POST",
            format!("http://{address}/"),
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("a signable request");
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .expect("signing succeeds")
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
    }
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("send");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Decodes `%XX` escapes, as the AWS CLI does for the policy documents IAM returns.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8")
}

/// CreateKey has no key policy to consult: an IAM user needs an identity policy that allows it, and
/// conditions on the new key's properties (here `kms:KeySpec`) apply. (The lockout safety check also
/// wants the creator able to change the new key's policy, hence kms:PutKeyPolicy.)
#[tokio::test(flavor = "multi_thread")]
async fn create_key_needs_an_identity_policy() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let frank = user_with_key(&endpoint, "frank").await;
    let as_frank = kms(&endpoint, &frank);
    let refused = failure(as_frank.create_key().send().await);
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains("kms:CreateKey"),
        "{}",
        refused.message
    );

    let only_hmac = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*","Condition":{"StringLike":{"kms:KeySpec":"HMAC_*"}}},{"Effect":"Allow","Action":"kms:PutKeyPolicy","Resource":"*"}]}"#;
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("frank")
        .policy_name("hmac-keys")
        .policy_document(only_hmac)
        .send()
        .await
        .expect("PutUserPolicy");
    let symmetric = failure(as_frank.create_key().send().await);
    assert_eq!(symmetric.code, "AccessDeniedException");
    as_frank
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .expect("an HMAC key is allowed");
}

/// What a call to one of the operations that act on no key returned: `Ok` or the error code and message.
async fn account_action(
    client: &aws_sdk_kms::Client,
    action: &str,
) -> Result<(), (String, String)> {
    let outcome = match action {
        "kms:ListKeys" => client
            .list_keys()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:ListAliases" => client
            .list_aliases()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure::<(), _, _>(Err(e))),
        "kms:GenerateRandom" => client
            .generate_random()
            .number_of_bytes(16)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure::<(), _, _>(Err(e))),
        other => panic!("not an account action: {other}"),
    };
    outcome.map_err(|refused| (refused.code, refused.message))
}

/// ListKeys, ListAliases and GenerateRandom act on no key, so no key policy is consulted: IAM users need an
/// identity policy allowing the action on `*` (a policy naming key ARNs does not do), an explicit deny
/// wins, and the refusal is AWS's, without a resource.
#[tokio::test(flavor = "multi_thread")]
async fn operations_on_no_key_are_decided_by_identity_policies() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = server.client();
    let (key_id, _) = create_key(&root, "listed").await;
    root.create_alias()
        .alias_name("alias/listed")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let admin = iam(&endpoint, &Keys::dev());
    let actions = ["kms:ListKeys", "kms:ListAliases", "kms:GenerateRandom"];
    for action in actions {
        assert_eq!(
            account_action(&root, action).await,
            Ok(()),
            "the root may {action}"
        );
    }

    let nora = user_with_key(&endpoint, "nora").await;
    let as_nora = kms(&endpoint, &nora);
    let nora_arn = format!("arn:aws:iam::{ACCOUNT}:user/nora");
    for action in actions {
        assert_eq!(
            account_action(&as_nora, action).await,
            Err((
                "AccessDeniedException".to_owned(),
                format!(
                    "User: {nora_arn} is not authorized to perform: {action} because no identity-based \
                     policy allows the {action} action"
                )
            )),
        );
    }
    // A statement on key ARNs does not cover an action whose resource is `*`.
    let on_keys = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:ListKeys","kms:ListAliases","kms:GenerateRandom"],"Resource":"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"}}]}}"#
    );
    admin
        .put_user_policy()
        .user_name("nora")
        .policy_name("on-keys")
        .policy_document(on_keys)
        .send()
        .await
        .expect("PutUserPolicy");
    for action in actions {
        let refused = account_action(&as_nora, action).await;
        assert!(
            matches!(&refused, Err((code, _)) if code == "AccessDeniedException"),
            "{action}: {refused:?}"
        );
    }
    admin
        .put_user_policy()
        .user_name("nora")
        .policy_name("listing")
        .policy_document(allow("kms:List*"))
        .send()
        .await
        .expect("PutUserPolicy");
    assert_eq!(account_action(&as_nora, "kms:ListKeys").await, Ok(()));
    assert_eq!(account_action(&as_nora, "kms:ListAliases").await, Ok(()));
    let listed = as_nora.list_keys().send().await.expect("ListKeys");
    assert!(
        listed
            .keys()
            .iter()
            .any(|key| key.key_id() == Some(key_id.as_str()))
    );
    // With a KeyId ListAliases still needs kms:ListAliases on `*`, not a permission on the key.
    let aliases = as_nora
        .list_aliases()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListAliases for one key");
    assert_eq!(
        aliases
            .aliases()
            .iter()
            .map(|a| a.alias_name().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["alias/listed"]
    );
    assert!(
        matches!(account_action(&as_nora, "kms:GenerateRandom").await, Err((code, _)) if code == "AccessDeniedException"),
        "kms:List* does not allow GenerateRandom"
    );
    admin
        .put_user_policy()
        .user_name("nora")
        .policy_name("random")
        .policy_document(allow("kms:GenerateRandom"))
        .send()
        .await
        .expect("PutUserPolicy");
    let random = as_nora
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateRandom");
    assert_eq!(random.plaintext().map(|p| p.as_ref().len()), Some(32));

    // An explicit deny wins over the allows.
    let deny_listing = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:ListAliases","Resource":"*"}]}"#;
    admin
        .put_user_policy()
        .user_name("nora")
        .policy_name("no-aliases")
        .policy_document(deny_listing)
        .send()
        .await
        .expect("PutUserPolicy");
    assert_eq!(
        account_action(&as_nora, "kms:ListAliases").await,
        Err((
            "AccessDeniedException".to_owned(),
            format!(
                "User: {nora_arn} is not authorized to perform: kms:ListAliases with an explicit deny in an \
                 identity-based policy"
            )
        )),
    );
    assert_eq!(account_action(&as_nora, "kms:ListKeys").await, Ok(()));

    // A role session is decided the same way, by the role's policies.
    let role = admin
        .create_role()
        .role_name("lister")
        .assume_role_policy_document(trust_account())
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().map(|r| r.arn().to_owned()).expect("a role");
    let session = assume(&endpoint, &Keys::dev(), &role_arn, "inventory").await;
    let as_session = kms(&endpoint, &session);
    let refused = account_action(&as_session, "kms:ListKeys").await;
    assert_eq!(
        refused,
        Err((
            "AccessDeniedException".to_owned(),
            format!(
                "User: arn:aws:sts::{ACCOUNT}:assumed-role/lister/inventory is not authorized to perform: \
                 kms:ListKeys because no identity-based policy allows the kms:ListKeys action"
            )
        ))
    );
    admin
        .put_role_policy()
        .role_name("lister")
        .policy_name("list-keys")
        .policy_document(allow("kms:ListKeys"))
        .send()
        .await
        .expect("PutRolePolicy");
    assert_eq!(account_action(&as_session, "kms:ListKeys").await, Ok(()));
    assert!(
        account_action(&as_session, "kms:GenerateRandom")
            .await
            .is_err()
    );
}

/// `PolicyArns`: managed policies passed to AssumeRole narrow the session together with the inline
/// session policy; an unknown policy is refused as AWS refuses it.
#[tokio::test(flavor = "multi_thread")]
async fn assume_role_with_managed_session_policies_through_the_sdk() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let (key_id, _) = create_key(&server.client(), "for managed session policies").await;
    let ciphertext = encrypt(&server.client(), &key_id, b"session", &[]).await;
    let admin = iam(&endpoint, &Keys::dev());
    admin
        .create_role()
        .role_name("crypto")
        .assume_role_policy_document(trust_account())
        .send()
        .await
        .expect("CreateRole");
    admin
        .put_role_policy()
        .role_name("crypto")
        .policy_name("kms")
        .policy_document(allow("kms:*"))
        .send()
        .await
        .expect("PutRolePolicy");
    let created = admin
        .create_policy()
        .policy_name("encrypt-only")
        .policy_document(allow("kms:Encrypt"))
        .send()
        .await
        .expect("CreatePolicy");
    let policy_arn = created
        .policy()
        .and_then(|policy| policy.arn())
        .expect("a policy ARN")
        .to_owned();
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/crypto");
    let descriptor = |arn: &str| {
        aws_sdk_sts::types::PolicyDescriptorType::builder()
            .arn(arn)
            .build()
    };

    let assumed = sts(&endpoint, &Keys::dev())
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("managed")
        .policy_arns(descriptor(&policy_arn))
        .send()
        .await
        .expect("AssumeRole with PolicyArns");
    let credentials = assumed.credentials().expect("credentials");
    let session = Keys {
        access_key_id: credentials.access_key_id().to_owned(),
        secret: credentials.secret_access_key().to_owned(),
        token: Some(credentials.session_token().to_owned()),
    };
    let as_session = kms(&endpoint, &session);
    assert_eq!(try_encrypt(&as_session, &key_id).await, Ok(()));
    let refused = failure(
        as_session
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);

    // With an inline session policy too, either one may allow.
    let assumed = sts(&endpoint, &Keys::dev())
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("both")
        .policy_arns(descriptor(&policy_arn))
        .policy(allow("kms:Decrypt"))
        .send()
        .await
        .expect("AssumeRole with Policy and PolicyArns");
    let credentials = assumed.credentials().expect("credentials");
    let both = kms(
        &endpoint,
        &Keys {
            access_key_id: credentials.access_key_id().to_owned(),
            secret: credentials.secret_access_key().to_owned(),
            token: Some(credentials.session_token().to_owned()),
        },
    );
    assert_eq!(try_encrypt(&both, &key_id).await, Ok(()));
    let decrypted = both
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await
        .expect("Decrypt through the inline session policy");
    assert_eq!(
        decrypted.plaintext().map(|p| p.as_ref()),
        Some(&b"session"[..])
    );
    assert_eq!(
        failure(both.schedule_key_deletion().key_id(&key_id).send().await).code,
        "AccessDeniedException"
    );

    let missing = format!("arn:aws:iam::{ACCOUNT}:policy/missing");
    let refused = failure(
        sts(&endpoint, &Keys::dev())
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("missing")
            .policy_arns(descriptor(&missing))
            .send()
            .await,
    );
    assert_eq!(refused.code, "MalformedPolicyDocument");
    assert_eq!(
        refused.message,
        format!("Policy {missing} does not exist or is not attachable.")
    );
    let mut too_many = sts(&endpoint, &Keys::dev())
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("many");
    for _ in 0..11 {
        too_many = too_many.policy_arns(descriptor(&policy_arn));
    }
    assert_eq!(failure(too_many.send().await).code, "ValidationError");
}

/// Sets user `name`'s inline policy `policy_name` as the default root.
async fn put_user_policy(endpoint: &str, name: &str, policy_name: &str, document: &str) {
    iam(endpoint, &Keys::dev())
        .put_user_policy()
        .user_name(name)
        .policy_name(policy_name)
        .policy_document(document)
        .send()
        .await
        .expect("PutUserPolicy");
}

/// `kms:ResourceAliases` (IAM policies only) holds the aliases of the key a request acts on, and follows
/// CreateAlias, DeleteAlias and UpdateAlias at once; after a restart the keys load their aliases from
/// storage. A key policy cannot use it.
#[tokio::test(flavor = "multi_thread")]
async fn resource_aliases_follow_alias_changes_through_identity_policies() {
    let dir = TempDir::new("resource-aliases");
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let endpoint = server.endpoint();
    let root = server.client();
    let (first, _) = create_key(&root, "first").await;
    let (second, _) = create_key(&root, "second").await;
    let finance = user_with_key(&endpoint, "finance").await;
    let only_finance_keys = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*",
        "Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/finance-*"}}}]}"#;
    put_user_policy(&endpoint, "finance", "finance-keys", only_finance_keys).await;
    let as_finance = kms(&endpoint, &finance);
    let denied = Err("AccessDeniedException".to_owned());

    assert_eq!(
        try_encrypt(&as_finance, &first).await,
        denied,
        "a key without aliases"
    );
    let create_alias = |name: &'static str, target: String| {
        let root = root.clone();
        async move {
            root.create_alias()
                .alias_name(name)
                .target_key_id(target)
                .send()
                .await
                .expect("CreateAlias");
        }
    };
    create_alias("alias/payroll", first.clone()).await;
    assert_eq!(
        try_encrypt(&as_finance, &first).await,
        denied,
        "a key whose only alias does not match"
    );
    create_alias("alias/finance-key", first.clone()).await;
    assert_eq!(try_encrypt(&as_finance, &first).await, Ok(()));
    assert_eq!(try_encrypt(&as_finance, "alias/finance-key").await, Ok(()));
    assert_eq!(try_encrypt(&as_finance, &second).await, denied);

    root.delete_alias()
        .alias_name("alias/finance-key")
        .send()
        .await
        .expect("DeleteAlias");
    assert_eq!(
        try_encrypt(&as_finance, &first).await,
        denied,
        "the alias is deleted"
    );

    create_alias("alias/finance-key", first.clone()).await;
    assert_eq!(try_encrypt(&as_finance, &first).await, Ok(()));
    root.update_alias()
        .alias_name("alias/finance-key")
        .target_key_id(&second)
        .send()
        .await
        .expect("UpdateAlias");
    assert_eq!(
        try_encrypt(&as_finance, &second).await,
        Ok(()),
        "the alias moved here"
    );
    assert_eq!(
        try_encrypt(&as_finance, &first).await,
        denied,
        "the alias moved away"
    );

    // After a restart, keys load their aliases from storage.
    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let endpoint = server.endpoint();
    let as_finance = kms(&endpoint, &finance);
    assert_eq!(try_encrypt(&as_finance, &second).await, Ok(()));
    assert_eq!(try_encrypt(&as_finance, &first).await, denied);

    // kms:ResourceAliases is for IAM policies only: a key policy naming the user with it allows nothing.
    iam(&endpoint, &Keys::dev())
        .delete_user_policy()
        .user_name("finance")
        .policy_name("finance-keys")
        .send()
        .await
        .expect("DeleteUserPolicy");
    let user_arn = format!("arn:aws:iam::{ACCOUNT}:user/finance");
    let key_policy = |condition: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}},
            {{"Sid":"Finance","Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"kms:Encrypt","Resource":"*"{condition}}}]}}"#
        )
    };
    let root = server.client();
    root.put_key_policy()
        .key_id(&second)
        .policy(key_policy(
            r#","Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/finance-*"}}"#,
        ))
        .send()
        .await
        .expect("PutKeyPolicy");
    assert_eq!(try_encrypt(&as_finance, &second).await, denied);
    // The same statement without the condition allows, so the condition is what refuses.
    root.put_key_policy()
        .key_id(&second)
        .policy(key_policy(""))
        .send()
        .await
        .expect("PutKeyPolicy");
    assert_eq!(try_encrypt(&as_finance, &second).await, Ok(()));
    server.stop().await;
}

/// Tags on CreateKey and ReplicateKey also need kms:TagResource from the caller's IAM policies, with the
/// tags as `aws:RequestTag/*` and `aws:TagKeys`; account roots need nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn tags_on_create_key_and_replicate_key_need_tag_resource() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let tagger = user_with_key(&endpoint, "tagger").await;
    let as_tagger = kms(&endpoint, &tagger);
    put_user_policy(
        &endpoint,
        "tagger",
        "keys",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:CreateKey","kms:PutKeyPolicy","kms:ReplicateKey"],"Resource":"*"}]}"#,
    )
    .await;
    let tag = |key: &str, value: &str| {
        aws_sdk_kms::types::Tag::builder()
            .tag_key(key)
            .tag_value(value)
            .build()
            .expect("a tag")
    };
    let create = |tags: Vec<aws_sdk_kms::types::Tag>, multi_region: bool| {
        as_tagger
            .create_key()
            .multi_region(multi_region)
            .set_tags(Some(tags))
            .send()
    };
    let key_id = create(Vec::new(), true)
        .await
        .expect("CreateKey without tags")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let refused = failure(create(vec![tag("team", "finance")], false).await);
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains("kms:TagResource")
            && refused
                .message
                .contains("because no identity-based policy allows the kms:TagResource action"),
        "{}",
        refused.message
    );
    // The account root tags as it creates.
    server
        .client()
        .create_key()
        .tags(tag("team", "ops"))
        .send()
        .await
        .expect("the root creates a tagged key");

    put_user_policy(
        &endpoint,
        "tagger",
        "tags",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:TagResource","Resource":"*",
            "Condition":{"StringEquals":{"aws:RequestTag/team":"finance"},
                         "ForAllValues:StringEquals":{"aws:TagKeys":["team","cost-center"]}}}]}"#,
    )
    .await;
    let created = create(
        vec![tag("team", "finance"), tag("cost-center", "42")],
        false,
    )
    .await
    .expect("CreateKey with tags the policy allows");
    let tagged = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let tags = server
        .client()
        .list_resource_tags()
        .key_id(&tagged)
        .send()
        .await
        .expect("ListResourceTags");
    assert_eq!(tags.tags().len(), 2);
    for (what, tags) in [
        ("another team", vec![tag("team", "ops")]),
        (
            "a tag key the policy does not list",
            vec![tag("team", "finance"), tag("owner", "me")],
        ),
    ] {
        let refused = failure(create(tags, false).await);
        assert_eq!(refused.code, "AccessDeniedException", "{what}");
        assert!(
            refused.message.contains("kms:TagResource"),
            "{what}: {}",
            refused.message
        );
    }

    // ReplicateKey: the replica's tags pass the same test.
    let replicate = |region: &'static str, tags: Vec<aws_sdk_kms::types::Tag>| {
        as_tagger
            .replicate_key()
            .key_id(&key_id)
            .replica_region(region)
            .set_tags(Some(tags))
            .send()
    };
    let refused = failure(replicate("eu-west-1", vec![tag("team", "ops")]).await);
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    assert!(
        refused.message.contains("kms:TagResource")
            && refused.message.contains("arn:aws:kms:eu-west-1:"),
        "{}",
        refused.message
    );
    let replica = replicate("eu-west-1", vec![tag("team", "finance")])
        .await
        .expect("ReplicateKey with tags the policy allows");
    assert_eq!(replica.replica_tags().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_resource_offers_the_tags_it_adds_as_request_tags() {
    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let key_id = server
        .client()
        .create_key()
        .send()
        .await
        .expect("the root creates a key")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let tagger = user_with_key(&endpoint, "finance-tagger").await;
    put_user_policy(
        &endpoint,
        "finance-tagger",
        "finance-tags",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:TagResource","Resource":"*",
            "Condition":{"StringEquals":{"aws:RequestTag/team":"finance"},
                         "ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}}]}"#,
    )
    .await;
    let as_tagger = kms(&endpoint, &tagger);
    let tag = |key: &str, value: &str| {
        aws_sdk_kms::types::Tag::builder()
            .tag_key(key)
            .tag_value(value)
            .build()
            .expect("a tag")
    };
    as_tagger
        .tag_resource()
        .key_id(&key_id)
        .tags(tag("team", "finance"))
        .send()
        .await
        .expect("the policy allows team=finance");
    let refused = failure(
        as_tagger
            .tag_resource()
            .key_id(&key_id)
            .tags(tag("team", "marketing"))
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
    let refused = failure(
        as_tagger
            .tag_resource()
            .key_id(&key_id)
            .tags(tag("team", "finance"))
            .tags(tag("cost-centre", "7"))
            .send()
            .await,
    );
    assert_eq!(refused.code, "AccessDeniedException", "{}", refused.message);
}
