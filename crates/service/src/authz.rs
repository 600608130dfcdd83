//! Authorization: every key operation is checked against the key's policy, as AWS KMS evaluates it.
//!
//! An explicit deny wins. The key policy is the primary control: a statement naming the caller allows;
//! a statement naming the caller's account delegates to that account's IAM policies (users, roles and
//! role sessions, through `strongroom_iam`), and an account's root user is allowed everything its account
//! may do; another account's callers need both. Grants allow their operations. Operations on no key
//! (CreateKey, ListKeys, ListAliases, GenerateRandom) are decided by identity policies alone, on `*`.
//!
//! Condition values are computed only when a policy statement asks for them, so the default key policy
//! costs no allocation per request. Key policies do not see the condition keys AWS evaluates in IAM
//! policies only (`kms:ResourceAliases`).

use std::cell::OnceCell;

use strongroom_iam::{Identities, PrincipalConditions};
use strongroom_policy::{ConditionContext, Outcome, Policy, Principal, Request};
use strongroom_types::{EncryptionContext, GrantRecord, KeyRecord, Tag};

use crate::{Caller, Error};

/// Facts about one request that policy conditions may test, beyond the caller and the key.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    /// The encryption context of a cryptographic request; for CreateGrant, the grant's constraint
    /// (`kms:EncryptionContext:*`, `kms:EncryptionContextKeys`).
    pub(crate) encryption_context: Option<&'a EncryptionContext>,
    /// The encryption algorithm (`kms:EncryptionAlgorithm`).
    pub(crate) encryption_algorithm: Option<&'a str>,
    /// The alias the request named the key by (`kms:RequestAlias`).
    pub(crate) request_alias: Option<&'a str>,
    /// `kms:RotationPeriodInDays`.
    pub(crate) rotation_period_days: Option<i64>,
    /// `kms:ScheduleKeyDeletionPendingWindowInDays`.
    pub(crate) pending_window_days: Option<i64>,
    /// `kms:BypassPolicyLockoutSafetyCheck`.
    pub(crate) bypass_lockout_check: Option<bool>,
    /// `kms:SigningAlgorithm`.
    pub(crate) signing_algorithm: Option<&'a str>,
    /// `kms:MessageType`.
    pub(crate) message_type: Option<&'a str>,
    /// `kms:MacAlgorithm`.
    pub(crate) mac_algorithm: Option<&'a str>,
    /// `kms:KeyAgreementAlgorithm`.
    pub(crate) key_agreement_algorithm: Option<&'a str>,
    /// `kms:DataKeyPairSpec`.
    pub(crate) data_key_pair_spec: Option<&'a str>,
    /// `kms:WrappingAlgorithm` (GetParametersForImport).
    pub(crate) wrapping_algorithm: Option<&'a str>,
    /// `kms:WrappingKeySpec` (GetParametersForImport).
    pub(crate) wrapping_key_spec: Option<&'a str>,
    /// `kms:ExpirationModel` (ImportKeyMaterial).
    pub(crate) expiration_model: Option<&'a str>,
    /// `kms:ValidTo` in Unix seconds (ImportKeyMaterial).
    pub(crate) valid_to: Option<i64>,
    /// `kms:GrantOperations` (CreateGrant).
    pub(crate) grant_operations: Option<&'a [String]>,
    /// `kms:GrantConstraintType` (CreateGrant): `EncryptionContextEquals`, `EncryptionContextSubset`.
    pub(crate) grant_constraint_types: Option<&'a [String]>,
    /// `kms:GranteePrincipal` (CreateGrant).
    pub(crate) grantee_principal: Option<&'a str>,
    /// `kms:RetiringPrincipal` (CreateGrant).
    pub(crate) retiring_principal: Option<&'a str>,
    /// `kms:ReplicaRegion` (ReplicateKey): the Region of the new replica.
    pub(crate) replica_region: Option<&'a str>,
    /// `kms:PrimaryRegion` (UpdatePrimaryRegion): the Region of the new primary.
    pub(crate) primary_region: Option<&'a str>,
    /// `kms:MultiRegionKeyType`: `PRIMARY` or `REPLICA`: the prospective key's for CreateKey and a
    /// replica's kms:CreateKey, the cached key's place in its set for every operation on a multi-Region key.
    pub(crate) multi_region_key_type: Option<&'a str>,
    /// `kms:ResourceAliases`: the names of the aliases of the key the request acts on (IAM policies only).
    pub(crate) resource_aliases: Option<&'a [String]>,
    /// The tags a request adds (`aws:RequestTag/*`, `aws:TagKeys`): CreateKey's and ReplicateKey's `Tags`.
    pub(crate) request_tags: Option<&'a [Tag]>,
    /// `kms:ReEncryptOnSameKey` (ReEncrypt): whether the source and destination keys are the same key.
    pub(crate) reencrypt_on_same_key: Option<bool>,
}

/// Whether a principal ARN is an account's root user.
fn is_root(arn: &str) -> bool {
    arn.ends_with(":root")
}

/// Decides whether `caller` may perform `action` (for example `kms:Encrypt`) on `key` under `policy`.
///
/// `identities` resolves IAM users and role sessions; callers it does not know (the administrator key and
/// the `--dev` keys) are account roots.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per purpose; a struct would only rename them"
)]
pub(crate) fn authorize(
    caller: &Caller,
    action: &str,
    key_arn: &str,
    key: &KeyRecord,
    policy: &Policy,
    grants: &[GrantRecord],
    identities: Option<&Identities>,
    now_millis: i64,
    facts: RequestFacts<'_>,
) -> Result<(), Error> {
    let base = Conditions::new(caller, action, Some(key), facts, now_millis);
    let principal =
        identities.and_then(|ids| ids.principal(&caller.access_key_id).map(|p| (ids, p)));
    let same_account = caller.account() == &key.namespace.account;
    let verdict = match &principal {
        None => {
            let request = Request {
                principal: Principal {
                    arn: &caller.arn,
                    account: caller.account().as_str(),
                    role_arn: None,
                    service: None,
                },
                action,
                resource: key_arn,
                context: &KeyPolicyConditions(&base),
            };
            let outcome = policy.evaluate(&request);
            // The root user holds every permission its account has.
            let identity_allows = is_root(&caller.arn);
            decide(&outcome, false, identity_allows, same_account)
        }
        Some((ids, principal)) => {
            let context = PrincipalConditions::new(principal, &base);
            let request = Request {
                principal: Principal {
                    arn: &principal.arn,
                    account: principal.account.as_str(),
                    role_arn: principal.role_arn.as_deref(),
                    service: None,
                },
                action,
                resource: key_arn,
                context: &KeyPolicyConditions(&context),
            };
            let outcome = policy.evaluate(&request);
            let identity = ids.evaluate_identity(principal, action, key_arn, &context);
            decide(
                &outcome,
                identity.explicit_deny,
                identity.allow,
                same_account,
            )
        }
    };
    // Grants only allow; they never override an explicit deny.
    let denied_explicitly = matches!(verdict, Verdict::ResourceDeny | Verdict::IdentityDeny);
    if !denied_explicitly {
        let role_arn = principal.as_ref().and_then(|(_, p)| p.role_arn.as_deref());
        if grants
            .iter()
            .any(|grant| grant_allows(grant, caller, role_arn, action, facts))
        {
            return Ok(());
        }
    }
    let reason = match verdict {
        Verdict::Allow => return Ok(()),
        Verdict::ResourceDeny => "with an explicit deny in a resource-based policy".to_owned(),
        Verdict::IdentityDeny => "with an explicit deny in an identity-based policy".to_owned(),
        Verdict::NoResourceAllow => {
            format!("because no resource-based policy allows the {action} action")
        }
        Verdict::NoIdentityAllow => {
            format!("because no identity-based policy allows the {action} action")
        }
    };
    Err(Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {key_arn} {reason}",
        caller.arn
    )))
}

/// Decides an operation that no key policy governs (CreateKey): only the caller's IAM policies count,
/// with `resource` as the request's resource (`*` for CreateKey) and the prospective key's properties as
/// condition values. Account roots, and callers IAM does not know (the administrator and `--dev` keys),
/// hold every permission of their account.
pub(crate) fn authorize_identity(
    caller: &Caller,
    action: &str,
    resource: &str,
    key: &KeyRecord,
    identities: Option<&Identities>,
    now_millis: i64,
    facts: RequestFacts<'_>,
) -> Result<(), Error> {
    match identity_decision(
        caller,
        action,
        resource,
        Some(key),
        identities,
        now_millis,
        facts,
    ) {
        Ok(()) => Ok(()),
        Err(reason) => Err(Error::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} {reason}",
            caller.arn
        ))),
    }
}

/// Tags given to CreateKey or ReplicateKey: the caller's IAM policies must also allow kms:TagResource on
/// the new key, with the tags as `aws:RequestTag/*` and `aws:TagKeys`, as AWS requires. Account roots (and
/// callers IAM does not know) hold that permission. Nothing to check without tags.
pub(crate) fn authorize_tags_on_create(
    caller: &Caller,
    key: &KeyRecord,
    identities: Option<&Identities>,
    now_millis: i64,
    facts: RequestFacts<'_>,
) -> Result<(), Error> {
    if key.tags.is_empty() {
        return Ok(());
    }
    let facts = RequestFacts {
        request_tags: Some(&key.tags),
        ..facts
    };
    authorize_identity(
        caller,
        "kms:TagResource",
        &key.arn(),
        key,
        identities,
        now_millis,
        facts,
    )
}

/// Decides an operation that acts on no key (ListKeys, ListAliases, GenerateRandom): the caller's IAM
/// policies on resource `*`, as AWS evaluates actions without resource-level permissions. Key properties
/// are absent from the condition values, and AWS's refusal names no resource.
pub(crate) fn authorize_account_action(
    caller: &Caller,
    action: &str,
    identities: Option<&Identities>,
    now_millis: i64,
    facts: RequestFacts<'_>,
) -> Result<(), Error> {
    match identity_decision(caller, action, "*", None, identities, now_millis, facts) {
        Ok(()) => Ok(()),
        Err(reason) => Err(Error::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} {reason}",
            caller.arn
        ))),
    }
}

/// The caller's identity policies on `action` and `resource`; the error is the end of AWS's refusal
/// ("because no identity-based policy allows …").
fn identity_decision(
    caller: &Caller,
    action: &str,
    resource: &str,
    key: Option<&KeyRecord>,
    identities: Option<&Identities>,
    now_millis: i64,
    facts: RequestFacts<'_>,
) -> Result<(), String> {
    let Some((ids, principal)) =
        identities.and_then(|ids| ids.principal(&caller.access_key_id).map(|p| (ids, p)))
    else {
        return Ok(());
    };
    let base = Conditions::new(caller, action, key, facts, now_millis);
    let context = PrincipalConditions::new(&principal, &base);
    let identity = ids.evaluate_identity(&principal, action, resource, &context);
    if identity.explicit_deny {
        return Err("with an explicit deny in an identity-based policy".to_owned());
    }
    if identity.allow {
        return Ok(());
    }
    Err(format!(
        "because no identity-based policy allows the {action} action"
    ))
}

/// Whether a grant lets the caller perform `action`: it names the caller (or the role a session assumed),
/// lists the operation, and its encryption-context constraint holds.
fn grant_allows(
    grant: &GrantRecord,
    caller: &Caller,
    role_arn: Option<&str>,
    action: &str,
    facts: RequestFacts<'_>,
) -> bool {
    let grantee = grant.grantee_principal.as_str();
    let names_caller = grantee == caller.arn || Some(grantee) == role_arn;
    let Some(operation) = action.strip_prefix("kms:") else {
        return false;
    };
    if !names_caller || !grant.operations.iter().any(|allowed| allowed == operation) {
        return false;
    }
    // Constraints do not apply to operations without an encryption context.
    if matches!(operation, "DescribeKey" | "RetireGrant" | "CreateGrant") {
        return true;
    }
    let empty = std::collections::BTreeMap::new();
    let context = facts.encryption_context.map_or(&empty, |c| c.pairs());
    if let Some(equals) = &grant.context_equals
        && equals != context
    {
        return false;
    }
    if let Some(subset) = &grant.context_subset
        && !subset.iter().all(|(k, v)| context.get(k) == Some(v))
    {
        return false;
    }
    true
}

enum Verdict {
    Allow,
    ResourceDeny,
    IdentityDeny,
    NoResourceAllow,
    NoIdentityAllow,
}

/// AWS KMS's combination: an explicit deny anywhere wins; in the key's own account the key policy allows
/// by naming the principal, or delegates to IAM by naming the account; another account's callers need
/// both the key policy and their own identity policies.
fn decide(
    key_policy: &Outcome,
    identity_denies: bool,
    identity_allows: bool,
    same_account: bool,
) -> Verdict {
    if key_policy.explicit_deny {
        return Verdict::ResourceDeny;
    }
    if identity_denies {
        return Verdict::IdentityDeny;
    }
    if !key_policy.allow && !key_policy.allow_account {
        return Verdict::NoResourceAllow;
    }
    if same_account && key_policy.allow {
        return Verdict::Allow;
    }
    if identity_allows {
        return Verdict::Allow;
    }
    Verdict::NoIdentityAllow
}

/// The lockout safety check: a new key policy must let the caller change the policy again later.
///
/// The future PutKeyPolicy call is judged with what the key will carry then: `key_facts` gives its
/// `kms:MultiRegionKeyType` and `kms:ResourceAliases` (its alias names; none for a key being created),
/// so that a caller whose identity policy allows PutKeyPolicy only on keys with those properties is
/// not refused, nor let through, because of values the check left out.
pub(crate) fn check_lockout(
    caller: &Caller,
    key: &KeyRecord,
    policy: &Policy,
    identities: Option<&Identities>,
    now_millis: i64,
    key_facts: RequestFacts<'_>,
) -> Result<(), Error> {
    let key_arn = key.arn();
    let facts = RequestFacts {
        multi_region_key_type: key_facts.multi_region_key_type,
        resource_aliases: key_facts.resource_aliases,
        ..RequestFacts::default()
    };
    match authorize(caller, "kms:PutKeyPolicy", &key_arn, key, policy, &[], identities, now_millis, facts) {
        Ok(()) => Ok(()),
        Err(_) => Err(Error::MalformedPolicyDocument(
            "The new key policy will not allow you to update the key policy in the future. To create the key or \
             change its policy anyway, set BypassPolicyLockoutSafetyCheck to true."
                .to_owned(),
        )),
    }
}

/// The condition values a key policy sees: the request's, without the keys AWS evaluates only in IAM
/// policies (there they are absent, so conditions on them do not match).
struct KeyPolicyConditions<'a>(&'a dyn ConditionContext);

impl ConditionContext for KeyPolicyConditions<'_> {
    fn values(&self, key: &str) -> Option<&[String]> {
        if key.eq_ignore_ascii_case("kms:resourcealiases") {
            return None;
        }
        self.0.values(key)
    }
}

/// Condition keys of one request. Each value is computed the first time a policy asks for it, so a
/// policy that tests one key pays for one key.
struct Conditions<'a> {
    caller: &'a Caller,
    /// The action being decided, for keys that exist only for some actions.
    action: &'a str,
    /// The key the request acts on; `None` for operations on no key (ListKeys, GenerateRandom), whose
    /// requests carry no key properties.
    key: Option<&'a KeyRecord>,
    facts: RequestFacts<'a>,
    now_millis: i64,
    values: [OnceCell<Option<Vec<String>>>; SIMPLE_KEYS.len()],
    context_keys: OnceCell<Option<Vec<String>>>,
    tag_keys: OnceCell<Option<Vec<String>>>,
}

/// The single-valued keys computed from the request, in lower case (policies ask in lower case).
const SIMPLE_KEYS: [&str; 42] = [
    "kms:calleraccount",
    "kms:keyorigin",
    "kms:keyspec",
    "kms:keyusage",
    "kms:customermasterkeyspec",
    "kms:customermasterkeyusage",
    "kms:keymanager",
    "kms:multiregion",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:userid",
    "aws:securetransport",
    "aws:requestedregion",
    "aws:epochtime",
    "aws:currenttime",
    "aws:sourceip",
    "aws:sourcevpc",
    "kms:viaservice",
    "aws:sourcevpce",
    "aws:vpcsourceip",
    "kms:encryptionalgorithm",
    "kms:requestalias",
    "kms:rotationperiodindays",
    "kms:schedulekeydeletionpendingwindowindays",
    "kms:bypasspolicylockoutsafetycheck",
    "kms:signingalgorithm",
    "kms:messagetype",
    "kms:macalgorithm",
    "kms:keyagreementalgorithm",
    "kms:datakeypairspec",
    "kms:wrappingalgorithm",
    "kms:wrappingkeyspec",
    "kms:expirationmodel",
    "kms:validto",
    "kms:granteeprincipal",
    "kms:retiringprincipal",
    "kms:grantisforawsresource",
    "kms:replicaregion",
    "kms:primaryregion",
    "kms:multiregionkeytype",
    "kms:reencryptonsamekey",
];

impl<'a> Conditions<'a> {
    fn new(
        caller: &'a Caller,
        action: &'a str,
        key: Option<&'a KeyRecord>,
        facts: RequestFacts<'a>,
        now_millis: i64,
    ) -> Conditions<'a> {
        Conditions {
            caller,
            action,
            key,
            facts,
            now_millis,
            values: std::array::from_fn(|_| OnceCell::new()),
            context_keys: OnceCell::new(),
            tag_keys: OnceCell::new(),
        }
    }

    fn compute(&self, name: &str) -> Option<Vec<String>> {
        let caller = self.caller;
        let key = self.key;
        let facts = &self.facts;
        let value: String = match name {
            "kms:calleraccount" | "aws:principalaccount" | "aws:userid" => {
                caller.account().as_str().to_owned()
            }
            "kms:keyorigin" => key?.origin.as_str().to_owned(),
            "kms:keyspec" | "kms:customermasterkeyspec" => key?.key_spec.as_str().to_owned(),
            "kms:keyusage" | "kms:customermasterkeyusage" => key?.key_usage.as_str().to_owned(),
            "kms:keymanager" => key?.key_manager.as_str().to_owned(),
            "kms:multiregion" => key?.multi_region.to_string(),
            "aws:principalarn" => caller.arn.clone(),
            "aws:principaltype" => if is_root(&caller.arn) {
                "Account"
            } else {
                "User"
            }
            .to_owned(),
            "aws:securetransport" => "false".to_owned(),
            // The Region the request acts in: the key's (a replica's, for ReplicateKey's kms:CreateKey).
            "aws:requestedregion" => key
                .map_or(&caller.namespace.region, |key| &key.namespace.region)
                .as_str()
                .to_owned(),
            "aws:epochtime" => (self.now_millis / 1000).to_string(),
            "aws:currenttime" => iso8601(self.now_millis),
            "aws:sourceip" => caller.source_ip?.to_string(),
            "aws:sourcevpc" => caller.source_vpc.clone()?,
            "kms:viaservice" => caller.via_service.clone()?,
            "aws:sourcevpce" => caller.source_vpce.clone()?,
            "aws:vpcsourceip" => {
                caller.source_vpc.as_ref()?;
                caller.source_ip?.to_string()
            }
            "kms:encryptionalgorithm" => facts.encryption_algorithm?.to_owned(),
            "kms:requestalias" => facts.request_alias?.to_owned(),
            "kms:rotationperiodindays" => facts.rotation_period_days?.to_string(),
            "kms:schedulekeydeletionpendingwindowindays" => facts.pending_window_days?.to_string(),
            "kms:bypasspolicylockoutsafetycheck" => facts.bypass_lockout_check?.to_string(),
            "kms:signingalgorithm" => facts.signing_algorithm?.to_owned(),
            "kms:messagetype" => facts.message_type?.to_owned(),
            "kms:macalgorithm" => facts.mac_algorithm?.to_owned(),
            "kms:keyagreementalgorithm" => facts.key_agreement_algorithm?.to_owned(),
            "kms:datakeypairspec" => facts.data_key_pair_spec?.to_owned(),
            "kms:granteeprincipal" => facts.grantee_principal?.to_owned(),
            "kms:retiringprincipal" => facts.retiring_principal?.to_owned(),
            // A grant is for an AWS resource when an integrated service asks on a caller's behalf; the key
            // exists for the grant operations that AWS lists (CreateGrant, ListGrants, RevokeGrant).
            "kms:grantisforawsresource" => match self.action {
                "kms:CreateGrant" | "kms:ListGrants" | "kms:RevokeGrant" => {
                    caller.via_service.is_some().to_string()
                }
                _ => return None,
            },
            "kms:replicaregion" => facts.replica_region?.to_owned(),
            "kms:primaryregion" => facts.primary_region?.to_owned(),
            "kms:multiregionkeytype" => facts.multi_region_key_type?.to_owned(),
            "kms:reencryptonsamekey" => facts.reencrypt_on_same_key?.to_string(),
            "kms:wrappingalgorithm" => facts.wrapping_algorithm?.to_owned(),
            "kms:wrappingkeyspec" => facts.wrapping_key_spec?.to_owned(),
            "kms:expirationmodel" => facts.expiration_model?.to_owned(),
            "kms:validto" => facts.valid_to?.to_string(),
            _ => return None,
        };
        Some(vec![value])
    }
}

impl ConditionContext for Conditions<'_> {
    fn values(&self, key: &str) -> Option<&[String]> {
        // Values that already exist in the request are lent, not copied.
        if let Some(name) = strip_prefix_ignore_case(key, "kms:encryptioncontext:") {
            let context = self.facts.encryption_context?;
            let (_, value) = context
                .pairs()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))?;
            return Some(std::slice::from_ref(value));
        }
        if let Some(name) = strip_prefix_ignore_case(key, "aws:resourcetag/") {
            let tag = self
                .key?
                .tags
                .iter()
                .find(|tag| tag.key.eq_ignore_ascii_case(name))?;
            return Some(std::slice::from_ref(&tag.value));
        }
        if let Some(name) = strip_prefix_ignore_case(key, "aws:requesttag/") {
            let tag = self
                .facts
                .request_tags?
                .iter()
                .find(|tag| tag.key.eq_ignore_ascii_case(name))?;
            return Some(std::slice::from_ref(&tag.value));
        }
        if key.eq_ignore_ascii_case("aws:tagkeys") {
            let keys = self.tag_keys.get_or_init(|| {
                self.facts
                    .request_tags
                    .map(|tags| tags.iter().map(|tag| tag.key.clone()).collect())
            });
            return keys.as_deref();
        }
        if key.eq_ignore_ascii_case("kms:resourcealiases") {
            return self.facts.resource_aliases;
        }
        if key.eq_ignore_ascii_case("kms:grantoperations") {
            return self.facts.grant_operations;
        }
        if key.eq_ignore_ascii_case("kms:grantconstrainttype") {
            return self.facts.grant_constraint_types;
        }
        if key.eq_ignore_ascii_case("kms:encryptioncontextkeys") {
            let keys = self.context_keys.get_or_init(|| {
                self.facts
                    .encryption_context
                    .map(|context| context.pairs().keys().cloned().collect())
            });
            return keys.as_deref();
        }
        let index = SIMPLE_KEYS
            .iter()
            .position(|simple| simple.eq_ignore_ascii_case(key))?;
        self.values[index]
            .get_or_init(|| self.compute(SIMPLE_KEYS[index]))
            .as_deref()
    }
}

fn strip_prefix_ignore_case<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &key[prefix.len()..])
}

/// An instant as ISO 8601 in UTC, the form `aws:CurrentTime` takes.
fn iso8601(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
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
