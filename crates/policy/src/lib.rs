//! The IAM policy language, as AWS KMS and IAM use it: parsing policy documents and evaluating requests
//! against them.
//!
//! [`Policy::parse`] turns a JSON document into a compiled [`Policy`] or says, in a
//! `MalformedPolicyDocument`-style message, what is wrong and in which statement.
//! [`Policy::evaluate`] answers one [`Request`] with an [`Outcome`]: whether a statement denies, allows the
//! principal, or allows its whole account (which AWS KMS reads as delegation to IAM policies).
//! Combining the outcomes of a key policy, IAM policies and grants is the caller's business.
//! The crate is pure: no I/O, no clock (the caller puts `aws:CurrentTime` in the context).

mod condition;
mod context;
mod document;
mod fuzzing;
mod pattern;
mod principal;
mod request;
mod scalar;

pub use context::{ConditionContext, MapContext};
pub use document::{Policy, PolicyKind};
pub use fuzzing::fuzz_policy_parse;
pub use request::{Outcome, Principal, Request};

/// The largest key policy AWS KMS accepts, in bytes.
pub const MAX_KEY_POLICY_BYTES: usize = 32 * 1024;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Larger than [`MAX_KEY_POLICY_BYTES`] (`LimitExceededException` in KMS).
    #[error("The key policy is {0} bytes; the limit is 32768 bytes.")]
    TooLarge(usize),
    /// Not a well-formed policy (`MalformedPolicyDocumentException` in KMS); the message says where.
    #[error("{0}")]
    Malformed(String),
}

/// Checks a key policy document the way `PutKeyPolicy` and `CreateKey` do: size, characters, JSON syntax,
/// and the grammar of every statement, condition and principal.
pub fn check_key_policy(text: &str) -> Result<(), PolicyError> {
    Policy::parse(text, PolicyKind::KeyPolicy).map(|_| ())
}

/// The key policy AWS KMS gives a key created without one: the account's root may do everything, which
/// delegates access to the account's IAM policies.
pub fn default_key_policy(account_id: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \
         \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \
         \"AWS\" : \"arn:aws:iam::{account_id}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \
         \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

#[cfg(test)]
mod tests;
