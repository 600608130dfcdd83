//! Servers for the tests to talk to, and the small helpers every test module shares.
//!
//! [`TestServer`] runs the server in-process on `127.0.0.1:0` with a [`ManualClock`], so tests can move
//! time; [`ProcessServer`] runs the real `strongroom` binary, so tests can kill it and restart it.
//! Both hand out AWS SDK clients; [`TestServer::raw`] sends hand-built requests for the protocol edge.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use strongroom_server::Config;
use strongroom_service::{Clock, ManualClock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The account that dev-mode access key `test` is the root of.
pub(crate) const ACCOUNT: &str = "111122223333";
/// The Region test clients sign for unless a test says otherwise.
pub(crate) const REGION: &str = "us-east-1";
/// The secret of every dev-mode access key.
/// The line the binary prints on standard error once it is ready, followed by its address.
const LISTENING: &str = "strongroom listening on http://";

const DEV_SECRET: &str = "test";
/// How long any single wait in a test may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// A directory under the system temporary directory, unique per test, removed when dropped.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory whose name contains `label`.
    pub(crate) fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "strongroom-it-{label}-{}-{unique}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server running inside the test process, on a port of its own, with a clock the test controls.
pub(crate) struct TestServer {
    address: SocketAddr,
    clock: Arc<ManualClock>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Kept last so the directory outlives the server's handles on it.
    _data_dir: Option<TempDir>,
}

impl TestServer {
    /// Starts a development-mode server with a fresh data directory.
    pub(crate) async fn start() -> TestServer {
        let data_dir = TempDir::new("server");
        let mut server = TestServer::start_in(data_dir.path(), |_| {}).await;
        server._data_dir = Some(data_dir);
        server
    }

    /// Starts a development-mode server on `data_dir` (which the caller keeps), after `configure` has
    /// adjusted the configuration; returns once the server answers requests.
    pub(crate) async fn start_in(
        data_dir: &Path,
        configure: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut server = TestServer::spawn(data_dir, configure).await;
        let ready = server.wait_until_ready().await;
        if let Err(failure) = ready {
            panic!("the in-process server did not start: {failure}");
        }
        server
    }

    /// Starts a server and returns the error `run` fails with, for configurations that must be refused.
    pub(crate) async fn start_failure(
        data_dir: &Path,
        configure: impl FnOnce(&mut Config),
    ) -> String {
        let mut server = TestServer::spawn(data_dir, configure).await;
        match server.wait_until_ready().await {
            Ok(()) => panic!("the server started, but this configuration should have been refused"),
            Err(failure) => failure,
        }
    }

    async fn spawn(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("the listener's address");
        let mut config = Config::dev(data_dir.to_path_buf());
        config.listen = address;
        configure(&mut config);
        let clock = Arc::new(ManualClock::starting_now());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(strongroom_server::run(
            listener,
            config,
            clock.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            address,
            clock,
            shutdown: Some(shutdown),
            task: Some(task),
            _data_dir: None,
        }
    }

    /// Polls the unauthenticated no-op endpoint until it answers, or reports why the server stopped.
    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(task) = &self.task
                && task.is_finished()
            {
                let task = self.task.take().expect("the task was just seen");
                return match task.await {
                    Ok(Ok(())) => Err("run returned Ok before shutdown was requested".to_owned()),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(e) => Err(format!("the server task panicked: {e}")),
                };
            }
            let request = http::Request::get(strongroom_protocol::NOOP_PATH)
                .header(http::header::HOST, self.address.to_string())
                .body(Full::new(Bytes::new()))
                .expect("a valid request");
            if let Ok((status, _, _)) = send(self.address, request).await
                && status == http::StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the server did not answer within the time limit".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks the server to shut down and waits for `run` to return; the data directory stays.
    pub(crate) async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the server stops in time");
            result
                .expect("the server task does not panic")
                .expect("run returns Ok after shutdown");
        }
    }

    /// The server's URL, for clients outside this process.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The service's clock: advance it to make deletions and rotations come due.
    pub(crate) fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The service clock's reading, in seconds since the Unix epoch.
    pub(crate) fn now_secs(&self) -> f64 {
        self.clock.now().as_secs_f64()
    }

    /// A client for the default account in us-east-1.
    pub(crate) fn client(&self) -> Client {
        sdk_client(self.address, "test", DEV_SECRET, REGION)
    }

    /// A client for dev-mode access key `access_key` (a 12-digit account id, or `test`) in `region`.
    pub(crate) fn client_for(&self, access_key: &str, region: &str) -> Client {
        sdk_client(self.address, access_key, DEV_SECRET, region)
    }

    /// Sends `body` to operation `target` (a whole `X-Amz-Target` value), signed as the default root when
    /// `sign` is set, and returns the status and the parsed JSON body.
    pub(crate) async fn raw(
        &self,
        target: &str,
        body: &str,
        sign: bool,
    ) -> (http::StatusCode, Value) {
        let signer = if sign { Some(Signer::dev()) } else { None };
        let (status, _, json) = self.raw_response(target, body, signer).await;
        (status, json)
    }

    /// Like [`TestServer::raw`], signed by `signer` when given.
    pub(crate) async fn raw_as(
        &self,
        target: &str,
        body: &str,
        signer: Option<Signer<'_>>,
    ) -> (http::StatusCode, Value) {
        let (status, _, json) = self.raw_response(target, body, signer).await;
        (status, json)
    }

    /// Like [`TestServer::raw_as`], also returning the response headers.
    pub(crate) async fn raw_response(
        &self,
        target: &str,
        body: &str,
        signer: Option<Signer<'_>>,
    ) -> (http::StatusCode, http::HeaderMap, Value) {
        let mut request = http::Request::post("/")
            .header(http::header::HOST, self.address.to_string())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request");
        if let Some(signer) = signer {
            let signed_body = signer.signed_body.unwrap_or(body);
            sign_request(&mut request, self.address, signed_body.as_bytes(), &signer);
        }
        let (status, headers, bytes) = send(self.address, request)
            .await
            .expect("the server answers");
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the response body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, headers, json)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// How [`TestServer::raw_as`] signs a request; [`Signer::dev`] signs as an SDK would for the default root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub(crate) access_key: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    pub(crate) time: SystemTime,
    /// Signs this body instead of the one sent, to model a body changed in transit.
    pub(crate) signed_body: Option<&'a str>,
}

impl Signer<'static> {
    /// The default root (`test`/`test`) in us-east-1, for the `kms` service, now.
    pub(crate) fn dev() -> Signer<'static> {
        Signer {
            access_key: "test",
            secret: DEV_SECRET,
            region: REGION,
            service: "kms",
            time: SystemTime::now(),
            signed_body: None,
        }
    }
}

/// Sends one HTTP/1.1 request on a new connection and reads the whole response.
async fn send(
    address: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read the body: {e}"))?
        .to_bytes();
    Ok((status, headers, body))
}

/// Signs a request to `address` with SigV4, as an SDK would.
fn sign_request(
    request: &mut http::Request<Full<Bytes>>,
    address: SocketAddr,
    body: &[u8],
    signer: &Signer<'_>,
) {
    let identity: Identity =
        Credentials::new(signer.access_key, signer.secret, None, None, "raw-request").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(signer.region)
        .name(signer.service)
        .time(signer.time)
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
    let uri = format!("http://{address}{}", request.uri());
    let signable = SignableRequest::new(
        "POST",
        uri,
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("a signable request");
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
        .expect("signing succeeds")
        .into_parts();
    instructions.apply_to_request_http1x(request);
}

/// An AWS SDK client for the server at `address`, without retries so errors surface at once.
pub(crate) fn sdk_client(
    address: SocketAddr,
    access_key: &str,
    secret: &str,
    region: &str,
) -> Client {
    let credentials = Credentials::new(access_key, secret, None, None, "strongroom-it");
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .endpoint_url(format!("http://{address}"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(PATIENCE).build())
        .build();
    Client::from_conf(config)
}

/// An AWS error as a client sees it: the `__type` code and the message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// The error of a call that must fail with a service error; panics if it succeeded or never reached AWS.
pub(crate) fn failure<
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
>(
    result: Result<T, SdkError<E, R>>,
) -> Failure {
    match result {
        Ok(output) => panic!("expected an error, but the call succeeded: {output:?}"),
        Err(error) => match error.code() {
            Some(code) => Failure {
                code: code.to_owned(),
                message: error.message().unwrap_or_default().to_owned(),
            },
            None => panic!("expected a service error, got {error:?}"),
        },
    }
}

/// The error code of a call that must fail with a service error.
pub(crate) fn error_code<
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
>(
    result: Result<T, SdkError<E, R>>,
) -> String {
    failure(result).code
}

/// Creates a key with `description` and returns its key id and key ARN.
pub(crate) async fn create_key(client: &Client, description: &str) -> (String, String) {
    let created = client
        .create_key()
        .description(description)
        .send()
        .await
        .expect("CreateKey succeeds");
    let metadata = created
        .key_metadata()
        .expect("CreateKey returns KeyMetadata");
    let arn = metadata.arn().expect("the metadata has an ARN").to_owned();
    (metadata.key_id().to_owned(), arn)
}

/// Encrypts `plaintext` under `key` with `context` and returns the ciphertext blob.
pub(crate) async fn encrypt(
    client: &Client,
    key: &str,
    plaintext: &[u8],
    context: &[(&str, &str)],
) -> Vec<u8> {
    let mut request = client.encrypt().key_id(key).plaintext(Blob::new(plaintext));
    for (name, value) in context {
        request = request.encryption_context(*name, *value);
    }
    let output = request.send().await.expect("Encrypt succeeds");
    output
        .ciphertext_blob()
        .expect("Encrypt returns a ciphertext")
        .as_ref()
        .to_vec()
}

/// Decrypts `ciphertext` with `context` (no KeyId) and returns the plaintext.
pub(crate) async fn decrypt(
    client: &Client,
    ciphertext: &[u8],
    context: &[(&str, &str)],
) -> Vec<u8> {
    let mut request = client.decrypt().ciphertext_blob(Blob::new(ciphertext));
    for (name, value) in context {
        request = request.encryption_context(*name, *value);
    }
    let output = request.send().await.expect("Decrypt succeeds");
    output
        .plaintext()
        .expect("Decrypt returns the plaintext")
        .as_ref()
        .to_vec()
}

/// The key ARN of `key_id` in the default account and Region.
pub(crate) fn key_arn(key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}")
}

/// The alias ARN of `alias_name` in the default account and Region.
pub(crate) fn alias_arn(alias_name: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:{alias_name}")
}

/// The real `strongroom` binary, started as a child process on a port of its own.
pub(crate) struct ProcessServer {
    child: Child,
    address: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ProcessServer {
    /// Runs `strongroom serve --dev` on `data_dir`.
    pub(crate) fn start_dev(data_dir: &Path) -> ProcessServer {
        ProcessServer::start(data_dir, &["--dev"])
    }

    /// Runs `strongroom serve` on `data_dir` with `extra` arguments, and waits for its first line.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> ProcessServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("STRONGROOM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the strongroom binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (first_line, first_line_received) = mpsc::channel::<String>();
        {
            let lines = lines.clone();
            // The reader keeps draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with(LISTENING) {
                        let _ = first_line.send(line.clone());
                    }
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let line = match first_line_received.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "the server never printed its address ({e}); exit status {:?}",
                    child.wait()
                );
            }
        };
        let address = line
            .strip_prefix(LISTENING)
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("the address line names no address: {line:?}"));
        let server = ProcessServer {
            child,
            address,
            stderr: lines,
        };
        server.wait_until_ready();
        server
    }

    /// Polls the no-op endpoint until the server answers; the address is printed once start-up is
    /// complete, so this normally succeeds at once.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if noop_answers(self.address) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the server never answered; stderr: {:#?}",
                    self.stderr_lines()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the server listens on.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// A dev-mode client for the default account in us-east-1.
    pub(crate) fn client(&self) -> Client {
        sdk_client(self.address, "test", DEV_SECRET, REGION)
    }

    /// Kills the server with SIGKILL: no chance to flush or clean up.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and returns its exit status once it has exited.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the server did not exit after SIGTERM; stderr: {:#?}",
                    self.stderr_lines()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server has written to stderr so far.
    pub(crate) fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Whether a blocking GET of the no-op endpoint at `address` returns 200.
fn noop_answers(address: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, PATIENCE) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        strongroom_protocol::NOOP_PATH
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        // Tests that end early must not leave servers behind; this is a no-op after kill9 or terminate.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
