//! Reading the secrets a step needs from where the stack file says they are.
//!
//! Secrets Manager secrets are read as the stack's owner, through `GetSecretValue`, so the owner's
//! policies and the secret's KMS key decide; files and environment variables are the server's own.
//! A value lives only in a `Zeroizing` buffer for the length of the step; errors name where the secret
//! was looked for, never its value.

use strongroom_secrets::values::GetSecretValueRequest;
use strongroom_secrets::{SecretValue, SecretsManager};
use strongroom_service::Caller;
use zeroize::Zeroizing;

use crate::file::SecretRef;

/// Reads the secret `source` names; `what` says what it is for, in error messages.
pub(crate) async fn read(
    secrets: &SecretsManager,
    caller: &Caller,
    source: &SecretRef,
    what: &str,
) -> Result<Zeroizing<String>, String> {
    let value = match source {
        SecretRef::Secret(name) => {
            let request = GetSecretValueRequest {
                secret_id: name.clone(),
                ..GetSecretValueRequest::default()
            };
            let answer = secrets
                .get_secret_value(caller, request)
                .await
                .map_err(|e| format!("cannot read the {what} from secret {name}: {}: {e}", e.code()))?;
            match answer.value {
                SecretValue::String(text) => text,
                SecretValue::Binary(bytes) => {
                    Zeroizing::new(String::from_utf8(bytes.to_vec()).map_err(|_| {
                        format!("the {what} in secret {name} is binary, not text")
                    })?)
                }
            }
        }
        SecretRef::File(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the {what} from file {path} on the server: {e}"))?,
        ),
        SecretRef::Env(name) => Zeroizing::new(std::env::var(name).map_err(|_| {
            format!("the {what} is to come from environment variable {name}, which the server process does not have")
        })?),
    };
    let trimmed = value.strip_suffix('\n').unwrap_or(&value);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(format!("the {what} in {source} is empty"));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}
