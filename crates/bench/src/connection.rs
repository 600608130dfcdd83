//! One HTTP/1.1 keep-alive connection to the server, and the requests sent over it.
//!
//! Each connection is a bare `hyper` handshake over a `TcpStream`, without a pool,
//! so that the client adds as little work as possible to a machine it shares with the server.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a signature is reused; `X-Amz-Date` has a resolution of one second,
/// so signing more often would mostly reproduce the same signature.
const RESIGN_AFTER: Duration = Duration::from_secs(1);

/// Where the server listens: the address to connect to and the `Host` header to send.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) address: String,
    pub(crate) authority: HeaderValue,
}

impl Endpoint {
    /// Parses a base URL such as `http://127.0.0.1:4566`.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Endpoint> {
        let uri: Uri = text
            .parse()
            .with_context(|| format!("parse the endpoint {text:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(scheme) => bail!("the benchmark speaks plain http, not {scheme}: {text}"),
            None => bail!("the endpoint needs a scheme, as in http://127.0.0.1:4566: {text}"),
        }
        let authority = match uri.authority() {
            Some(authority) => authority,
            None => bail!("the endpoint has no host: {text}"),
        };
        let port = authority.port_u16().unwrap_or(80);
        Ok(Endpoint {
            address: format!("{}:{port}", authority.host()),
            authority: HeaderValue::from_str(authority.as_str())
                .context("the endpoint's authority is not a valid Host header")?,
        })
    }
}

/// The credentials and region requests are signed with.
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) region: String,
}

/// The request a phase sends over and over.
#[derive(Debug, Clone)]
pub(crate) enum Operation {
    /// `GET /__strongroom/noop`, unsigned.
    Noop,
    /// `POST /__strongroom/noop` with this body, unsigned; the server echoes it.
    NoopEcho { body: Bytes },
    /// A signed AWS JSON 1.1 call to `TrentService.<name>`.
    Kms { target: HeaderValue, body: Bytes },
}

impl Operation {
    pub(crate) fn kms(name: &str, body: Bytes) -> Operation {
        let target = HeaderValue::from_str(&format!("TrentService.{name}"))
            .expect("operation names are ASCII");
        Operation::Kms { target, body }
    }
}

/// Builds requests for one operation, re-signing them once a second.
#[derive(Debug, Clone)]
pub(crate) struct RequestFactory {
    authority: HeaderValue,
    operation: Operation,
    credentials: Arc<Credentials>,
    signed: Option<(Instant, HeaderMap)>,
}

impl RequestFactory {
    pub(crate) fn new(
        authority: HeaderValue,
        operation: Operation,
        credentials: Arc<Credentials>,
    ) -> RequestFactory {
        RequestFactory {
            authority,
            operation,
            credentials,
            signed: None,
        }
    }

    /// The next request to send.
    pub(crate) fn request(&mut self) -> Request<Full<Bytes>> {
        let (target, body) = match &self.operation {
            Operation::Noop => return self.noop_request(),
            Operation::NoopEcho { body } => return self.echo_request(body.clone()),
            Operation::Kms { target, body } => (target.clone(), body.clone()),
        };
        let headers = self.signed_headers(&target, &body);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/");
        *request.headers_mut() = headers;
        request
    }

    fn noop_request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = Uri::from_static("/__strongroom/noop");
        request.headers_mut().insert(HOST, self.authority.clone());
        request
    }

    fn echo_request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/__strongroom/noop");
        request.headers_mut().insert(HOST, self.authority.clone());
        request.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        request
    }

    /// The headers of the current signature, renewed when it is a second old.
    fn signed_headers(&mut self, target: &HeaderValue, body: &[u8]) -> HeaderMap {
        if let Some((signed_at, headers)) = &self.signed
            && signed_at.elapsed() < RESIGN_AFTER
        {
            return headers.clone();
        }
        let mut headers = HeaderMap::new();
        headers.insert(HOST, self.authority.clone());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(HeaderName::from_static("x-amz-target"), target.clone());
        strongroom_sigv4::sign(
            &Method::POST,
            &Uri::from_static("/"),
            &mut headers,
            body,
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            &self.credentials.region,
            "kms",
            SystemTime::now(),
        );
        self.signed = Some((Instant::now(), headers.clone()));
        headers
    }
}

/// An open HTTP/1.1 connection.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub(crate) async fn open(endpoint: &Endpoint) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(&endpoint.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A broken connection also fails the next `ready` or `send_request`, where it is counted.
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    /// Waits until the connection can take another request; fails if the server closed it.
    pub(crate) async fn ready(&mut self) -> anyhow::Result<()> {
        self.sender.ready().await?;
        Ok(())
    }

    /// Sends a request and reads the whole response.
    pub(crate) async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
