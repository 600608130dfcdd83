//! `strongroom bench --in-process`: what one request costs the server without the network.
//!
//! It starts a development server in this process on a temporary data directory (audit trail off,
//! as with `--dangerous-disable-audit`) and hands signed requests straight to its HTTP application,
//! one after another on one task, so no socket, no HTTP parsing and no second thread is involved.
//! The time per request is what SigV4, JSON, validation, authorization and the cryptography cost;
//! comparing it with the networked benchmark shows how much of a request's cost is the network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use strongroom_service::SystemClock;
use tower::ServiceExt;

use crate::{Config, Server};

/// The access key of a development server's default account.
const DEV_ACCESS_KEY: &str = "test";
/// The Region requests are signed for.
const REGION: &str = "us-east-1";
/// How long a signature is reused: `X-Amz-Date` has a resolution of one second.
const RESIGN_AFTER: Duration = Duration::from_secs(1);

/// One operation's cost in process.
#[derive(Debug, Clone)]
pub struct EdgeRow {
    /// The operation, for example `Encrypt`.
    pub name: &'static str,
    /// Requests served.
    pub requests: u64,
    /// The median of the per-batch mean times per request.
    pub median: Duration,
}

/// Runs each operation for `duration` and returns the time each request took, median of batches.
pub async fn run(duration: Duration) -> anyhow::Result<Vec<EdgeRow>> {
    let dir = TempDir::new()?;
    let mut config = Config::dev(dir.0.clone());
    config.dangerous_disable_audit = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("reserve a loopback port for the in-process server")?;
    let server = Server::start(listener, config, Arc::new(SystemClock)).await?;
    let app = server.app.clone();
    let mut signer = Signer::default();

    let created = call(&app, &mut signer, "CreateKey", "{}".to_owned()).await?;
    let Some(key_id) = created["KeyMetadata"]["KeyId"].as_str().map(str::to_owned) else {
        bail!("CreateKey returned no KeyMetadata.KeyId: {created}");
    };
    let mut plaintext = [0u8; 512];
    aws_lc_rs::rand::fill(&mut plaintext).context("generate a plaintext")?;
    let encrypt =
        serde_json::json!({ "KeyId": key_id, "Plaintext": BASE64.encode(plaintext) }).to_string();
    let sealed = call(&app, &mut signer, "Encrypt", encrypt.clone()).await?;
    let Some(ciphertext) = sealed["CiphertextBlob"].as_str() else {
        bail!("Encrypt returned no CiphertextBlob: {sealed}");
    };
    let decrypt = serde_json::json!({ "KeyId": key_id, "CiphertextBlob": ciphertext }).to_string();
    let data_key = serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }).to_string();

    let mut rows = Vec::new();
    for (name, body) in [
        ("Encrypt", encrypt),
        ("Decrypt", decrypt),
        ("GenerateDataKey", data_key),
    ] {
        rows.push(measure(&app, &mut signer, name, body, duration).await?);
    }
    Ok(rows)
}

/// Renders rows as a Markdown table.
pub fn to_markdown(rows: &[EdgeRow]) -> String {
    let mut text = String::from(
        "| Operation (in process, one task) | Requests | Time per request (median) |\n| --- | ---: | ---: |\n",
    );
    for row in rows {
        text.push_str(&format!(
            "| {} | {} | {:.1} µs |\n",
            row.name,
            row.requests,
            row.median.as_secs_f64() * 1e6
        ));
    }
    text
}

/// Serves `body` as `operation` over and over for `duration`, in batches of 1,000 requests.
async fn measure(
    app: &axum::Router,
    signer: &mut Signer,
    operation: &'static str,
    body: String,
    duration: Duration,
) -> anyhow::Result<EdgeRow> {
    const BATCH: u32 = 1_000;
    let body = bytes::Bytes::from(body);
    let deadline = Instant::now() + duration;
    let mut batches = Vec::new();
    let mut requests = 0;
    while batches.is_empty() || Instant::now() < deadline {
        let started = Instant::now();
        for _ in 0..BATCH {
            let request = signer.request(operation, body.clone());
            let response = app.clone().oneshot(request).await?;
            if response.status() != StatusCode::OK {
                bail!("{operation} answered {}", response.status());
            }
            // Consume the body, as a connection would.
            axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        }
        batches.push(started.elapsed() / BATCH);
        requests += u64::from(BATCH);
    }
    batches.sort();
    Ok(EdgeRow {
        name: operation,
        requests,
        median: batches[batches.len() / 2],
    })
}

/// Makes one call and returns its JSON answer.
async fn call(
    app: &axum::Router,
    signer: &mut Signer,
    operation: &'static str,
    body: String,
) -> anyhow::Result<serde_json::Value> {
    let request = signer.request(operation, body.into());
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    if status != StatusCode::OK {
        bail!(
            "{operation} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("parse the {operation} answer"))
}

/// Signs requests, reusing a signature for a second as the networked benchmark does.
#[derive(Default)]
struct Signer {
    signed: Option<(Instant, &'static str, bytes::Bytes, HeaderMap)>,
}

impl Signer {
    fn request(&mut self, operation: &'static str, body: bytes::Bytes) -> Request<Body> {
        let reuse = matches!(&self.signed, Some((at, op, signed_body, _))
            if at.elapsed() < RESIGN_AFTER && *op == operation && *signed_body == body);
        if !reuse {
            let mut headers = HeaderMap::new();
            headers.insert(HOST, HeaderValue::from_static("localhost"));
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            let target = HeaderValue::from_str(&format!("TrentService.{operation}"))
                .expect("operation names are ASCII");
            headers.insert(HeaderName::from_static("x-amz-target"), target);
            strongroom_sigv4::sign(
                &Method::POST,
                &Uri::from_static("/"),
                &mut headers,
                &body,
                DEV_ACCESS_KEY,
                "test",
                REGION,
                "kms",
                SystemTime::now(),
            );
            self.signed = Some((Instant::now(), operation, body.clone(), headers));
        }
        let (_, _, _, headers) = self.signed.as_ref().expect("signed above");
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/");
        *request.headers_mut() = headers.clone();
        // The peer address a connection would carry, for the network context of conditions.
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40_000,
            ))));
        request
    }
}

/// A data directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "strongroom-edge-bench-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("create the temporary data directory {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
