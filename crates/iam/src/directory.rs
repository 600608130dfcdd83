//! The in-memory copy of every identity, with policies compiled and secrets unwrapped, which
//! authentication and authorization read without touching storage.
//!
//! IAM names are unique without regard to case, so maps are keyed by the lowercased name while records
//! keep the name as created; owners in inline policies and attachments always carry the record's name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use strongroom_keystore::RootKey;
use strongroom_policy::{Policy, PolicyError, PolicyKind};
use strongroom_storage::IdentitySnapshot;
use strongroom_types::{
    AccessKey, AccountId, Attachment, InlinePolicy, KeyOwner, ManagedPolicy, PolicyOwner, Role,
    SessionSubject, Tag, User,
};
use zeroize::Zeroizing;

use crate::IamError;
use crate::principal::{PrincipalKind, ResolvedPrincipal};

/// An account and a lowercased name: how users, roles and policies are found.
pub(crate) type NameKey = (AccountId, String);

/// The map key of an entity named `name` in `account`.
pub(crate) fn name_key(account: &AccountId, name: &str) -> NameKey {
    (account.clone(), name.to_lowercase())
}

#[derive(Default)]
pub(crate) struct Directory {
    pub(crate) users: BTreeMap<NameKey, User>,
    pub(crate) roles: BTreeMap<NameKey, LiveRole>,
    pub(crate) policies: BTreeMap<NameKey, LivePolicy>,
    pub(crate) inline: BTreeMap<(PolicyOwner, String), LiveInline>,
    pub(crate) attachments: BTreeSet<Attachment>,
    pub(crate) keys: HashMap<String, LiveKey>,
}

pub(crate) struct LiveRole {
    pub(crate) record: Role,
    pub(crate) trust: Arc<Policy>,
}

pub(crate) struct LivePolicy {
    pub(crate) record: ManagedPolicy,
    pub(crate) compiled: Arc<Policy>,
}

pub(crate) struct LiveInline {
    pub(crate) record: InlinePolicy,
    pub(crate) compiled: Arc<Policy>,
}

pub(crate) struct LiveKey {
    pub(crate) record: AccessKey,
    pub(crate) secret: Zeroizing<String>,
    /// `None` when what the key signs for is gone, such as a session of a deleted role.
    pub(crate) principal: Option<Arc<ResolvedPrincipal>>,
}

/// What the root key binds a wrapped secret to: the access key id, so secrets cannot be swapped in storage.
pub(crate) fn wrap_context(access_key_id: &str) -> Vec<u8> {
    let mut context = b"strongroom-iam-access-key\0".to_vec();
    context.extend_from_slice(access_key_id.as_bytes());
    context
}

/// Compiles a policy document, answering with IAM's error for a bad one.
pub(crate) fn compile(document: &str, kind: PolicyKind) -> Result<Policy, IamError> {
    match Policy::parse(document, kind) {
        Ok(policy) => Ok(policy),
        Err(PolicyError::Malformed(message)) => Err(IamError::MalformedPolicyDocument(message)),
        Err(PolicyError::TooLarge(size)) => Err(IamError::LimitExceeded(format!(
            "The policy is {size} bytes, larger than the quota."
        ))),
    }
}

/// Compiles a stored document, which was checked when it was written; failing now means the policy
/// language changed under it, and serving without the policy could lose a Deny, so start-up stops.
fn compile_stored(document: &str, kind: PolicyKind, what: &str) -> Result<Arc<Policy>, IamError> {
    match compile(document, kind) {
        Ok(policy) => Ok(Arc::new(policy)),
        Err(error) => Err(IamError::Internal(
            format!("the stored {what} no longer parses: {error}").into(),
        )),
    }
}

impl Directory {
    /// Builds the in-memory copy from storage, unwrapping every secret.
    pub(crate) fn build(
        snapshot: IdentitySnapshot,
        root_key: &dyn RootKey,
    ) -> Result<Directory, IamError> {
        let mut directory = Directory::default();
        for user in snapshot.users {
            directory
                .users
                .insert(name_key(&user.account, &user.name), user);
        }
        for role in snapshot.roles {
            let what = format!("trust policy of {}", role.arn());
            let trust = compile_stored(&role.trust_policy, PolicyKind::Trust, &what)?;
            directory.roles.insert(
                name_key(&role.account, &role.name),
                LiveRole {
                    record: role,
                    trust,
                },
            );
        }
        for policy in snapshot.policies {
            let what = format!("policy {}", policy.arn());
            let compiled = compile_stored(&policy.document, PolicyKind::Identity, &what)?;
            directory.policies.insert(
                name_key(&policy.account, &policy.name),
                LivePolicy {
                    record: policy,
                    compiled,
                },
            );
        }
        for policy in snapshot.inline_policies {
            let what = format!("inline policy {} of {}", policy.name, policy.owner.name());
            let compiled = compile_stored(&policy.document, PolicyKind::Identity, &what)?;
            directory.inline.insert(
                (policy.owner.clone(), policy.name.clone()),
                LiveInline {
                    record: policy,
                    compiled,
                },
            );
        }
        directory.attachments.extend(snapshot.attachments);
        for key in snapshot.access_keys {
            let live = unwrap_key(key, root_key)?;
            directory
                .keys
                .insert(live.record.access_key_id.clone(), live);
        }
        directory.refresh_principals();
        Ok(directory)
    }

    /// Resolves every key's principal again, after a change to what principals are made of (tags, roles,
    /// users).
    pub(crate) fn refresh_principals(&mut self) {
        let resolved: Vec<(String, Option<Arc<ResolvedPrincipal>>)> = self
            .keys
            .values()
            .map(|key| {
                (
                    key.record.access_key_id.clone(),
                    self.resolve(&key.record).map(Arc::new),
                )
            })
            .collect();
        for (id, principal) in resolved {
            if let Some(key) = self.keys.get_mut(&id) {
                key.principal = principal;
            }
        }
    }

    /// Adds a key, resolving its principal.
    pub(crate) fn insert_key(&mut self, mut key: LiveKey) {
        key.principal = self.resolve(&key.record).map(Arc::new);
        self.keys.insert(key.record.access_key_id.clone(), key);
    }

    /// The principal a key signs for, or `None` if its user or role is gone.
    fn resolve(&self, key: &AccessKey) -> Option<ResolvedPrincipal> {
        let access_key_id = key.access_key_id.clone();
        match &key.owner {
            KeyOwner::Root(account) => Some(ResolvedPrincipal {
                access_key_id,
                ..ResolvedPrincipal::root(account.clone())
            }),
            KeyOwner::User { account, name } => {
                let user = self.user(account, name)?;
                Some(user_principal(access_key_id, user, None, &[]))
            }
            KeyOwner::Session(session) => match &session.subject {
                SessionSubject::Root => Some(ResolvedPrincipal {
                    access_key_id,
                    expires: Some(session.expires),
                    principal_tags: session.tags.clone(),
                    ..ResolvedPrincipal::root(session.account.clone())
                }),
                SessionSubject::User(name) => {
                    let user = self.user(&session.account, name)?;
                    Some(user_principal(
                        access_key_id,
                        user,
                        Some(session.expires),
                        &session.tags,
                    ))
                }
                SessionSubject::Role {
                    role_name,
                    session_name,
                } => {
                    let role = &self.role(&session.account, role_name)?.record;
                    let (session_policy_arns, inline) = match &session.policy {
                        Some(packed) => crate::sts::unpack_session_policies(packed),
                        None => (Vec::new(), None),
                    };
                    let session_policy = match inline {
                        Some(document) => {
                            Some(Arc::new(compile(document, PolicyKind::Session).ok()?))
                        }
                        None => None,
                    };
                    Some(ResolvedPrincipal {
                        access_key_id,
                        account: role.account.clone(),
                        arn: format!(
                            "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                            role.account, role.name
                        ),
                        kind: PrincipalKind::AssumedRole {
                            role_name: role.name.clone(),
                            session_name: session_name.clone(),
                        },
                        user_id: format!("{}:{session_name}", role.role_id),
                        role_arn: Some(role.arn()),
                        session_policy,
                        session_policy_arns,
                        principal_tags: overridden(&role.tags, &session.tags),
                        expires: Some(session.expires),
                    })
                }
            },
        }
    }

    pub(crate) fn user(&self, account: &AccountId, name: &str) -> Option<&User> {
        self.users.get(&name_key(account, name))
    }

    pub(crate) fn role(&self, account: &AccountId, name: &str) -> Option<&LiveRole> {
        self.roles.get(&name_key(account, name))
    }

    pub(crate) fn policy(&self, account: &AccountId, name: &str) -> Option<&LivePolicy> {
        self.policies.get(&name_key(account, name))
    }

    /// A managed policy by ARN; the ARN must match exactly, path included.
    pub(crate) fn policy_by_arn(&self, arn: &str) -> Option<&LivePolicy> {
        let (account, name) = crate::names::parse_policy_arn(arn).ok()?;
        self.policy(&account, &name)
            .filter(|policy| policy.record.arn() == arn)
    }

    /// The inline policies of `owner`, in name order.
    pub(crate) fn inline_of<'a>(
        &'a self,
        owner: &'a PolicyOwner,
    ) -> impl Iterator<Item = &'a LiveInline> + 'a {
        self.inline
            .range((owner.clone(), String::new())..)
            .take_while(move |((holder, _), _)| holder == owner)
            .map(|(_, policy)| policy)
    }

    /// The ARNs of the managed policies attached to `owner`, in ARN order.
    pub(crate) fn attached_to<'a>(
        &'a self,
        owner: &'a PolicyOwner,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let start = Attachment {
            owner: owner.clone(),
            policy_arn: String::new(),
        };
        self.attachments
            .range(start..)
            .take_while(move |attachment| &attachment.owner == owner)
            .map(|attachment| attachment.policy_arn.as_str())
    }

    /// How many users and roles a managed policy is attached to.
    pub(crate) fn attachment_count(&self, policy_arn: &str) -> usize {
        self.attachments
            .iter()
            .filter(|attachment| attachment.policy_arn == policy_arn)
            .count()
    }

    /// The long-term access keys of an owner (a user, or the root when `user` is `None`), by id.
    pub(crate) fn long_term_keys<'a>(
        &'a self,
        account: &'a AccountId,
        user: Option<&'a str>,
    ) -> impl Iterator<Item = &'a LiveKey> + 'a {
        let mut keys: Vec<&LiveKey> = self
            .keys
            .values()
            .filter(move |key| match (&key.record.owner, user) {
                (KeyOwner::Root(owner), None) => owner == account,
                (
                    KeyOwner::User {
                        account: owner,
                        name,
                    },
                    Some(user),
                ) => owner == account && name == user,
                _ => false,
            })
            .collect();
        keys.sort_by(|a, b| a.record.access_key_id.cmp(&b.record.access_key_id));
        keys.into_iter()
    }
}

/// Unwraps a stored key's secret.
pub(crate) fn unwrap_key(key: AccessKey, root_key: &dyn RootKey) -> Result<LiveKey, IamError> {
    let plain = root_key.unwrap(&wrap_context(&key.access_key_id), &key.wrapped_secret)?;
    let secret = match std::str::from_utf8(&plain) {
        Ok(text) => Zeroizing::new(text.to_owned()),
        Err(_) => {
            return Err(IamError::Internal(
                format!("the stored secret of {} is not text", key.access_key_id).into(),
            ));
        }
    };
    Ok(LiveKey {
        record: key,
        secret,
        principal: None,
    })
}

fn user_principal(
    access_key_id: String,
    user: &User,
    expires: Option<strongroom_types::Timestamp>,
    session_tags: &[Tag],
) -> ResolvedPrincipal {
    ResolvedPrincipal {
        access_key_id,
        account: user.account.clone(),
        arn: user.arn(),
        kind: PrincipalKind::User {
            name: user.name.clone(),
        },
        user_id: user.user_id.clone(),
        role_arn: None,
        session_policy: None,
        session_policy_arns: Vec::new(),
        principal_tags: overridden(&user.tags, session_tags),
        expires,
    }
}

/// Principal tags: the identity's tags, with session tags of the same key (without regard to case) winning.
fn overridden(tags: &[Tag], session_tags: &[Tag]) -> Vec<Tag> {
    let mut out: Vec<Tag> = tags
        .iter()
        .filter(|tag| {
            !session_tags
                .iter()
                .any(|session| session.key.eq_ignore_ascii_case(&tag.key))
        })
        .cloned()
        .collect();
    out.extend(session_tags.iter().cloned());
    out
}
