//! The body of the `policy_parse` fuzz target, kept here so that a proptest runs the same code on stable
//! Rust and the fuzz crate stays a one-line wrapper.

use crate::context::MapContext;
use crate::document::{Policy, PolicyKind};
use crate::request::{Principal, Request};

/// Parses `data` as every kind of policy and evaluates whatever parses against a handful of requests.
///
/// It panics only if the crate breaks an invariant: parsing and evaluation must never panic, and an
/// outcome names a denying Sid only when it denies.
pub fn fuzz_policy_parse(data: &[u8]) {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(_) => return,
    };
    let context = MapContext::new()
        .with("aws:username", "alice")
        .with("aws:userid", "AIDAEXAMPLE")
        .with("aws:SourceIp", "203.0.113.7")
        .with("aws:CurrentTime", "2026-01-31T12:00:00Z")
        .with("aws:EpochTime", "1769860800")
        .with("aws:SecureTransport", "true")
        .with("aws:PrincipalTag/team", "blue")
        .with("aws:TagKeys", "team")
        .with("aws:TagKeys", "cost-center")
        .with("kms:EncryptionContext:Purpose", "backup")
        .with("kms:EncryptionContextKeys", "Purpose")
        .with("kms:CallerAccount", "111122223333")
        .with("kms:ScheduleKeyDeletionPendingWindowInDays", "7")
        .with("kms:GrantIsForAWSResource", "false")
        .with("aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin")
        .with("test:Blob", "AAEC");
    let principals = [
        Principal {
            arn: "arn:aws:iam::111122223333:root",
            account: "111122223333",
            role_arn: None,
            service: None,
        },
        Principal {
            arn: "arn:aws:iam::111122223333:user/alice",
            account: "111122223333",
            role_arn: None,
            service: None,
        },
        Principal {
            arn: "arn:aws:sts::444455556666:assumed-role/admin/session",
            account: "444455556666",
            role_arn: Some("arn:aws:iam::444455556666:role/admin"),
            service: None,
        },
        Principal {
            arn: "",
            account: "",
            role_arn: None,
            service: Some("s3.amazonaws.com"),
        },
    ];
    let actions = ["kms:Encrypt", "KMS:decrypt", "sts:AssumeRole", ""];
    let resources = [
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:iam::111122223333:role/admin",
        "not-an-arn",
    ];
    let _ = crate::check_key_policy(text);
    for kind in [
        PolicyKind::KeyPolicy,
        PolicyKind::Identity,
        PolicyKind::Trust,
        PolicyKind::Session,
    ] {
        let policy = match Policy::parse(text, kind) {
            Ok(policy) => policy,
            Err(_) => continue,
        };
        for principal in principals {
            for action in actions {
                for resource in resources {
                    let request = Request {
                        principal,
                        action,
                        resource,
                        context: &context,
                    };
                    let outcome = policy.evaluate(&request);
                    assert!(
                        outcome.explicit_deny || outcome.denying_sid.is_none(),
                        "a denying Sid without a deny: {outcome:?}"
                    );
                }
            }
        }
    }
}
