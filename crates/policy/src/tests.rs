//! Tests of the policy language: key policy checking as the service uses it, a table of evaluation cases,
//! parser errors with their messages, and properties over random input.

mod cases;
mod errors;
mod properties;

use crate::{PolicyError, check_key_policy, default_key_policy};

#[test]
fn default_policy_is_valid_and_names_the_account() {
    let policy = default_key_policy("111122223333");
    assert_eq!(check_key_policy(&policy), Ok(()));
    assert!(policy.contains("arn:aws:iam::111122223333:root"));
}

#[test]
fn malformed_documents_say_what_is_wrong() {
    let cases = [
        ("not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"Version":"2012-10-17"}"#, "no Statement"),
        (
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*","Resource":"*"}]}"#,
            "Effect",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
            "Principal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":3,"Resource":"*"}}"#,
            "Action must be",
        ),
        (
            r#"{"Version":"2000-01-01","Statement":[]}"#,
            "not supported",
        ),
        (r#"{"Statement":[],"Bogus":1}"#, "unknown element 'Bogus'"),
    ];
    for (document, expected) in cases {
        match check_key_policy(document) {
            Err(PolicyError::Malformed(message)) => {
                assert!(message.contains(expected), "{document}: {message}")
            }
            other => panic!("{document}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn size_limit() {
    let padding = " ".repeat(32 * 1024);
    let policy = format!(r#"{{"Statement":[]}}{padding}"#);
    assert_eq!(
        check_key_policy(&policy),
        Err(PolicyError::TooLarge(policy.len()))
    );
}
