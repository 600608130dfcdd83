//! Durable storage of grants.

use async_trait::async_trait;
use strongroom_types::{GrantRecord, KeyId, Namespace};

use crate::StoreError;

/// Grants, kept beside the keys they are on.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
    /// Adds a grant; `AlreadyExists` if its id is taken.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;

    /// Deletes one grant; `NotFound` if it does not exist on that key.
    async fn delete_grant(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
        grant_id: &str,
    ) -> Result<(), StoreError>;

    /// Every grant on a key, oldest first.
    async fn grants_for_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Vec<GrantRecord>, StoreError>;

    /// Every grant whose retiring principal is `principal`, in any account, oldest first.
    async fn grants_retirable_by(&self, principal: &str) -> Result<Vec<GrantRecord>, StoreError>;
}
