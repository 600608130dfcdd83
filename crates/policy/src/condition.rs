//! The Condition element: operators, the `ForAnyValue:`/`ForAllValues:` set qualifiers, `IfExists`, and how
//! each operator compares a request's values with the policy's.
//!
//! Semantics, as IAM documents them:
//! - Several operators, and several keys under one operator, must all hold (AND); several values for one
//!   key are alternatives (OR).
//! - A key the request does not carry makes a positive operator false and a negated one (`StringNotEquals`,
//!   `NotIpAddress`, `ArnNotLike`, …) true; with `IfExists` the condition is then true whatever the operator.
//! - `ForAllValues:` holds when every request value satisfies the operator, and so also when the key is
//!   absent or empty; `ForAnyValue:` holds when at least one does, and so is false when the key is absent.
//! - A negated operator's per-value test is "matches none of the policy values": `ForAnyValue:StringNotEquals`
//!   holds when some request value is outside the list, `ForAllValues:StringNotEquals` when all are.
//!   Without a qualifier, a negated operator holds when no request value matches.
//! - `Null` tests only whether the key is present.

use serde_json::Value;

use crate::context::ConditionContext;
use crate::document::PolicyKind;
use crate::pattern::{ArnPattern, Fold, Pattern, Syntax};
use crate::scalar::{self, Cidr, Instant};

/// One compiled condition: a single operator applied to a single key.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    /// The condition key, lowercased.
    key: Box<str>,
    qualifier: Qualifier,
    if_exists: bool,
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone)]
enum Test {
    Strings {
        patterns: Box<[Pattern]>,
        negated: bool,
    },
    Numbers {
        values: Box<[f64]>,
        comparison: Comparison,
    },
    Dates {
        values: Box<[Instant]>,
        comparison: Comparison,
    },
    Bools {
        patterns: Box<[Pattern]>,
    },
    Binary {
        values: Box<[Box<[u8]>]>,
    },
    Ip {
        ranges: Box<[Cidr]>,
        negated: bool,
    },
    Arns {
        patterns: Box<[ArnPattern]>,
        negated: bool,
    },
    Null {
        /// For each policy value: true means "the key must be absent".
        absent: Box<[bool]>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equals,
    NotEquals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const OPERATORS: &[(&str, Operator)] = &[
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringEqualsIgnoreCase", Operator::StringEqualsIgnoreCase),
    (
        "StringNotEqualsIgnoreCase",
        Operator::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
    ("NumericEquals", Operator::Numeric(Comparison::Equals)),
    ("NumericNotEquals", Operator::Numeric(Comparison::NotEquals)),
    ("NumericLessThan", Operator::Numeric(Comparison::LessThan)),
    (
        "NumericLessThanEquals",
        Operator::Numeric(Comparison::LessThanEquals),
    ),
    (
        "NumericGreaterThan",
        Operator::Numeric(Comparison::GreaterThan),
    ),
    (
        "NumericGreaterThanEquals",
        Operator::Numeric(Comparison::GreaterThanEquals),
    ),
    ("DateEquals", Operator::Date(Comparison::Equals)),
    ("DateNotEquals", Operator::Date(Comparison::NotEquals)),
    ("DateLessThan", Operator::Date(Comparison::LessThan)),
    (
        "DateLessThanEquals",
        Operator::Date(Comparison::LessThanEquals),
    ),
    ("DateGreaterThan", Operator::Date(Comparison::GreaterThan)),
    (
        "DateGreaterThanEquals",
        Operator::Date(Comparison::GreaterThanEquals),
    ),
    ("Bool", Operator::Bool),
    ("BinaryEquals", Operator::BinaryEquals),
    ("IpAddress", Operator::IpAddress),
    ("NotIpAddress", Operator::NotIpAddress),
    ("ArnEquals", Operator::ArnEquals),
    ("ArnLike", Operator::ArnLike),
    ("ArnNotEquals", Operator::ArnNotEquals),
    ("ArnNotLike", Operator::ArnNotLike),
    ("Null", Operator::Null),
];

/// Compiles one operator's block (`"StringEquals": {"key": "value", …}`) into one condition per key.
/// The error names the operator and key; the caller adds the statement.
pub(crate) fn compile_block(
    operator_name: &str,
    block: &Value,
    kind: PolicyKind,
    variables: bool,
) -> Result<Vec<Condition>, String> {
    let (qualifier, if_exists, operator) = parse_operator(operator_name)?;
    let entries = match block {
        Value::Object(entries) => entries,
        _ => {
            return Err(format!(
                "the value of operator '{operator_name}' must be an object mapping condition keys to values"
            ));
        }
    };
    if entries.is_empty() {
        return Err(format!(
            "operator '{operator_name}' names no condition keys"
        ));
    }
    let mut conditions = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let valid_key = key
            .split_once(':')
            .is_some_and(|(prefix, rest)| !prefix.is_empty() && !rest.is_empty())
            && !key.chars().any(char::is_whitespace);
        if !valid_key {
            return Err(format!(
                "condition key '{key}' under '{operator_name}' must be a service prefix and a name, such as 'aws:SourceIp' or 'kms:CallerAccount'"
            ));
        }
        let lowered = key.to_lowercase();
        let single_valued_request_key =
            lowered.starts_with("kms:encryptioncontext:") || lowered.starts_with("aws:requesttag/");
        if kind == PolicyKind::KeyPolicy
            && qualifier == Qualifier::ForAllValues
            && single_valued_request_key
        {
            return Err(format!(
                "OverlyPermissiveCondition: '{operator_name}' uses the ForAllValues set operator with the single-valued condition key '{key}', which makes the condition true for requests that omit the key; use the operator without ForAllValues"
            ));
        }
        let values = match scalar_values(value) {
            Ok(values) => values,
            Err(problem) => return Err(format!("'{operator_name}' key '{key}': {problem}")),
        };
        let test = match compile_test(operator, &values, variables) {
            Ok(test) => test,
            Err(problem) => return Err(format!("'{operator_name}' key '{key}': {problem}")),
        };
        conditions.push(Condition {
            key: lowered.into(),
            qualifier,
            if_exists,
            test,
        });
    }
    Ok(conditions)
}

/// Splits `ForAnyValue:StringLikeIfExists` into its qualifier, `IfExists` flag and operator.
/// Operator names are matched without regard to case.
fn parse_operator(name: &str) -> Result<(Qualifier, bool, Operator), String> {
    let (qualifier, rest) = match name.split_once(':') {
        None => (Qualifier::Single, name),
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAnyValue") => {
            (Qualifier::ForAnyValue, rest)
        }
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAllValues") => {
            (Qualifier::ForAllValues, rest)
        }
        Some((prefix, _)) => {
            return Err(format!(
                "unknown set operator '{prefix}' in '{name}': use ForAnyValue or ForAllValues"
            ));
        }
    };
    const IF_EXISTS: &str = "IfExists";
    let (base, if_exists) = match rest.len().checked_sub(IF_EXISTS.len()) {
        Some(split)
            if rest.is_char_boundary(split) && rest[split..].eq_ignore_ascii_case(IF_EXISTS) =>
        {
            (&rest[..split], true)
        }
        _ => (rest, false),
    };
    let operator = match OPERATORS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(base))
    {
        Some((_, operator)) => *operator,
        None => return Err(format!("unknown condition operator '{name}'")),
    };
    if operator == Operator::Null && if_exists {
        return Err(format!(
            "'{name}': the Null operator cannot be combined with IfExists"
        ));
    }
    if operator == Operator::Null && qualifier != Qualifier::Single {
        return Err(format!(
            "'{name}': the Null operator cannot be combined with a set operator"
        ));
    }
    Ok((qualifier, if_exists, operator))
}

/// A condition value as a list of strings: a string, number or boolean, or a non-empty list of them.
fn scalar_values(value: &Value) -> Result<Vec<String>, String> {
    fn scalar(value: &Value) -> Result<String, String> {
        match value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            Value::Null => Err("a condition value cannot be null".to_owned()),
            Value::Array(_) | Value::Object(_) => Err(
                "a condition value must be a string, number or boolean, or a list of them"
                    .to_owned(),
            ),
        }
    }
    match value {
        Value::Array(items) if items.is_empty() => Err("the list of values is empty".to_owned()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        single => Ok(vec![scalar(single)?]),
    }
}

fn compile_test(operator: Operator, values: &[String], variables: bool) -> Result<Test, String> {
    let strings = |wildcards: bool, fold: Fold, negated: bool| -> Result<Test, String> {
        let syntax = Syntax {
            wildcards,
            variables,
        };
        let patterns = values
            .iter()
            .map(|value| Pattern::compile(value, syntax, fold))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Test::Strings {
            patterns: patterns.into(),
            negated,
        })
    };
    let arns = |negated: bool| -> Result<Test, String> {
        let syntax = Syntax {
            wildcards: true,
            variables,
        };
        let patterns = values
            .iter()
            .map(|value| ArnPattern::compile(value, syntax))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Test::Arns {
            patterns: patterns.into(),
            negated,
        })
    };
    match operator {
        Operator::StringEquals => strings(false, Fold::Exact, false),
        Operator::StringNotEquals => strings(false, Fold::Exact, true),
        Operator::StringEqualsIgnoreCase => strings(false, Fold::Unicode, false),
        Operator::StringNotEqualsIgnoreCase => strings(false, Fold::Unicode, true),
        Operator::StringLike => strings(true, Fold::Exact, false),
        Operator::StringNotLike => strings(true, Fold::Exact, true),
        Operator::ArnEquals | Operator::ArnLike => arns(false),
        Operator::ArnNotEquals | Operator::ArnNotLike => arns(true),
        Operator::Numeric(comparison) => {
            let mut numbers = Vec::with_capacity(values.len());
            for value in values {
                match scalar::parse_number(value) {
                    Some(number) => numbers.push(number),
                    None => return Err(format!("'{value}' is not a number")),
                }
            }
            Ok(Test::Numbers {
                values: numbers.into(),
                comparison,
            })
        }
        Operator::Date(comparison) => {
            let mut dates = Vec::with_capacity(values.len());
            for value in values {
                match scalar::parse_date(value) {
                    Some(date) => dates.push(date),
                    None => {
                        return Err(format!(
                            "'{value}' is not a date: use ISO 8601 (2026-01-31T00:00:00Z) or seconds since the epoch"
                        ));
                    }
                }
            }
            Ok(Test::Dates {
                values: dates.into(),
                comparison,
            })
        }
        Operator::Bool => {
            let mut patterns = Vec::with_capacity(values.len());
            for value in values {
                let literal =
                    value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false");
                let variable = variables && value.contains("${");
                if !literal && !variable {
                    return Err(format!("'{value}' is not true or false"));
                }
                let syntax = Syntax {
                    wildcards: false,
                    variables,
                };
                patterns.push(Pattern::compile(value, syntax, Fold::Ascii)?);
            }
            Ok(Test::Bools {
                patterns: patterns.into(),
            })
        }
        Operator::BinaryEquals => {
            let mut blobs = Vec::with_capacity(values.len());
            for value in values {
                match scalar::decode_base64(value) {
                    Some(bytes) => blobs.push(bytes.into_boxed_slice()),
                    None => return Err(format!("'{value}' is not base64")),
                }
            }
            Ok(Test::Binary {
                values: blobs.into(),
            })
        }
        Operator::IpAddress | Operator::NotIpAddress => {
            let mut ranges = Vec::with_capacity(values.len());
            for value in values {
                match Cidr::parse(value) {
                    Some(range) => ranges.push(range),
                    None => {
                        return Err(format!(
                            "'{value}' is not an IP address or CIDR range such as 203.0.113.0/24 or 2001:db8::/32"
                        ));
                    }
                }
            }
            Ok(Test::Ip {
                ranges: ranges.into(),
                negated: operator == Operator::NotIpAddress,
            })
        }
        Operator::Null => {
            let mut absent = Vec::with_capacity(values.len());
            for value in values {
                match value.to_ascii_lowercase().as_str() {
                    "true" => absent.push(true),
                    "false" => absent.push(false),
                    _ => return Err(format!("'{value}' is not true or false")),
                }
            }
            Ok(Test::Null {
                absent: absent.into(),
            })
        }
    }
}

impl Condition {
    /// Whether the condition holds for the request described by `context`.
    pub(crate) fn holds(&self, context: &dyn ConditionContext) -> bool {
        let present = match context.values(&self.key) {
            Some(values) if !values.is_empty() => Some(values),
            _ => None,
        };
        match (&self.test, present) {
            (Test::Null { absent }, present) => {
                absent.iter().any(|want| *want == present.is_none())
            }
            (_, None) => self.holds_when_absent(),
            (test, Some(values)) => match self.qualifier {
                Qualifier::ForAnyValue => values.iter().any(|value| test.accepts(value, context)),
                Qualifier::ForAllValues => values.iter().all(|value| test.accepts(value, context)),
                Qualifier::Single => match test.is_negated() {
                    true => values.iter().all(|value| test.accepts(value, context)),
                    false => values.iter().any(|value| test.accepts(value, context)),
                },
            },
        }
    }

    fn holds_when_absent(&self) -> bool {
        if self.if_exists {
            return true;
        }
        match self.qualifier {
            Qualifier::ForAllValues => true,
            Qualifier::ForAnyValue => false,
            Qualifier::Single => self.test.is_negated(),
        }
    }
}

impl Test {
    fn is_negated(&self) -> bool {
        match self {
            Test::Strings { negated, .. }
            | Test::Ip { negated, .. }
            | Test::Arns { negated, .. } => *negated,
            Test::Numbers { comparison, .. } | Test::Dates { comparison, .. } => {
                *comparison == Comparison::NotEquals
            }
            Test::Bools { .. } | Test::Binary { .. } | Test::Null { .. } => false,
        }
    }

    /// The per-value test: for a positive operator, "matches one of the policy values"; for a negated one,
    /// "is a well-formed value that matches none of them".
    fn accepts(&self, value: &str, context: &dyn ConditionContext) -> bool {
        match self {
            Test::Strings { patterns, negated } => {
                patterns
                    .iter()
                    .any(|pattern| pattern.matches(value, context))
                    != *negated
            }
            Test::Arns { patterns, negated } => {
                patterns
                    .iter()
                    .any(|pattern| pattern.matches(value, context))
                    != *negated
            }
            Test::Bools { patterns } => patterns
                .iter()
                .any(|pattern| pattern.matches(value, context)),
            Test::Numbers { values, comparison } => match scalar::parse_number(value) {
                Some(number) => comparison.holds(values, &number),
                None => false,
            },
            Test::Dates { values, comparison } => match scalar::parse_date(value) {
                Some(date) => comparison.holds(values, &date),
                None => false,
            },
            Test::Binary { values } => values
                .iter()
                .any(|bytes| scalar::base64_equals(value, bytes)),
            Test::Ip { ranges, negated } => match scalar::parse_address(value) {
                Some(address) => ranges.iter().any(|range| range.contains(address)) != *negated,
                None => false,
            },
            Test::Null { .. } => false,
        }
    }
}

impl Comparison {
    /// Whether `actual` (the request's value) compares as required with one of the policy values, or, for
    /// `NotEquals`, with none of them.
    fn holds<T: PartialOrd>(self, policy_values: &[T], actual: &T) -> bool {
        match self {
            Comparison::Equals => policy_values.iter().any(|value| actual == value),
            Comparison::NotEquals => !policy_values.iter().any(|value| actual == value),
            Comparison::LessThan => policy_values.iter().any(|value| actual < value),
            Comparison::LessThanEquals => policy_values.iter().any(|value| actual <= value),
            Comparison::GreaterThan => policy_values.iter().any(|value| actual > value),
            Comparison::GreaterThanEquals => policy_values.iter().any(|value| actual >= value),
        }
    }
}
