//! Durable storage of keys, aliases and server settings.
//!
//! The service sees only the [`Store`] trait; the SQLite backend in [`sqlite`] is the embedded default and a
//! PostgreSQL backend will implement the same trait.
//! Every backend passes the same conformance suite (`strongroom_test_support::check_store`).
//!
//! **Invariant:** a method returns only after its write is durable: an acknowledged write survives `kill -9`.
//! **Invariant:** key material reaches storage only wrapped by the key store's root key.

pub mod clusters;
mod grants;
mod identities;
pub mod key_stores;
pub mod key_usage;
pub mod multi_region;
pub mod secrets;
pub mod sqlite;
pub mod stacks;

use async_trait::async_trait;
use strongroom_types::{AliasName, AliasRecord, KeyId, KeyRecord, Namespace, Timestamp};

pub use crate::grants::GrantStore;
pub use crate::identities::{IdentitySnapshot, IdentityStore};

/// What can go wrong in storage; the service maps these to AWS errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with this identity exists already (a key id, or an alias name in its namespace).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The record to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The backend failed: I/O, corruption, a lost connection.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Durable storage, shared by every request; held as `Arc<dyn Store>`.
///
/// Key records are written whole: `put_key` replaces the metadata, materials and tags of a key at once,
/// so a reader never sees half of an update.
#[async_trait]
pub trait Store:
    GrantStore + multi_region::MultiRegionStore + key_usage::KeyUsageStore + Send + Sync + 'static
{
    /// Adds a new key; `AlreadyExists` if its id is taken in its namespace.
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// Replaces an existing key record whole; `NotFound` if it does not exist.
    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// Reads one key.
    async fn key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Deletes a key together with every alias that points at it; `NotFound` if it does not exist.
    async fn delete_key(&self, namespace: &Namespace, key_id: &KeyId) -> Result<(), StoreError>;

    /// Key ids of a namespace in ascending order, starting after `after`, at most `limit` of them.
    async fn list_keys(
        &self,
        namespace: &Namespace,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyId>, StoreError>;

    /// Keys in any namespace with scheduled work due at or before `now`: a deletion date or a next
    /// automatic rotation that has passed.
    async fn keys_due(&self, now: Timestamp) -> Result<Vec<(Namespace, KeyId)>, StoreError>;

    /// Adds an alias; `AlreadyExists` if the name is taken in its namespace.
    async fn insert_alias(&self, alias: &AliasRecord) -> Result<(), StoreError>;

    /// Replaces an existing alias (its target and update time); `NotFound` if it does not exist.
    async fn put_alias(&self, alias: &AliasRecord) -> Result<(), StoreError>;

    /// Deletes an alias; `NotFound` if it does not exist.
    async fn delete_alias(&self, namespace: &Namespace, name: &AliasName)
    -> Result<(), StoreError>;

    /// Reads one alias.
    async fn alias(
        &self,
        namespace: &Namespace,
        name: &AliasName,
    ) -> Result<Option<AliasRecord>, StoreError>;

    /// Aliases of a namespace in ascending name order, optionally only those pointing at `target`,
    /// starting after `after`, at most `limit` of them.
    async fn list_aliases(
        &self,
        namespace: &Namespace,
        target: Option<&KeyId>,
        after: Option<&AliasName>,
        limit: usize,
    ) -> Result<Vec<AliasRecord>, StoreError>;

    /// Reads a server setting (for example the wrapped administrator credentials).
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes a server setting, replacing any previous value.
    async fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}
