//! Stacks end to end: the `strongroom stack` command against the real `strongroom` binary, whose declared
//! HSMs are SoftHSM tokens private to each test (initialized with `softhsm2-util`, so the test process
//! itself never loads SoftHSM). Secrets are in Secrets Manager, written with the AWS SDK; the results
//! are checked with the AWS SDKs for KMS and CloudHSM.
//!
//! The kill test uses `STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS`, a test-only pause before every step,
//! so that it can kill the server between two known steps.
//!
//! The calls steps make are checked in the audit trail with CloudTrail's LookupEvents, signed by hand as
//! the SDKs sign (the tests have no CloudTrail SDK).
//!
//! The test that adds and removes HSMs of a live cluster looks into the tokens, so it runs in the
//! SoftHSM child-process scheme of the `cloudhsm` tests instead, with the server in that process and
//! `strongroom stack` as a subprocess.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionStateType, KeyState, OriginType};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, PKCS_RSA_SHA256,
};
use serde_json::Value;
use strongroom_keystore_pkcs11::{Cluster as Pkcs11Cluster, ClusterOptions, Pin};

use crate::cks_restart::{Hsms, Server};
use crate::cloudhsm::{SoftHsm, with_softhsm};
use crate::harness::{ProcessServer, Signer, TempDir, TestServer, create_key};

const SO_PIN: &str = "officer-Passw0rd";
const KMSUSER_PASSWORD: &str = "kmsuser-Passw0rd";
const PATIENCE: Duration = Duration::from_secs(120);
/// How the audit trail names the stack engine in `userIdentity.invokedBy`.
const STACKS_PRINCIPAL: &str = "stacks.strongroom.internal";

/// The example file of docs/STACKS.md, as written there.
fn example_file() -> String {
    let doc = include_str!("../../../../docs/STACKS.md");
    let start = doc
        .find("<!-- example: payments.yaml -->\n```yaml\n")
        .expect("docs/STACKS.md has the example")
        + "<!-- example: payments.yaml -->\n```yaml\n".len();
    let end = start + doc[start..].find("```").expect("the example ends");
    doc[start..end].to_owned()
}

/// What the stack tests ask of a server beyond the shared SoftHSM harness ([`Server`]).
trait StackServer {
    fn secrets(&self) -> aws_sdk_secretsmanager::Client;
    fn stack(&self, args: &[&str]) -> (bool, String);
    fn describe(&self, name: &str) -> Value;
    async fn put_secret(&self, name: &str, value: &str);
    fn wait_done(&self, name: &str) -> Value;
}

impl StackServer for Server {
    fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "stacks"))
            .endpoint_url(self.endpoint())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    fn stack(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec!["stack"];
        full.extend_from_slice(args);
        self.command(&full)
    }

    /// The stack's status, read with `strongroom stack status`, which must succeed.
    fn describe(&self, name: &str) -> Value {
        let (ok, _) = self.stack(&["status", name]);
        assert!(ok, "stack {name} exists");
        raw_describe(&self.endpoint(), name)
    }

    async fn put_secret(&self, name: &str, value: &str) {
        let client = self.secrets();
        match client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(_) => {}
            Err(_) => {
                client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send()
                    .await
                    .expect("PutSecretValue");
            }
        }
    }

    /// Waits until the stack's runner is done, returning its final record.
    fn wait_done(&self, name: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stack = raw_describe(&self.endpoint(), name);
            let status = stack["Status"].as_str().unwrap_or_default().to_owned();
            if !status.ends_with("_IN_PROGRESS") {
                return stack;
            }
            assert!(
                Instant::now() < deadline,
                "stack {name} never finished: {stack:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The stack's status, read with `strongroom stack status`.
fn raw_describe(endpoint: &str, name: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["stack", "status", name, "--endpoint", endpoint])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run strongroom stack status");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    parse_status(&text)
}

/// Reads `strongroom stack status` back into the fields the tests look at.
pub(crate) fn parse_status(text: &str) -> Value {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let status = first.rsplit(": ").next().unwrap_or_default();
    let mut resources = Vec::new();
    let mut steps: Vec<Value> = Vec::new();
    let mut reason = Value::Null;
    let mut section = "";
    for line in lines {
        if let Some(rest) = line.strip_prefix("reason: ") {
            reason = Value::String(rest.to_owned());
            continue;
        }
        match line {
            "resources:" | "steps:" => {
                section = line;
                continue;
            }
            _ => {}
        }
        if section == "resources:" && line.starts_with("  ") {
            let fields: Vec<&str> = line.trim().split('\t').collect();
            resources.push(serde_json::json!({
                "LogicalId": fields[0],
                "PhysicalId": fields.get(1).copied().unwrap_or_default(),
                "Retained": fields.get(2).map(|r| r.trim_matches(|c| c == '(' || c == ')')),
            }));
        } else if section == "steps:" && line.starts_with("  [") {
            let state_end = line.find(']').expect("a state");
            let state = &line[3..state_end];
            let rest: Vec<&str> = line[state_end + 2..]
                .split('\t')
                .next()
                .unwrap_or_default()
                .splitn(2, ' ')
                .collect();
            steps.push(serde_json::json!({
                "State": state,
                "Action": rest[0],
                "LogicalId": rest.get(1).copied().unwrap_or_default(),
                "Log": [],
            }));
        } else if section == "steps:"
            && line.starts_with("      ")
            && let Some(last) = steps.last_mut()
        {
            last["Log"]
                .as_array_mut()
                .expect("a log")
                .push(Value::String(line.trim().to_owned()));
        }
    }
    serde_json::json!({ "Status": status, "Reason": reason, "Resources": resources, "Steps": steps, "Text": text })
}

fn logical_ids(stack: &Value, field: &str) -> Vec<String> {
    stack[field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| item["LogicalId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) fn steps_in(stack: &Value, state: &str) -> Vec<String> {
    stack["Steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|step| step["State"] == state)
        .map(|step| step["LogicalId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The operator's CA: a self-signed RSA root, with its key as PKCS#8 PEM.
struct Ca {
    certificate: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("an RSA key");
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Ca {
            certificate: pem("CERTIFICATE", cert.der()),
            key: pem("PRIVATE KEY", &key.serialize_der()),
        }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Puts the example's four secrets (prefix `payments/hsm/`) into Secrets Manager.
async fn put_secrets(server: &Server, ca: &Ca, admin_password: &str) {
    server
        .put_secret("payments/hsm/admin-password", admin_password)
        .await;
    server
        .put_secret("payments/hsm/ca-certificate", &ca.certificate)
        .await;
    server.put_secret("payments/hsm/ca-key", &ca.key).await;
    server
        .put_secret("payments/hsm/kmsuser-password", KMSUSER_PASSWORD)
        .await;
}

fn write(hsms: &Hsms, name: &str, text: &str) -> String {
    let path = hsms.path(name);
    std::fs::write(&path, text).expect("write a stack file");
    path.display().to_string()
}

/// The whole audit trail of the dev account, read with CloudTrail's LookupEvents page by page as its
/// root (`test`), at the server at `address`: the records, and the raw text of every answer.
async fn audit_trail(address: std::net::SocketAddr) -> (Vec<Value>, String) {
    let mut records = Vec::new();
    let mut raw = String::new();
    let mut next_token: Option<String> = None;
    loop {
        let body = match &next_token {
            Some(token) => serde_json::json!({ "MaxResults": 50, "NextToken": token }),
            None => serde_json::json!({ "MaxResults": 50 }),
        }
        .to_string();
        let text = lookup_events(address, &body).await;
        raw.push_str(&text);
        let page: Value = serde_json::from_str(&text).expect("LookupEvents answers JSON");
        assert!(page["Events"].is_array(), "LookupEvents failed: {page}");
        for entry in page["Events"].as_array().into_iter().flatten() {
            let record = entry["CloudTrailEvent"].as_str().expect("a record");
            records.push(serde_json::from_str::<Value>(record).expect("a JSON record"));
        }
        match page["NextToken"].as_str() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return (records, raw),
        }
    }
}

/// Sends one LookupEvents request, signed with SigV4 for `cloudtrail` as the dev root, and returns the
/// response body.
async fn lookup_events(address: std::net::SocketAddr, body: &str) -> String {
    let mut request = http::Request::post("/")
        .header(http::header::HOST, address.to_string())
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        )
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request");
    let identity: Identity = Credentials::new("test", "test", None, None, "stacks").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("cloudtrail")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().expect("ASCII");
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect();
    let signable = SignableRequest::new(
        "POST",
        format!("http://{address}/"),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("a signable request");
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .expect("signing succeeds")
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("an answer");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// The records of calls the stack engine made for the owner: invoked by it, from `source`.
fn stack_calls<'r>(records: &'r [Value], source: &str) -> Vec<&'r Value> {
    records
        .iter()
        .filter(|r| {
            r["userIdentity"]["invokedBy"] == STACKS_PRINCIPAL && r["eventSource"] == source
        })
        .collect()
}

/// The one record of `operation` among `calls` for which `matches` holds; fails if there is none.
fn call_of<'r>(
    calls: &[&'r Value],
    operation: &str,
    matches: impl Fn(&Value) -> bool,
) -> &'r Value {
    calls
        .iter()
        .copied()
        .find(|r| r["eventName"] == operation && matches(r))
        .unwrap_or_else(|| panic!("no {operation} by the stack engine among {calls:#?}"))
}

const TWO_ZONES: &[(&str, &str)] = &[
    ("hsm-a", "us-east-1a"),
    ("hsm-b", "us-east-1b"),
    ("hsm-c", "us-east-1b"),
];
const STACK: &str = "payments-1-keys";

async fn clusters(server: &Server) -> Vec<aws_sdk_cloudhsmv2::types::Cluster> {
    server
        .cloudhsm()
        .describe_clusters()
        .send()
        .await
        .expect("DescribeClusters")
        .clusters()
        .to_vec()
}

async fn key_stores(server: &Server) -> Vec<aws_sdk_kms::types::CustomKeyStoresListEntry> {
    server
        .kms()
        .describe_custom_key_stores()
        .send()
        .await
        .expect("DescribeCustomKeyStores")
        .custom_key_stores()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stack_is_applied_changed_and_deleted_through_the_cli() {
    let hsms = Hsms::with_tokens("stack-full", TWO_ZONES);
    let server = hsms.serve_with(&[]);
    let ca = Ca::new("Payments HSM CA");
    put_secrets(&server, &ca, SO_PIN).await;
    let file = write(&hsms, "payments.yaml", &example_file());

    let (ok, output) = server.stack(&["validate", &file]);
    assert!(ok, "{output}");
    assert!(
        output.contains("valid: stack payments-1-keys")
            && output.contains("key-store payments-1-hsm"),
        "{output}"
    );
    let (ok, output) = server.stack(&["plan", &file]);
    assert!(ok, "{output}");
    assert!(
        output.contains("create cluster (hsm2m.medium, zones us-east-1a, us-east-1b)"),
        "{output}"
    );
    assert!(
        output.contains("create alias/payments/1/orders -> key/orders"),
        "{output}"
    );

    let (ok, output) = server.stack(&["apply", &file, "--wait"]);
    assert!(ok, "{output}");
    assert!(
        output.contains("[done] create key-store-connection") && output.contains("APPLY_COMPLETE"),
        "{output}"
    );
    for secret in [SO_PIN, KMSUSER_PASSWORD, "BEGIN PRIVATE KEY"] {
        assert!(
            !output.contains(secret),
            "the apply output shows a secret: {output}"
        );
    }

    // A connected key store with a key inside the HSMs, reachable by its qualified alias.
    let stores = key_stores(&server).await;
    assert_eq!(stores.len(), 1);
    assert_eq!(stores[0].custom_key_store_name(), Some("payments-1-hsm"));
    assert_eq!(
        stores[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    let kms = server.kms();
    let orders = kms
        .describe_key()
        .key_id("alias/payments/1/orders")
        .send()
        .await
        .expect("the alias names the key")
        .key_metadata()
        .cloned()
        .expect("metadata");
    assert_eq!(orders.origin(), Some(&OriginType::AwsCloudhsm));
    assert_eq!(
        orders.custom_key_store_id(),
        stores[0].custom_key_store_id()
    );
    assert_eq!(orders.description(), Some("Encrypts order records"));
    let sealed = kms
        .encrypt()
        .key_id("alias/payments/1/orders")
        .plaintext(Blob::new(b"order 42".to_vec()))
        .send()
        .await
        .expect("Encrypt in the HSMs");
    let opened = kms
        .decrypt()
        .ciphertext_blob(sealed.ciphertext_blob().expect("a ciphertext").clone())
        .send()
        .await
        .expect("Decrypt in the HSMs");
    assert_eq!(
        opened.plaintext().expect("a plaintext").as_ref(),
        b"order 42"
    );
    let grants = kms
        .list_grants()
        .key_id(orders.key_id())
        .send()
        .await
        .expect("ListGrants");
    assert_eq!(grants.grants().len(), 1);
    assert_eq!(grants.grants()[0].name(), Some("orders-service"));
    let signing = kms
        .describe_key()
        .key_id("alias/payments/1/receipts-signing")
        .send()
        .await
        .expect("the signing key")
        .key_metadata()
        .cloned()
        .expect("metadata");
    assert_eq!(signing.origin(), Some(&OriginType::AwsKms));

    // The status shows every step done, with logs, and no secret.
    let stack = server.describe(STACK);
    assert_eq!(stack["Status"], "APPLY_COMPLETE");
    assert_eq!(steps_in(&stack, "done").len(), 13, "{stack:#}");
    let text = stack["Text"].as_str().unwrap_or_default();
    assert!(text.contains("created custom key store"), "{text}");
    for secret in [SO_PIN, KMSUSER_PASSWORD, "BEGIN"] {
        assert!(!text.contains(secret), "the status shows a secret: {text}");
    }

    // An unchanged file changes nothing.
    let (ok, output) = server.stack(&["plan", &file]);
    assert!(ok && output.contains("no changes"), "{output}");
    let (ok, output) = server.stack(&["apply", &file]);
    assert!(ok && output.contains("no changes"), "{output}");

    // Supported changes: a description, a tag, the key store's name, and kmsuser's password.
    server
        .put_secret("payments/hsm/kmsuser-password", "kmsuser-Passw0rd-2")
        .await;
    let changed = example_file()
        .replace(
            "Encrypts order records",
            "Encrypts order records and refunds",
        )
        .replace("      data: orders", "      data: orders\n      tier: gold")
        .replace("  name: hsm ", "  name: vault ")
        .replace("  generation: 1 ", "  generation: 2 ");
    let changed_file = write(&hsms, "changed.yaml", &changed);
    let (ok, output) = server.stack(&["plan", &changed_file]);
    assert!(ok, "{output}");
    assert!(
        output.contains("update key/orders: description, tags"),
        "{output}"
    );
    assert!(output.contains("update key-store: name"), "{output}");
    assert!(
        output.contains("update crypto-user: generation"),
        "{output}"
    );
    let (ok, output) = server.stack(&["apply", &changed_file, "--wait"]);
    assert!(ok, "{output}");
    assert!(
        output.contains("changed the password of kmsuser"),
        "{output}"
    );
    let stores = key_stores(&server).await;
    assert_eq!(stores[0].custom_key_store_name(), Some("payments-1-vault"));
    assert_eq!(
        stores[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    let orders_now = kms
        .describe_key()
        .key_id(orders.key_id())
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        orders_now.key_metadata().and_then(|m| m.description()),
        Some("Encrypts order records and refunds")
    );
    kms.encrypt()
        .key_id("alias/payments/1/orders")
        .plaintext(Blob::new(b"still works".to_vec()))
        .send()
        .await
        .expect("Encrypt after the password rotation");

    // Unsupported changes are refused before anything is touched.
    let refused = changed
        .replace("key_spec: ECC_NIST_P256", "key_spec: ECC_NIST_P384")
        .replace("    us-east-1b: 1", "    us-east-1c: 1");
    let refused_file = write(&hsms, "refused.yaml", &refused);
    let (ok, output) = server.stack(&["plan", &refused_file]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("refused: key/receipts-signing: key_spec cannot change"),
        "{output}"
    );
    assert!(
        output.contains("refused: cluster: zones cannot change"),
        "{output}"
    );
    let (ok, output) = server.stack(&["apply", &refused_file]);
    assert!(
        !ok && output.contains("UnsupportedStackChangeException"),
        "{output}"
    );
    assert_eq!(server.describe(STACK)["Status"], "APPLY_COMPLETE");

    // Deletion: keys scheduled for deletion, the key store only disconnected (it still has a key), the
    // cluster kept.
    let (ok, output) = server.stack(&["delete", STACK, "--wait"]);
    assert!(ok, "{output}");
    let stack = server.describe(STACK);
    assert_eq!(stack["Status"], "DELETE_COMPLETE");
    let reason = stack["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("disconnected, not deleted: it still has KMS keys"),
        "{reason}"
    );
    assert!(
        reason.contains("does not say destroy_on_delete") || reason.contains("still refers to it"),
        "{reason}"
    );
    let kept = logical_ids(&stack, "Resources");
    assert!(
        kept.contains(&"key-store".to_owned()) && kept.contains(&"cluster".to_owned()),
        "{kept:?}"
    );
    assert!(
        !kept
            .iter()
            .any(|id| id.starts_with("key/") || id.starts_with("alias/")),
        "{kept:?}"
    );
    let stores = key_stores(&server).await;
    assert_eq!(stores.len(), 1);
    assert_eq!(
        stores[0].connection_state(),
        Some(&ConnectionStateType::Disconnected)
    );
    for key_id in [orders.key_id(), signing.key_id()] {
        let state = kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .expect("DescribeKey");
        assert_eq!(
            state.key_metadata().and_then(|m| m.key_state()),
            Some(&KeyState::PendingDeletion)
        );
    }
    let aliases = kms.list_aliases().send().await.expect("ListAliases");
    assert!(
        !aliases.aliases().iter().any(|a| a
            .alias_name()
            .unwrap_or_default()
            .starts_with("alias/payments/")),
        "the stack's aliases are deleted"
    );
    let remaining = clusters(&server).await;
    assert_eq!(remaining.len(), 1, "the cluster stays");
    assert_eq!(remaining[0].hsms().len(), 2);
    let (ok, output) = server.stack(&["list"]);
    assert!(
        ok && output.contains("payments-1-keys\tDELETE_COMPLETE"),
        "{output}"
    );

    // Each change the steps made is in the audit trail as the owner's call, invoked by the stack engine;
    // no secret the stack read is anywhere in it.
    let (records, raw) = audit_trail(server.address).await;
    let hsm_calls = stack_calls(&records, "cloudhsm.amazonaws.com");
    let kms_calls = stack_calls(&records, "kms.amazonaws.com");
    let cluster_id = remaining[0].cluster_id().expect("an id");
    let cluster = call_of(&hsm_calls, "CreateCluster", |_| true);
    assert_eq!(cluster["userIdentity"]["accountId"], "111122223333");
    assert_eq!(cluster["sourceIPAddress"], STACKS_PRINCIPAL);
    assert_eq!(cluster["requestParameters"]["hsmType"], "hsm2m.medium");
    assert_eq!(
        cluster["requestParameters"]["subnetIds"],
        serde_json::json!(["subnet-us-east-1a", "subnet-us-east-1b"])
    );
    assert!(cluster["errorCode"].is_null(), "{cluster:#}");
    for operation in [
        "CreateHsm",
        "InitializeCluster",
        "ActivateCluster",
        "CreateCryptoUser",
        "ChangeCryptoUserPassword",
    ] {
        call_of(&hsm_calls, operation, |r| {
            r["requestParameters"]["clusterId"] == cluster_id && r["errorCode"].is_null()
        });
    }
    let store_id = stores[0].custom_key_store_id().expect("an id");
    let store = call_of(&kms_calls, "CreateCustomKeyStore", |_| true);
    assert_eq!(store["userIdentity"]["accountId"], "111122223333");
    assert_eq!(
        store["requestParameters"],
        serde_json::json!({"customKeyStoreName": "payments-1-hsm", "cloudHsmClusterId": cluster_id}),
        "{store:#}"
    );
    let created = call_of(&kms_calls, "CreateKey", |r| {
        r["requestParameters"]["customKeyStoreId"] == store_id
    });
    assert_eq!(
        created["resources"][0]["ARN"],
        orders.arn().expect("an ARN")
    );
    assert_eq!(created["requestParameters"]["origin"], "AWS_CLOUDHSM");
    call_of(&kms_calls, "CreateAlias", |r| {
        r["requestParameters"]["aliasName"] == "alias/payments/1/orders"
            && r["resources"][0]["ARN"] == orders.arn().expect("an ARN")
    });
    call_of(&kms_calls, "UpdateCustomKeyStore", |r| {
        r["requestParameters"]["newCustomKeyStoreName"] == "payments-1-vault"
    });
    for operation in [
        "ConnectCustomKeyStore",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
    ] {
        call_of(&kms_calls, operation, |r| {
            r["requestParameters"]["customKeyStoreId"] == store_id
        });
    }
    let ca_key_lines = ca.key.lines().filter(|line| line.len() >= 32);
    for secret in [
        SO_PIN,
        KMSUSER_PASSWORD,
        "kmsuser-Passw0rd-2",
        "PRIVATE KEY",
    ]
    .into_iter()
    .chain(ca_key_lines)
    {
        assert!(
            !raw.contains(secret),
            "the audit trail holds a secret the stack used ({secret})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_a_stack_makes_are_audited_as_its_owners_invoked_by_the_stack_engine() {
    let dir = TempDir::new("stack-audit");
    let server = ProcessServer::start_dev(&dir.path().join("data"));
    let endpoint = format!("http://{}", server.address());
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .arg("stack")
            .args(args)
            .args(["--endpoint", &endpoint])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .expect("run strongroom stack");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    // An alias the second apply will want is already taken, by a key the stack does not own.
    let kms = server.client();
    let (_, other_key) = create_key(&kms, "not the stack's").await;
    kms.create_alias()
        .alias_name("alias/audited/1/taken")
        .target_key_id(&other_key)
        .send()
        .await
        .expect("CreateAlias");
    let tag_value = "tag-value-marker-81c4";
    let file = format!(
        "name: audited\nparameters:\n  system: audited\nkeys:\n  data:\n    description: audited data\n    \
         tags: {{team: {tag_value}}}\n    aliases: [data]\n    grants:\n      - name: app\n        \
         grantee: arn:aws:iam::111122223333:role/app\n        operations: [Encrypt, Decrypt]\n"
    );
    let output = run(&["apply", &write("audited.yaml", &file), "--wait"]);
    assert!(output.contains("APPLY_COMPLETE"), "{output}");
    let key = kms
        .describe_key()
        .key_id("alias/audited/1/data")
        .send()
        .await
        .expect("the stack's key")
        .key_metadata()
        .cloned()
        .expect("metadata");
    let key_arn = key.arn().expect("an ARN");
    let taken = file.replace("aliases: [data]", "aliases: [data, taken]");
    let output = run(&["apply", &write("taken.yaml", &taken), "--wait"]);
    assert!(
        output.contains("already exists and points at another key"),
        "{output}"
    );
    let output = run(&["delete", "audited", "--wait"]);
    assert!(output.contains("DELETE_COMPLETE"), "{output}");

    let (records, raw) = audit_trail(server.address()).await;
    assert!(
        stack_calls(&records, "cloudhsm.amazonaws.com").is_empty(),
        "a stack without a cluster makes no CloudHSM call"
    );
    let calls = stack_calls(&records, "kms.amazonaws.com");
    let creates: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "CreateKey")
        .collect();
    assert_eq!(creates.len(), 2, "the test's own key and the stack's");
    assert!(
        creates
            .iter()
            .any(|r| r["userIdentity"]["invokedBy"].is_null()),
        "the test's own CreateKey is not the stack engine's"
    );
    let created = call_of(&calls, "CreateKey", |_| true);
    assert_eq!(created["userIdentity"]["accountId"], "111122223333");
    assert_eq!(created["recipientAccountId"], "111122223333");
    assert_eq!(created["sourceIPAddress"], STACKS_PRINCIPAL);
    assert_eq!(created["readOnly"], false);
    assert_eq!(created["resources"][0]["ARN"], key_arn);
    assert_eq!(
        created["requestParameters"],
        serde_json::json!({
            "description": "audited data",
            "keySpec": "SYMMETRIC_DEFAULT",
            "keyUsage": "ENCRYPT_DECRYPT",
            "tagKeys": ["team", "strongroom:stack"],
        }),
        "{created:#}"
    );
    assert!(created["errorCode"].is_null(), "{created:#}");
    let alias = call_of(&calls, "CreateAlias", |r| r["errorCode"].is_null());
    assert_eq!(
        alias["requestParameters"],
        serde_json::json!({"aliasName": "alias/audited/1/data", "targetKeyId": key.key_id()})
    );
    assert_eq!(alias["resources"][0]["ARN"], key_arn);
    let refused = call_of(&calls, "CreateAlias", |r| {
        r["requestParameters"]["aliasName"] == "alias/audited/1/taken"
    });
    assert_eq!(
        refused["errorCode"], "AlreadyExistsException",
        "{refused:#}"
    );
    assert!(
        refused["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("alias/audited/1/taken")),
        "{refused:#}"
    );
    let grant = call_of(&calls, "CreateGrant", |_| true);
    assert_eq!(
        grant["requestParameters"]["operations"],
        serde_json::json!(["Decrypt", "Encrypt"]),
        "the operations the stack asked for, in its (sorted) order"
    );
    assert_eq!(
        grant["requestParameters"]["granteePrincipal"],
        "arn:aws:iam::111122223333:role/app"
    );
    for operation in ["RevokeGrant", "DeleteAlias", "ScheduleKeyDeletion"] {
        let record = call_of(&calls, operation, |r| r["resources"][0]["ARN"] == key_arn);
        assert!(record["errorCode"].is_null(), "{record:#}");
    }
    let scheduled = call_of(&calls, "ScheduleKeyDeletion", |_| true);
    assert_eq!(scheduled["requestParameters"]["pendingWindowInDays"], 7);
    assert!(
        !raw.contains(tag_value),
        "tag values are not recorded, only their keys"
    );
}

/// Runs `file` with `on_failure`, waits, and returns the stack's record.
fn apply_and_wait(server: &Server, file: &str, on_failure: &str) -> Value {
    let (ok, output) = server.stack(&["apply", file, "--on-failure", on_failure]);
    assert!(ok, "the apply is accepted: {output}");
    server.wait_done(STACK)
}

/// A stack file with the cluster, the crypto user and the key store of the example, and no keys.
fn store_only_file() -> String {
    let example = example_file();
    let keys = example.find("\nkeys:").expect("the example has keys");
    example[..keys + 1].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_password_rolls_back_or_is_preserved_and_a_fixed_secret_completes() {
    let hsms = Hsms::with_tokens("stack-admin", TWO_ZONES);
    let server = hsms.serve_with(&[]);
    let ca = Ca::new("CA");
    put_secrets(&server, &ca, "not-the-SO-pin").await;
    let file = write(&hsms, "stack.yaml", &store_only_file());

    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "failed"), ["cluster-activation"]);
    assert!(
        stack["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not the Security Officer PIN"),
        "{stack:#}"
    );
    assert_eq!(
        steps_in(&stack, "rolled back"),
        [
            "cluster",
            "hsm/us-east-1a/1",
            "hsm/us-east-1b/1",
            "cluster-certificate"
        ]
    );
    assert!(logical_ids(&stack, "Resources").is_empty(), "{stack:#}");
    assert!(
        clusters(&server).await.is_empty(),
        "rollback leaves no cluster behind"
    );

    let stack = apply_and_wait(&server, &file, "preserve");
    assert_eq!(stack["Status"], "APPLY_FAILED", "{stack:#}");
    assert_eq!(
        logical_ids(&stack, "Resources"),
        [
            "cluster",
            "hsm/us-east-1a/1",
            "hsm/us-east-1b/1",
            "cluster-certificate"
        ]
    );
    assert_eq!(clusters(&server).await.len(), 1);

    server
        .put_secret("payments/hsm/admin-password", SO_PIN)
        .await;
    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    assert_eq!(
        logical_ids(&stack, "Steps"),
        [
            "cluster-activation",
            "crypto-user",
            "key-store",
            "key-store-connection"
        ],
        "the re-apply continues from where the stack stopped"
    );
    assert_eq!(
        key_stores(&server).await[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );

    // The refused activation is in the audit trail with CloudHSM's error, and the rollback's deletions
    // too; the wrong password is not.
    let (records, raw) = audit_trail(server.address).await;
    let hsm_calls = stack_calls(&records, "cloudhsm.amazonaws.com");
    let refused = call_of(&hsm_calls, "ActivateCluster", |r| !r["errorCode"].is_null());
    assert!(
        refused["errorCode"]
            .as_str()
            .is_some_and(|code| code.starts_with("CloudHsm"))
            && refused["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("not the Security Officer PIN")),
        "{refused:#}"
    );
    call_of(&hsm_calls, "ActivateCluster", |r| r["errorCode"].is_null());
    for operation in ["DeleteHsm", "DeleteCluster"] {
        call_of(&hsm_calls, operation, |r| r["errorCode"].is_null());
    }
    for secret in ["not-the-SO-pin", SO_PIN] {
        assert!(!raw.contains(secret), "the audit trail holds {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hsm_missing_from_a_zone_rolls_back_or_is_preserved_and_a_freed_hsm_completes() {
    let hsms = Hsms::with_tokens("stack-zone", TWO_ZONES);
    let server = hsms.serve_with(&[]);
    put_secrets(&server, &Ca::new("CA"), SO_PIN).await;
    let file = write(
        &hsms,
        "stack.yaml",
        &store_only_file().replace("    us-east-1b: 1", "    us-east-1b: 2"),
    );
    // Another cluster holds one of the two HSMs of us-east-1b.
    let cloudhsm = server.cloudhsm();
    let squatter = cloudhsm
        .create_cluster()
        .hsm_type("hsm2m.medium")
        .subnet_ids("subnet-us-east-1b")
        .send()
        .await
        .expect("CreateCluster")
        .cluster()
        .and_then(|c| c.cluster_id())
        .expect("an id")
        .to_owned();
    let squatting = cloudhsm
        .create_hsm()
        .cluster_id(&squatter)
        .availability_zone("us-east-1b")
        .send()
        .await
        .expect("CreateHsm")
        .hsm()
        .map(|h| h.hsm_id())
        .expect("an HSM id")
        .to_owned();

    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "failed"), ["hsm/us-east-1b/2"]);
    assert!(
        stack["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("No free HSM in us-east-1b"),
        "{stack:#}"
    );
    assert!(logical_ids(&stack, "Resources").is_empty());
    let left: Vec<String> = clusters(&server)
        .await
        .iter()
        .filter_map(|c| c.cluster_id().map(str::to_owned))
        .collect();
    assert_eq!(
        left,
        std::slice::from_ref(&squatter),
        "only the other cluster remains"
    );

    let stack = apply_and_wait(&server, &file, "preserve");
    assert_eq!(stack["Status"], "APPLY_FAILED");
    assert_eq!(
        logical_ids(&stack, "Resources"),
        ["cluster", "hsm/us-east-1a/1", "hsm/us-east-1b/1"]
    );

    cloudhsm
        .delete_hsm()
        .cluster_id(&squatter)
        .hsm_id(&squatting)
        .send()
        .await
        .expect("DeleteHsm");
    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    assert_eq!(logical_ids(&stack, "Steps")[0], "hsm/us-east-1b/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_does_not_match_rolls_back_or_is_preserved_and_the_right_key_completes() {
    let hsms = Hsms::with_tokens("stack-ca", TWO_ZONES);
    let server = hsms.serve_with(&[]);
    let ca = Ca::new("CA");
    let other = Ca::new("Another CA");
    put_secrets(&server, &ca, SO_PIN).await;
    server.put_secret("payments/hsm/ca-key", &other.key).await;
    let file = write(&hsms, "stack.yaml", &store_only_file());

    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "failed"), ["cluster-certificate"]);
    assert!(
        stack["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not belong to the CA certificate"),
        "{stack:#}"
    );
    assert!(logical_ids(&stack, "Resources").is_empty());
    assert!(clusters(&server).await.is_empty());

    let stack = apply_and_wait(&server, &file, "preserve");
    assert_eq!(stack["Status"], "APPLY_FAILED");
    assert_eq!(
        logical_ids(&stack, "Resources"),
        ["cluster", "hsm/us-east-1a/1", "hsm/us-east-1b/1"]
    );

    server.put_secret("payments/hsm/ca-key", &ca.key).await;
    let stack = apply_and_wait(&server, &file, "rollback");
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    assert_eq!(logical_ids(&stack, "Steps")[0], "cluster-certificate");
}

/// Waits until the step `logical_id` of the stack is running.
fn wait_running(server: &Server, logical_id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stack = raw_describe(&server.endpoint(), STACK);
        if steps_in(&stack, "running")
            .iter()
            .any(|id| id == logical_id)
        {
            return;
        }
        assert!(
            stack["Status"]
                .as_str()
                .unwrap_or_default()
                .ends_with("_IN_PROGRESS"),
            "the stack finished before {logical_id} ran: {stack:#}"
        );
        assert!(
            Instant::now() < deadline,
            "{logical_id} never ran: {stack:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kmsuser_already_present_rolls_back_or_is_preserved_and_adopting_it_completes() {
    let hsms = Hsms::with_tokens("stack-kmsuser", TWO_ZONES);
    // A pause before every step, so that kmsuser can be created behind the stack's back.
    let server = hsms.serve_with(&[("STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS", "2000")]);
    put_secrets(&server, &Ca::new("CA"), SO_PIN).await;
    std::fs::write(hsms.path("kmsuser.pw"), KMSUSER_PASSWORD).expect("a password file");
    let file = write(&hsms, "stack.yaml", &store_only_file());
    let create_user_behind_its_back = || {
        wait_running(&server, "crypto-user");
        let stack = raw_describe(&server.endpoint(), STACK);
        let cluster = stack["Resources"][0]["PhysicalId"]
            .as_str()
            .expect("the cluster")
            .to_owned();
        let so_pin = hsms.path("so.pin").display().to_string();
        let password = hsms.path("kmsuser.pw").display().to_string();
        let (ok, output) = server.command(&[
            "hsm",
            "create-user",
            "--cluster",
            &cluster,
            "--password-file",
            &password,
            "--admin-password-file",
            &so_pin,
        ]);
        assert!(ok, "{output}");
    };

    let (ok, output) = server.stack(&["apply", &file]);
    assert!(ok, "{output}");
    create_user_behind_its_back();
    let stack = server.wait_done(STACK);
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "failed"), ["crypto-user"]);
    assert!(
        stack["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("already present"),
        "{stack:#}"
    );
    assert!(logical_ids(&stack, "Resources").is_empty());
    assert!(
        clusters(&server).await.is_empty(),
        "rollback deleted the cluster the apply created"
    );

    let (ok, output) = server.stack(&["apply", &file, "--on-failure", "preserve"]);
    assert!(ok, "{output}");
    create_user_behind_its_back();
    let stack = server.wait_done(STACK);
    assert_eq!(stack["Status"], "APPLY_FAILED", "{stack:#}");
    assert_eq!(
        logical_ids(&stack, "Resources"),
        [
            "cluster",
            "hsm/us-east-1a/1",
            "hsm/us-east-1b/1",
            "cluster-certificate",
            "cluster-activation"
        ]
    );

    let adopting = store_only_file().replace("  generation: 1 ", "  adopt: true\n  generation: 1 ");
    let file = write(&hsms, "adopt.yaml", &adopting);
    let (ok, output) = server.stack(&["apply", &file, "--wait"]);
    assert!(ok, "{output}");
    assert!(output.contains("took over crypto user kmsuser"), "{output}");
    assert_eq!(
        key_stores(&server).await[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_apply_resumes_and_finishes_after_restart() {
    let hsms = Hsms::with_tokens("stack-kill", TWO_ZONES);
    let delay = [("STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS", "1000")];
    let server = hsms.serve_with(&delay);
    put_secrets(&server, &Ca::new("CA"), SO_PIN).await;
    let file = write(&hsms, "payments.yaml", &example_file());
    let (ok, output) = server.stack(&["apply", &file]);
    assert!(ok, "{output}");
    wait_running(&server, "cluster-activation");
    server.kill9();

    let server = hsms.serve_with(&delay);
    let stack = server.wait_done(STACK);
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    let text = stack["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains("resumed after the server restarted"),
        "{text}"
    );
    assert_eq!(steps_in(&stack, "done").len(), 13, "{stack:#}");
    assert_eq!(
        clusters(&server).await.len(),
        1,
        "the resumed run made no second cluster"
    );
    assert_eq!(
        key_stores(&server).await[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    server
        .kms()
        .encrypt()
        .key_id("alias/payments/1/orders")
        .plaintext(Blob::new(b"after the crash".to_vec()))
        .send()
        .await
        .expect("Encrypt with the stack's key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_an_hsm_joins_resumes_and_the_key_store_ends_connected() {
    let text = zone_change_killed_and_resumed("stack-kill-scale", 1, 2).await;
    assert!(text.contains("brought HSM"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_an_hsm_leaves_resumes_and_the_key_store_ends_connected() {
    zone_change_killed_and_resumed("stack-kill-shrink", 2, 1).await;
}

/// Applies the example stack with `before` HSMs in us-east-1b, then a file with `after` there, and
/// kills the server twice: once so that the next server connects the key store again while the step
/// that adds or removes hsm/us-east-1b/2 runs, and once while that step waits to run. Checks that the
/// resumed stack completes with every HSM active, the store connected and an earlier ciphertext
/// decrypting, and that applying again changes nothing; returns the stack's text.
async fn zone_change_killed_and_resumed(tokens: &str, before: u32, after: u32) -> String {
    let zone_b = |count: u32| {
        example_file().replace("    us-east-1b: 1", &format!("    us-east-1b: {count}"))
    };
    let hsms = Hsms::with_tokens(tokens, TWO_ZONES);
    let server = hsms.serve_with(&[]);
    put_secrets(&server, &Ca::new("CA"), SO_PIN).await;
    let first = write(&hsms, "first.yaml", &zone_b(before));
    let (ok, output) = server.stack(&["apply", &first, "--wait"]);
    assert!(ok && output.contains("APPLY_COMPLETE"), "{output}");
    let sealed = server
        .kms()
        .encrypt()
        .key_id("alias/payments/1/orders")
        .plaintext(Blob::new(b"before the restart".to_vec()))
        .send()
        .await
        .expect("Encrypt with the stack's key")
        .ciphertext_blob()
        .expect("a ciphertext")
        .clone();
    server.kill9();

    let delay = [("STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS", "1000")];
    let server = hsms.serve_with(&delay);
    // The store's key works once this server has connected the store again, kmsuser's password
    // rotation included. A kill in the middle of that rotation has left a SoftHSM token unreadable
    // by the next process (its files half written), which a real HSM would not do; the kill below
    // is meant for the stack step, not for SoftHSM.
    server
        .kms()
        .encrypt()
        .key_id("alias/payments/1/orders")
        .plaintext(Blob::new(b"after the first restart".to_vec()))
        .send()
        .await
        .expect("Encrypt once the store is connected again");
    let changed = write(&hsms, "changed.yaml", &zone_b(after));
    let (ok, output) = server.stack(&["apply", &changed]);
    assert!(ok, "{output}");
    wait_running(&server, "hsm/us-east-1b/2");
    server.kill9();

    let server = hsms.serve_with(&[]);
    let stack = server.wait_done(STACK);
    assert_eq!(
        stack["Status"],
        "APPLY_COMPLETE",
        "{stack:#}\n{}",
        server.logged("").join("\n")
    );
    let text = stack["Text"].as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("resumed after the server restarted"),
        "{text}"
    );
    let cluster = &clusters(&server).await[0];
    assert_eq!(cluster.hsms().len(), 1 + after as usize, "{cluster:?}");
    assert!(
        cluster
            .hsms()
            .iter()
            .all(|hsm| hsm.state() == Some(&aws_sdk_cloudhsmv2::types::HsmState::Active)),
        "{cluster:?}"
    );
    let store = &key_stores(&server).await[0];
    assert_eq!(
        store.connection_state(),
        Some(&ConnectionStateType::Connected),
        "{store:?}\n{}",
        server.logged("").join("\n")
    );
    let opened = server
        .kms()
        .decrypt()
        .ciphertext_blob(sealed)
        .send()
        .await
        .expect("Decrypt after the HSM change");
    assert_eq!(
        opened.plaintext().expect("a plaintext").as_ref(),
        b"before the restart"
    );
    let (ok, output) = server.stack(&["apply", &changed]);
    assert!(ok && output.contains("no changes"), "{output}");
    text
}

#[test]
fn validate_and_plan_name_the_line_and_field_of_a_bad_file() {
    let dir = TempDir::new("stack-errors");
    let server = ProcessServer::start_dev(&dir.path().join("data"));
    let endpoint = format!("http://{}", server.address());
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .arg("stack")
            .args(args)
            .args(["--endpoint", &endpoint])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .expect("run strongroom stack");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let cases = [
        (
            "unknown field",
            "name: s\nkeys:\n  a:\n    descripton: x\n",
            "keys.a: unknown field `descripton`",
        ),
        (
            "bad spec",
            "name: s\nkeys:\n  a:\n    key_spec: AES_512\n",
            "line 4: keys.a.key_spec: 'AES_512' is not a KMS key spec",
        ),
        (
            "zero HSMs",
            "cluster:\n  hsms:\n    us-east-1a: 0\n  certificate_authority:\n    certificate: {secret: c}\n    private_key: {secret: k}\n  admin_password: {env: X}\n",
            "line 2: cluster.hsms: a cluster needs at least one HSM",
        ),
        (
            "no source",
            "cluster:\n  hsms: {us-east-1a: 1}\n  certificate_authority:\n    certificate: {secret: c, file: f}\n    private_key: {secret: k}\n  admin_password: {env: X}\n",
            "exactly one of {secret: NAME}",
        ),
        (
            "unknown parameter",
            "name: ${nope}\n",
            "line 1: ${nope} names no parameter",
        ),
        ("bad YAML", "keys: [\n", "not valid YAML"),
    ];
    for (what, text, expected) in cases {
        let path = file(&format!("{}.yaml", what.replace(' ', "-")), text);
        for command in ["validate", "plan"] {
            let (ok, output) = run(&[command, &path]);
            assert!(!ok, "{command} accepts the {what} file: {output}");
            assert!(
                output.contains("ValidationException") && output.contains(expected),
                "{command}, {what}: {output}"
            );
        }
    }

    // Keys in the default key store need no HSM: a small stack to apply, change, refuse and delete.
    let small = "name: small\nkeys:\n  data:\n    description: first\n    aliases: [data]\n";
    let path = file("small.yaml", small);
    let (ok, output) = run(&["apply", &path, "--wait"]);
    assert!(ok && output.contains("APPLY_COMPLETE"), "{output}");
    let (ok, output) = run(&["apply", &path]);
    assert!(ok && output.contains("no changes"), "{output}");
    let moved = file(
        "moved.yaml",
        &small
            .replace("aliases: [data]", "aliases: [data2]")
            .replace("first", "second"),
    );
    let (ok, output) = run(&["plan", &moved]);
    assert!(ok, "{output}");
    assert!(
        output.contains("delete alias/strongroom/1/data -> key/data")
            && output.contains("update key/data: description")
            && output.contains("create alias/strongroom/1/data2 -> key/data"),
        "{output}"
    );
    let refused = file(
        "refused.yaml",
        &small.replace(
            "    description: first\n",
            "    description: first\n    key_spec: RSA_2048\n",
        ),
    );
    let (ok, output) = run(&["plan", &refused]);
    assert!(
        !ok && output.contains("refused: key/data: key_spec cannot change"),
        "{output}"
    );
    let (ok, output) = run(&["apply", &moved, "--wait"]);
    assert!(ok && output.contains("APPLY_COMPLETE"), "{output}");
    let (ok, output) = run(&["delete", "small", "--wait"]);
    assert!(
        ok && output.contains("DELETE_COMPLETE") && output.contains("scheduled key"),
        "{output}"
    );
    let (ok, output) = run(&["status", "nothing-here"]);
    assert!(!ok && output.contains("StackNotFoundException"), "{output}");
}

/// A stack over a cluster with `zone_a` HSMs in us-east-1a and `zone_b` in us-east-1b, a key store and
/// one key in it; its secrets are files of the test's SoftHSM directory.
fn scaling_file(softhsm: &SoftHsm, zone_a: u32, zone_b: u32) -> String {
    format!(
        "name: scaling\nparameters:\n  system: scaling\ncluster:\n  hsms:\n    us-east-1a: {zone_a}\n    us-east-1b: {zone_b}\n  \
         certificate_authority:\n    certificate: {{file: {}}}\n    private_key: {{file: {}}}\n  \
         admin_password: {{file: {}}}\ncrypto_user:\n  password: {{file: {}}}\nkey_store:\n  name: hsm\nkeys:\n  \
         orders:\n    description: Encrypts order records\n    aliases: [orders]\n",
        softhsm.file("ca.crt"),
        softhsm.file("ca.key"),
        softhsm.file("so.pin"),
        softhsm.file("kmsuser.pw"),
    )
}

/// Runs `strongroom stack <args>` against the in-process `server` as the dev root; whether it succeeded,
/// and its output.
async fn stack_command(server: &TestServer, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("stack")
        .args(args)
        .arg("--endpoint")
        .arg(server.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("STRONGROOM_LOG", "warn")
        .output()
        .await
        .expect("run strongroom stack");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes the scaling stack with these HSM counts, applies it (`--on-failure on_failure`), waits, and
/// returns the stack's status.
async fn apply_scaling(
    server: &TestServer,
    softhsm: &SoftHsm,
    counts: (u32, u32),
    on_failure: &str,
) -> Value {
    let path = softhsm.file(&format!("scaling-{}-{}.yaml", counts.0, counts.1));
    std::fs::write(&path, scaling_file(softhsm, counts.0, counts.1)).expect("write the stack file");
    let (ok, output) = stack_command(
        server,
        &["apply", &path, "--on-failure", on_failure, "--wait"],
    )
    .await;
    let (_, status) = stack_command(server, &["status", "scaling"]).await;
    let stack = parse_status(&status);
    assert!(
        ok == (stack["Status"] == "APPLY_COMPLETE"),
        "{output}\n{status}"
    );
    stack
}

/// The cluster's HSMs: id, zone and state.
async fn cluster_hsms(server: &TestServer, cluster: &str) -> Vec<(String, String, String)> {
    let described = crate::cloudhsm::describe(&crate::cloudhsm::client(server), cluster).await;
    described
        .hsms()
        .iter()
        .map(|hsm| {
            (
                hsm.hsm_id().to_owned(),
                hsm.availability_zone().unwrap_or_default().to_owned(),
                hsm.state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Every CloudTrail record LookupEvents finds in us-east-1 for `key` = `value`, page by page, as the dev
/// root.
async fn lookup_all(server: &TestServer, key: &str, value: &str) -> Vec<Value> {
    let signer = Signer {
        service: "cloudtrail",
        ..Signer::dev()
    };
    let mut records = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut body = serde_json::json!({
            "LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}],
            "MaxResults": 50,
        });
        if let Some(token) = &next_token {
            body["NextToken"] = Value::String(token.clone());
        }
        let (status, page) = server
            .raw_as(
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
                &body.to_string(),
                Some(signer),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for entry in page["Events"].as_array().into_iter().flatten() {
            let record = entry["CloudTrailEvent"].as_str().expect("a record");
            records.push(serde_json::from_str::<Value>(record).expect("a JSON record"));
        }
        match page["NextToken"].as_str() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return records,
        }
    }
}

#[test]
fn a_stack_adds_and_removes_hsms_of_its_live_cluster_and_its_keys_stay_usable() {
    with_softhsm(
        "stacks::a_stack_adds_and_removes_hsms_of_its_live_cluster_and_its_keys_stay_usable",
        scaling,
    );
}

/// The tokens are hsm-a and hsm-c in us-east-1a, hsm-b and hsm-d in us-east-1b; each joins the cluster
/// at most once, since a released token keeps its objects (docs/STACKS.md).
async fn scaling(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let ca = Ca::new("Scaling CA");
    std::fs::write(softhsm.file("ca.crt"), &ca.certificate).expect("the CA certificate");
    std::fs::write(softhsm.file("ca.key"), &ca.key).expect("the CA key");
    let kms = server.client();
    let cloudhsm = crate::cloudhsm::client(&server);

    let stack = apply_scaling(&server, &softhsm, (1, 1), "rollback").await;
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    let cluster = stack["Resources"][0]["PhysicalId"]
        .as_str()
        .expect("the cluster")
        .to_owned();
    let store = key_stores_of(&kms).await;
    let store_id = store.custom_key_store_id().expect("an id").to_owned();
    let alias = "alias/scaling/1/orders";
    let key_arn = kms
        .describe_key()
        .key_id(alias)
        .send()
        .await
        .expect("the stack's key")
        .key_metadata()
        .and_then(|m| m.arn().map(str::to_owned))
        .expect("an ARN");
    let sealed = kms
        .encrypt()
        .key_id(alias)
        .plaintext(Blob::new(b"sealed before the change".to_vec()))
        .send()
        .await
        .expect("Encrypt in the HSMs")
        .ciphertext_blob()
        .expect("a ciphertext")
        .clone();
    let opens = |label: &'static str| {
        let (kms, sealed) = (kms.clone(), sealed.clone());
        async move {
            let opened = kms
                .decrypt()
                .ciphertext_blob(sealed)
                .send()
                .await
                .unwrap_or_else(|e| panic!("Decrypt {label}: {e:?}"));
            assert_eq!(
                opened.plaintext().expect("a plaintext").as_ref(),
                b"sealed before the change",
                "{label}"
            );
            kms.encrypt()
                .key_id("alias/scaling/1/orders")
                .plaintext(Blob::new(label.as_bytes().to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("Encrypt {label}: {e:?}"));
        }
    };

    // The plan shows the new HSM before anything happens.
    let path = softhsm.file("scaling-2-1.yaml");
    std::fs::write(&path, scaling_file(&softhsm, 2, 1)).expect("write the stack file");
    let (ok, output) = stack_command(&server, &["plan", &path]).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("create hsm/us-east-1a/2 (us-east-1a: 1 -> 2 HSMs"),
        "{output}"
    );
    assert_eq!(
        cluster_hsms(&server, &cluster).await.len(),
        2,
        "plan changed nothing"
    );

    // Three HSMs in us-east-1a cannot be had (there are two tokens there): with `preserve`, the one
    // that could be added stays, a member of the cluster. The HSM joins through the connected key
    // store, which stays connected: requests made all through the apply succeed.
    let during = KeepEncrypting::start(&kms, "while an HSM joined");
    let stack = apply_scaling(&server, &softhsm, (3, 1), "preserve").await;
    during.stop().await;
    assert_eq!(stack["Status"], "APPLY_FAILED", "{stack:#}");
    assert_eq!(steps_in(&stack, "done"), ["hsm/us-east-1a/2"]);
    assert_eq!(steps_in(&stack, "failed"), ["hsm/us-east-1a/3"]);
    let text = stack["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains("No free HSM in us-east-1a")
            && text.contains("through the connected key store")
            && !text.contains("disconnected key store"),
        "{text}"
    );
    let hsms = cluster_hsms(&server, &cluster).await;
    assert_eq!(hsms.len(), 3, "{hsms:?}");
    assert!(
        hsms.iter().all(|(_, _, state)| state == "ACTIVE"),
        "{hsms:?}"
    );
    assert_eq!(
        key_stores_of(&kms).await.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    opens("after an HSM joined").await;

    // The file that fits completes without redoing the step.
    let stack = apply_scaling(&server, &softhsm, (2, 1), "rollback").await;
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    assert!(steps_in(&stack, "done").is_empty(), "{stack:#}");
    let (ok, output) = stack_command(&server, &["apply", &path]).await;
    assert!(ok && output.contains("no changes"), "{output}");

    // The new HSM (hsm-c, the other token of us-east-1a) holds the key made before it joined. Looking
    // needs kmsuser's password, which the connection rotated: disconnect, reset it as the admin, look,
    // and give the store the password again.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store_id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore");
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "change-password",
                "--cluster",
                &cluster,
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(ok, "change-password: {output}");
    {
        let newcomer: Vec<_> = softhsm
            .hsms
            .iter()
            .filter(|hsm| hsm.id == "hsm-c")
            .cloned()
            .collect();
        let tokens = Pkcs11Cluster::open(&newcomer, &softhsm.modules, ClusterOptions::default())
            .expect("open the new HSM's token");
        tokens
            .login_crypto_user(&Pin::new(KMSUSER_PASSWORD.to_owned()))
            .expect("kmsuser was copied to the new HSM");
        let found = tokens.key_exists(&key_arn);
        assert!(
            found.len() == 1 && matches!(found[0].result, Ok(true)),
            "the new HSM holds the backing key labelled {key_arn}: {found:?}"
        );
        tokens.logout_crypto_user();
    }
    kms.update_custom_key_store()
        .custom_key_store_id(&store_id)
        .key_store_password(KMSUSER_PASSWORD)
        .send()
        .await
        .expect("UpdateCustomKeyStore");
    crate::custom_key_stores::connect_store(&kms, &store_id).await;
    opens("after looking into the new HSM").await;

    // A failed scale-up rolls back: the HSM added by the apply is deleted again.
    let stack = apply_scaling(&server, &softhsm, (2, 3), "rollback").await;
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "rolled back"), ["hsm/us-east-1b/2"]);
    assert_eq!(steps_in(&stack, "failed"), ["hsm/us-east-1b/3"]);
    let hsms = cluster_hsms(&server, &cluster).await;
    assert_eq!(hsms.len(), 3, "{hsms:?}");
    assert_eq!(
        key_stores_of(&kms).await.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    opens("after a rolled-back scale-up").await;

    // Scaling down deletes the HSM, and the key store goes on without it.
    let path = softhsm.file("scaling-1-1.yaml");
    std::fs::write(&path, scaling_file(&softhsm, 1, 1)).expect("write the stack file");
    let (ok, output) = stack_command(&server, &["plan", &path]).await;
    assert!(
        ok && output.contains("delete hsm/us-east-1a/2 (us-east-1a: 2 -> 1 HSMs"),
        "{output}"
    );
    let during = KeepEncrypting::start(&kms, "while an HSM left");
    let stack = apply_scaling(&server, &softhsm, (1, 1), "rollback").await;
    during.stop().await;
    assert_eq!(stack["Status"], "APPLY_COMPLETE", "{stack:#}");
    assert_eq!(steps_in(&stack, "done"), ["hsm/us-east-1a/2"]);
    let text = stack["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains("deleted HSM") && !text.contains("disconnected key store"),
        "{text}"
    );
    let hsms = cluster_hsms(&server, &cluster).await;
    let mut zones: Vec<&str> = hsms.iter().map(|(_, zone, _)| zone.as_str()).collect();
    zones.sort_unstable();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"], "{hsms:?}");
    assert_eq!(
        key_stores_of(&kms).await.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    opens("after an HSM left").await;

    // Below what the key store needs is refused before anything is touched.
    let path = softhsm.file("scaling-1-0.yaml");
    std::fs::write(&path, scaling_file(&softhsm, 1, 0)).expect("write the stack file");
    for command in ["plan", "apply"] {
        let (ok, output) = stack_command(&server, &[command, &path]).await;
        assert!(!ok, "{command}: {output}");
        assert!(
            output.contains("needs at least two active HSMs in different availability zones"),
            "{command}: {output}"
        );
    }
    let (_, status) = stack_command(&server, &["status", "scaling"]).await;
    assert_eq!(parse_status(&status)["Status"], "APPLY_COMPLETE");
    assert_eq!(cluster_hsms(&server, &cluster).await.len(), 2);

    // The audit trail: the CloudHSM records, the stack engine's and the API's, carry the cluster (and
    // HSM) as resources, found by the cluster's ARN, as KMS records are found by the key's ARN.
    cloudhsm
        .list_tags()
        .resource_id(&cluster)
        .send()
        .await
        .expect("ListTags");
    let cluster_arn = format!("arn:aws:cloudhsm:us-east-1:111122223333:cluster/{cluster}");
    let records = lookup_all(&server, "ResourceName", &cluster_arn).await;
    let by_stack = |operation: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| {
                r["eventName"] == operation && r["userIdentity"]["invokedBy"] == STACKS_PRINCIPAL
            })
            .collect()
    };
    for operation in [
        "CreateCluster",
        "CreateHsm",
        "InitializeCluster",
        "ActivateCluster",
        "CreateCryptoUser",
        "DeleteHsm",
    ] {
        assert!(
            !by_stack(operation).is_empty(),
            "no {operation} by the stack engine found by {cluster_arn}"
        );
    }
    // Every HSM joined through the connected key store as CreateHsm made it: the stack never had to
    // reset kmsuser's password (which the store rotated) to bring one in.
    for operation in ["ChangeCryptoUserPassword", "SynchronizeHsms"] {
        assert!(
            by_stack(operation).is_empty(),
            "{operation}: {:#?}",
            by_stack(operation)
        );
    }
    let created = by_stack("CreateHsm")
        .into_iter()
        .find(|r| r["errorCode"].is_null())
        .expect("a CreateHsm that succeeded");
    assert_eq!(created["resources"][0]["type"], "AWS::CloudHSM::Cluster");
    assert_eq!(created["resources"][0]["ARN"], cluster_arn);
    assert_eq!(created["resources"][0]["accountId"], "111122223333");
    assert_eq!(created["resources"][1]["type"], "AWS::CloudHSM::Hsm");
    let hsm_arn = created["resources"][1]["ARN"].as_str().expect("an HSM ARN");
    assert!(
        hsm_arn.starts_with("arn:aws:cloudhsm:us-east-1:111122223333:hsm/hsm-"),
        "{hsm_arn}"
    );
    let refused = by_stack("CreateHsm")
        .into_iter()
        .find(|r| !r["errorCode"].is_null())
        .expect("the CreateHsm that found no free HSM");
    assert_eq!(
        refused["resources"],
        serde_json::json!([{"ARN": cluster_arn, "accountId": "111122223333", "type": "AWS::CloudHSM::Cluster"}])
    );
    let listed = records
        .iter()
        .find(|r| r["eventName"] == "ListTags")
        .expect("the API's ListTags is found by the cluster's ARN");
    assert!(listed["userIdentity"]["invokedBy"].is_null(), "{listed:#}");
    assert_eq!(listed["resources"][0]["ARN"], cluster_arn);
    // A failed request names what it asked for; a create names what it made.
    let missing = "hsm-aaaaaaaaaaa";
    crate::harness::failure(
        cloudhsm
            .delete_hsm()
            .cluster_id(&cluster)
            .hsm_id(missing)
            .send()
            .await,
    );
    let made = crate::cloudhsm::create_cluster(&cloudhsm).await;
    let missing_arn = format!("arn:aws:cloudhsm:us-east-1:111122223333:hsm/{missing}");
    let records = lookup_all(&server, "ResourceName", &missing_arn).await;
    let [refused] = records.as_slice() else {
        panic!("one record names {missing_arn}: {records:#?}");
    };
    assert_eq!(refused["eventName"], "DeleteHsm");
    assert_eq!(refused["errorCode"], "CloudHsmResourceNotFoundException");
    assert_eq!(refused["resources"][0]["ARN"], cluster_arn);
    assert_eq!(refused["resources"][1]["type"], "AWS::CloudHSM::Hsm");
    let made_arn = format!("arn:aws:cloudhsm:us-east-1:111122223333:cluster/{made}");
    let records = lookup_all(&server, "ResourceName", &made_arn).await;
    assert!(
        records
            .iter()
            .any(|r| r["eventName"] == "CreateCluster" && r["errorCode"].is_null()),
        "{records:#?}"
    );
    let by_type = lookup_all(&server, "ResourceType", "AWS::CloudHSM::Hsm").await;
    assert!(
        by_type
            .iter()
            .any(|r| r["eventName"] == "DeleteHsm" && r["errorCode"].is_null()),
        "DeleteHsm is found by the HSM resource type"
    );
    assert!(
        lookup_all(&server, "ResourceName", &cluster)
            .await
            .is_empty(),
        "as for KMS keys, whose records are found by the key ARN and not the bare id, the bare cluster id \
         finds nothing"
    );
    assert!(
        lookup_all(&server, "ResourceName", &key_arn)
            .await
            .iter()
            .any(|r| r["eventName"] == "Encrypt"),
        "a KMS key's records are found by its ARN"
    );
    let key_id = key_arn.rsplit('/').next().expect("a key id");
    assert!(
        lookup_all(&server, "ResourceName", key_id).await.is_empty(),
        "and not by its bare id"
    );
}

/// The one custom key store of the account.
/// Encrypts with the scaling stack's key every 10 ms until stopped, to show that a change keeps the
/// key store serving: every request must succeed.
struct KeepEncrypting {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl KeepEncrypting {
    fn start(kms: &aws_sdk_kms::Client, during: &'static str) -> KeepEncrypting {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kms, stopped) = (kms.clone(), std::sync::Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut served = 0_u32;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                kms.encrypt()
                    .key_id("alias/scaling/1/orders")
                    .plaintext(Blob::new(during.as_bytes().to_vec()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("Encrypt {during}: {e:?}"));
                served += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            served
        });
        KeepEncrypting { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let served = self.task.await.expect("the requests made meanwhile");
        assert!(served > 0, "no request ran meanwhile");
    }
}

async fn key_stores_of(kms: &aws_sdk_kms::Client) -> aws_sdk_kms::types::CustomKeyStoresListEntry {
    let stores = kms
        .describe_custom_key_stores()
        .send()
        .await
        .expect("DescribeCustomKeyStores");
    let [store] = stores.custom_key_stores() else {
        panic!("one key store: {stores:?}");
    };
    store.clone()
}
