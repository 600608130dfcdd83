//! Properties over random input: the parser never panics, evaluation never panics, and the building
//! blocks agree with simple reference implementations.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::context::MapContext;
use crate::pattern::{Fold, Pattern, Syntax};
use crate::scalar::parse_date;
use crate::{Policy, PolicyKind, Principal, Request, fuzz_policy_parse};

/// Words a policy is made of, so that random documents get past the JSON layer into the grammar.
const WORDS: &[&str] = &[
    "2012-10-17",
    "2008-10-17",
    "Allow",
    "Deny",
    "*",
    "?",
    "kms:*",
    "kms:Encrypt",
    "KMS:decrypt",
    "kms:Generate*",
    "sts:AssumeRole",
    "s3:Get?bject",
    "arn:aws:iam::111122223333:root",
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::444455556666:role/admin",
    "arn:aws:sts::444455556666:assumed-role/admin/session",
    "111122223333",
    "s3.amazonaws.com",
    "arn:aws:kms:*:111122223333:key/*",
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:*",
    "${aws:username}",
    "${aws:PrincipalTag/team, 'x'}",
    "${*}",
    "${",
    "${}",
    "}",
    "'",
    "true",
    "false",
    "TRUE",
    "10.0.0.0/8",
    "203.0.113.0/24",
    "2001:db8::/32",
    "::ffff:1.2.3.4",
    "2026-01-31T12:00:00Z",
    "2026-01-31",
    "1769860800",
    "AAEC",
    "aGVsbG8=",
    "7",
    "-1.5",
    "",
    "alice",
    "backup",
    "Purpose",
    "team",
    "Sid with spaces",
    "ü",
    "\u{4e00}",
];

const KEYS: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "AWS",
    "Service",
    "Federated",
    "CanonicalUser",
    "StringEquals",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "ForAnyValue:StringNotLike",
    "ForAllValues:StringEquals",
    "NumericLessThanIfExists",
    "DateGreaterThan",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddressIfExists",
    "ArnLike",
    "ArnNotEquals",
    "Null",
    "NullIfExists",
    "aws:username",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:TagKeys",
    "aws:PrincipalTag/team",
    "aws:SecureTransport",
    "kms:EncryptionContext:Purpose",
    "kms:EncryptionContextKeys",
    "kms:CallerAccount",
    "aws:PrincipalArn",
    "test:Blob",
    "aws:RequestTag/team",
    "nokey",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => word().prop_map(Value::String),
        1 => any::<i32>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                )
            }),
        ]
    })
}

const PRINCIPALS: &[&str] = &[
    "*",
    "111122223333",
    "arn:aws:iam::111122223333:root",
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::444455556666:role/admin",
    "arn:aws:sts::444455556666:assumed-role/admin/session",
];
const ACTIONS: &[&str] = &[
    "*",
    "kms:*",
    "kms:Encrypt",
    "KMS:decrypt",
    "kms:Generate*",
    "sts:AssumeRole",
    "sts:*",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:kms:*:111122223333:key/*",
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:*",
    "arn:aws:kms:*:111122223333:alias/${aws:username}",
    "arn:aws:kms:?s-east-1:*:*",
];
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "StringNotLikeIfExists",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringNotLike",
    "NumericLessThan",
    "NumericNotEquals",
    "DateGreaterThan",
    "DateLessThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnLike",
    "ArnNotEquals",
    "Null",
];
const CONDITION_KEYS: &[&str] = &[
    "aws:username",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:TagKeys",
    "aws:PrincipalTag/team",
    "aws:SecureTransport",
    "kms:EncryptionContext:Purpose",
    "kms:EncryptionContextKeys",
    "kms:CallerAccount",
    "aws:PrincipalArn",
    "test:Blob",
    "kms:ScheduleKeyDeletionPendingWindowInDays",
    "test:Absent",
];
const VALUES: &[&str] = &[
    "alice",
    "backup",
    "b*",
    "${aws:username}",
    "true",
    "false",
    "7",
    "30",
    "10.0.0.0/8",
    "203.0.113.0/24",
    "2026-01-31T12:00:00Z",
    "1769860800",
    "AAEC",
    "arn:aws:iam::*:role/admin",
    "*",
];

/// Mostly a word from `choices`, sometimes any word, as a string or a short list.
fn strings_from(choices: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let one = prop_oneof![
        9 => prop::sample::select(choices).prop_map(str::to_owned),
        1 => word(),
    ];
    prop_oneof![
        3 => one.clone().prop_map(Value::String),
        1 => prop::collection::vec(one.prop_map(Value::String), 1..3).prop_map(Value::Array),
    ]
}

fn strings() -> impl Strategy<Value = Value> {
    strings_from(WORDS)
}

/// A statement shaped like a real one, with mostly sensible words in every element.
fn statement() -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        Just(Value::String("*".to_owned())),
        strings_from(PRINCIPALS).prop_map(|names| serde_json::json!({ "AWS": names })),
        strings_from(&["s3.amazonaws.com", "ec2.amazonaws.com"])
            .prop_map(|names| serde_json::json!({ "Service": names })),
        strings().prop_map(|names| serde_json::json!({ "Federated": names })),
    ];
    let condition = prop::collection::vec(
        (
            prop_oneof![9 => prop::sample::select(OPERATORS), 1 => prop::sample::select(KEYS)],
            prop::sample::select(CONDITION_KEYS),
            strings_from(VALUES),
        ),
        0..3,
    )
    .prop_map(|entries| {
        let mut operators = Map::new();
        for (operator, key, values) in entries {
            operators.insert(operator.to_owned(), serde_json::json!({ key: values }));
        }
        Value::Object(operators)
    });
    (
        prop::sample::select(&["Allow", "Deny"][..]),
        prop::option::weighted(0.5, principal),
        prop::option::weighted(0.95, strings_from(ACTIONS)),
        prop::option::weighted(0.7, strings_from(RESOURCES)),
        prop::option::of(prop::sample::select(&["A1", "Use the key", "B2"][..])),
        prop::option::of(condition),
        any::<(bool, bool, bool)>(),
    )
        .prop_map(
            |(
                effect,
                principal,
                actions,
                resources,
                sid,
                condition,
                (not_principal, not_action, not_resource),
            )| {
                let mut object = Map::new();
                object.insert("Effect".to_owned(), Value::String(effect.to_owned()));
                if let Some(principal) = principal {
                    let element = match not_principal && effect == "Deny" {
                        true => "NotPrincipal",
                        false => "Principal",
                    };
                    object.insert(element.to_owned(), principal);
                }
                if let Some(actions) = actions {
                    let element = match not_action {
                        true => "NotAction",
                        false => "Action",
                    };
                    object.insert(element.to_owned(), actions);
                }
                if let Some(resources) = resources {
                    let element = match not_resource {
                        true => "NotResource",
                        false => "Resource",
                    };
                    object.insert(element.to_owned(), resources);
                }
                if let Some(sid) = sid {
                    object.insert("Sid".to_owned(), Value::String(sid.to_owned()));
                }
                if let Some(condition) = condition {
                    object.insert("Condition".to_owned(), condition);
                }
                Value::Object(object)
            },
        )
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["2012-10-17", "2008-10-17"][..]),
        prop::collection::vec(statement(), 1..4),
    )
        .prop_map(|(version, statements)| {
            serde_json::json!({ "Version": version, "Statement": statements }).to_string()
        })
}

/// A matcher written the obvious way, to check the fast one against.
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && reference_glob(rest, &text[1..]),
        Some((expected, rest)) => {
            text.first() == Some(expected) && reference_glob(rest, &text[1..])
        }
    }
}

/// Seconds since the epoch of a UTC date, by counting days one year and one month at a time.
fn reference_epoch(year: i64, month: i64, day: i64) -> i64 {
    let leap = |year: i64| (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = |year: i64, month: i64| match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let mut days = 0;
    if year >= 1970 {
        days += (1970..year)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    } else {
        days -= (year..1970)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    }
    days += (1..month).map(|m| month_days(year, m)).sum::<i64>();
    days += day - 1;
    days * 86_400
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_policy_parse(&data);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        fuzz_policy_parse(value.to_string().as_bytes());
    }

    #[test]
    fn policy_shaped_documents_never_panic(document in document()) {
        fuzz_policy_parse(document.as_bytes());
    }

    #[test]
    fn damaged_documents_never_panic(
        document in document(),
        position in any::<prop::sample::Index>(),
        insertion in r#"[{}\[\]",:*?$' ]{0,3}"#,
        truncate in any::<bool>(),
    ) {
        let mut at = position.index(document.len() + 1);
        while !document.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = match truncate {
            true => document[..at].to_owned(),
            false => format!("{}{insertion}{}", &document[..at], &document[at..]),
        };
        fuzz_policy_parse(damaged.as_bytes());
    }

    #[test]
    fn statement_order_does_not_change_the_decision(statements in prop::collection::vec(statement(), 1..5)) {
        let forward = serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
        let mut reversed_statements = statements.clone();
        reversed_statements.reverse();
        let backward = serde_json::json!({ "Version": "2012-10-17", "Statement": reversed_statements }).to_string();
        let context = MapContext::new().with("aws:username", "alice").with("aws:SourceIp", "10.1.2.3");
        let request = Request {
            principal: Principal {
                arn: "arn:aws:iam::111122223333:user/alice",
                account: "111122223333",
                role_arn: None,
                service: None,
            },
            action: "kms:Encrypt",
            resource: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            context: &context,
        };
        for kind in [PolicyKind::KeyPolicy, PolicyKind::Identity] {
            if let (Ok(forward), Ok(backward)) = (Policy::parse(&forward, kind), Policy::parse(&backward, kind)) {
                let (one, other) = (forward.evaluate(&request), backward.evaluate(&request));
                prop_assert_eq!(
                    (one.explicit_deny, one.allow, one.allow_account),
                    (other.explicit_deny, other.allow, other.allow_account)
                );
            }
        }
    }

    #[test]
    fn glob_agrees_with_the_reference(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
        let compiled = Pattern::compile(&pattern, Syntax { wildcards: true, variables: false }, Fold::Exact)
            .expect("wildcard patterns always compile");
        let pattern_chars: Vec<char> = pattern.chars().collect();
        let text_chars: Vec<char> = text.chars().collect();
        prop_assert_eq!(
            compiled.matches(&text, &MapContext::new()),
            reference_glob(&pattern_chars, &text_chars)
        );
    }

    #[test]
    fn iso_dates_agree_with_epoch_seconds(year in 1600i64..2400, month in 1i64..=12, day in 1i64..=28, second in 0i64..86_400) {
        let (hour, minute, second_of_minute) = (second / 3_600, second / 60 % 60, second % 60);
        let iso = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second_of_minute:02}Z");
        let epoch = reference_epoch(year, month, day) + second;
        prop_assert_eq!(parse_date(&iso), parse_date(&epoch.to_string()));
    }
}

#[test]
fn policy_shaped_documents_often_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let mut parsed = [0; 4];
    let total = 400;
    for _ in 0..total {
        let document = strategy
            .new_tree(&mut runner)
            .expect("a document")
            .current();
        for (slot, kind) in parsed.iter_mut().zip([
            PolicyKind::KeyPolicy,
            PolicyKind::Identity,
            PolicyKind::Trust,
            PolicyKind::Session,
        ]) {
            if Policy::parse(&document, kind).is_ok() {
                *slot += 1;
            }
        }
    }
    // The random documents must reach evaluation often enough for the properties above to test it.
    assert!(
        parsed[0] * 20 >= total && parsed[1] * 20 >= total,
        "parsed per kind (key, identity, trust, session) out of {total}: {parsed:?}"
    );
}
