//! The Secrets Manager API (`X-Amz-Target: secretsmanager.<Operation>`, AWS JSON 1.1, SigV4 signing name
//! `secretsmanager`): one dispatch table from operation to `strongroom_secrets`, and the rendering of its
//! answers in the model's shapes.
//!
//! Secret values cross this module only inside `Zeroizing` buffers on the way in; they are never logged,
//! and the audit trail records Secrets Manager requests without their parameters.

use std::sync::Arc;

use axum::response::Response;
use http::request::Parts;
use serde_json::{Map, Value, json};
use strongroom_secrets::lifecycle::{CreateSecretRequest, DeleteSecretRequest};
use strongroom_secrets::listing::{Filter, ListSecretsRequest};
use strongroom_secrets::values::{GetSecretValueRequest, PutSecretValueRequest};
use strongroom_secrets::{SecretMetadata, SecretValue, SecretsManager};
use strongroom_service::Caller;
use strongroom_types::Tag;
use zeroize::Zeroizing;

use crate::auth::Authenticator;
use crate::error::{ProtocolError, error_response};
use crate::validate::Model;
use crate::wire::{Fields, b64, timestamp};
use crate::{json_response, parse_body};

/// The prefix of Secrets Manager targets.
const TARGET_PREFIX: &str = "secretsmanager.";

/// Secrets Manager and the model its requests are validated against.
pub(crate) struct SecretsApi {
    secrets: Arc<SecretsManager>,
    model: Model,
}

impl SecretsApi {
    pub(crate) fn new(secrets: Arc<SecretsManager>) -> SecretsApi {
        SecretsApi {
            secrets,
            model: Model::secrets_manager(),
        }
    }
}

/// Whether a request is for the Secrets Manager API.
pub(crate) fn is_secrets_manager(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// The operation a Secrets Manager request names, for logs and the audit trail.
pub(crate) fn operation(headers: &http::HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
}

/// Serves one Secrets Manager request and renders its response or error.
pub(crate) async fn serve(
    api: Option<&SecretsApi>,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
) -> Response {
    let operation = operation(&parts.headers);
    match serve_result(api, auth, parts, body, operation).await {
        Ok(value) => json_response(&value, request_id),
        Err(error) => {
            match &error {
                ProtocolError::Secrets(strongroom_secrets::Error::Internal(source)) => {
                    tracing::error!(%request_id, %operation, "failed to serve Secrets Manager request: {source:#}");
                }
                _ => tracing::debug!(code = error.wire().0, "Secrets Manager request refused"),
            }
            error_response(&error, request_id)
        }
    }
}

async fn serve_result(
    api: Option<&SecretsApi>,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    operation: &str,
) -> Result<Value, ProtocolError> {
    if parts.method != http::Method::POST {
        return Err(ProtocolError::UnknownOperation(format!(
            "{} {} is not an operation: send AWS JSON 1.1 requests with POST to /.",
            parts.method,
            parts.uri.path()
        )));
    }
    let caller = auth.authenticate(parts, body, "secretsmanager")?;
    let Some(api) = api else {
        return Err(ProtocolError::Unsupported(
            "This server does not serve the Secrets Manager API.".to_owned(),
        ));
    };
    if !api.model.has_operation(operation) {
        return Err(ProtocolError::UnknownOperation(format!(
            "X-Amz-Target '{TARGET_PREFIX}{operation}' does not name a Secrets Manager operation."
        )));
    }
    let fields = parse_body(body)?;
    api.model.validate(operation, &fields)?;
    dispatch(&api.secrets, &caller, operation, &fields).await
}

/// The dispatch table: the Secrets Manager operations Strongroom serves.
async fn dispatch(
    secrets: &SecretsManager,
    caller: &Caller,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, ProtocolError> {
    let f = Fields(body);
    let secret_id = || f.str("SecretId").unwrap_or_default().to_owned();
    let response = match operation {
        "CreateSecret" => {
            let unsupported = if body.contains_key("AddReplicaRegions") {
                Some("replica Regions (AddReplicaRegions)")
            } else if body.contains_key("CrossAccountPrimaryARN") {
                Some("cross-account replicas (CrossAccountPrimaryARN)")
            } else if f.str("Type").is_some_and(|t| !t.is_empty()) {
                Some("managed external secrets (Type)")
            } else {
                None
            };
            let request = CreateSecretRequest {
                name: f.str("Name").unwrap_or_default().to_owned(),
                client_request_token: f.str("ClientRequestToken").map(str::to_owned),
                description: f.str("Description").map(str::to_owned),
                kms_key_id: f.str("KmsKeyId").map(str::to_owned),
                value: value(&f)?,
                tags: tags(body),
                unsupported,
            };
            let created = secrets
                .create_secret(caller, request)
                .await
                .map_err(ProtocolError::Secrets)?;
            let mut out = json!({ "ARN": created.arn, "Name": created.name });
            if let Some(version_id) = created.version_id {
                out["VersionId"] = json!(version_id);
            }
            out
        }
        "GetSecretValue" => {
            let request = GetSecretValueRequest {
                secret_id: secret_id(),
                version_id: f.str("VersionId").map(str::to_owned),
                version_stage: f.str("VersionStage").map(str::to_owned),
            };
            let got = secrets
                .get_secret_value(caller, request)
                .await
                .map_err(ProtocolError::Secrets)?;
            let mut out = json!({
                "ARN": got.arn,
                "Name": got.name,
                "VersionId": got.version_id,
                "VersionStages": got.version_stages,
                "CreatedDate": timestamp(got.created),
            });
            match &got.value {
                SecretValue::String(text) => out["SecretString"] = json!(text.as_str()),
                SecretValue::Binary(bytes) => out["SecretBinary"] = b64(bytes),
            }
            out
        }
        "PutSecretValue" => {
            let request = PutSecretValueRequest {
                secret_id: secret_id(),
                client_request_token: f.str("ClientRequestToken").map(str::to_owned),
                value: value(&f)?,
                version_stages: body
                    .get("VersionStages")
                    .map(|_| f.strings("VersionStages")),
            };
            let put = secrets
                .put_secret_value(caller, request)
                .await
                .map_err(ProtocolError::Secrets)?;
            json!({
                "ARN": put.arn,
                "Name": put.name,
                "VersionId": put.version_id,
                "VersionStages": put.version_stages,
            })
        }
        "DescribeSecret" => {
            let metadata = secrets
                .describe_secret(caller, &secret_id())
                .await
                .map_err(ProtocolError::Secrets)?;
            metadata_json(&metadata, "VersionIdsToStages")
        }
        "ListSecrets" => {
            let filters = match body.get("Filters") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let filter = Fields(item.as_object().unwrap_or(body));
                        Filter {
                            key: filter.str("Key").unwrap_or_default().to_owned(),
                            values: filter.strings("Values"),
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let request = ListSecretsRequest {
                include_planned_deletion: f.bool("IncludePlannedDeletion"),
                max_results: f.int("MaxResults"),
                next_token: f.str("NextToken").map(str::to_owned),
                filters,
                sort_order: f.str("SortOrder").map(str::to_owned),
                sort_by: f.str("SortBy").map(str::to_owned),
            };
            let listed = secrets
                .list_secrets(caller, request)
                .await
                .map_err(ProtocolError::Secrets)?;
            let entries: Vec<Value> = listed
                .secrets
                .iter()
                .map(|metadata| metadata_json(metadata, "SecretVersionsToStages"))
                .collect();
            let mut out = json!({ "SecretList": entries });
            if let Some(token) = listed.next_token {
                out["NextToken"] = json!(token);
            }
            out
        }
        "DeleteSecret" => {
            let request = DeleteSecretRequest {
                secret_id: secret_id(),
                recovery_window_in_days: f.int("RecoveryWindowInDays"),
                force_delete_without_recovery: body
                    .get("ForceDeleteWithoutRecovery")
                    .and_then(Value::as_bool),
            };
            let deleted = secrets
                .delete_secret(caller, request)
                .await
                .map_err(ProtocolError::Secrets)?;
            json!({
                "ARN": deleted.arn,
                "Name": deleted.name,
                "DeletionDate": timestamp(deleted.deletion_date),
            })
        }
        "RestoreSecret" => {
            let (arn, name) = secrets
                .restore_secret(caller, &secret_id())
                .await
                .map_err(ProtocolError::Secrets)?;
            json!({ "ARN": arn, "Name": name })
        }
        other => {
            return Err(ProtocolError::Unsupported(format!(
                "Secrets Manager {other} is not supported by this Strongroom server; CreateSecret, \
                 GetSecretValue, PutSecretValue, DescribeSecret, ListSecrets, DeleteSecret and RestoreSecret \
                 are."
            )));
        }
    };
    Ok(response)
}

/// The value of CreateSecret or PutSecretValue: `SecretString` or `SecretBinary`, not both.
fn value(f: &Fields<'_>) -> Result<Option<SecretValue>, ProtocolError> {
    let text = f.str("SecretString");
    let binary = f.blob("SecretBinary")?.map(Zeroizing::new);
    match (text, binary) {
        (Some(_), Some(_)) => Err(ProtocolError::Secrets(
            strongroom_secrets::Error::InvalidParameter(
                "You can't specify both a binary secret value and a string secret value in the same \
                 secret."
                    .to_owned(),
            ),
        )),
        (Some(text), None) => Ok(Some(SecretValue::String(Zeroizing::new(text.to_owned())))),
        (None, Some(bytes)) => Ok(Some(SecretValue::Binary(bytes))),
        (None, None) => Ok(None),
    }
}

/// Secrets Manager's tags: `[{"Key": ..., "Value": ...}]`.
fn tags(body: &Map<String, Value>) -> Vec<Tag> {
    let Some(Value::Array(items)) = body.get("Tags") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            Some(Tag {
                key: item.get("Key")?.as_str()?.to_owned(),
                value: item
                    .get("Value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

/// A secret's metadata as DescribeSecret (`VersionIdsToStages`) and ListSecrets
/// (`SecretVersionsToStages`) render it.
fn metadata_json(metadata: &SecretMetadata, stages_member: &str) -> Value {
    let mut out = Map::new();
    out.insert("ARN".to_owned(), json!(metadata.arn));
    out.insert("Name".to_owned(), json!(metadata.name));
    if let Some(description) = &metadata.description {
        out.insert("Description".to_owned(), json!(description));
    }
    if let Some(key) = &metadata.kms_key_id {
        out.insert("KmsKeyId".to_owned(), json!(key));
    }
    out.insert("CreatedDate".to_owned(), timestamp(metadata.created));
    out.insert(
        "LastChangedDate".to_owned(),
        timestamp(metadata.last_changed),
    );
    if let Some(accessed) = metadata.last_accessed {
        out.insert("LastAccessedDate".to_owned(), timestamp(accessed));
    }
    if let Some(deleted) = metadata.deleted_date {
        out.insert("DeletedDate".to_owned(), timestamp(deleted));
    }
    if !metadata.tags.is_empty() {
        let tags: Vec<Value> = metadata
            .tags
            .iter()
            .map(|tag| json!({ "Key": tag.key, "Value": tag.value }))
            .collect();
        out.insert("Tags".to_owned(), Value::Array(tags));
    }
    let stages: Map<String, Value> = metadata
        .version_stages
        .iter()
        .map(|(version_id, stages)| (version_id.clone(), json!(stages)))
        .collect();
    out.insert(stages_member.to_owned(), Value::Object(stages));
    Value::Object(out)
}
