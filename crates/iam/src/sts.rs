//! STS: GetCallerIdentity, AssumeRole and GetSessionToken, and the lifetime of temporary credentials.
//!
//! A session is an `ASIA…` access key with a secret and a session token; storage keeps the wrapped secret
//! and the token's hash, so sessions survive a restart and end at their expiry. Expired sessions are
//! pruned whenever a new one is made.

use std::time::Duration;

use strongroom_policy::{MapContext, Policy, PolicyKind, Request};
use strongroom_types::{AccountId, KeyOwner, Session, SessionSubject, Tag, Timestamp};
use zeroize::Zeroizing;

use crate::directory::compile;
use crate::names::{check_session_name, check_tags, parse_role_arn};
use crate::principal::{PrincipalConditions, PrincipalKind};
use crate::{IamError, Identities, ResolvedPrincipal};

/// The largest session policy, in characters, and the size `PackedPolicySize` is a percentage of.
const MAX_SESSION_POLICY: usize = 2048;
/// A session made by role chaining (a role session assuming a role) lasts at most an hour.
const ROLE_CHAINING_MAX_SECONDS: i64 = 3600;

/// Who is calling, as `GetCallerIdentity` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `aws:userid`.
    pub user_id: String,
    /// The account.
    pub account: AccountId,
    /// The principal's ARN.
    pub arn: String,
}

/// What `AssumeRole` takes besides the caller.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleRequest {
    /// The role to assume.
    pub role_arn: String,
    /// The session name, which ends the session's ARN.
    pub session_name: String,
    /// The session's length in seconds (900 to the role's maximum); an hour when absent.
    pub duration_seconds: Option<i64>,
    /// An inline session policy.
    pub policy: Option<String>,
    /// Managed session policies (at most 10, in the role's account), which narrow the session like the
    /// inline one: the session may do what its role allows and any of its session policies allows.
    pub policy_arns: Vec<String>,
    /// Session tags, which become principal tags.
    pub tags: Vec<Tag>,
    /// The external id the trust policy may require (`sts:ExternalId`).
    pub external_id: Option<String>,
    /// The source identity (`sts:SourceIdentity`).
    pub source_identity: Option<String>,
}

/// Temporary credentials, as `AssumeRole` and `GetSessionToken` return them.
#[derive(Clone)]
pub struct TemporaryCredentials {
    /// The `ASIA…` access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// The session token every request must carry in `X-Amz-Security-Token`.
    pub session_token: Zeroizing<String>,
    /// When the credentials stop working.
    pub expiration: Timestamp,
    /// For `AssumeRole`: the assumed role id (`AROA…:SESSION`) and the session's ARN.
    pub assumed_role_user: Option<(String, String)>,
    /// For `AssumeRole`: the session policy's size as a percentage of the largest allowed.
    pub packed_policy_size: Option<u32>,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("assumed_role_user", &self.assumed_role_user)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// `GetCallerIdentity`: needs no permission, as in AWS.
    pub fn get_caller_identity(&self, caller: &ResolvedPrincipal) -> CallerIdentity {
        CallerIdentity {
            user_id: caller.user_id.clone(),
            account: caller.account.clone(),
            arn: caller.arn.clone(),
        }
    }

    /// `AssumeRole`.
    ///
    /// The role's trust policy must allow the caller. When it names the caller's account rather than the
    /// caller, or the caller is in another account, the caller's own identity policies must also allow
    /// `sts:AssumeRole` on the role (an account root needs none in its own account). Session tags need
    /// `sts:TagSession` too. A missing role is reported as access denied, as in AWS.
    pub async fn assume_role(
        &self,
        caller: &ResolvedPrincipal,
        request: AssumeRoleRequest,
    ) -> Result<TemporaryCredentials, IamError> {
        check_session_name(&request.session_name)?;
        check_tags(&request.tags)?;
        let (role_account, role_name) = parse_role_arn(&request.role_arn)?;
        check_policy_arns(&request.policy_arns)?;
        let session_policy = match &request.policy {
            Some(document) => Some(check_session_policy(document)?),
            None => None,
        };
        let plaintext = request.policy.as_deref().map_or(0, str::len)
            + request.policy_arns.iter().map(String::len).sum::<usize>();
        if plaintext > MAX_SESSION_POLICY {
            return Err(IamError::PackedPolicyTooLarge(format!(
                "Packed policy consumes {}% of allotted space, please use smaller policy for this session.",
                plaintext * 100 / MAX_SESSION_POLICY
            )));
        }
        let denied = || {
            IamError::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                caller.arn, request.role_arn
            ))
        };
        let (role, trust) = {
            let directory = self.read();
            match directory.role(&role_account, &role_name) {
                Some(live) if live.record.arn() == request.role_arn => {
                    (live.record.clone(), live.trust.clone())
                }
                _ => return Err(denied()),
            }
        };
        // Managed session policies must exist in the role's account.
        {
            let directory = self.read();
            for arn in &request.policy_arns {
                let found = directory
                    .policy_by_arn(arn)
                    .is_some_and(|policy| policy.record.account == role.account);
                if !found {
                    return Err(IamError::MalformedPolicyDocument(format!(
                        "Policy {arn} does not exist or is not attachable."
                    )));
                }
            }
        }

        let chained = matches!(caller.kind, PrincipalKind::AssumedRole { .. });
        let duration = request.duration_seconds.unwrap_or(3600);
        if duration < 900 {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy \
                 constraint: Member must have value greater than or equal to 900"
            )));
        }
        if chained && duration > ROLE_CHAINING_MAX_SECONDS {
            return Err(IamError::Validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role \
                 chaining."
                    .to_owned(),
            ));
        }
        if duration > i64::from(role.max_session_duration) {
            return Err(IamError::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .to_owned(),
            ));
        }

        let mut context = self.base_context();
        context.insert("sts:RoleSessionName", [request.session_name.as_str()]);
        if let Some(external_id) = &request.external_id {
            context.insert("sts:ExternalId", [external_id.as_str()]);
        }
        if let Some(source_identity) = &request.source_identity {
            context.insert("sts:SourceIdentity", [source_identity.as_str()]);
        }
        if !request.tags.is_empty() {
            context.insert(
                "aws:TagKeys",
                request.tags.iter().map(|tag| tag.key.clone()),
            );
            for tag in &request.tags {
                context.insert(&format!("aws:RequestTag/{}", tag.key), [tag.value.as_str()]);
            }
        }
        let mut actions = vec!["sts:AssumeRole"];
        if !request.tags.is_empty() {
            actions.push("sts:TagSession");
        }
        for action in actions {
            self.check_assume(caller, &role, &trust, action, &context)
                .map_err(|()| denied())?;
        }

        self.prune_expired_sessions().await?;
        let expires = self
            .now()
            .plus(Duration::from_secs(u64::try_from(duration).unwrap_or(3600)));
        let session = Session {
            account: role.account.clone(),
            subject: SessionSubject::Role {
                role_name: role.name.clone(),
                session_name: request.session_name.clone(),
            },
            expires,
            token_hash: Vec::new(),
            tags: request.tags,
            policy: pack_session_policies(request.policy.as_deref(), &request.policy_arns),
        };
        let has_session_policies = session_policy.is_some() || !request.policy_arns.is_empty();
        let packed_policy_size = has_session_policies
            .then(|| u32::try_from(plaintext * 100 / MAX_SESSION_POLICY).unwrap_or(100));
        let mut credentials = self.new_session(session).await?;
        credentials.assumed_role_user = Some((
            format!("{}:{}", role.role_id, request.session_name),
            format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                role.account, role.name, request.session_name
            ),
        ));
        credentials.packed_policy_size = packed_policy_size;
        Ok(credentials)
    }

    /// `GetSessionToken`: temporary credentials for a user or the root, with the same permissions.
    pub async fn get_session_token(
        &self,
        caller: &ResolvedPrincipal,
        duration_seconds: Option<i64>,
    ) -> Result<TemporaryCredentials, IamError> {
        if caller.expires.is_some() {
            return Err(IamError::AccessDenied(
                "Cannot call GetSessionToken with session credentials".to_owned(),
            ));
        }
        let (subject, default, max) = match &caller.kind {
            PrincipalKind::Root => (SessionSubject::Root, 3600, 3600),
            PrincipalKind::User { name } => (SessionSubject::User(name.clone()), 43_200, 129_600),
            PrincipalKind::AssumedRole { .. } => {
                return Err(IamError::AccessDenied(
                    "Cannot call GetSessionToken with session credentials".to_owned(),
                ));
            }
        };
        let duration = duration_seconds.unwrap_or(default);
        if !(900..=max).contains(&duration) {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy \
                 constraint: Member must have value between 900 and {max}"
            )));
        }
        self.prune_expired_sessions().await?;
        let expires = self
            .now()
            .plus(Duration::from_secs(u64::try_from(duration).unwrap_or(3600)));
        let session = Session {
            account: caller.account.clone(),
            subject,
            expires,
            token_hash: Vec::new(),
            tags: Vec::new(),
            policy: None,
        };
        self.new_session(session).await
    }

    /// Deletes the sessions `matches` selects, from storage and memory; the caller holds the write lock.
    pub(crate) async fn delete_sessions(
        &self,
        matches: impl Fn(&Session) -> bool,
    ) -> Result<(), IamError> {
        let doomed: Vec<String> = self
            .read()
            .keys
            .values()
            .filter(|key| match &key.record.owner {
                KeyOwner::Session(session) => matches(session),
                KeyOwner::Root(_) | KeyOwner::User { .. } => false,
            })
            .map(|key| key.record.access_key_id.clone())
            .collect();
        for id in doomed {
            self.store.delete_access_key(&id).await?;
            self.write().keys.remove(&id);
        }
        Ok(())
    }

    /// Whether the trust policy (and, where needed, the caller's identity policies) allow `action`.
    fn check_assume(
        &self,
        caller: &ResolvedPrincipal,
        role: &strongroom_types::Role,
        trust: &Policy,
        action: &str,
        context: &MapContext,
    ) -> Result<(), ()> {
        let role_arn = role.arn();
        let conditions = PrincipalConditions::new(caller, context);
        let request = Request {
            principal: caller.policy_principal(),
            action,
            resource: &role_arn,
            context: &conditions,
        };
        let trusted = trust.evaluate(&request);
        if trusted.explicit_deny || !(trusted.allow || trusted.allow_account) {
            return Err(());
        }
        let same_account = caller.account == role.account;
        let identity = self.evaluate_identity(caller, action, &role_arn, context);
        if identity.explicit_deny {
            return Err(());
        }
        // A trust policy naming the caller itself suffices in the role's own account; naming only the
        // account delegates to the caller's identity policies, and another account's callers always need
        // their own account's permission too.
        let allowed = match (same_account, trusted.allow) {
            (true, true) => true,
            (true, false) | (false, _) => identity.allow,
        };
        match allowed {
            true => Ok(()),
            false => Err(()),
        }
    }

    /// Makes a session key with a fresh token and stores it.
    async fn new_session(&self, mut session: Session) -> Result<TemporaryCredentials, IamError> {
        let token = Zeroizing::new(crate::names::session_token());
        session.token_hash = crate::names::token_hash(&token);
        let expiration = session.expires;
        let _writes = self.writes.lock().await;
        let key = self
            .new_access_key(KeyOwner::Session(Box::new(session)))
            .await?;
        Ok(TemporaryCredentials {
            access_key_id: key.info.access_key_id,
            secret: key.secret,
            session_token: token,
            expiration,
            assumed_role_user: None,
            packed_policy_size: None,
        })
    }

    /// Deletes expired sessions when memory holds any, so their keys do not pile up.
    async fn prune_expired_sessions(&self) -> Result<(), IamError> {
        let now = self.now();
        let any_expired = self
            .read()
            .keys
            .values()
            .any(|key| match &key.record.owner {
                KeyOwner::Session(session) => session.expires <= now,
                KeyOwner::Root(_) | KeyOwner::User { .. } => false,
            });
        if !any_expired {
            return Ok(());
        }
        let _writes = self.writes.lock().await;
        self.store.delete_expired_sessions(now).await?;
        self.write().keys.retain(|_, key| match &key.record.owner {
            KeyOwner::Session(session) => session.expires > now,
            KeyOwner::Root(_) | KeyOwner::User { .. } => true,
        });
        Ok(())
    }
}

/// The most managed session policies one `AssumeRole` may pass.
const MAX_POLICY_ARNS: usize = 10;
/// What starts each managed session policy's line in a stored session policy.
const POLICY_ARN_LINE: &str = "PolicyArn ";

/// Checks the managed session policy ARNs: how many, and each one's length and form.
fn check_policy_arns(arns: &[String]) -> Result<(), IamError> {
    if arns.len() > MAX_POLICY_ARNS {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must \
             have length less than or equal to {MAX_POLICY_ARNS}; {} were given.",
            arns.len()
        )));
    }
    for (index, arn) in arns.iter().enumerate() {
        if !(20..=2048).contains(&arn.len()) {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{arn}' at 'policyArns.{}.member.arn' failed to satisfy \
                 constraint: Member must have length between 20 and 2048",
                index + 1
            )));
        }
        if !arn.starts_with("arn:aws:iam::") || !arn.contains(":policy/") {
            return Err(IamError::Validation(format!(
                "Invalid ARN '{arn}' at 'policyArns.{}.member.arn': expected arn:aws:iam::ACCOUNT:policy/NAME.",
                index + 1
            )));
        }
    }
    Ok(())
}

/// The text a session's policies are stored as, in the one session-policy column: the inline document
/// alone when there are no managed session policies (as sessions were stored before them), otherwise one
/// `PolicyArn ARN` line per managed policy followed by the inline document, if any. A policy document is
/// JSON and cannot start with `PolicyArn `.
pub(crate) fn pack_session_policies(inline: Option<&str>, arns: &[String]) -> Option<String> {
    if arns.is_empty() {
        return inline.map(str::to_owned);
    }
    let mut packed = String::new();
    for arn in arns {
        packed.push_str(POLICY_ARN_LINE);
        packed.push_str(arn);
        packed.push('\n');
    }
    packed.push_str(inline.unwrap_or_default());
    Some(packed)
}

/// Splits stored session policies into the managed policy ARNs and the inline document.
pub(crate) fn unpack_session_policies(packed: &str) -> (Vec<String>, Option<&str>) {
    let mut arns = Vec::new();
    let mut rest = packed;
    while let Some(line) = rest.strip_prefix(POLICY_ARN_LINE) {
        let (arn, after) = line.split_once('\n').unwrap_or((line, ""));
        arns.push(arn.to_owned());
        rest = after;
    }
    let inline = match arns.is_empty() || !rest.is_empty() {
        true => Some(rest),
        false => None,
    };
    (arns, inline)
}

/// Checks an inline session policy: its size, then its grammar.
fn check_session_policy(document: &str) -> Result<Policy, IamError> {
    if document.len() > MAX_SESSION_POLICY {
        return Err(IamError::PackedPolicyTooLarge(format!(
            "Packed policy consumes {}% of allotted space, please use smaller policy for this session.",
            document.len() * 100 / MAX_SESSION_POLICY
        )));
    }
    compile(document, PolicyKind::Session)
}
