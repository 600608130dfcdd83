//! The protocol edge: AWS JSON 1.1 over HTTP.
//!
//! A request is authenticated with SigV4, its `X-Amz-Target` looked up, its body validated against the
//! AWS API model, and then dispatched to the service (see `dispatch`). This is the only crate that knows
//! HTTP and JSON; `error` is the only place that knows HTTP status codes.
//!
//! **Boundary:** the service receives domain values, never JSON; responses are rendered here.

mod auth;
mod dispatch;
mod error;
mod validate;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};
use strongroom_service::{Error, Kms};
use tracing::Instrument;

pub use crate::auth::{Credentials, Principal, Regions};

use crate::auth::Authenticator;
use crate::error::{ProtocolError, error_response};
use crate::validate::Model;

/// The content type of AWS JSON 1.1 requests and responses.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Requests larger than this are refused; the largest valid KMS request is far smaller.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The path of the unauthenticated no-op endpoint the benchmark uses to measure the HTTP ceiling.
pub const NOOP_PATH: &str = "/__strongroom/noop";

struct Edge {
    request_ids: RequestIds,
    kms: Arc<Kms>,
    auth: Authenticator,
    model: Model,
}

/// Builds the HTTP application serving the KMS API for `kms`.
pub fn router(kms: Arc<Kms>, credentials: Arc<dyn Credentials>, regions: Regions) -> Router {
    let edge = Arc::new(Edge {
        request_ids: RequestIds::new(),
        kms,
        auth: Authenticator::new(credentials, regions),
        model: Model::kms(),
    });
    Router::new()
        .route(NOOP_PATH, get(noop))
        .fallback(handle)
        .with_state(edge)
}

async fn noop() -> StatusCode {
    StatusCode::OK
}

async fn handle(State(edge): State<Arc<Edge>>, request: Request) -> Response {
    let request_id = edge.request_ids.next();
    let (parts, body) = request.into_parts();
    let operation = target_operation(&parts.headers)
        .unwrap_or_default()
        .to_owned();
    // A debug-level span: the default subscriber formats span fields eagerly, which would cost every request.
    let span = tracing::debug_span!("request", request_id = %request_id, operation = %operation);
    async move {
        let result = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => edge.serve(&parts, &bytes, &operation).await,
            Err(_) => Err(ProtocolError::Serialization(format!(
                "The request body could not be read or is larger than {MAX_BODY_BYTES} bytes."
            ))),
        };
        match result {
            Ok(body) => json_response(&body, &request_id),
            Err(error) => {
                if let ProtocolError::Service(Error::Internal(source)) = &error {
                    tracing::error!(%request_id, %operation, "failed to serve request: {source:#}");
                } else {
                    tracing::debug!(code = error.wire().0, "request refused");
                }
                error_response(&error, &request_id)
            }
        }
    }
    .instrument(span)
    .await
}

/// The operation named by `X-Amz-Target: TrentService.<Operation>`.
fn target_operation(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-target")?
        .to_str()
        .ok()?
        .strip_prefix("TrentService.")
}

impl Edge {
    async fn serve(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        operation: &str,
    ) -> Result<Value, ProtocolError> {
        if parts.method != Method::POST {
            return Err(ProtocolError::UnknownOperation(format!(
                "{} {} is not an operation: send AWS JSON 1.1 requests with POST to /.",
                parts.method,
                parts.uri.path()
            )));
        }
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let caller = self.auth.authenticate(parts, body, "kms", source_ip)?;
        if operation.is_empty() || !self.model.has_operation(operation) {
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            return Err(ProtocolError::UnknownOperation(format!(
                "X-Amz-Target '{target}' does not name a KMS operation: expected TrentService.<Operation>."
            )));
        }
        let fields = parse_body(body)?;
        self.model.validate(operation, &fields)?;
        dispatch::dispatch(&self.kms, &caller, operation, &fields).await
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ProtocolError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ProtocolError::Serialization(
            "The request body must be a JSON object.".to_owned(),
        )),
        Err(e) => Err(ProtocolError::Serialization(format!(
            "The request body is not valid JSON: {e}."
        ))),
    }
}

/// Request ids in UUID form: a random per-process prefix and a counter, unique without a system call per
/// request.
struct RequestIds {
    prefix: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: uuid::Uuid::new_v4().as_u64_pair().0,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.prefix.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

fn json_response(body: &Value, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}
