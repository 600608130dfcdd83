//! What Strongroom keeps about IAM identities: users, roles, managed and inline policies, attachments, and
//! access keys, including the temporary keys of STS sessions.
//!
//! Names and documents are held as the client gave them; the IAM service checks them before they become
//! records. Secrets are held only wrapped by the root key, and session tokens only as hashes.

use std::fmt;
use std::str::FromStr;

use crate::ids::AccountId;
use crate::records::Tag;
use crate::time::Timestamp;

/// An IAM user: a long-lived identity of an account that signs with access keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account the user belongs to.
    pub account: AccountId,
    /// The user name, unique in the account without regard to case.
    pub name: String,
    /// The path, `/` or `/division/team/`; part of the ARN, not of the identity.
    pub path: String,
    /// The stable unique id, `AIDA` and 17 more characters, which outlives a user deleted and created again.
    pub user_id: String,
    /// When the user was created.
    pub created: Timestamp,
    /// Tags in the order they were first added; they become `aws:PrincipalTag/…` condition keys.
    pub tags: Vec<Tag>,
}

impl User {
    /// The user's ARN, `arn:aws:iam::ACCOUNT:user/PATH/NAME`, as policies and responses name it.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:user{}{}",
            self.account, self.path, self.name
        )
    }
}

/// An IAM role: an identity that trusted principals assume for a while through STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The account the role belongs to.
    pub account: AccountId,
    /// The role name, unique in the account without regard to case.
    pub name: String,
    /// The path, `/` or `/division/team/`.
    pub path: String,
    /// The stable unique id, `AROA` and 17 more characters.
    pub role_id: String,
    /// The trust policy: who may assume the role, exactly as given.
    pub trust_policy: String,
    /// The customer's description (up to 1000 characters).
    pub description: String,
    /// The longest session `AssumeRole` may grant, in seconds (3600 to 43200).
    pub max_session_duration: u32,
    /// When the role was created.
    pub created: Timestamp,
    /// Tags in the order they were first added.
    pub tags: Vec<Tag>,
}

impl Role {
    /// The role's ARN, `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role{}{}",
            self.account, self.path, self.name
        )
    }
}

/// A customer managed policy: a named policy document that can be attached to users and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// The account the policy belongs to.
    pub account: AccountId,
    /// The policy name, unique in the account without regard to case.
    pub name: String,
    /// The path, `/` or `/division/team/`.
    pub path: String,
    /// The stable unique id, `ANPA` and 17 more characters.
    pub policy_id: String,
    /// The policy document (its only version, `v1`), exactly as given.
    pub document: String,
    /// The customer's description (up to 1000 characters).
    pub description: String,
    /// When the policy was created.
    pub created: Timestamp,
    /// Tags in the order they were first added.
    pub tags: Vec<Tag>,
}

impl ManagedPolicy {
    /// The policy's ARN, `arn:aws:iam::ACCOUNT:policy/PATH/NAME`, by which it is attached.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:policy{}{}",
            self.account, self.path, self.name
        )
    }
}

/// The identity an inline policy or an attachment belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyOwner {
    /// An IAM user, by account and name.
    User {
        /// The user's account.
        account: AccountId,
        /// The user name.
        name: String,
    },
    /// An IAM role, by account and name.
    Role {
        /// The role's account.
        account: AccountId,
        /// The role name.
        name: String,
    },
}

impl PolicyOwner {
    /// The owner's account.
    pub fn account(&self) -> &AccountId {
        match self {
            PolicyOwner::User { account, .. } | PolicyOwner::Role { account, .. } => account,
        }
    }

    /// The owner's name, a user name or a role name.
    pub fn name(&self) -> &str {
        match self {
            PolicyOwner::User { name, .. } | PolicyOwner::Role { name, .. } => name,
        }
    }
}

/// A policy embedded in one user or role, deleted with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    /// The user or role that holds the policy.
    pub owner: PolicyOwner,
    /// The policy name, unique per owner.
    pub name: String,
    /// The policy document, exactly as given.
    pub document: String,
}

/// A managed policy attached to a user or role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    /// The user or role the policy applies to.
    pub owner: PolicyOwner,
    /// The managed policy's ARN.
    pub policy_arn: String,
}

/// An access key: the id and secret that sign requests, and whose identity they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// `AKIA` and 16 more characters for long-term keys, `ASIA` for temporary ones.
    pub access_key_id: String,
    /// The secret access key, wrapped by the root key with the access key id as additional data; never
    /// plaintext.
    pub wrapped_secret: Vec<u8>,
    /// Whose key it is.
    pub owner: KeyOwner,
    /// Whether the key may sign requests.
    pub status: AccessKeyStatus,
    /// When the key was created.
    pub created: Timestamp,
}

/// The identity an access key signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// The root user of an account, which may do anything in it.
    Root(AccountId),
    /// An IAM user.
    User {
        /// The user's account.
        account: AccountId,
        /// The user name.
        name: String,
    },
    /// A temporary session from STS, which ends at its expiry.
    Session(Box<Session>),
}

impl KeyOwner {
    /// The account the key belongs to.
    pub fn account(&self) -> &AccountId {
        match self {
            KeyOwner::Root(account) | KeyOwner::User { account, .. } => account,
            KeyOwner::Session(session) => &session.account,
        }
    }
}

/// A temporary session: who it acts as, until when, and what narrows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account the session acts in.
    pub account: AccountId,
    /// The identity the session acts as.
    pub subject: SessionSubject,
    /// When the temporary credentials stop working.
    pub expires: Timestamp,
    /// SHA-256 of the session token, which every request signed with the key must carry.
    pub token_hash: Vec<u8>,
    /// Session tags, which override principal tags of the same key.
    pub tags: Vec<Tag>,
    /// A session policy: the session may do only what both it and the identity's policies allow.
    pub policy: Option<String>,
}

/// What a session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSubject {
    /// A role assumed with `AssumeRole`.
    Role {
        /// The role name.
        role_name: String,
        /// The role session name, which ends the session's ARN.
        session_name: String,
    },
    /// A user's own session from `GetSessionToken`.
    User(String),
    /// The account root's session from `GetSessionToken`.
    Root,
}

/// Whether an access key may sign requests; IAM's `statusType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKeyStatus {
    /// The key signs requests.
    Active,
    /// The key is kept but refused, so it can be re-enabled after a rotation turns out badly.
    Inactive,
}

impl AccessKeyStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKeyStatus::Active => "Active",
            AccessKeyStatus::Inactive => "Inactive",
        }
    }
}

impl FromStr for AccessKeyStatus {
    type Err = crate::enums::UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Active" => Ok(AccessKeyStatus::Active),
            "Inactive" => Ok(AccessKeyStatus::Inactive),
            _ => Err(crate::enums::UnknownVariant {
                value: s.to_owned(),
                allowed: &["Active", "Inactive"],
            }),
        }
    }
}

impl fmt::Display for AccessKeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
