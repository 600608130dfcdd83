//! IAM and STS for Strongroom: the identities people already manage with `aws iam` and `aws sts`, and the
//! credentials and policies that KMS authorization reads.
//!
//! [`Identities`] is the service: one method per IAM or STS operation, each taking the calling
//! [`ResolvedPrincipal`] first, grouped by domain in [`users`], [`access_keys`], [`roles`], [`policies`]
//! and [`sts`].
//! It keeps every identity in memory, with policies compiled and secrets unwrapped, so the request path
//! ([`Identities::lookup`], [`Identities::evaluate_identity`]) never waits for storage.
//!
//! **Invariant:** every write happens under `Identities::writes`, storage first, then memory; readers take
//! only a short read lock.
//! **Invariant:** secrets reach storage only wrapped by the root key, and session tokens only as SHA-256
//! hashes.

pub mod access_keys;
mod directory;
mod error;
mod names;
pub mod policies;
mod principal;
pub mod roles;
pub mod sts;
pub mod users;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strongroom_keystore::RootKey;
use strongroom_policy::{ConditionContext, MapContext, Outcome, Request};
use strongroom_storage::IdentityStore;
use strongroom_types::{AccessKey, AccessKeyStatus, AccountId, KeyOwner, PolicyOwner, Timestamp};

pub use crate::access_keys::{AccessKeyInfo, NewAccessKey};
pub use crate::error::IamError;
pub use crate::principal::{
    Credential, LookupError, PrincipalConditions, PrincipalKind, ResolvedPrincipal,
};

use crate::directory::Directory;

/// Where the service reads the time: the server passes its injected clock, so tests can expire sessions.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// One page of a list operation, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The `Marker` to pass for the next page; `None` on the last page.
    pub marker: Option<String>,
}

/// The IAM and STS service; one per server, shared by every request.
pub struct Identities {
    store: Arc<dyn IdentityStore>,
    root_key: Arc<dyn RootKey>,
    clock: Clock,
    directory: RwLock<Directory>,
    /// Serializes writes, so checks that span records (a user without keys may be deleted) hold.
    writes: tokio::sync::Mutex<()>,
}

impl Identities {
    /// Loads every identity from storage and unwraps every secret; call once at start-up.
    pub async fn load(
        store: Arc<dyn IdentityStore>,
        root_key: Arc<dyn RootKey>,
        clock: Clock,
    ) -> Result<Identities, IamError> {
        let snapshot = store.load_identities().await?;
        let directory = Directory::build(snapshot, root_key.as_ref())?;
        Ok(Identities {
            store,
            root_key,
            clock,
            directory: RwLock::new(directory),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads storage again, so identities written by another process (such as `strongroom account
    /// create`) take effect without a restart.
    pub async fn reload(&self) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let snapshot = self.store.load_identities().await?;
        let directory = Directory::build(snapshot, self.root_key.as_ref())?;
        *self.write() = directory;
        Ok(())
    }

    /// The secret and principal of an access key, for SigV4 verification.
    ///
    /// Temporary keys authenticate only with their session token and only until they expire; inactive keys
    /// and keys whose user or role is gone do not authenticate at all. This reads only memory.
    pub fn lookup(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Credential, LookupError> {
        let directory = self.read();
        let Some(key) = directory.keys.get(access_key_id) else {
            return Err(LookupError::Unknown);
        };
        if key.record.status != AccessKeyStatus::Active {
            return Err(LookupError::Unknown);
        }
        let Some(principal) = &key.principal else {
            return Err(LookupError::Unknown);
        };
        match (&key.record.owner, session_token) {
            (KeyOwner::Session(session), Some(token)) => {
                if !names::token_matches(token, &session.token_hash) {
                    return Err(LookupError::Unknown);
                }
                if (self.clock)() >= session.expires {
                    return Err(LookupError::Expired);
                }
            }
            (KeyOwner::Session(_), None) | (_, Some(_)) => return Err(LookupError::Unknown),
            (_, None) => {}
        }
        Ok(Credential {
            secret: key.secret.clone(),
            principal: principal.clone(),
        })
    }

    /// The principal of an access key that has already authenticated a request, or `None` for keys IAM
    /// does not hold (the administrator key and development keys, which are account roots).
    pub fn principal(&self, access_key_id: &str) -> Option<Arc<ResolvedPrincipal>> {
        let directory = self.read();
        directory.keys.get(access_key_id)?.principal.clone()
    }

    /// What the principal's identity-based policies say about `action` on `resource`: its user's or role's
    /// inline and attached policies, intersected with its session policy if it has one (an allow needs
    /// both; a deny in either wins).
    ///
    /// An account root is allowed everything (its account's resource policies still decide cross-account
    /// access). `allow_account` is never set: identity policies name no accounts. Principal condition keys
    /// (`aws:PrincipalTag/…`, `aws:username`, …) are answered from the principal, others from `context`.
    pub fn evaluate_identity(
        &self,
        principal: &ResolvedPrincipal,
        action: &str,
        resource: &str,
        context: &dyn ConditionContext,
    ) -> Outcome {
        let conditions = PrincipalConditions::new(principal, context);
        let request = Request {
            principal: principal.policy_principal(),
            action,
            resource,
            context: &conditions,
        };
        let mut outcome = Outcome::default();
        let owner = match &principal.kind {
            PrincipalKind::Root => {
                outcome.allow = true;
                None
            }
            PrincipalKind::User { name } => Some(PolicyOwner::User {
                account: principal.account.clone(),
                name: name.clone(),
            }),
            PrincipalKind::AssumedRole { role_name, .. } => Some(PolicyOwner::Role {
                account: principal.account.clone(),
                name: role_name.clone(),
            }),
        };
        let has_session_policies =
            principal.session_policy.is_some() || !principal.session_policy_arns.is_empty();
        if owner.is_none() && !has_session_policies {
            outcome.allow_account = false;
            return outcome;
        }
        let directory = self.read();
        if let Some(owner) = owner {
            for inline in directory.inline_of(&owner) {
                merge(&mut outcome, inline.compiled.evaluate(&request));
            }
            for arn in directory.attached_to(&owner) {
                if let Some(policy) = directory.policy_by_arn(arn) {
                    merge(&mut outcome, policy.compiled.evaluate(&request));
                }
            }
        }
        if has_session_policies {
            // The session policies together: any of them may allow, any deny wins; a managed session policy
            // deleted since the session began allows nothing.
            let mut session = Outcome::default();
            if let Some(inline) = &principal.session_policy {
                merge(&mut session, inline.evaluate(&request));
            }
            for arn in &principal.session_policy_arns {
                if let Some(policy) = directory.policy_by_arn(arn) {
                    merge(&mut session, policy.compiled.evaluate(&request));
                }
            }
            outcome.allow &= session.allow;
            if session.explicit_deny && !outcome.explicit_deny {
                outcome.explicit_deny = true;
                outcome.denying_sid = session.denying_sid;
            }
        }
        outcome.allow_account = false;
        outcome
    }

    /// Creates the root access key of an account for the `strongroom account create` command; refuses an
    /// account that already has one, so a running account's root cannot be duplicated by accident.
    pub async fn create_account(&self, account: &AccountId) -> Result<NewAccessKey, IamError> {
        let _writes = self.writes.lock().await;
        if self.read().long_term_keys(account, None).next().is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "Account {account} already has a root access key."
            )));
        }
        self.new_access_key(KeyOwner::Root(account.clone())).await
    }

    /// Checks that `caller` may call IAM or STS `action` on `resource` (an ARN in the caller's account):
    /// the root may do anything in its account; others need an identity policy that allows it.
    pub(crate) fn authorize(
        &self,
        caller: &ResolvedPrincipal,
        action: &str,
        resource: &str,
    ) -> Result<(), IamError> {
        if caller.is_root() {
            return Ok(());
        }
        let context = self.base_context();
        let outcome = self.evaluate_identity(caller, action, resource, &context);
        if outcome.explicit_deny {
            return Err(IamError::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} with an explicit deny \
                 in an identity-based policy",
                caller.arn
            )));
        }
        if outcome.allow {
            return Ok(());
        }
        Err(IamError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} because no \
             identity-based policy allows the {action} action",
            caller.arn
        )))
    }

    /// The condition keys every IAM and STS request carries: the time.
    pub(crate) fn base_context(&self) -> MapContext {
        let now = (self.clock)();
        let mut context = MapContext::new();
        context.insert("aws:CurrentTime", [iso8601(now)]);
        context.insert("aws:EpochTime", [now.as_secs().to_string()]);
        context.insert("aws:SecureTransport", ["false"]);
        context
    }

    /// Creates, stores and indexes a fresh access key for `owner`: `ASIA…` for a session, `AKIA…` otherwise.
    pub(crate) async fn new_access_key(&self, owner: KeyOwner) -> Result<NewAccessKey, IamError> {
        let prefix = match &owner {
            KeyOwner::Session(_) => "ASIA",
            KeyOwner::Root(_) | KeyOwner::User { .. } => "AKIA",
        };
        let access_key_id = names::access_key_id(prefix);
        let secret = zeroize::Zeroizing::new(names::secret_access_key());
        let wrapped_secret = self
            .root_key
            .wrap(&directory::wrap_context(&access_key_id), secret.as_bytes())?;
        let record = AccessKey {
            access_key_id: access_key_id.clone(),
            wrapped_secret,
            owner,
            status: AccessKeyStatus::Active,
            created: (self.clock)(),
        };
        self.store.insert_access_key(&record).await?;
        let info = AccessKeyInfo::of(&record);
        self.write().insert_key(directory::LiveKey {
            record,
            secret: secret.clone(),
            principal: None,
        });
        Ok(NewAccessKey { info, secret })
    }

    fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// Combines one policy's outcome into the running one: any deny wins, any allow allows.
fn merge(outcome: &mut Outcome, next: Outcome) {
    if next.explicit_deny && !outcome.explicit_deny {
        outcome.explicit_deny = true;
        outcome.denying_sid = next.denying_sid;
    }
    outcome.allow |= next.allow;
}

/// Lists `items` (already sorted by `key`) from after `marker`, at most `max` of them.
pub(crate) fn paginate<T: Clone>(
    items: impl Iterator<Item = (String, T)>,
    marker: Option<&str>,
    max: usize,
) -> Page<T> {
    let mut page = Vec::new();
    let mut last = None;
    let mut more = false;
    for (key, item) in items {
        if marker.is_some_and(|marker| key.as_str() <= marker) {
            continue;
        }
        if page.len() == max {
            more = true;
            break;
        }
        last = Some(key);
        page.push(item);
    }
    Page {
        items: page,
        marker: if more { last } else { None },
    }
}

/// An instant as ISO 8601 in UTC, to the second: the form of `aws:CurrentTime` and of IAM dates.
pub fn iso8601(instant: Timestamp) -> String {
    let secs = instant.as_secs();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
