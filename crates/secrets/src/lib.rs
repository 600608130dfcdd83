//! Secrets Manager over Strongroom's KMS: secrets whose every value is envelope-encrypted under a KMS key.
//!
//! This crate knows nothing of HTTP, JSON or SQL. Each operation is a method of [`SecretsManager`] with the
//! service's one shape, `async fn op(&self, caller: &Caller, req: OpRequest) -> Result<OpResponse, Error>`,
//! grouped by domain: [`lifecycle`] (CreateSecret, DeleteSecret, RestoreSecret), [`values`]
//! (GetSecretValue, PutSecretValue) and [`listing`] (DescribeSecret, ListSecrets).
//!
//! A value is sealed under a fresh data key from KMS GenerateDataKey, bound to the secret's ARN and version
//! id in the encryption context; only the encrypted data key and the sealed value are stored. The KMS is
//! called in-process as the caller, through Secrets Manager (`kms:ViaService`), so key policies see what
//! AWS KMS would see; the AWS managed key `alias/aws/secretsmanager` is created on first use.
//!
//! **Invariant:** every operation checks the caller's IAM policies for its `secretsmanager:` action after
//! resolving the secret and before acting on it; a caller not allowed to learn whether a secret exists is
//! refused before being told it does not.
//! **Invariant:** every write to a secret happens under `SecretsManager::writes`, reading the record again
//! inside it; secret values are never logged.

mod authz;
mod envelope;
mod error;
pub mod lifecycle;
pub mod listing;
pub mod values;

use std::sync::Arc;

use strongroom_iam::Identities;
use strongroom_service::{Caller, Kms};
use strongroom_storage::secrets::{SecretRecord, SecretStore};
use strongroom_types::{Namespace, Tag, Timestamp};
use zeroize::Zeroizing;

pub use crate::error::Error;

/// The staging label of a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of the version that was current before it.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The alias of the AWS managed key that protects secrets created without a `KmsKeyId`.
pub const MANAGED_KEY_ALIAS: &str = "alias/aws/secretsmanager";

/// A secret's value: text or bytes, wiped when dropped.
pub enum SecretValue {
    /// `SecretString`.
    String(Zeroizing<String>),
    /// `SecretBinary`.
    Binary(Zeroizing<Vec<u8>>),
}

impl SecretValue {
    fn bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(text) => text.as_bytes(),
            SecretValue::Binary(bytes) => bytes,
        }
    }

    fn kind(&self) -> strongroom_storage::secrets::SecretKind {
        match self {
            SecretValue::String(_) => strongroom_storage::secrets::SecretKind::String,
            SecretValue::Binary(_) => strongroom_storage::secrets::SecretKind::Binary,
        }
    }

    /// Whether two values are the same kind and bytes, compared in time independent of where they differ.
    fn same_as(&self, other: &SecretValue) -> bool {
        let (left, right) = (self.bytes(), other.bytes());
        let differences = left
            .iter()
            .zip(right)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        self.kind() == other.kind() && left.len() == right.len() && differences == 0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretValue::String(***)"),
            SecretValue::Binary(_) => f.write_str("SecretValue::Binary(***)"),
        }
    }
}

/// What DescribeSecret and ListSecrets show of a secret: everything but its values.
#[derive(Debug, Clone)]
pub struct SecretMetadata {
    /// The secret's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// The KMS key reference given at creation; `None` for the AWS managed key.
    pub kms_key_id: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub last_changed: Timestamp,
    /// The day a value was last read, if ever.
    pub last_accessed: Option<Timestamp>,
    /// When it will be deleted, if scheduled for deletion.
    pub deleted_date: Option<Timestamp>,
    /// Its tags.
    pub tags: Vec<Tag>,
    /// Each version that has staging labels, with its labels, oldest first.
    pub version_stages: Vec<(String, Vec<String>)>,
}

impl SecretMetadata {
    fn of(record: &SecretRecord) -> SecretMetadata {
        SecretMetadata {
            arn: record.arn(),
            name: record.name.clone(),
            description: record.description.clone(),
            kms_key_id: record.kms_key_id.clone(),
            created: record.created,
            last_changed: record.last_changed,
            last_accessed: record.last_accessed,
            deleted_date: record.deletion_date,
            tags: record.tags.clone(),
            version_stages: record
                .versions
                .iter()
                .filter(|version| !version.stages.is_empty())
                .map(|version| (version.version_id.clone(), version.stages.clone()))
                .collect(),
        }
    }
}

/// Secrets Manager; one per server, shared by every request.
pub struct SecretsManager {
    kms: Arc<Kms>,
    store: Arc<dyn SecretStore>,
    identities: Option<Arc<Identities>>,
    /// Serializes writes to secrets so read-modify-write sequences never interleave.
    writes: tokio::sync::Mutex<()>,
}

impl SecretsManager {
    /// Builds Secrets Manager over the KMS that protects its values and the storage of its secrets.
    pub fn new(kms: Arc<Kms>, store: Arc<dyn SecretStore>) -> SecretsManager {
        SecretsManager {
            kms,
            store,
            identities: None,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Lets authorization consult IAM identity policies; without it every caller is an account root.
    pub fn with_identities(mut self, identities: Arc<Identities>) -> SecretsManager {
        self.identities = Some(identities);
        self
    }

    fn now(&self) -> Timestamp {
        self.kms.clock().now()
    }

    /// Deletes every secret whose recovery window has ended; returns how many. The server calls it
    /// periodically; a request that touches such a secret deletes it first too.
    pub async fn delete_due_secrets(&self) -> Result<usize, Error> {
        let due = self.store.secrets_due(self.now()).await?;
        let mut deleted = 0;
        for (namespace, name) in due {
            let _writes = self.writes.lock().await;
            if self.load_locked(&namespace, &name).await?.is_none() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Reads a secret, deleting it instead if its recovery window has ended; the caller holds `writes`.
    async fn load_locked(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<SecretRecord>, Error> {
        let Some(record) = self.store.secret(namespace, name).await? else {
            return Ok(None);
        };
        match record.deletion_date {
            Some(date) if date <= self.now() => {
                self.store.delete_secret(namespace, name).await?;
                tracing::info!(
                    "deleted secret {} at the end of its recovery window",
                    record.arn()
                );
                Ok(None)
            }
            _ => Ok(Some(record)),
        }
    }

    /// Reads a secret without the lock, deleting it first if its recovery window has ended.
    async fn load(&self, namespace: &Namespace, name: &str) -> Result<Option<SecretRecord>, Error> {
        let Some(record) = self.store.secret(namespace, name).await? else {
            return Ok(None);
        };
        match record.deletion_date {
            Some(date) if date <= self.now() => {
                let _writes = self.writes.lock().await;
                self.load_locked(namespace, name).await
            }
            _ => Ok(Some(record)),
        }
    }

    /// Finds the secret a `SecretId` names (a name, a full ARN, or an ARN without its random suffix) and
    /// checks the caller may perform `action` on it.
    ///
    /// A secret that does not exist is reported only to callers allowed `action` on what they named.
    async fn resolve(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
    ) -> Result<SecretRecord, Error> {
        let found = self.find(caller, secret_id).await?;
        match found {
            Some(record) => {
                self.authorize(caller, action, &record.arn(), Some(&record))?;
                Ok(record)
            }
            None => {
                let resource = match secret_id.starts_with("arn:") {
                    true => secret_id.to_owned(),
                    false => format!(
                        "arn:aws:secretsmanager:{}:{}:secret:{secret_id}",
                        caller.namespace.region, caller.namespace.account
                    ),
                };
                self.authorize(caller, action, &resource, None)?;
                Err(not_found())
            }
        }
    }

    async fn find(&self, caller: &Caller, secret_id: &str) -> Result<Option<SecretRecord>, Error> {
        let namespace = &caller.namespace;
        let Some(rest) = secret_id.strip_prefix("arn:") else {
            return self.load(namespace, secret_id).await;
        };
        let prefix = format!(
            "aws:secretsmanager:{}:{}:secret:",
            namespace.region, namespace.account
        );
        // Another account's or Region's secret is not found here: there are no resource policies.
        let Some(full_name) = rest.strip_prefix(&prefix) else {
            return Ok(None);
        };
        // A full ARN ends with `-` and six random characters; without them it is a partial ARN.
        if let Some((name, suffix)) = full_name.rsplit_once('-')
            && suffix.len() == 6
            && let Some(record) = self.load(namespace, name).await?
            && record.arn_suffix == suffix
        {
            return Ok(Some(record));
        }
        self.load(namespace, full_name).await
    }

    /// Reads a resolved secret again under the write lock; `ResourceNotFoundException` if it was deleted
    /// (or deleted and re-created) in between.
    async fn reload_locked(&self, resolved: &SecretRecord) -> Result<SecretRecord, Error> {
        match self
            .load_locked(&resolved.namespace, &resolved.name)
            .await?
        {
            Some(record) if record.arn_suffix == resolved.arn_suffix => Ok(record),
            _ => Err(not_found()),
        }
    }
}

fn not_found() -> Error {
    Error::ResourceNotFound("Secrets Manager can't find the specified secret.".to_owned())
}

fn marked_for_deletion() -> Error {
    Error::InvalidRequest(
        "You can't perform this operation on the secret because it was marked for deletion."
            .to_owned(),
    )
}

#[cfg(test)]
mod tests;
