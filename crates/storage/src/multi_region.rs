//! Durable storage of multi-Region key sets: which Regions hold a key of each set of related multi-Region
//! keys, which of them is the primary, and the per-Region bookkeeping the service needs (a transient key
//! state and when it ends, the waiting period of a primary waiting for its replicas to be deleted).
//!
//! Related multi-Region keys share their account and key id, so a set is named by those two; each member is
//! an ordinary key record in its own Region's namespace. A primary that was never replicated has no rows.
//! The service writes a set whole, under its write lock, so the rules (one primary, one key per Region) are
//! the service's; the store only keeps one primary per set.

use async_trait::async_trait;
use strongroom_types::{AccountId, KeyId, KeyState, Region, Timestamp};

use crate::StoreError;

/// Whether a member of a set is its primary key or a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiRegionRole {
    /// The key the shared properties (material, rotation) come from; the only one that can be replicated.
    Primary,
    /// A copy in another Region.
    Replica,
}

impl MultiRegionRole {
    /// The wire spelling (`MultiRegionKeyType`).
    pub fn as_str(self) -> &'static str {
        match self {
            MultiRegionRole::Primary => "PRIMARY",
            MultiRegionRole::Replica => "REPLICA",
        }
    }
}

/// A transient key state (Creating after ReplicateKey, Updating after UpdatePrimaryRegion) under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When the transient state ends.
    pub until: Timestamp,
    /// The state the key takes when it ends.
    pub state_after: KeyState,
}

/// One Region's key in a set of related multi-Region keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegionMember {
    /// The Region of this key.
    pub region: Region,
    /// Primary or replica.
    pub role: MultiRegionRole,
    /// A transient state under way, if any.
    pub transition: Option<Transition>,
    /// The waiting period asked for when this key, a primary with replicas, was scheduled for deletion;
    /// it starts when the last replica is deleted.
    pub pending_window_days: Option<u32>,
}

/// Durable storage of multi-Region key sets; part of every [`crate::Store`].
#[async_trait]
pub trait MultiRegionStore: Send + Sync + 'static {
    /// The members of the set of `key_id` in `account`, ordered by Region; empty when the key was never
    /// replicated.
    async fn multi_region_set(
        &self,
        account: &AccountId,
        key_id: &KeyId,
    ) -> Result<Vec<MultiRegionMember>, StoreError>;

    /// Replaces the members of a set whole, in one transaction; an empty list removes the set.
    async fn put_multi_region_set(
        &self,
        account: &AccountId,
        key_id: &KeyId,
        members: &[MultiRegionMember],
    ) -> Result<(), StoreError>;

    /// Sets with a member whose transient state ends at or before `now`.
    async fn multi_region_transitions_due(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(AccountId, KeyId)>, StoreError>;

    /// Every set, for reconciling them with the key records after a crash.
    async fn multi_region_sets(&self) -> Result<Vec<(AccountId, KeyId)>, StoreError>;
}
