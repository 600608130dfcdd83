//! Durable storage of IAM identities: users, roles, managed and inline policies, attachments, access keys.
//!
//! The IAM service keeps every identity in memory, because authentication and authorization read them
//! on every request; storage is written through on every change and read whole at start-up
//! ([`IdentityStore::load_identities`]).
//! Checks that span records (a user with access keys cannot be deleted) belong to the service, which runs
//! them under its write lock; the store keeps each record consistent on its own.

use async_trait::async_trait;
use strongroom_types::{
    AccessKey, AccessKeyStatus, AccountId, Attachment, InlinePolicy, ManagedPolicy, PolicyOwner,
    Role, Timestamp, User,
};

use crate::StoreError;

/// Everything an [`IdentityStore`] holds, read in one transaction so the parts agree with each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentitySnapshot {
    /// Every user of every account, ordered by account and name.
    pub users: Vec<User>,
    /// Every role, ordered by account and name.
    pub roles: Vec<Role>,
    /// Every managed policy, ordered by account and name.
    pub policies: Vec<ManagedPolicy>,
    /// Every inline policy, in no particular order.
    pub inline_policies: Vec<InlinePolicy>,
    /// Every attachment, in no particular order.
    pub attachments: Vec<Attachment>,
    /// Every access key, long-term and temporary, ordered by access key id.
    pub access_keys: Vec<AccessKey>,
}

/// Durable storage of identities, shared by every request; held as `Arc<dyn IdentityStore>`.
///
/// Names are compared exactly: the IAM service, which knows that IAM names are unique without regard to
/// case, checks that before inserting.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Reads every identity, for the service's in-memory copy at start-up.
    async fn load_identities(&self) -> Result<IdentitySnapshot, StoreError>;

    /// Adds a user; `AlreadyExists` if the name is taken in its account.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;

    /// Replaces a user whole (its path and tags); `NotFound` if it does not exist.
    async fn put_user(&self, user: &User) -> Result<(), StoreError>;

    /// Deletes a user and its tags; `NotFound` if it does not exist.
    async fn delete_user(&self, account: &AccountId, name: &str) -> Result<(), StoreError>;

    /// Adds a role; `AlreadyExists` if the name is taken in its account.
    async fn insert_role(&self, role: &Role) -> Result<(), StoreError>;

    /// Replaces a role whole (trust policy, description, session duration, tags); `NotFound` if missing.
    async fn put_role(&self, role: &Role) -> Result<(), StoreError>;

    /// Deletes a role and its tags; `NotFound` if it does not exist.
    async fn delete_role(&self, account: &AccountId, name: &str) -> Result<(), StoreError>;

    /// Adds a managed policy; `AlreadyExists` if the name is taken in its account.
    async fn insert_policy(&self, policy: &ManagedPolicy) -> Result<(), StoreError>;

    /// Deletes a managed policy and its tags; `NotFound` if it does not exist.
    async fn delete_policy(&self, account: &AccountId, name: &str) -> Result<(), StoreError>;

    /// Adds an inline policy or replaces the owner's policy of the same name.
    async fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), StoreError>;

    /// Deletes an inline policy; `NotFound` if the owner has none of that name.
    async fn delete_inline_policy(&self, owner: &PolicyOwner, name: &str)
    -> Result<(), StoreError>;

    /// Records an attachment; attaching a policy that is already attached changes nothing.
    async fn attach_policy(&self, attachment: &Attachment) -> Result<(), StoreError>;

    /// Removes an attachment; `NotFound` if the policy is not attached to the owner.
    async fn detach_policy(&self, attachment: &Attachment) -> Result<(), StoreError>;

    /// Adds an access key; `AlreadyExists` if the id is taken.
    async fn insert_access_key(&self, key: &AccessKey) -> Result<(), StoreError>;

    /// Changes the status of an access key; `NotFound` if it does not exist.
    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<(), StoreError>;

    /// Deletes an access key; `NotFound` if it does not exist.
    async fn delete_access_key(&self, access_key_id: &str) -> Result<(), StoreError>;

    /// Deletes the temporary keys that expired at or before `now`, returning how many there were.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<usize, StoreError>;
}
