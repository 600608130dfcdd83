//! Durable storage of KMS custom key stores (AWS_CLOUDHSM type) and of which keys live in each.
//!
//! The store keeps each record whole; the rules (unique names, one store per cluster, the quota) are
//! the service's, except that a name is unique per namespace here too.

use async_trait::async_trait;
use strongroom_types::{KeyId, Namespace, Timestamp};

use crate::StoreError;

/// A custom key store backed by a CloudHSM-style cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomKeyStoreRecord {
    /// `cks-` and 17 hexadecimal digits.
    pub custom_key_store_id: String,
    /// The owning account and Region.
    pub namespace: Namespace,
    /// Unique in its namespace.
    pub name: String,
    /// The backing cluster.
    pub cluster_id: String,
    /// The trust anchor certificate (PEM) given at creation.
    pub trust_anchor_pem: String,
    /// The kmsuser password, wrapped by the root key with the store id as additional data.
    pub wrapped_password: Vec<u8>,
    /// kmsuser's next password while a rotation is under way, wrapped as `wrapped_password` is:
    /// recorded before any HSM changes and promoted once every HSM holds it, so that every HSM holds
    /// one of the two passwords recorded here whenever the process stops.
    pub wrapped_pending_password: Option<Vec<u8>>,
    /// `ConnectionState` in its wire spelling.
    pub connection_state: String,
    /// `ConnectionErrorCode` in its wire spelling, when the state is FAILED.
    pub connection_error: Option<String>,
    /// When the store was created.
    pub created: Timestamp,
}

/// Durable storage of custom key stores; held as `Arc<dyn KeyStoreStore>`.
#[async_trait]
pub trait KeyStoreStore: Send + Sync + 'static {
    /// Adds a store; `AlreadyExists` if its id, or its name in its namespace, is taken.
    async fn insert_key_store(&self, record: &CustomKeyStoreRecord) -> Result<(), StoreError>;

    /// Replaces a store whole; `NotFound` if it does not exist; `AlreadyExists` if the new name is taken.
    async fn put_key_store(&self, record: &CustomKeyStoreRecord) -> Result<(), StoreError>;

    /// Reads one store of a namespace.
    async fn key_store(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<Option<CustomKeyStoreRecord>, StoreError>;

    /// Every store of a namespace, ordered by id.
    async fn list_key_stores(
        &self,
        namespace: &Namespace,
    ) -> Result<Vec<CustomKeyStoreRecord>, StoreError>;

    /// Every store of every namespace, ordered by account, Region and id: the server resumes the
    /// connections recorded CONNECTED or CONNECTING at start-up, whoever owns them.
    async fn all_key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>, StoreError>;

    /// Deletes a store; `NotFound` if it does not exist.
    async fn delete_key_store(&self, namespace: &Namespace, id: &str) -> Result<(), StoreError>;

    /// Records that `key_id` lives in store `id`.
    async fn insert_key_store_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
        id: &str,
    ) -> Result<(), StoreError>;

    /// The store a key lives in, if any.
    async fn key_store_of(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<String>, StoreError>;

    /// How many keys live in store `id`.
    async fn count_key_store_keys(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<u64, StoreError>;

    /// Forgets a key's store (when the key is deleted).
    async fn delete_key_store_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<(), StoreError>;
}
