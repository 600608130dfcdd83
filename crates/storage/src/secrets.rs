//! Durable storage of Secrets Manager secrets: their metadata, tags, versions and staging labels.
//!
//! A secret's record ([`SecretRecord`]) is small and written whole, with the list of its versions and their
//! staging labels; each version's encrypted value ([`SecretValueRecord`]) is written once, when the version
//! is made, and read only when a caller asks for that version.
//!
//! **Invariant:** a value reaches storage only envelope-encrypted: a KMS ciphertext of a data key, and the
//! value sealed under that data key. The store never sees a plaintext.

use async_trait::async_trait;
use strongroom_types::{Namespace, Tag, Timestamp};

use crate::StoreError;

/// Whether a version holds text (`SecretString`) or bytes (`SecretBinary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Set with `SecretString`; returned as `SecretString`.
    String,
    /// Set with `SecretBinary`; returned as `SecretBinary`.
    Binary,
}

impl SecretKind {
    /// The spelling kept in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::String => "STRING",
            SecretKind::Binary => "BINARY",
        }
    }
}

impl std::str::FromStr for SecretKind {
    type Err = String;

    fn from_str(text: &str) -> Result<SecretKind, String> {
        match text {
            "STRING" => Ok(SecretKind::String),
            "BINARY" => Ok(SecretKind::Binary),
            other => Err(format!("unknown secret kind '{other}'")),
        }
    }
}

/// One version of a secret as its record lists it: enough to answer DescribeSecret without the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionInfo {
    /// The version id (the ClientRequestToken that made it, or a fresh UUID).
    pub version_id: String,
    /// When the version was made.
    pub created: Timestamp,
    /// Its staging labels (`AWSCURRENT`, `AWSPREVIOUS`, custom ones); each label is on at most one version.
    pub stages: Vec<String>,
}

/// A secret's metadata and its versions, without their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The secret's account and Region.
    pub namespace: Namespace,
    /// The name, unique in its namespace (scheduled deletions included).
    pub name: String,
    /// The six random characters that end the ARN, so a re-created name gets a new ARN.
    pub arn_suffix: String,
    /// The description, if any.
    pub description: Option<String>,
    /// The KMS key reference given at creation; `None` for the AWS managed key `alias/aws/secretsmanager`.
    pub kms_key_id: Option<String>,
    /// When the secret was created.
    pub created: Timestamp,
    /// When the secret last changed in any way.
    pub last_changed: Timestamp,
    /// The day a value was last read, if ever.
    pub last_accessed: Option<Timestamp>,
    /// When the secret will be deleted, if it is scheduled for deletion.
    pub deletion_date: Option<Timestamp>,
    /// Tags, in the order given.
    pub tags: Vec<Tag>,
    /// Every version the secret keeps, oldest first.
    pub versions: Vec<SecretVersionInfo>,
}

impl SecretRecord {
    /// The secret's ARN: `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{}-{}",
            self.namespace.region, self.namespace.account, self.name, self.arn_suffix
        )
    }
}

/// One version's encrypted value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValueRecord {
    /// The version it belongs to.
    pub version_id: String,
    /// Text or bytes.
    pub kind: SecretKind,
    /// The KMS key that encrypted the data key.
    pub key_arn: String,
    /// The data key, as KMS ciphertext.
    pub encrypted_data_key: Vec<u8>,
    /// The value sealed under the data key.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SecretValueRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValueRecord")
            .field("version_id", &self.version_id)
            .field("kind", &self.kind)
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// Durable storage of secrets; the SQLite backend implements it beside [`crate::Store`].
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Adds a secret and, when given, the value of its one version; `AlreadyExists` if the name is taken.
    async fn insert_secret(
        &self,
        secret: &SecretRecord,
        value: Option<&SecretValueRecord>,
    ) -> Result<(), StoreError>;

    /// Replaces a secret's record whole in one transaction: metadata, tags, versions and labels.
    /// `value`, when given, is the value of a version the record lists for the first time; versions the
    /// record no longer lists are deleted with their values. `NotFound` if the secret does not exist, or if
    /// the record lists a version that has no value.
    async fn put_secret(
        &self,
        secret: &SecretRecord,
        value: Option<&SecretValueRecord>,
    ) -> Result<(), StoreError>;

    /// Reads one secret's record.
    async fn secret(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError>;

    /// Reads one version's encrypted value.
    async fn secret_value(
        &self,
        namespace: &Namespace,
        name: &str,
        version_id: &str,
    ) -> Result<Option<SecretValueRecord>, StoreError>;

    /// Every secret of a namespace, in ascending name order.
    async fn list_secrets(&self, namespace: &Namespace) -> Result<Vec<SecretRecord>, StoreError>;

    /// Deletes a secret with all its versions; `NotFound` if it does not exist.
    async fn delete_secret(&self, namespace: &Namespace, name: &str) -> Result<(), StoreError>;

    /// Secrets in any namespace whose deletion date is at or before `now`.
    async fn secrets_due(&self, now: Timestamp) -> Result<Vec<(Namespace, String)>, StoreError>;
}
