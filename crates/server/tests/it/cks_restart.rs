//! Custom key store connections survive a restart of the server by themselves: at start-up the server
//! connects again every store recorded CONNECTED or CONNECTING, in the background, without anyone
//! calling ConnectCustomKeyStore; DISCONNECTED and FAILED stores are left alone.
//!
//! These tests run the real `strongroom` binary, so that it can be stopped with SIGTERM and killed with
//! SIGKILL, on a SoftHSM private to each test (initialized with `softhsm2-util`, so the test process
//! itself never loads SoftHSM). The cluster is brought up with the CloudHSM SDK and `strongroom hsm`,
//! and the stores are driven with the KMS SDK. That a connection was made again at start-up, before
//! any request needed it, is checked in the audit trail: each resumed connection is a
//! `ConnectCustomKeyStore` service event, read with CloudTrail's LookupEvents.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionErrorCodeType, ConnectionStateType, OriginType};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use strongroom_storage::key_stores::KeyStoreStore;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_types::Namespace;

use crate::cloudhsm::{CustomerCa, KMSUSER_PASSWORD, create_cluster, create_hsm, describe};
use crate::custom_key_stores::{CONNECTION_PATIENCE, connection, create_store, settled_connection};
use crate::harness::{ACCOUNT, REGION, TempDir, decrypt, encrypt, failure, sdk_client};

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SO_PIN: &str = "officer-Passw0rd";
/// The declared HSMs: three tokens in two zones, as a custom key store needs.
const TOKENS: [(&str, &str); 3] = [
    ("hsm-a", "us-east-1a"),
    ("hsm-b", "us-east-1b"),
    ("hsm-c", "us-east-1a"),
];
/// What the server logs at start-up when it connects stores again.
const RESUMING: &str = "custom key stores to connect again after the restart";
/// How long a test watches a store that must not change before it believes it.
const QUIET: Duration = Duration::from_secs(3);

/// A private SoftHSM with declared tokens, a server configuration declaring them, and a data
/// directory.
pub(crate) struct Hsms {
    dir: TempDir,
}

impl Hsms {
    /// The three tokens of [`TOKENS`].
    pub(crate) fn new(label: &str) -> Hsms {
        Hsms::with_tokens(label, &TOKENS)
    }

    /// One token per `(label, availability zone)`.
    pub(crate) fn with_tokens(label: &str, tokens: &[(&str, &str)]) -> Hsms {
        assert!(
            Path::new(SOFTHSM).exists(),
            "SoftHSM is not installed: run `cargo xtask ci` or `apt-get install softhsm2`"
        );
        let dir = TempDir::new(label);
        let root = dir.path();
        std::fs::create_dir_all(root.join("tokens")).expect("token directory");
        std::fs::write(
            root.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                root.join("tokens").display()
            ),
        )
        .expect("SoftHSM configuration");
        std::fs::write(root.join("so.pin"), SO_PIN).expect("SO PIN file");
        std::fs::write(root.join("kmsuser.pw"), KMSUSER_PASSWORD).expect("password file");
        let mut config = format!("data_dir = \"{}\"\n", root.join("data").display());
        for (token, zone) in tokens {
            let status = Command::new("softhsm2-util")
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    token,
                    "--so-pin",
                    SO_PIN,
                    "--pin",
                    "unused-pin-1",
                ])
                .env("SOFTHSM2_CONF", root.join("softhsm2.conf"))
                .stdout(Stdio::null())
                .status()
                .expect("run softhsm2-util");
            assert!(status.success(), "softhsm2-util --init-token {token}");
            config.push_str(&format!(
                "\n[[hsm]]\nmodule = \"{SOFTHSM}\"\ntoken_label = \"{token}\"\navailability_zone = \"{zone}\"\nso_pin_file = \"{}\"\n",
                root.join("so.pin").display()
            ));
        }
        std::fs::write(root.join("strongroom.toml"), config).expect("server configuration");
        Hsms { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the server binary on this SoftHSM and data directory.
    pub(crate) fn serve(&self) -> Server {
        Server::start(self, &[])
    }

    /// Like [`Hsms::serve`], with more environment variables (the test-only pauses).
    pub(crate) fn serve_with(&self, env: &[(&str, &str)]) -> Server {
        Server::start(self, env)
    }

    /// Rewrites the connection state recorded for store `id` while no server runs, as a server that
    /// stopped at that point would have left it.
    async fn record_state(&self, id: &str, connection_state: &str) {
        let store = SqliteStore::open(&self.path("data").join(strongroom_server::DATABASE_FILE))
            .expect("open the database");
        let namespace = Namespace {
            account: ACCOUNT.parse().expect("an account"),
            region: REGION.parse().expect("a Region"),
        };
        let mut record = store
            .key_store(&namespace, id)
            .await
            .expect("read the store")
            .expect("the store exists");
        record.connection_state = connection_state.to_owned();
        record.connection_error = None;
        store.put_key_store(&record).await.expect("write the store");
    }
}

/// The `strongroom` binary serving on a SoftHSM, with what it wrote to standard error.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: std::net::SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(hsms: &Hsms, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--config"])
            .arg(hsms.path("strongroom.toml"))
            .env("SOFTHSM2_CONF", hsms.path("softhsm2.conf"))
            .env("STRONGROOM_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the strongroom binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = mpsc::channel::<String>();
        {
            let lines = lines.clone();
            // Keeps draining stderr, so that the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("strongroom listening on http://") {
                        let _ = sender.send(rest.trim().to_owned());
                    }
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let address = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its address")
            .parse()
            .expect("an address");
        Server {
            child,
            address,
            stderr: lines,
        }
    }

    pub(crate) fn kms(&self) -> aws_sdk_kms::Client {
        sdk_client(self.address, "test", "test", REGION)
    }

    pub(crate) fn cloudhsm(&self) -> aws_sdk_cloudhsmv2::Client {
        let config = aws_sdk_cloudhsmv2::Config::builder()
            .behavior_version(aws_sdk_cloudhsmv2::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudhsmv2::config::Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "cks-restart"))
            .endpoint_url(self.endpoint())
            .build();
        aws_sdk_cloudhsmv2::Client::from_conf(config)
    }

    /// The server's base URL.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Runs `strongroom <args> --endpoint <this server>` and returns whether it succeeded and its output.
    pub(crate) fn command(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(args)
            .arg("--endpoint")
            .arg(self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("STRONGROOM_LOG", "warn")
            .output()
            .expect("run strongroom");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Runs `strongroom hsm <args>` against this server and asserts that it succeeds.
    fn hsm(&self, args: &[&str]) {
        let mut full = vec!["hsm"];
        full.extend_from_slice(args);
        let (ok, output) = self.command(&full);
        assert!(ok, "strongroom hsm {args:?}: {output}");
    }

    /// The lines of standard error that mention `text`.
    pub(crate) fn logged(&self, text: &str) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }

    /// Kills the server with SIGKILL: no chance to log out, flush or record anything.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it to exit cleanly.
    pub(crate) fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + CONNECTION_PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                assert!(status.success(), "the server exits cleanly: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Brings up an active cluster of the three HSMs with kmsuser, creates a custom key store on it,
/// connects it, and creates a key in it; returns the store id and the key id.
pub(crate) async fn store_with_a_key(hsms: &Hsms, server: &Server) -> (String, String) {
    let client = server.cloudhsm();
    let cluster = create_cluster(&client).await;
    for (_, zone) in TOKENS {
        create_hsm(&client, &cluster, zone).await;
    }
    let csr = describe(&client, &cluster)
        .await
        .certificates()
        .and_then(|c| c.cluster_csr())
        .expect("a CSR")
        .to_owned();
    let ca = CustomerCa::new("customerCA");
    client
        .initialize_cluster()
        .cluster_id(&cluster)
        .signed_cert(ca.sign(&csr))
        .trust_anchor(&ca.pem)
        .send()
        .await
        .expect("InitializeCluster succeeds");
    let so_pin = hsms.path("so.pin").display().to_string();
    let password = hsms.path("kmsuser.pw").display().to_string();
    server.hsm(&[
        "activate",
        "--cluster",
        &cluster,
        "--admin-password-file",
        &so_pin,
    ]);
    server.hsm(&[
        "create-user",
        "--cluster",
        &cluster,
        "--username",
        "kmsuser",
        "--password-file",
        &password,
        "--admin-password-file",
        &so_pin,
    ]);
    let kms = server.kms();
    let store = create_store(&kms, "survivor", &cluster, &ca.pem).await;
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("ConnectCustomKeyStore is accepted");
    assert_eq!(
        settled_connection(&kms, &store).await,
        (ConnectionStateType::Connected, None)
    );
    let key = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("CreateKey in the store succeeds")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    (store, key)
}

/// The outcomes (`connectionState`, and `connectionErrorCode` if any) of store `id`'s connection
/// attempts that the audit trail of the server at `address` holds, as service events, oldest first.
async fn connection_events(address: std::net::SocketAddr, id: &str) -> Vec<(String, String)> {
    let body = json!({
        "LookupAttributes": [{ "AttributeKey": "EventName", "AttributeValue": "ConnectCustomKeyStore" }],
        "MaxResults": 50,
    })
    .to_string();
    let text = lookup_events(address, &body).await;
    let page: Value = serde_json::from_str(&text).expect("LookupEvents answers JSON");
    assert!(page["Events"].is_array(), "LookupEvents failed: {page}");
    let mut outcomes: Vec<(String, String)> = page["Events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["CloudTrailEvent"].as_str())
        .map(|text| serde_json::from_str::<Value>(text).expect("each record is JSON"))
        .filter(|record| {
            record["eventType"] == "AwsServiceEvent"
                && record["serviceEventDetails"]["customKeyStoreId"] == id
        })
        .map(|record| {
            let details = &record["serviceEventDetails"];
            (
                details["connectionState"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                details["connectionErrorCode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    // LookupEvents lists the newest first.
    outcomes.reverse();
    outcomes
}

/// Waits until the audit trail holds `count` connection outcomes of store `id`, and returns them.
async fn connection_events_until(
    address: std::net::SocketAddr,
    id: &str,
    count: usize,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    loop {
        let outcomes = connection_events(address, id).await;
        if outcomes.len() >= count {
            return outcomes;
        }
        assert!(
            Instant::now() < deadline,
            "the audit trail has {} connection outcomes of {id}, not {count}: {outcomes:?}",
            outcomes.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let identity: Identity = Credentials::new("test", "test", None, None, "cks-restart").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
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

const CONTEXT: [(&str, &str); 1] = [("purpose", "restart")];
const CONNECTED: (&str, &str) = ("CONNECTED", "");

/// After a restart, with nobody calling ConnectCustomKeyStore: the audit trail soon shows the store's
/// `connections`-th successful connection (made again at start-up, before any request needed it), the
/// store reads CONNECTED, and its key decrypts what it encrypted before the restart.
async fn check_connected_again(
    server: &Server,
    store: &str,
    key: &str,
    before: &[u8],
    connections: usize,
) {
    let outcomes = connection_events_until(server.address, store, connections).await;
    assert_eq!(outcomes.len(), connections, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(state, code)| (state.as_str(), code.as_str()) == CONNECTED),
        "{outcomes:?}"
    );
    assert!(
        !server.logged(RESUMING).is_empty(),
        "the server says it connects stores again"
    );
    let kms = server.kms();
    assert_eq!(
        connection(&kms, store).await,
        (ConnectionStateType::Connected, None)
    );
    assert_eq!(
        decrypt(&kms, before, &CONTEXT).await,
        b"written before the restart"
    );
    let after = encrypt(&kms, key, b"written after the restart", &CONTEXT).await;
    assert_eq!(
        decrypt(&kms, &after, &CONTEXT).await,
        b"written after the restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connected_store_connects_again_after_a_graceful_restart_and_after_kill_9() {
    let hsms = Hsms::new("cks-restart-connected");
    let server = hsms.serve();
    let (store, key) = store_with_a_key(&hsms, &server).await;
    let before = encrypt(&server.kms(), &key, b"written before the restart", &CONTEXT).await;
    connection_events_until(server.address, &store, 1).await;

    server.terminate();
    let server = hsms.serve();
    check_connected_again(&server, &store, &key, &before, 2).await;

    server.kill9();
    let server = hsms.serve();
    check_connected_again(&server, &store, &key, &before, 3).await;
    server.terminate();
}

/// The other recorded states at start-up.
///
/// A store left CONNECTING is made by writing the state into the stopped server's database: killing
/// the server while an attempt runs is not reliable on SoftHSM, where an attempt takes a fraction of
/// a second (`cks_rotation` kills it deterministically inside the password rotation, with a test-only
/// pause). The record is what a server killed mid-attempt before the rotation leaves: CONNECTING,
/// with the password of the last successful connection.
#[tokio::test(flavor = "multi_thread")]
async fn connecting_stores_finish_connecting_after_a_restart_and_disconnected_or_failed_ones_stay()
{
    let hsms = Hsms::new("cks-restart-states");
    let server = hsms.serve();
    let (store, key) = store_with_a_key(&hsms, &server).await;
    let before = encrypt(&server.kms(), &key, b"written before the restart", &CONTEXT).await;
    connection_events_until(server.address, &store, 1).await;

    // CONNECTING at start: the attempt runs again and ends CONNECTED, without a client call.
    server.kill9();
    hsms.record_state(&store, "CONNECTING").await;
    let server = hsms.serve();
    let kms = server.kms();
    assert_eq!(
        settled_connection(&kms, &store).await,
        (ConnectionStateType::Connected, None)
    );
    check_connected_again(&server, &store, &key, &before, 2).await;

    // DISCONNECTED at start: it stays DISCONNECTED, and its keys unavailable.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    server.terminate();
    let server = hsms.serve();
    let kms = server.kms();
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        connection(&kms, &store).await,
        (ConnectionStateType::Disconnected, None)
    );
    assert!(server.logged(RESUMING).is_empty(), "nothing is resumed");
    let refused = failure(
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    assert_eq!(connection_events(server.address, &store).await.len(), 2);

    // CONNECTING at start with a password that no longer works: the attempt ends FAILED with
    // INVALID_CREDENTIALS, without a client call, and says so in the audit trail.
    kms.update_custom_key_store()
        .custom_key_store_id(&store)
        .key_store_password("not-kmsusers-password")
        .send()
        .await
        .expect("UpdateCustomKeyStore of a DISCONNECTED store succeeds");
    server.terminate();
    hsms.record_state(&store, "CONNECTING").await;
    let server = hsms.serve();
    let kms = server.kms();
    let failed = (
        ConnectionStateType::Failed,
        Some(ConnectionErrorCodeType::InvalidCredentials),
    );
    assert_eq!(settled_connection(&kms, &store).await, failed);
    let outcomes = connection_events_until(server.address, &store, 3).await;
    assert_eq!(
        outcomes.last().map(|(s, c)| (s.as_str(), c.as_str())),
        Some(("FAILED", "INVALID_CREDENTIALS"))
    );

    // FAILED at start: it stays FAILED with its code.
    server.terminate();
    let server = hsms.serve();
    let kms = server.kms();
    tokio::time::sleep(QUIET).await;
    assert_eq!(connection(&kms, &store).await, failed);
    assert!(server.logged(RESUMING).is_empty(), "nothing is resumed");
    assert_eq!(connection_events(server.address, &store).await.len(), 3);
    server.terminate();
}
