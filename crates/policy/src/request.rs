//! What a policy is asked about (a principal calling an action on a resource) and what it answers.

use crate::context::ConditionContext;

/// The authenticated caller, as Principal elements see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The caller's ARN: `arn:aws:iam::111122223333:user/alice`, `…:role/r`,
    /// `arn:aws:sts::111122223333:assumed-role/r/session`, or `arn:aws:iam::111122223333:root`.
    pub arn: &'a str,
    /// The caller's account, so that a policy naming the account reaches every principal in it.
    pub account: &'a str,
    /// For a role session, the role's ARN (with its path), which a Principal element may name instead of the
    /// session.
    pub role_arn: Option<&'a str>,
    /// When an AWS service calls as itself, its service principal, such as `s3.amazonaws.com`.
    pub service: Option<&'a str>,
}

/// One authorization question: may this principal perform this action on this resource?
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Who is calling.
    pub principal: Principal<'a>,
    /// The action, such as `kms:Encrypt`; matched without regard to case.
    pub action: &'a str,
    /// The resource's ARN, such as `arn:aws:kms:us-east-1:111122223333:key/…`.
    pub resource: &'a str,
    /// The request's condition keys.
    pub context: &'a dyn ConditionContext,
}

/// What one policy says about a request; the caller combines the outcomes of the policies that apply
/// (key policy, IAM policies, grants), and an explicit deny in any of them wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A Deny statement matched; nothing else can allow the request.
    pub explicit_deny: bool,
    /// An Allow statement matched this exact principal (for identity and session policies, the identity
    /// the policy is attached to).
    pub allow: bool,
    /// An Allow statement in a resource policy named the principal's account as a whole, which AWS KMS reads
    /// as delegating the decision to the account's IAM policies.
    pub allow_account: bool,
    /// The Sid of the first Deny statement that matched, for the audit record and the error message.
    pub denying_sid: Option<String>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Request")
            .field("principal", &self.principal)
            .field("action", &self.action)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}
