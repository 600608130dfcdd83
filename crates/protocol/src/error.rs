//! Errors on the wire: the one place that knows each AWS error's `__type` and HTTP status.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use strongroom_service::Error;
use strongroom_sigv4::Sigv4Error;

/// Failures found at the protocol edge, before a request reaches the service.
#[derive(Debug)]
pub(crate) enum ProtocolError {
    /// The body is not JSON of the right types (`SerializationException`).
    Serialization(String),
    /// Model constraints violated (`ValidationException`).
    Validation(String),
    /// `X-Amz-Target` names no operation of the service (`UnknownOperationException`).
    UnknownOperation(String),
    /// A KMS operation this server does not implement yet (`UnsupportedOperationException`).
    Unsupported(String),
    /// No `Authorization` header (`MissingAuthenticationTokenException`).
    MissingAuthenticationToken,
    /// A malformed `Authorization` header (`IncompleteSignatureException`).
    IncompleteSignature(String),
    /// A signature that does not verify, an expired one, or a wrong scope (`InvalidSignatureException`).
    InvalidSignature(String),
    /// An access key the server does not know (`UnrecognizedClientException`).
    UnrecognizedClient,
    /// Temporary credentials whose session has ended (`ExpiredTokenException`).
    ExpiredToken,
    /// A CloudTrail API error: its `__type` and message.
    CloudTrail(&'static str, String),
    /// An error from the CloudHSM control plane.
    CloudHsm(strongroom_cloudhsm::Error),
    /// An error from Secrets Manager.
    Secrets(strongroom_secrets::Error),
    /// An error from the service.
    Service(Error),
}

impl From<Error> for ProtocolError {
    fn from(e: Error) -> ProtocolError {
        ProtocolError::Service(e)
    }
}

impl From<Sigv4Error> for ProtocolError {
    fn from(e: Sigv4Error) -> ProtocolError {
        match e {
            Sigv4Error::MissingAuthenticationToken => ProtocolError::MissingAuthenticationToken,
            Sigv4Error::IncompleteSignature(message) => ProtocolError::IncompleteSignature(message),
            Sigv4Error::InvalidSignature(message) | Sigv4Error::SignatureExpired(message) => {
                ProtocolError::InvalidSignature(message)
            }
        }
    }
}

impl ProtocolError {
    /// The `__type`, HTTP status and message sent to the client.
    pub(crate) fn wire(&self) -> (&'static str, StatusCode, String) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            ProtocolError::Serialization(m) => ("SerializationException", bad, m.clone()),
            ProtocolError::Validation(m) => ("ValidationException", bad, m.clone()),
            ProtocolError::UnknownOperation(m) => ("UnknownOperationException", bad, m.clone()),
            ProtocolError::Unsupported(m) => ("UnsupportedOperationException", bad, m.clone()),
            ProtocolError::MissingAuthenticationToken => (
                "MissingAuthenticationTokenException",
                StatusCode::FORBIDDEN,
                "Missing Authentication Token: sign the request with AWS Signature Version 4."
                    .to_owned(),
            ),
            ProtocolError::IncompleteSignature(m) => {
                ("IncompleteSignatureException", bad, m.clone())
            }
            ProtocolError::InvalidSignature(m) => ("InvalidSignatureException", bad, m.clone()),
            ProtocolError::UnrecognizedClient => (
                "UnrecognizedClientException",
                bad,
                "The security token included in the request is invalid.".to_owned(),
            ),
            ProtocolError::CloudTrail(code, m) => (code, bad, m.clone()),
            ProtocolError::ExpiredToken => (
                "ExpiredTokenException",
                bad,
                "The security token included in the request is expired".to_owned(),
            ),
            ProtocolError::CloudHsm(e) => {
                let status = match e {
                    strongroom_cloudhsm::Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => bad,
                };
                (e.code(), status, e.public_message())
            }
            ProtocolError::Secrets(e) => match e {
                // Internal details stay in the server log.
                strongroom_secrets::Error::Internal(_) => (
                    e.code(),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The request failed because of an internal error in Strongroom; it has been logged. Try \
                     again."
                        .to_owned(),
                ),
                other => (other.code(), bad, other.to_string()),
            },
            ProtocolError::Service(e) => {
                let status = match e {
                    Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => bad,
                };
                (e.code(), status, e.public_message())
            }
        }
    }
}

/// Renders an error as AWS does: `{"__type": ..., "message": ...}` with the matching status.
pub(crate) fn error_response(error: &ProtocolError, request_id: &str) -> Response {
    let (code, status, message) = error.wire();
    // Secrets Manager's error shapes spell the member `Message`; KMS's, `message`.
    let message_member = match error {
        ProtocolError::Secrets(_) => "Message",
        _ => "message",
    };
    let mut fields = serde_json::Map::new();
    fields.insert("__type".to_owned(), code.into());
    fields.insert(message_member.to_owned(), message.into());
    let body = serde_json::Value::Object(fields).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::CONTENT_TYPE),
    );
    headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(crate::REQUEST_ID_HEADER, value);
    }
    response
}
