//! The protocol edge: AWS JSON 1.1 over HTTP for KMS, CloudHSM v2 and Secrets Manager, and the AWS Query
//! protocol for IAM and STS.
//!
//! A request is authenticated with SigV4, its `X-Amz-Target` looked up, its body validated against the
//! AWS API model, and then dispatched to the service (see `dispatch`). This is the only crate that knows
//! HTTP and JSON; `error` is the only place that knows HTTP status codes.
//!
//! **Boundary:** the service receives domain values, never JSON; responses are rendered here.

mod auth;
mod cloudhsm;
mod dispatch;
mod error;
mod network;
mod query;
mod secrets;
mod stacks;
mod trail;
mod validate;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};
use strongroom_iam::Identities;
use strongroom_service::{Caller, Error, Kms};
use tracing::Instrument;

pub use crate::auth::{
    Credentials, ON_BEHALF_OF_HEADER, ON_BEHALF_OF_TOKEN_HEADER, Principal, Regions,
};
pub use crate::network::{Cidr, NetworkContext, VpcMapping};
pub use crate::trail::OnBehalfTrail;
pub use strongroom_iam::LookupError;

use crate::auth::Authenticator;
use crate::error::{ProtocolError, error_response};
use crate::trail::Served;
use crate::validate::Model;

/// The content type of AWS JSON 1.1 requests and responses.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Requests larger than this are refused; the largest valid KMS request is far smaller.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The path of the unauthenticated no-op endpoint the benchmark uses to measure the HTTP ceiling:
/// `GET` answers an empty 200, `POST` echoes its body.
pub const NOOP_PATH: &str = "/__strongroom/noop";
/// The largest body the no-op echoes; an Encrypt request is far smaller.
const NOOP_ECHO_MAX_BYTES: usize = 64 * 1024;

struct Edge {
    request_ids: RequestIds,
    kms: Arc<Kms>,
    auth: Authenticator,
    model: Model,
    trail: Option<Trail>,
    identities: Option<Arc<Identities>>,
    cloudhsm: Option<cloudhsm::CloudHsmApi>,
    secrets: Option<secrets::SecretsApi>,
    stacks: Option<Arc<strongroom_stacks::Stacks>>,
}

/// Where the edge records every request: the audit log, and the account that receives the records of
/// requests whose account is unknown (unauthenticated ones).
pub struct Trail {
    /// The durable audit log.
    pub log: strongroom_audit::AuditLog,
    /// The server's default account.
    pub default_account: String,
}

/// The prefix of CloudTrail's JSON 1.1 targets.
const CLOUDTRAIL_TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

/// Builds the HTTP application serving the KMS API for `kms`, recording every request in `trail`, and
/// the IAM and STS APIs (AWS Query protocol) for `identities`, the CloudHSM v2 API for `cloudhsm` and the
/// Secrets Manager API for `secrets` when given.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, in the server; each argument is one API or setting it serves"
)]
pub fn router(
    kms: Arc<Kms>,
    credentials: Arc<dyn Credentials>,
    regions: Regions,
    network: NetworkContext,
    trail: Option<Trail>,
    identities: Option<Arc<Identities>>,
    cloudhsm: Option<Arc<strongroom_cloudhsm::ControlPlane>>,
    secrets: Option<Arc<strongroom_secrets::SecretsManager>>,
    stacks: Option<Arc<strongroom_stacks::Stacks>>,
) -> Router {
    let edge = Arc::new(Edge {
        request_ids: RequestIds::new(),
        kms,
        auth: Authenticator::new(credentials, regions, network),
        model: Model::kms(),
        trail,
        identities,
        cloudhsm: cloudhsm.map(cloudhsm::CloudHsmApi::new),
        secrets: secrets.map(secrets::SecretsApi::new),
        stacks,
    });
    Router::new()
        .route(
            NOOP_PATH,
            get(noop)
                .post(noop_echo)
                .layer(axum::extract::DefaultBodyLimit::max(NOOP_ECHO_MAX_BYTES)),
        )
        .fallback(handle)
        .with_state(edge)
}

/// Lets the worker thread compute every other request it has ready before this response is written.
///
/// Without it, each connection's response is written as soon as it is computed, and on a busy
/// machine nearly every write wakes a client that has gone to sleep waiting for it. With it,
/// responses leave in bursts after the batch is computed (the yield is deferred until the thread
/// has polled for I/O), so one wake-up serves several responses. On the benchmark machine this
/// raised signed Encrypts per second by 30 to 45% and lowered their p99, and left the no-op's
/// rate unchanged (docs/PERFORMANCE.md, eighth session). A lone request pays one
/// non-blocking poll for I/O, about a microsecond. The no-op endpoints take this turn too, so the
/// no-op stays a ceiling served the same way. A KMS response that waited for the audit trail's
/// flush skips it: every caller of that flush is woken at once, so those responses leave together
/// anyway.
async fn respond_in_turn() {
    tokio::task::yield_now().await;
}

async fn noop() -> StatusCode {
    respond_in_turn().await;
    StatusCode::OK
}

/// The no-op with a payload: answers a POST with its own body, so the benchmark can tell what moving
/// an Encrypt-sized request and response costs the HTTP stack, apart from what serving it costs.
async fn noop_echo(body: Bytes) -> Response {
    respond_in_turn().await;
    let mut response = Response::new(axum::body::Body::from(body));
    // Opaque bytes: never something a browser would render.
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
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
        let served = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            // IAM and STS requests are forms (AWS Query protocol), answered in XML; KMS requests are JSON.
            Ok(bytes) if query::is_query(&parts.headers) => {
                let response = query::serve(
                    edge.identities.as_ref(),
                    &edge.auth,
                    &parts,
                    &bytes,
                    &request_id,
                )
                .await;
                let (source, action) = query_event_name(&parts.headers, &bytes);
                return edge
                    .audit_other(&parts, source, &action, response, &request_id)
                    .await;
            }
            // CloudHSM v2 requests (`BaldrApiService.*`) go to the control plane.
            Ok(bytes) if cloudhsm::is_cloudhsm(&parts.headers) => {
                let response = cloudhsm::serve(
                    edge.cloudhsm.as_ref(),
                    &edge.kms,
                    &edge.auth,
                    &parts,
                    &bytes,
                    &request_id,
                )
                .await;
                let target = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let action = target.rsplit('.').next().unwrap_or_default().to_owned();
                return edge
                    .audit_other(
                        &parts,
                        "cloudhsm.amazonaws.com",
                        &action,
                        response,
                        &request_id,
                    )
                    .await;
            }
            // Secrets Manager requests (`secretsmanager.*`) go to Secrets Manager; the trail records them
            // without their parameters, so secret values never reach it.
            Ok(bytes) if secrets::is_secrets_manager(&parts.headers) => {
                let response = secrets::serve(
                    edge.secrets.as_ref(),
                    &edge.auth,
                    &parts,
                    &bytes,
                    &request_id,
                )
                .await;
                let action = secrets::operation(&parts.headers).to_owned();
                return edge
                    .audit_other(
                        &parts,
                        "secretsmanager.amazonaws.com",
                        &action,
                        response,
                        &request_id,
                    )
                    .await;
            }
            // Stack operations (`StrongroomStacks.*`) go to the stack engine, audited without parameters.
            Ok(bytes) if stacks::is_stacks(&parts.headers) => {
                let response = stacks::serve(
                    edge.stacks.as_ref(),
                    &edge.auth,
                    &parts,
                    &bytes,
                    &request_id,
                )
                .await;
                let action = stacks::operation(&parts.headers).to_owned();
                return edge
                    .audit_other(
                        &parts,
                        "stacks.strongroom.amazonaws.com",
                        &action,
                        response,
                        &request_id,
                    )
                    .await;
            }
            Ok(bytes) => edge.serve(&parts, &bytes, &operation).await,
            Err(_) => Served {
                caller: None,
                fields: None,
                result: Err(ProtocolError::Serialization(format!(
                    "The request body could not be read or is larger than {MAX_BODY_BYTES} bytes."
                ))),
            },
        };
        let mut result = served.result;
        // The event id and recipient account of a cryptographic request's audit record, for GetKeyLastUsage.
        let mut key_use_event = None;
        // Whether the request waited for the trail's flush, which already batches the responses.
        let mut waited_for_trail = false;
        if let Some(trail) = &edge.trail
            && !is_cloudtrail(&parts.headers)
        {
            let audited = Served {
                caller: served.caller,
                fields: served.fields,
                result,
            };
            let event = trail::kms_event(
                &audited,
                &parts,
                &operation,
                &request_id,
                &trail.default_account,
            );
            result = audited.result;
            if strongroom_service::last_usage::is_tracked(&operation) {
                key_use_event = Some((event.event_id.clone(), event.recipient_account_id.clone()));
            }
            // The record is durable before the response leaves: a request the trail cannot record fails.
            if let Err(e) = trail.log.record(vec![event]).await {
                result = Err(ProtocolError::Service(Error::internal(e)));
            }
            waited_for_trail = true;
        }
        if let Ok(body) = &result {
            dispatch::record_key_use(
                &edge.kms,
                &operation,
                body,
                &request_id,
                key_use_event.as_ref(),
            );
        }
        // A request that waited for the trail is woken with every other caller of the same flush,
        // so its response already leaves in a burst; another turn would only cost a poll.
        if !waited_for_trail {
            respond_in_turn().await;
        }
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

fn is_cloudtrail(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(CLOUDTRAIL_TARGET))
}

/// The event source and action of an IAM or STS (Query protocol) request.
fn query_event_name(headers: &http::HeaderMap, body: &[u8]) -> (&'static str, String) {
    let service = strongroom_sigv4::parse_authorization(headers)
        .map(|auth| auth.service)
        .unwrap_or_default();
    let source = if service == "sts" {
        "sts.amazonaws.com"
    } else {
        "iam.amazonaws.com"
    };
    let action = std::str::from_utf8(body)
        .ok()
        .and_then(|form| {
            form.split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
        })
        .unwrap_or_default()
        .to_owned();
    (source, action)
}

impl Edge {
    /// Records a request another API served, then returns its response; a request the trail cannot
    /// record fails, as KMS requests do.
    async fn audit_other(
        &self,
        parts: &http::request::Parts,
        event_source: &str,
        action: &str,
        response: Response,
        request_id: &str,
    ) -> Response {
        let Some(trail) = &self.trail else {
            return response;
        };
        let (head, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return error_response(
                &ProtocolError::Service(Error::internal(std::io::Error::other("response body"))),
                request_id,
            );
        };
        let outcome =
            match head.status.is_success() {
                true => Ok(()),
                false => Err(trail::error_code_of(&bytes)
                    .unwrap_or_else(|| head.status.as_u16().to_string())),
            };
        let caller = self.auth.identify(&parts.headers);
        let mut event = trail::other_api_event(
            parts,
            caller,
            event_source,
            action,
            outcome,
            request_id,
            &trail.default_account,
        );
        if let Some(resources) = head.extensions.get::<trail::TrailResources>() {
            event.resources = resources.0.clone();
        }
        if let Err(e) = trail.log.record(vec![event]).await {
            tracing::error!(%request_id, "failed to record an audit event: {e:#}");
            return error_response(&ProtocolError::Service(Error::internal(e)), request_id);
        }
        Response::from_parts(head, axum::body::Body::from(bytes))
    }

    /// Serves one request, keeping what the audit record needs: the caller and the parsed body.
    async fn serve(&self, parts: &http::request::Parts, body: &Bytes, operation: &str) -> Served {
        let mut served = Served {
            caller: None,
            fields: None,
            result: Ok(Value::Null),
        };
        served.result = self
            .serve_into(
                parts,
                body,
                operation,
                &mut served.caller,
                &mut served.fields,
            )
            .await;
        served
    }

    async fn serve_into(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        operation: &str,
        caller_out: &mut Option<Caller>,
        fields_out: &mut Option<Map<String, Value>>,
    ) -> Result<Value, ProtocolError> {
        if parts.method != Method::POST {
            return Err(ProtocolError::UnknownOperation(format!(
                "{} {} is not an operation: send AWS JSON 1.1 requests with POST to /.",
                parts.method,
                parts.uri.path()
            )));
        }
        if is_cloudtrail(&parts.headers) {
            return self.serve_cloudtrail(parts, body).await;
        }
        let caller = self.auth.authenticate(parts, body, "kms")?;
        let caller = caller_out.insert(caller);
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
        let fields = fields_out.insert(parse_body(body)?);
        self.model.validate(operation, fields)?;
        dispatch::dispatch(&self.kms, caller, operation, fields).await
    }

    /// CloudTrail's LookupEvents, over the same trail the KMS requests go to.
    async fn serve_cloudtrail(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
    ) -> Result<Value, ProtocolError> {
        let caller = self.auth.authenticate(parts, body, "cloudtrail")?;
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let operation = target.strip_prefix(CLOUDTRAIL_TARGET).unwrap_or_default();
        let Some(trail) = &self.trail else {
            return Err(ProtocolError::Unsupported(
                "This server keeps no audit trail.".to_owned(),
            ));
        };
        match operation {
            "LookupEvents" => trail::lookup_events(&trail.log, &caller, &parse_body(body)?).await,
            other => Err(ProtocolError::Unsupported(format!(
                "CloudTrail {other} is not supported by this Strongroom server; LookupEvents is."
            ))),
        }
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

/// The header that carries the request id in AWS JSON responses.
pub(crate) const REQUEST_ID_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-amzn-requestid");

fn json_response(body: &Value, request_id: &str) -> Response {
    // Serialized into a byte buffer, not through `Display`, which costs a formatter call per token.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(axum::body::Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}
