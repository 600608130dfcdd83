//! Grants: permissions on one key given to one principal, as CreateGrant makes them.

use std::collections::BTreeMap;

use crate::ids::{AccountId, KeyId, Namespace};
use crate::time::Timestamp;

/// One grant on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The key's account and Region.
    pub namespace: Namespace,
    /// The key the grant is on.
    pub key_id: KeyId,
    /// 64 lowercase hex digits.
    pub grant_id: String,
    /// The optional name that makes CreateGrant idempotent.
    pub name: Option<String>,
    /// The principal ARN (or account id) the grant is for.
    pub grantee_principal: String,
    /// The principal that may retire the grant, besides the grantee and the issuing account.
    pub retiring_principal: Option<String>,
    /// The operations allowed, by their GrantOperation names (`Encrypt`, `ReEncryptFrom`, ...).
    pub operations: Vec<String>,
    /// The encryption context requests must carry exactly (`EncryptionContextEquals`).
    pub context_equals: Option<BTreeMap<String, String>>,
    /// Pairs requests' encryption contexts must include (`EncryptionContextSubset`).
    pub context_subset: Option<BTreeMap<String, String>>,
    /// The account that created the grant.
    pub issuing_account: AccountId,
    /// When it was created.
    pub created: Timestamp,
}
