//! A load generator that measures a running Strongroom server.
//!
//! It opens a number of HTTP/1.1 keep-alive connections and, phase after phase,
//! keeps each one busy for a fixed time with one kind of request:
//! an unsigned no-op that measures the HTTP stack alone, the same no-op echoing an Encrypt request's
//! body (the HTTP stack and the network with Encrypt-sized messages), then signed `Encrypt`, `Decrypt` and `GenerateDataKey` calls.
//! Comparing each phase with the no-op shows what authentication and cryptography cost.
//!
//! The crate talks to the server only over the wire, like any AWS client,
//! so it depends on no Strongroom crate except the SigV4 signer.

mod connection;
mod raw;
mod report;

pub use crate::raw::{RawRow, measure as measure_in_process};

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::connection::{Connection, Credentials, Endpoint, Operation, RequestFactory};
use crate::report::Samples;

/// The name of the no-op row, which the other rows are compared with.
const NOOP: &str = "no-op";

/// The name of the row of the no-op that echoes an Encrypt request's body: what the HTTP stack and
/// the network alone cost for requests and responses of that size.
const NOOP_ECHO: &str = "no-op echo (Encrypt's body)";

/// The size of the plaintext in the `Encrypt` phase.
const PLAINTEXT_LEN: usize = 512;

/// What to measure and how hard to push.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The server's base URL, for example `http://127.0.0.1:4566`; only `http` is supported.
    pub endpoint: String,
    /// How many keep-alive connections run requests concurrently, each one request at a time.
    pub connections: usize,
    /// How long each phase lasts.
    pub duration: Duration,
    /// The region requests are signed for.
    pub region: String,
    /// The access key id requests are signed with.
    pub access_key_id: String,
    /// The secret access key requests are signed with.
    pub secret_access_key: String,
    /// The symmetric key to use; when `None`, one is created with `CreateKey`.
    pub key_id: Option<String>,
    /// Also measure Sign (ECC_NIST_P256 and RSA_2048), Verify and GenerateMac, with keys it creates.
    pub asymmetric: bool,
}

/// The results of a run, one row per phase, the no-op first.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The phases in the order they ran.
    pub rows: Vec<Row>,
}

/// The results of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The operation measured: `no-op`, `Encrypt`, `Decrypt` or `GenerateDataKey`.
    pub name: String,
    /// Requests attempted, including those that failed.
    pub requests: u64,
    /// Requests that did not end in a 200 response, including connection failures.
    pub errors: u64,
    /// Successful requests per second of wall-clock time.
    pub per_second: f64,
    /// The median latency of the requests that got a response.
    pub p50: Duration,
    /// The 99th-percentile latency of the requests that got a response.
    pub p99: Duration,
}

/// Runs the setup and the four phases against the server at `opts.endpoint`.
///
/// Setup failures (no server, bad credentials, no key) are errors;
/// failures during a phase are counted in the report instead.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Report> {
    if opts.connections == 0 {
        bail!("the benchmark needs at least one connection");
    }
    let endpoint = Arc::new(Endpoint::parse(&opts.endpoint)?);
    let credentials = Arc::new(Credentials {
        access_key_id: opts.access_key_id.clone(),
        secret_access_key: opts.secret_access_key.clone(),
        region: opts.region.clone(),
    });

    let mut setup = Connection::open(&endpoint)
        .await
        .with_context(|| format!("connect to {}", opts.endpoint))?;
    let key_id = match &opts.key_id {
        Some(key_id) => key_id.clone(),
        None => {
            let response = call(
                &mut setup,
                &endpoint,
                &credentials,
                "CreateKey",
                "{}".into(),
            )
            .await
            .context("create a key")?;
            match response["KeyMetadata"]["KeyId"].as_str() {
                Some(key_id) => key_id.to_owned(),
                None => bail!("CreateKey returned no KeyMetadata.KeyId: {response}"),
            }
        }
    };

    let mut plaintext = [0u8; PLAINTEXT_LEN];
    aws_lc_rs::rand::fill(&mut plaintext).context("generate a plaintext")?;
    let encrypt_body = Bytes::from(
        serde_json::json!({ "KeyId": key_id, "Plaintext": BASE64.encode(plaintext) }).to_string(),
    );
    let response = call(
        &mut setup,
        &endpoint,
        &credentials,
        "Encrypt",
        encrypt_body.clone(),
    )
    .await
    .context("encrypt a sample plaintext")?;
    let ciphertext = match response["CiphertextBlob"].as_str() {
        Some(ciphertext) => ciphertext.to_owned(),
        None => bail!("Encrypt returned no CiphertextBlob: {response}"),
    };
    drop(setup);

    let decrypt_body = Bytes::from(
        serde_json::json!({ "KeyId": key_id, "CiphertextBlob": ciphertext }).to_string(),
    );
    let data_key_body =
        Bytes::from(serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }).to_string());
    let phases = [
        (NOOP, Operation::Noop),
        (
            NOOP_ECHO,
            Operation::NoopEcho {
                body: encrypt_body.clone(),
            },
        ),
        ("Encrypt", Operation::kms("Encrypt", encrypt_body)),
        ("Decrypt", Operation::kms("Decrypt", decrypt_body)),
        (
            "GenerateDataKey",
            Operation::kms("GenerateDataKey", data_key_body),
        ),
    ];
    let mut phases = phases.to_vec();
    if opts.asymmetric {
        phases.extend(asymmetric_phases(&endpoint, &credentials).await?);
    }
    let mut rows = Vec::new();
    for (name, operation) in phases {
        let factory =
            RequestFactory::new(endpoint.authority.clone(), operation, credentials.clone());
        rows.push(run_phase(name, &endpoint, &factory, opts).await?);
    }
    Ok(Report { rows })
}

/// Creates a P-256 and an RSA_2048 signing key and an HMAC_256 key, and the phases that use them.
async fn asymmetric_phases(
    endpoint: &Arc<Endpoint>,
    credentials: &Arc<Credentials>,
) -> anyhow::Result<Vec<(&'static str, Operation)>> {
    let mut setup = Connection::open(endpoint).await.context("connect")?;
    let mut create = async |spec: &str, usage: &str| -> anyhow::Result<String> {
        let body = serde_json::json!({ "KeySpec": spec, "KeyUsage": usage }).to_string();
        let response = call(&mut setup, endpoint, credentials, "CreateKey", body.into())
            .await
            .with_context(|| format!("create a {spec} key"))?;
        match response["KeyMetadata"]["KeyId"].as_str() {
            Some(key_id) => Ok(key_id.to_owned()),
            None => bail!("CreateKey returned no KeyMetadata.KeyId: {response}"),
        }
    };
    let p256 = create("ECC_NIST_P256", "SIGN_VERIFY").await?;
    let rsa = create("RSA_2048", "SIGN_VERIFY").await?;
    let hmac = create("HMAC_256", "GENERATE_VERIFY_MAC").await?;
    let message = BASE64.encode(raw::MESSAGE);
    let sign_body = |key: &str, algorithm: &str| {
        Bytes::from(
            serde_json::json!({ "KeyId": key, "Message": message, "SigningAlgorithm": algorithm })
                .to_string(),
        )
    };
    let p256_sign = sign_body(&p256, "ECDSA_SHA_256");
    let response = call(&mut setup, endpoint, credentials, "Sign", p256_sign.clone())
        .await
        .context("sign a sample message")?;
    let Some(signature) = response["Signature"].as_str() else {
        bail!("Sign returned no Signature: {response}");
    };
    let verify_body = Bytes::from(
        serde_json::json!({
            "KeyId": p256, "Message": message, "SigningAlgorithm": "ECDSA_SHA_256", "Signature": signature,
        })
        .to_string(),
    );
    let mac_body = Bytes::from(
        serde_json::json!({ "KeyId": hmac, "Message": message, "MacAlgorithm": "HMAC_SHA_256" })
            .to_string(),
    );
    Ok(vec![
        ("Sign ECC_NIST_P256", Operation::kms("Sign", p256_sign)),
        (
            "Sign RSA_2048",
            Operation::kms("Sign", sign_body(&rsa, "RSASSA_PSS_SHA_256")),
        ),
        (
            "Verify ECC_NIST_P256",
            Operation::kms("Verify", verify_body),
        ),
        (
            "GenerateMac HMAC_256",
            Operation::kms("GenerateMac", mac_body),
        ),
    ])
}

/// Keeps `opts.connections` connections busy with one operation for `opts.duration`.
async fn run_phase(
    name: &str,
    endpoint: &Arc<Endpoint>,
    factory: &RequestFactory,
    opts: &BenchOptions,
) -> anyhow::Result<Row> {
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..opts.connections {
        tasks.spawn(drive(endpoint.clone(), factory.clone(), deadline));
    }
    let mut samples = Samples::default();
    while let Some(res) = tasks.join_next().await {
        samples.merge(res.context("a connection task failed")?);
    }
    Ok(report::row(name, samples, started.elapsed()))
}

/// One connection's loop: send, wait for the whole response, record, repeat until the deadline.
///
/// A broken connection is counted as an error and replaced.
async fn drive(endpoint: Arc<Endpoint>, mut factory: RequestFactory, deadline: Instant) -> Samples {
    let mut samples = Samples::default();
    while Instant::now() < deadline {
        let mut connection = match Connection::open(&endpoint).await {
            Ok(connection) => connection,
            Err(_) => {
                samples.requests += 1;
                samples.errors += 1;
                // Do not spin against a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            // A connection the server closed is replaced without counting an error.
            if connection.ready().await.is_err() {
                break;
            }
            let request = factory.request();
            samples.requests += 1;
            let started = Instant::now();
            match connection.send(request).await {
                Ok((status, _)) => {
                    samples.latencies.push(started.elapsed());
                    if status != http::StatusCode::OK {
                        samples.errors += 1;
                    }
                }
                Err(_) => {
                    samples.errors += 1;
                    break;
                }
            }
        }
    }
    samples
}

/// Makes one signed KMS call during setup and returns its JSON response.
async fn call(
    connection: &mut Connection,
    endpoint: &Endpoint,
    credentials: &Arc<Credentials>,
    operation: &'static str,
    body: Bytes,
) -> anyhow::Result<serde_json::Value> {
    let mut factory = RequestFactory::new(
        endpoint.authority.clone(),
        Operation::kms(operation, body),
        credentials.clone(),
    );
    connection.ready().await?;
    let (status, body) = connection.send(factory.request()).await?;
    if status != http::StatusCode::OK {
        bail!(
            "{operation} returned {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("parse the {operation} response"))
}

#[cfg(test)]
mod tests;
