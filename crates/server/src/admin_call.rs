//! The HTTP exchange behind the `strongroom hsm` and `strongroom stack` commands: one JSON request,
//! signed with SigV4 like any AWS call, over a fresh HTTP/1.1 connection.
//!
//! Hand-written rather than built on an HTTP client crate: the commands send a handful of small
//! requests to a local server, and the workspace's hyper client would add TLS and pooling that
//! plain `http://` to one host does not need.

use std::time::SystemTime;

use anyhow::{Context, bail};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// Where a command sends its requests, and whose credentials sign them: the options every command
/// that talks to a running server shares.
#[derive(Debug, clap::Args)]
pub(crate) struct Server {
    /// The server's URL (http only: run the command on the server's host or over a trusted network).
    #[arg(long, default_value = "http://127.0.0.1:9444")]
    pub(crate) endpoint: String,
    /// The Region to sign requests for.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
    /// Access key id to sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "test")]
    pub(crate) access_key_id: String,
    /// Secret access key to sign with.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "test",
        hide_env_values = true
    )]
    pub(crate) secret_access_key: String,
}

/// Sends `body` as the operation `target` (`Prefix.Operation`), signed for `service`, and returns
/// the JSON answer, or the server's error as `<code>: <message>`.
///
/// The request body is wiped after sending: administration requests carry passwords.
pub(crate) async fn call(
    server: &Server,
    service: &str,
    target: &str,
    body: &Value,
    max_response_bytes: u64,
) -> anyhow::Result<Value> {
    let endpoint: Uri = server
        .endpoint
        .parse()
        .with_context(|| format!("'{}' is not a URL", server.endpoint))?;
    if endpoint.scheme_str() != Some("http") {
        bail!(
            "only http:// endpoints are supported, not '{}'",
            server.endpoint
        );
    }
    let Some(authority) = endpoint.authority().cloned() else {
        bail!("'{}' names no host", server.endpoint);
    };
    let payload = Zeroizing::new(serde_json::to_vec(body)?);
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amz-target", HeaderValue::from_str(target)?);
    strongroom_sigv4::sign(
        &Method::POST,
        &Uri::from_static("/"),
        &mut headers,
        &payload,
        &server.access_key_id,
        &server.secret_access_key,
        &server.region,
        service,
        SystemTime::now(),
    );
    let mut request = Zeroizing::new(Vec::new());
    request.extend_from_slice(b"POST / HTTP/1.1\r\n");
    for (name, value) in &headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(&payload);

    let address = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:80", authority.host()),
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .with_context(|| {
            format!("connect to the server at {address} (is `strongroom serve` running there?)")
        })?;
    stream.write_all(&request).await?;
    let mut response = Vec::new();
    stream
        .take(max_response_bytes)
        .read_to_end(&mut response)
        .await
        .context("read the server's answer")?;
    let (status, answer) = parse_response(&response)?;
    if status == 200 {
        return Ok(answer);
    }
    bail!(
        "{}: {}",
        answer["__type"].as_str().unwrap_or("error"),
        answer["message"]
            .as_str()
            .unwrap_or("the server refused the request")
    )
}

/// The status and JSON body of an HTTP/1.1 response with a `content-length` (or ending at the close).
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, Value)> {
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("the server's answer is not HTTP");
    };
    let head = String::from_utf8_lossy(&response[..split]);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("the server's answer has no status")?;
    let mut body = &response[split + 4..];
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
            && let Ok(length) = value.trim().parse::<usize>()
        {
            body = &body[..length.min(body.len())];
        }
    }
    let answer = serde_json::from_slice(body).with_context(|| {
        format!(
            "the server answered {status} without JSON: {}",
            String::from_utf8_lossy(body)
        )
    })?;
    Ok((status, answer))
}
