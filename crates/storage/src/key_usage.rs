//! Durable storage of each key's last cryptographic use, for GetKeyLastUsage.
//!
//! The service keeps the latest uses in memory and writes them here in batches (periodically and at
//! shutdown), so a request never waits for this store.

use async_trait::async_trait;
use strongroom_types::{KeyId, Namespace, Timestamp};

use crate::StoreError;

/// The last successful cryptographic operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsageRecord {
    /// The key's account and Region.
    pub namespace: Namespace,
    /// The key.
    pub key_id: KeyId,
    /// The operation, in its wire spelling (`KeyLastUsageTrackingOperation`), such as `Encrypt`.
    pub operation: String,
    /// When it happened.
    pub used: Timestamp,
    /// The request id returned to the caller.
    pub request_id: String,
    /// The CloudTrail event id of the record delivered to the key's account, when the trail is on.
    pub event_id: Option<String>,
}

/// Durable storage of key usage; part of every [`crate::Store`].
#[async_trait]
pub trait KeyUsageStore: Send + Sync + 'static {
    /// Writes the given uses in one transaction, each replacing the key's previous one.
    async fn put_key_usages(&self, usages: &[KeyUsageRecord]) -> Result<(), StoreError>;

    /// The last use recorded for a key.
    async fn key_usage(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<KeyUsageRecord>, StoreError>;

    /// Forgets a key's use (when the key is deleted); nothing happens if none was recorded.
    async fn delete_key_usage(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<(), StoreError>;
}
