//! The IAM policy language, as key policies use it.
//!
//! Today this crate checks that a policy document is well formed, the way `PutKeyPolicy` and `CreateKey`
//! refuse malformed documents; evaluating policies against requests comes with the authorization work.
//! It is pure: no I/O.

use serde_json::Value;

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

/// Checks a key policy document: size, JSON syntax, and the grammar of its statements.
pub fn check_key_policy(text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_KEY_POLICY_BYTES {
        return Err(PolicyError::TooLarge(text.len()));
    }
    let malformed = |message: String| Err(PolicyError::Malformed(message));
    let document: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return malformed(format!("The policy is not valid JSON: {e}.")),
    };
    let Value::Object(document) = document else {
        return malformed("The policy must be a JSON object.".to_owned());
    };
    for field in document.keys() {
        if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
            return malformed(format!("The policy has an unknown element '{field}'."));
        }
    }
    match document.get("Version") {
        None | Some(Value::String(_)) => {}
        Some(_) => {
            return malformed(
                "The policy's Version must be a string such as \"2012-10-17\".".to_owned(),
            );
        }
    }
    if let Some(Value::String(version)) = document.get("Version")
        && version != "2012-10-17"
        && version != "2008-10-17"
    {
        return malformed(format!(
            "The policy's Version '{version}' is not supported: use \"2012-10-17\"."
        ));
    }
    let statements = match document.get("Statement") {
        Some(Value::Array(statements)) => statements.iter().collect::<Vec<_>>(),
        Some(statement @ Value::Object(_)) => vec![statement],
        Some(_) => {
            return malformed(
                "The policy's Statement must be an object or an array of objects.".to_owned(),
            );
        }
        None => return malformed("The policy has no Statement.".to_owned()),
    };
    for (index, statement) in statements.iter().enumerate() {
        check_statement(index, statement)?;
    }
    Ok(())
}

fn check_statement(index: usize, statement: &Value) -> Result<(), PolicyError> {
    let at = |message: &str| {
        Err(PolicyError::Malformed(format!(
            "Statement {index}: {message}"
        )))
    };
    let Value::Object(statement) = statement else {
        return at("a statement must be a JSON object.");
    };
    for field in statement.keys() {
        let known = matches!(
            field.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        );
        if !known {
            return at(&format!("unknown element '{field}'."));
        }
    }
    match statement.get("Effect") {
        Some(Value::String(effect)) if effect == "Allow" || effect == "Deny" => {}
        Some(_) => return at("Effect must be \"Allow\" or \"Deny\"."),
        None => return at("the statement has no Effect."),
    }
    if statement.contains_key("Principal") == statement.contains_key("NotPrincipal") {
        return at("a key policy statement needs exactly one of Principal or NotPrincipal.");
    }
    if statement.contains_key("Action") && statement.contains_key("NotAction") {
        return at("a statement cannot have both Action and NotAction.");
    }
    if statement.contains_key("Resource") && statement.contains_key("NotResource") {
        return at("a statement cannot have both Resource and NotResource.");
    }
    for field in ["Action", "NotAction", "Resource", "NotResource"] {
        match statement.get(field) {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return at(&format!("{field} must be a string or an array of strings.")),
        }
    }
    match statement.get("Condition") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => at("Condition must be an object."),
    }
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
