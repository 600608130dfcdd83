//! Long-term access keys: CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey.
//!
//! A user, or the account root, holds at most two keys, so a key can be rotated without downtime.

use strongroom_types::{AccessKey, AccessKeyStatus, KeyOwner, Timestamp};
use zeroize::Zeroizing;

use crate::names::page_size;
use crate::{IamError, Identities, Page, ResolvedPrincipal, paginate};

/// The most long-term access keys a user or root may hold.
const MAX_ACCESS_KEYS: usize = 2;

/// An access key as `ListAccessKeys` shows it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    /// The key's user, or `None` for a root's key.
    pub user_name: Option<String>,
    /// The access key id.
    pub access_key_id: String,
    /// Whether the key signs requests.
    pub status: AccessKeyStatus,
    /// When the key was created.
    pub created: Timestamp,
}

impl AccessKeyInfo {
    pub(crate) fn of(key: &AccessKey) -> AccessKeyInfo {
        let user_name = match &key.owner {
            KeyOwner::User { name, .. } => Some(name.clone()),
            KeyOwner::Root(_) | KeyOwner::Session(_) => None,
        };
        AccessKeyInfo {
            user_name,
            access_key_id: key.access_key_id.clone(),
            status: key.status,
            created: key.created,
        }
    }
}

/// A new access key with its secret, which is shown this once and never again.
#[derive(Clone)]
pub struct NewAccessKey {
    /// The key's metadata.
    pub info: AccessKeyInfo,
    /// The secret access key.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NewAccessKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// `CreateAccessKey` for the named user, or for the caller (a user or the root) when no name is given.
    pub async fn create_access_key(
        &self,
        caller: &ResolvedPrincipal,
        user_name: Option<&str>,
    ) -> Result<NewAccessKey, IamError> {
        let _writes = self.writes.lock().await;
        let owner = self.key_owner(caller, "iam:CreateAccessKey", user_name)?;
        let user = match &owner {
            KeyOwner::User { name, .. } => Some(name.as_str()),
            KeyOwner::Root(_) | KeyOwner::Session(_) => None,
        };
        let held = self.read().long_term_keys(&caller.account, user).count();
        if held >= MAX_ACCESS_KEYS {
            return Err(IamError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}"
            )));
        }
        self.new_access_key(owner).await
    }

    /// `ListAccessKeys` of the named user, or of the caller when no name is given.
    pub fn list_access_keys(
        &self,
        caller: &ResolvedPrincipal,
        user_name: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<AccessKeyInfo>, IamError> {
        let max = page_size(max_items)?;
        let owner = self.key_owner(caller, "iam:ListAccessKeys", user_name)?;
        let user = match &owner {
            KeyOwner::User { name, .. } => Some(name.as_str()),
            KeyOwner::Root(_) | KeyOwner::Session(_) => None,
        };
        let directory = self.read();
        let keys = directory.long_term_keys(&caller.account, user).map(|key| {
            (
                key.record.access_key_id.clone(),
                AccessKeyInfo::of(&key.record),
            )
        });
        Ok(paginate(keys, marker, max))
    }

    /// `UpdateAccessKey`: makes a key active or inactive.
    pub async fn update_access_key(
        &self,
        caller: &ResolvedPrincipal,
        user_name: Option<&str>,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let owner = self.key_owner(caller, "iam:UpdateAccessKey", user_name)?;
        self.owned_key(&owner, access_key_id)?;
        self.store
            .set_access_key_status(access_key_id, status)
            .await?;
        if let Some(key) = self.write().keys.get_mut(access_key_id) {
            key.record.status = status;
        }
        Ok(())
    }

    /// `DeleteAccessKey`: the key stops working at once.
    pub async fn delete_access_key(
        &self,
        caller: &ResolvedPrincipal,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let owner = self.key_owner(caller, "iam:DeleteAccessKey", user_name)?;
        self.owned_key(&owner, access_key_id)?;
        self.store.delete_access_key(access_key_id).await?;
        self.write().keys.remove(access_key_id);
        Ok(())
    }

    /// Whose keys a call is about: the named user, or the caller itself; checks the caller may act on it.
    fn key_owner(
        &self,
        caller: &ResolvedPrincipal,
        action: &str,
        user_name: Option<&str>,
    ) -> Result<KeyOwner, IamError> {
        let name = match (user_name, caller.user_name(), caller.is_root()) {
            (Some(name), _, _) => name,
            (None, Some(own), _) => own,
            (None, None, true) => {
                if caller.expires.is_some() {
                    return Err(IamError::AccessDenied(
                        "Temporary credentials cannot manage the root's access keys.".to_owned(),
                    ));
                }
                return Ok(KeyOwner::Root(caller.account.clone()));
            }
            (None, None, false) => {
                return Err(IamError::Validation(
                    "Must specify userName when calling with non-User credentials".to_owned(),
                ));
            }
        };
        let user = self.user_for(caller, action, name)?;
        Ok(KeyOwner::User {
            account: user.account,
            name: user.name,
        })
    }

    /// Checks that a long-term key exists and belongs to `owner`.
    fn owned_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), IamError> {
        let directory = self.read();
        match directory.keys.get(access_key_id) {
            Some(key) if &key.record.owner == owner => Ok(()),
            _ => Err(IamError::NoSuchEntity(format!(
                "The Access Key with id {access_key_id} cannot be found."
            ))),
        }
    }
}
