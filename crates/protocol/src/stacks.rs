//! Strongroom's stack operations (`X-Amz-Target: StrongroomStacks.<Operation>`, AWS JSON 1.1, SigV4
//! signing name `kms`), which `strongroom stack` sends: validate, plan, apply, describe, delete and list
//! stacks of the caller's account and Region. The server runs the steps (`strongroom_stacks`); these
//! operations only hand files over and read records.
//!
//! Stack files and records hold no secrets (files name where secrets are), and the audit trail records
//! these requests without their parameters, like the other non-KMS APIs.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use strongroom_service::Caller;
use strongroom_stacks::{Change, OnFailure, Stacks};
use strongroom_storage::stacks::StackRecord;

use crate::auth::Authenticator;
use crate::error::{ProtocolError, error_response};
use crate::wire::{Fields, timestamp};
use crate::{json_response, parse_body};

/// The prefix of the stack operations' targets.
const TARGET_PREFIX: &str = "StrongroomStacks.";

/// Whether a request is for the stack operations.
pub(crate) fn is_stacks(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// The operation a stack request names, for logs and the audit trail.
pub(crate) fn operation(headers: &http::HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
}

/// Serves one stack request and renders its answer or error.
pub(crate) async fn serve(
    stacks: Option<&Arc<Stacks>>,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
) -> Response {
    let operation = operation(&parts.headers);
    if parts.method != http::Method::POST {
        let error =
            ProtocolError::UnknownOperation("Send stack operations with POST to /.".to_owned());
        return error_response(&error, request_id);
    }
    let caller = match auth.authenticate(parts, body, "kms") {
        Ok(caller) => caller,
        Err(error) => return error_response(&error, request_id),
    };
    let Some(stacks) = stacks else {
        let error = ProtocolError::Unsupported("This server does not run stacks.".to_owned());
        return error_response(&error, request_id);
    };
    let fields = match parse_body(body) {
        Ok(fields) => fields,
        Err(error) => return error_response(&error, request_id),
    };
    match dispatch(stacks, &caller, operation, &fields).await {
        Ok(value) => json_response(&value, request_id),
        Err(error) => {
            if let strongroom_stacks::Error::Internal(source) = &error {
                tracing::error!(%request_id, %operation, "failed to serve a stack request: {source:#}");
            }
            stack_error(&error, request_id)
        }
    }
}

/// The dispatch table of the stack operations.
async fn dispatch(
    stacks: &Arc<Stacks>,
    caller: &Caller,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, strongroom_stacks::Error> {
    let f = Fields(body);
    let document = || {
        f.str("Document").ok_or_else(|| {
            strongroom_stacks::Error::Validation(
                "Document (the stack file) is required.".to_owned(),
            )
        })
    };
    let stack_name = || {
        f.str("StackName").ok_or_else(|| {
            strongroom_stacks::Error::Validation("StackName is required.".to_owned())
        })
    };
    let parameters = parameters(body)?;
    let response = match operation {
        "ValidateStack" => {
            let validated = stacks.validate(document()?, &parameters)?;
            let resources: Vec<Value> = validated
                .resources
                .iter()
                .map(|(id, detail)| json!({ "LogicalId": id, "Description": detail }))
                .collect();
            let parameters: Map<String, Value> = validated
                .parameters
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            json!({ "StackName": validated.name, "Parameters": parameters, "Resources": resources })
        }
        "PlanStack" => {
            let (name, plan) = stacks.plan(caller, document()?, &parameters).await?;
            json!({
                "StackName": name,
                "Changes": changes(&plan.changes),
                "Refusals": plan.refusals,
            })
        }
        "ApplyStack" => {
            let on_failure = match f.str("OnFailure") {
                Some(text) => text.parse()?,
                None => OnFailure::Rollback,
            };
            let applied = stacks
                .apply(caller, document()?, &parameters, on_failure)
                .await?;
            json!({
                "StackName": applied.name,
                "Status": applied.status.as_str(),
                "Changes": changes(&applied.changes),
            })
        }
        "DescribeStack" => {
            json!({ "Stack": stack_json(&stacks.describe(caller, stack_name()?).await?) })
        }
        "DeleteStack" => {
            json!({ "Stack": stack_json(&stacks.delete(caller, stack_name()?).await?) })
        }
        "ListStacks" => {
            let list: Vec<Value> = stacks
                .list(caller)
                .await?
                .iter()
                .map(|stack| {
                    json!({
                        "StackName": stack.name,
                        "Status": stack.status.as_str(),
                        "Reason": stack.reason,
                        "Updated": timestamp(stack.updated),
                    })
                })
                .collect();
            json!({ "Stacks": list })
        }
        other => {
            return Err(strongroom_stacks::Error::Validation(format!(
                "{TARGET_PREFIX}{other} is not an operation: use ValidateStack, PlanStack, ApplyStack, \
                 DescribeStack, DeleteStack or ListStacks."
            )));
        }
    };
    Ok(response)
}

/// `Parameters`: a map of parameter names to values (strings or numbers).
fn parameters(
    body: &Map<String, Value>,
) -> Result<Vec<(String, String)>, strongroom_stacks::Error> {
    let Some(given) = body.get("Parameters") else {
        return Ok(Vec::new());
    };
    let Some(map) = given.as_object() else {
        return Err(strongroom_stacks::Error::Validation(
            "Parameters must map parameter names to values.".to_owned(),
        ));
    };
    map.iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name.clone(), text.clone())),
            Value::Number(number) => Ok((name.clone(), number.to_string())),
            _ => Err(strongroom_stacks::Error::Validation(format!(
                "Parameter {name} must be a string."
            ))),
        })
        .collect()
}

fn changes(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|change| {
            json!({
                "Action": change.action.as_str(),
                "LogicalId": change.logical_id,
                "Detail": change.detail,
            })
        })
        .collect()
}

fn stack_json(stack: &StackRecord) -> Value {
    let parameters: Map<String, Value> = stack
        .parameters
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let resources: Vec<Value> = stack
        .resources
        .iter()
        .map(|resource| {
            json!({
                "LogicalId": resource.logical_id,
                "PhysicalId": resource.physical_id,
                "Retained": resource.retained,
            })
        })
        .collect();
    let steps: Vec<Value> = stack
        .steps
        .iter()
        .map(|step| {
            json!({
                "LogicalId": step.logical_id,
                "Action": step.action,
                "State": step.state.as_str(),
                "Started": step.started.map(timestamp),
                "Finished": step.finished.map(timestamp),
                "Log": step.log,
            })
        })
        .collect();
    json!({
        "StackName": stack.name,
        "Status": stack.status.as_str(),
        "Reason": stack.reason,
        "OnFailure": stack.on_failure,
        "Owner": stack.owner_arn,
        "Created": timestamp(stack.created),
        "Updated": timestamp(stack.updated),
        "Parameters": parameters,
        "Resources": resources,
        "Steps": steps,
    })
}

/// A stack error as AWS renders errors: `{"__type", "message"}` with the matching status.
fn stack_error(error: &strongroom_stacks::Error, request_id: &str) -> Response {
    let status = match error {
        strongroom_stacks::Error::NotFound(_) => StatusCode::NOT_FOUND,
        strongroom_stacks::Error::InProgress(_) => StatusCode::CONFLICT,
        strongroom_stacks::Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = match error {
        strongroom_stacks::Error::Internal(_) => {
            "The server failed to serve the request; it has been logged. Try again.".to_owned()
        }
        other => other.to_string(),
    };
    let body = json!({ "__type": error.code(), "message": message }).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::CONTENT_TYPE),
    );
    headers.insert("x-amzn-errortype", HeaderValue::from_static(error.code()));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(crate::REQUEST_ID_HEADER, value);
    }
    response
}
