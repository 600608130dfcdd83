//! Who signed a request, as IAM knows it: the principal behind an access key, and the condition keys that
//! describe it to policies.

use std::cell::OnceCell;
use std::sync::Arc;

use strongroom_policy::{ConditionContext, Policy};
use strongroom_types::{AccountId, Tag, Timestamp};
use zeroize::Zeroizing;

use crate::names::has_prefix_ignore_case;

/// The identity behind an access key, resolved once when the key (or what it belongs to) changes, so the
/// request path only clones an `Arc`.
#[derive(Debug, Clone)]
pub struct ResolvedPrincipal {
    /// The access key that signs for the principal; empty for a root built with [`ResolvedPrincipal::root`].
    pub access_key_id: String,
    /// The principal's account.
    pub account: AccountId,
    /// The principal's ARN: `…:root`, `…:user/PATH/NAME`, or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// What kind of identity it is, with its names.
    pub kind: PrincipalKind,
    /// `aws:userid`: the account id for a root, `AIDA…` for a user, `AROA…:SESSION` for a role session.
    pub user_id: String,
    /// For a role session, the role's ARN (with its path), which trust and key policies may name.
    pub role_arn: Option<String>,
    /// A session policy, which narrows what the identity's own policies allow.
    pub session_policy: Option<Arc<Policy>>,
    /// Managed session policies, by ARN: looked up when a request is evaluated, so they narrow the session
    /// together with `session_policy` (a session with either allows only what one of them allows).
    pub session_policy_arns: Vec<String>,
    /// `aws:PrincipalTag/…`: the user's or role's tags, overridden by session tags of the same key.
    pub principal_tags: Vec<Tag>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expires: Option<Timestamp>,
}

/// The kinds of principal IAM distinguishes when it evaluates policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user: everything in the account is allowed to it.
    Root,
    /// An IAM user, possibly through a `GetSessionToken` session.
    User {
        /// The user name.
        name: String,
    },
    /// A session of an assumed role.
    AssumedRole {
        /// The role name.
        role_name: String,
        /// The role session name.
        session_name: String,
    },
}

impl ResolvedPrincipal {
    /// The root user of `account`, for callers whose keys IAM does not hold (the administrator key and the
    /// development keys).
    pub fn root(account: AccountId) -> ResolvedPrincipal {
        ResolvedPrincipal {
            access_key_id: String::new(),
            arn: format!("arn:aws:iam::{account}:root"),
            user_id: account.as_str().to_owned(),
            account,
            kind: PrincipalKind::Root,
            role_arn: None,
            session_policy: None,
            session_policy_arns: Vec::new(),
            principal_tags: Vec::new(),
            expires: None,
        }
    }

    /// The user name, for a user or a user's session.
    pub fn user_name(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { name } => Some(name),
            PrincipalKind::Root | PrincipalKind::AssumedRole { .. } => None,
        }
    }

    /// Whether this is the account's root user, who needs no identity policy in its own account.
    pub fn is_root(&self) -> bool {
        self.kind == PrincipalKind::Root
    }

    /// `aws:PrincipalType`: `Account`, `User` or `AssumedRole`.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User { .. } => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
        }
    }

    /// The principal as the policy engine sees it.
    pub fn policy_principal(&self) -> strongroom_policy::Principal<'_> {
        strongroom_policy::Principal {
            arn: &self.arn,
            account: self.account.as_str(),
            role_arn: self.role_arn.as_deref(),
            service: None,
        }
    }
}

/// What authentication needs from an access key: its secret and the principal it signs for.
#[derive(Clone)]
pub struct Credential {
    /// The secret access key, wiped from memory when dropped.
    pub secret: Zeroizing<String>,
    /// The principal.
    pub principal: Arc<ResolvedPrincipal>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credential")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Why an access key does not authenticate a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such key, an inactive key, or a session token that is missing or wrong; AWS does not say which.
    #[error("The security token included in the request is invalid.")]
    Unknown,
    /// Temporary credentials whose session has ended.
    #[error("The security token included in the request is expired")]
    Expired,
}

/// Condition keys about the principal (`aws:PrincipalTag/…`, `aws:username`, `aws:userid`,
/// `aws:PrincipalArn`, `aws:PrincipalType`, `aws:PrincipalAccount`), answered from the principal, with every
/// other key taken from the request's own context.
///
/// The KMS authorization can wrap its context in this too, so key policies see the same principal facts.
pub struct PrincipalConditions<'a> {
    principal: &'a ResolvedPrincipal,
    inner: &'a dyn ConditionContext,
    values: OnceCell<Vec<(String, Vec<String>)>>,
}

impl<'a> PrincipalConditions<'a> {
    /// Layers the principal's condition keys over `inner`.
    pub fn new(
        principal: &'a ResolvedPrincipal,
        inner: &'a dyn ConditionContext,
    ) -> PrincipalConditions<'a> {
        PrincipalConditions {
            principal,
            inner,
            values: OnceCell::new(),
        }
    }

    fn build(&self) -> Vec<(String, Vec<String>)> {
        let principal = self.principal;
        let one = |key: &str, value: &str| (key.to_owned(), vec![value.to_owned()]);
        // aws:PrincipalArn of a role session is the role's ARN, not the session's.
        let principal_arn = principal.role_arn.as_deref().unwrap_or(&principal.arn);
        let mut out = vec![
            one("aws:principalarn", principal_arn),
            one("aws:principalaccount", principal.account.as_str()),
            one("aws:principaltype", principal.principal_type()),
            one("aws:userid", &principal.user_id),
        ];
        if let Some(name) = principal.user_name() {
            out.push(one("aws:username", name));
        }
        for tag in &principal.principal_tags {
            out.push((
                format!("aws:principaltag/{}", tag.key.to_lowercase()),
                vec![tag.value.clone()],
            ));
        }
        out
    }
}

impl ConditionContext for PrincipalConditions<'_> {
    fn values(&self, key: &str) -> Option<&[String]> {
        if has_prefix_ignore_case(key, "aws:") {
            let values = self.values.get_or_init(|| self.build());
            if let Some((_, found)) = values
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
            {
                return Some(found.as_slice());
            }
            // A principal tag the principal does not carry is absent, whatever the inner context says.
            if has_prefix_ignore_case(key, "aws:principaltag/") {
                return None;
            }
        }
        self.inner.values(key)
    }
}
