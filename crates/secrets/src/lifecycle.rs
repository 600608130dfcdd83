//! A secret's life: CreateSecret, DeleteSecret (after a recovery window, or at once) and RestoreSecret.

use strongroom_service::Caller;
use strongroom_storage::StoreError;
use strongroom_storage::secrets::{SecretRecord, SecretVersionInfo};
use strongroom_types::{Tag, Timestamp};

use crate::{
    AWSCURRENT, Error, MANAGED_KEY_ALIAS, SecretValue, SecretsManager, marked_for_deletion,
};

/// The recovery window when DeleteSecret names none.
pub const DEFAULT_RECOVERY_WINDOW_DAYS: i64 = 30;

/// CreateSecret's parameters.
#[derive(Debug, Default)]
pub struct CreateSecretRequest {
    /// The name: ASCII letters, digits and `/_+=.@-`.
    pub name: String,
    /// The id of the first version; a fresh UUID when absent.
    pub client_request_token: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// The KMS key (id, ARN, alias or alias ARN); the AWS managed key when absent.
    pub kms_key_id: Option<String>,
    /// The first version's value; no version is made without one.
    pub value: Option<SecretValue>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Whether the request asked for something this server does not do (replica Regions, a cross-account
    /// primary, a partner type); refused.
    pub unsupported: Option<&'static str>,
}

/// CreateSecret's result.
#[derive(Debug)]
pub struct CreateSecretResponse {
    /// The new secret's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The first version's id, when a value was given.
    pub version_id: Option<String>,
}

/// DeleteSecret's parameters.
#[derive(Debug, Default)]
pub struct DeleteSecretRequest {
    /// The secret, by name or ARN.
    pub secret_id: String,
    /// Days from 7 to 30 before the secret is deleted; 30 when absent.
    pub recovery_window_in_days: Option<i64>,
    /// Delete at once, without a recovery window.
    pub force_delete_without_recovery: Option<bool>,
}

/// DeleteSecret's result.
#[derive(Debug)]
pub struct DeleteSecretResponse {
    /// The secret's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// When it will be (or was) deleted.
    pub deletion_date: Timestamp,
}

/// Whether `name` uses only the characters Secrets Manager allows in names.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
}

/// Six random letters and digits, the end of a secret's ARN.
fn arn_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    strongroom_keystore::random_bytes(6)
        .into_iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]))
        .collect()
}

/// A fresh version id: a random UUID.
pub(crate) fn new_version_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl SecretsManager {
    /// CreateSecret: a new secret, with its first version when a value is given.
    pub async fn create_secret(
        &self,
        caller: &Caller,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, Error> {
        if let Some(what) = req.unsupported {
            return Err(Error::InvalidRequest(format!(
                "This Strongroom server does not support {what}."
            )));
        }
        if !valid_name(&req.name) {
            return Err(Error::InvalidParameter(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any of the \
                 following: -/_+=.@!"
                    .to_owned(),
            ));
        }
        let namespace = caller.namespace.clone();
        let version_id = req
            .client_request_token
            .clone()
            .unwrap_or_else(new_version_id);
        let kms_key_id = match req.kms_key_id.as_deref() {
            None | Some("") | Some(MANAGED_KEY_ALIAS) => None,
            Some(key) => Some(key.to_owned()),
        };
        let now = self.now();
        let mut record = SecretRecord {
            namespace: namespace.clone(),
            name: req.name.clone(),
            arn_suffix: arn_suffix(),
            description: req.description.clone(),
            kms_key_id,
            created: now,
            last_changed: now,
            last_accessed: None,
            deletion_date: None,
            tags: req.tags.clone(),
            versions: Vec::new(),
        };

        let _writes = self.writes.lock().await;
        if let Some(existing) = self.load_locked(&namespace, &req.name).await? {
            let arn = existing.arn();
            self.authorize(caller, "secretsmanager:CreateSecret", &arn, Some(&existing))?;
            if existing.deletion_date.is_some() {
                return Err(Error::InvalidRequest(
                    "You can't create this secret because a secret with this name is already scheduled for \
                     deletion."
                        .to_owned(),
                ));
            }
            // A retry with the token and value of the first attempt succeeds without doing anything.
            if let (Some(token), Some(value)) = (&req.client_request_token, &req.value)
                && existing.versions.iter().any(|v| &v.version_id == token)
                && self.same_value(caller, &existing, token, value).await?
            {
                return Ok(CreateSecretResponse {
                    arn,
                    name: existing.name,
                    version_id: Some(token.clone()),
                });
            }
            return Err(Error::ResourceExists(format!(
                "The operation failed because the secret {} already exists.",
                req.name
            )));
        }
        let arn = record.arn();
        self.authorize(caller, "secretsmanager:CreateSecret", &arn, Some(&record))?;
        if !record.tags.is_empty() {
            self.authorize(caller, "secretsmanager:TagResource", &arn, Some(&record))?;
        }
        let sealed = match &req.value {
            None => None,
            Some(value) => {
                let key = record.kms_key_id.as_deref().unwrap_or(MANAGED_KEY_ALIAS);
                let sealed = self.seal(caller, key, &arn, &version_id, value).await?;
                record.versions.push(SecretVersionInfo {
                    version_id: version_id.clone(),
                    created: now,
                    stages: vec![AWSCURRENT.to_owned()],
                });
                Some(sealed)
            }
        };
        match self.store.insert_secret(&record, sealed.as_ref()).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(Error::ResourceExists(format!(
                    "The operation failed because the secret {} already exists.",
                    req.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!("created secret {arn}");
        Ok(CreateSecretResponse {
            arn,
            name: record.name,
            version_id: sealed.map(|_| version_id),
        })
    }

    /// DeleteSecret: schedules the secret's deletion after a recovery window, or deletes it at once.
    pub async fn delete_secret(
        &self,
        caller: &Caller,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, Error> {
        let force = req.force_delete_without_recovery == Some(true);
        let days = match (force, req.recovery_window_in_days) {
            (true, Some(_)) => {
                return Err(Error::InvalidParameter(
                    "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
                        .to_owned(),
                ));
            }
            (true, None) => 0,
            (false, None) => DEFAULT_RECOVERY_WINDOW_DAYS,
            (false, Some(days @ 7..=30)) => days,
            (false, Some(_)) => {
                return Err(Error::InvalidParameter(
                    "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
                        .to_owned(),
                ));
            }
        };
        let action = "secretsmanager:DeleteSecret";
        let resolved = match self.resolve(caller, &req.secret_id, action).await {
            Ok(record) => record,
            // Forcing the deletion of a secret that does not exist succeeds, as in AWS.
            Err(Error::ResourceNotFound(_)) if force => {
                let name = match req.secret_id.rsplit_once(":secret:") {
                    Some((_, name)) => name.to_owned(),
                    None => req.secret_id.clone(),
                };
                let arn = match req.secret_id.starts_with("arn:") {
                    true => req.secret_id.clone(),
                    false => format!(
                        "arn:aws:secretsmanager:{}:{}:secret:{name}",
                        caller.namespace.region, caller.namespace.account
                    ),
                };
                return Ok(DeleteSecretResponse {
                    arn,
                    name,
                    deletion_date: self.now(),
                });
            }
            Err(e) => return Err(e),
        };
        let _writes = self.writes.lock().await;
        let mut record = self.reload_locked(&resolved).await?;
        let arn = record.arn();
        let now = self.now();
        if force {
            self.store
                .delete_secret(&record.namespace, &record.name)
                .await?;
            tracing::info!("deleted secret {arn} without recovery");
            return Ok(DeleteSecretResponse {
                arn,
                name: record.name,
                deletion_date: now,
            });
        }
        if record.deletion_date.is_some() {
            return Err(Error::InvalidRequest(
                "You can't perform this operation on the secret because it was already scheduled for \
                 deletion."
                    .to_owned(),
            ));
        }
        let deletion_date = now.plus_days(days as u32);
        record.deletion_date = Some(deletion_date);
        self.store.put_secret(&record, None).await?;
        tracing::info!("scheduled secret {arn} for deletion in {days} days");
        Ok(DeleteSecretResponse {
            arn,
            name: record.name,
            deletion_date,
        })
    }

    /// RestoreSecret: cancels a scheduled deletion; a secret not scheduled for deletion is left as it is.
    pub async fn restore_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<(String, String), Error> {
        let resolved = self
            .resolve(caller, secret_id, "secretsmanager:RestoreSecret")
            .await?;
        let _writes = self.writes.lock().await;
        let mut record = self.reload_locked(&resolved).await?;
        if record.deletion_date.take().is_some() {
            record.last_changed = self.now();
            self.store.put_secret(&record, None).await?;
            tracing::info!("restored secret {}", record.arn());
        }
        Ok((record.arn(), record.name))
    }

    /// Whether version `version_id` of `secret` holds `value`; decrypts it to compare.
    pub(crate) async fn same_value(
        &self,
        caller: &Caller,
        secret: &SecretRecord,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<bool, Error> {
        let Some(stored) = self
            .store
            .secret_value(&secret.namespace, &secret.name, version_id)
            .await?
        else {
            return Ok(false);
        };
        let existing = self.open(caller, &secret.arn(), &stored).await?;
        Ok(existing.same_as(value))
    }
}

/// Refuses an operation on a secret scheduled for deletion.
pub(crate) fn check_not_deleted(record: &SecretRecord) -> Result<(), Error> {
    match record.deletion_date {
        Some(_) => Err(marked_for_deletion()),
        None => Ok(()),
    }
}
