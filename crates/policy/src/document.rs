//! Policy documents: the JSON grammar, compiled once into a [`Policy`], and the evaluation of a request
//! against every statement.
//!
//! Which elements a statement needs depends on where the policy is attached ([`PolicyKind`]).
//! A key policy statement that lacks Action or Resource is accepted but never matches, as in AWS KMS,
//! where `PutKeyPolicy` succeeds with such a statement; IAM policies refuse it.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::condition::{self, Condition};
use crate::context::ConditionContext;
use crate::pattern::{ArnPattern, Fold, Pattern, Syntax};
use crate::principal::{self, PrincipalSet, Reach};
use crate::request::{Outcome, Request};
use crate::{MAX_KEY_POLICY_BYTES, PolicyError};

/// Where a policy is attached, which decides the grammar it must follow and how Principal is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A KMS key policy: resource-based, so every statement names its principals with Principal or
    /// NotPrincipal; limited to [`MAX_KEY_POLICY_BYTES`].
    KeyPolicy,
    /// An IAM identity policy (user, role, or managed): it applies to the identity it is attached to, so
    /// Principal is not allowed.
    Identity,
    /// A role trust policy: resource-based (Principal required), about `sts:` actions, with no Resource.
    Trust,
    /// A session policy passed when assuming a role: read like an identity policy.
    Session,
}

/// A parsed and compiled policy, ready to answer requests.
///
/// Wildcard patterns, CIDR ranges, dates and numbers are compiled when the policy is parsed, so
/// [`Policy::evaluate`] does not allocate unless a Deny statement matches.
#[derive(Debug, Clone)]
pub struct Policy {
    kind: PolicyKind,
    id: Option<String>,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    principals: Principals,
    /// `None` when a key policy statement has no Action: the statement never matches.
    actions: Option<Targets<Pattern>>,
    resources: Resources,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
enum Principals {
    /// Identity and session policies: the statement is about the identity the policy is attached to.
    AttachedIdentity,
    Listed(PrincipalSet),
    AllExcept(PrincipalSet),
}

#[derive(Debug, Clone)]
struct Targets<P> {
    patterns: Vec<P>,
    /// NotAction or NotResource: the statement covers everything the patterns do not.
    negated: bool,
}

#[derive(Debug, Clone)]
enum Resources {
    /// A key policy statement without Resource: the statement never matches.
    Missing,
    /// Trust policies have no Resource: the role is the resource.
    TheRole,
    Listed(Targets<ArnPattern>),
}

const TOP_LEVEL_ELEMENTS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Where in a policy something is: a statement's position and, when it has one, its Sid.
struct Place<'a> {
    index: usize,
    sid: Option<&'a str>,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sid {
            Some(sid) => write!(formatter, "Statement {} (Sid \"{sid}\")", self.index),
            None => write!(formatter, "Statement {}", self.index),
        }
    }
}

fn malformed(message: String) -> PolicyError {
    PolicyError::Malformed(message)
}

fn at(place: &Place<'_>, problem: &str) -> PolicyError {
    PolicyError::Malformed(format!("{place}: {problem}."))
}

impl Policy {
    /// Parses and compiles a policy document, refusing it with a message that says what is wrong and where,
    /// the way IAM and KMS answer `MalformedPolicyDocument`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        if kind == PolicyKind::KeyPolicy {
            if text.len() > MAX_KEY_POLICY_BYTES {
                return Err(PolicyError::TooLarge(text.len()));
            }
            let refused = text
                .chars()
                .find(|c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'));
            if let Some(character) = refused {
                return Err(malformed(format!(
                    "The policy contains the character U+{:04X}; key policies allow only printable ASCII and Latin-1 characters, tab, line feed and carriage return.",
                    u32::from(character)
                )));
            }
        }
        let document: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => return Err(malformed(format!("The policy is not valid JSON: {e}."))),
        };
        let document = match document {
            Value::Object(document) => document,
            _ => return Err(malformed("The policy must be a JSON object.".to_owned())),
        };
        for field in document.keys() {
            if !TOP_LEVEL_ELEMENTS.contains(&field.as_str()) {
                return Err(malformed(format!(
                    "The policy has an unknown element '{field}'."
                )));
            }
        }
        let variables = match document.get("Version") {
            None => false,
            Some(Value::String(version)) if version == "2012-10-17" => true,
            Some(Value::String(version)) if version == "2008-10-17" => false,
            Some(Value::String(version)) => {
                return Err(malformed(format!(
                    "The policy's Version '{version}' is not supported: use \"2012-10-17\"."
                )));
            }
            Some(_) => {
                return Err(malformed(
                    "The policy's Version must be a string such as \"2012-10-17\".".to_owned(),
                ));
            }
        };
        let id = match document.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(malformed("The policy's Id must be a string.".to_owned())),
        };
        let statements: Vec<&Value> = match document.get("Statement") {
            Some(Value::Array(statements)) => statements.iter().collect(),
            Some(statement @ Value::Object(_)) => vec![statement],
            Some(_) => {
                return Err(malformed(
                    "The policy's Statement must be an object or an array of objects.".to_owned(),
                ));
            }
            None => return Err(malformed("The policy has no Statement.".to_owned())),
        };
        let mut compiled = Vec::with_capacity(statements.len());
        // IAM refuses two statements with the same Sid; key policies may repeat one.
        let sids_must_be_unique = kind != PolicyKind::KeyPolicy;
        let mut sids = HashSet::new();
        for (index, statement) in statements.into_iter().enumerate() {
            let statement = compile_statement(index, statement, kind, variables)?;
            let repeated = match &statement.sid {
                Some(sid) if sids_must_be_unique && !sid.is_empty() => !sids.insert(sid.clone()),
                _ => false,
            };
            if repeated {
                let place = Place {
                    index,
                    sid: statement.sid.as_deref(),
                };
                return Err(at(&place, "another statement already has this Sid"));
            }
            compiled.push(statement);
        }
        Ok(Policy {
            kind,
            id,
            statements: compiled,
        })
    }

    /// Where the policy is attached, as it was parsed.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The policy's Id element, which KMS shows back but does not interpret.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Evaluates every statement against `request`.
    ///
    /// The outcome reports what this one policy says; an explicit deny overrides any allow, and the caller
    /// combines it with the other policies that apply.
    pub fn evaluate(&self, request: &Request<'_>) -> Outcome {
        let mut outcome = Outcome::default();
        for statement in &self.statements {
            if statement.effect == Effect::Deny && outcome.explicit_deny {
                continue;
            }
            let reach = match statement.reach(request) {
                Some(reach) => reach,
                None => continue,
            };
            let applies = statement.covers_action(request.action)
                && statement.covers_resource(request)
                && statement
                    .conditions
                    .iter()
                    .all(|condition| condition.holds(request.context));
            if !applies {
                continue;
            }
            match statement.effect {
                Effect::Deny => {
                    outcome.explicit_deny = true;
                    outcome.denying_sid = statement.sid.clone();
                }
                Effect::Allow => {
                    outcome.allow |= reach.exact;
                    outcome.allow_account |= reach.account;
                }
            }
        }
        outcome
    }
}

impl Statement {
    /// Whether the statement is about the request's principal, and how.
    fn reach(&self, request: &Request<'_>) -> Option<Reach> {
        let everyone = Reach {
            exact: true,
            account: false,
        };
        match &self.principals {
            Principals::AttachedIdentity => Some(everyone),
            Principals::Listed(set) => {
                let reach = set.reach(&request.principal);
                match reach.exact || reach.account {
                    true => Some(reach),
                    false => None,
                }
            }
            Principals::AllExcept(set) => match set.spares(&request.principal) {
                true => None,
                false => Some(everyone),
            },
        }
    }

    fn covers_action(&self, action: &str) -> bool {
        let targets = match &self.actions {
            Some(targets) => targets,
            None => return false,
        };
        let context = NO_CONTEXT;
        let listed = targets
            .patterns
            .iter()
            .any(|pattern| pattern.matches(action, &context));
        listed != targets.negated
    }

    fn covers_resource(&self, request: &Request<'_>) -> bool {
        let targets = match &self.resources {
            Resources::Missing => return false,
            Resources::TheRole => return true,
            Resources::Listed(targets) => targets,
        };
        let listed = targets
            .patterns
            .iter()
            .any(|pattern| pattern.matches(request.resource, request.context));
        listed != targets.negated
    }
}

/// Actions have no variables, so their patterns are matched against an empty context.
const NO_CONTEXT: NoContext = NoContext;

struct NoContext;

impl ConditionContext for NoContext {
    fn values(&self, _key: &str) -> Option<&[String]> {
        None
    }
}

fn compile_statement(
    index: usize,
    value: &Value,
    kind: PolicyKind,
    variables: bool,
) -> Result<Statement, PolicyError> {
    let object = match value {
        Value::Object(object) => object,
        _ => {
            let place = Place { index, sid: None };
            return Err(at(&place, "a statement must be a JSON object"));
        }
    };
    let sid = match object.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.as_str()),
        Some(_) => {
            let place = Place { index, sid: None };
            return Err(at(&place, "Sid must be a string"));
        }
    };
    let place = Place { index, sid };
    for field in object.keys() {
        if !STATEMENT_ELEMENTS.contains(&field.as_str()) {
            return Err(at(&place, &format!("unknown element '{field}'")));
        }
    }
    if let Some(sid) = sid
        && kind != PolicyKind::KeyPolicy
        && !sid.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(at(
            &place,
            "an IAM policy's Sid may contain only letters and digits",
        ));
    }
    let effect = match object.get("Effect") {
        Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
        Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
        Some(_) => return Err(at(&place, "Effect must be \"Allow\" or \"Deny\"")),
        None => return Err(at(&place, "the statement has no Effect")),
    };
    let principals = compile_principals(&place, object, kind, effect)?;
    let actions = compile_actions(&place, object, kind)?;
    let resources = compile_resources(&place, object, kind, variables)?;
    let conditions = match object.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(operators)) => {
            let mut conditions = Vec::new();
            for (operator, block) in operators {
                match condition::compile_block(operator, block, kind, variables) {
                    Ok(compiled) => conditions.extend(compiled),
                    Err(problem) => return Err(at(&place, &format!("Condition: {problem}"))),
                }
            }
            conditions
        }
        Some(_) => return Err(at(&place, "Condition must be an object")),
    };
    Ok(Statement {
        sid: sid.map(str::to_owned),
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

fn compile_principals(
    place: &Place<'_>,
    object: &Map<String, Value>,
    kind: PolicyKind,
    effect: Effect,
) -> Result<Principals, PolicyError> {
    let principal = object.get("Principal");
    let not_principal = object.get("NotPrincipal");
    match kind {
        PolicyKind::Identity | PolicyKind::Session => {
            let element = match (principal, not_principal) {
                (None, None) => return Ok(Principals::AttachedIdentity),
                (Some(_), _) => "Principal",
                (None, Some(_)) => "NotPrincipal",
            };
            Err(at(
                place,
                &format!(
                    "{element} is not allowed in an identity or session policy, which applies to the identity it is attached to"
                ),
            ))
        }
        PolicyKind::KeyPolicy | PolicyKind::Trust => match (principal, not_principal) {
            (Some(_), Some(_)) | (None, None) => match kind {
                PolicyKind::Trust => Err(at(
                    place,
                    "a trust policy statement needs a Principal, and cannot have NotPrincipal",
                )),
                _ => Err(at(
                    place,
                    "a key policy statement needs exactly one of Principal or NotPrincipal",
                )),
            },
            (Some(value), None) => match PrincipalSet::compile(value) {
                Ok(set) => Ok(Principals::Listed(set)),
                Err(problem) => Err(at(place, &format!("Principal {problem}"))),
            },
            (None, Some(value)) => {
                if kind == PolicyKind::Trust {
                    return Err(at(place, "NotPrincipal is not allowed in a trust policy"));
                }
                if effect == Effect::Allow {
                    return Err(at(
                        place,
                        "NotPrincipal can only be used with \"Effect\": \"Deny\"",
                    ));
                }
                match PrincipalSet::compile(value) {
                    Ok(set) => Ok(Principals::AllExcept(set)),
                    Err(problem) => Err(at(place, &format!("NotPrincipal {problem}"))),
                }
            }
        },
    }
}

fn compile_actions(
    place: &Place<'_>,
    object: &Map<String, Value>,
    kind: PolicyKind,
) -> Result<Option<Targets<Pattern>>, PolicyError> {
    let (element, value, negated) = match (object.get("Action"), object.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(at(
                place,
                "a statement cannot have both Action and NotAction",
            ));
        }
        (None, None) => {
            return match kind {
                PolicyKind::KeyPolicy => Ok(None),
                _ => Err(at(place, "the statement has no Action or NotAction")),
            };
        }
        (Some(value), None) => ("Action", value, false),
        (None, Some(value)) => ("NotAction", value, true),
    };
    let names = match principal::string_list(value) {
        Ok(names) => names,
        Err(problem) => return Err(at(place, &format!("{element} {problem}"))),
    };
    let syntax = Syntax {
        wildcards: true,
        variables: false,
    };
    let mut patterns = Vec::with_capacity(names.len());
    for name in names {
        let well_formed = name == "*"
            || name.split_once(':').is_some_and(|(service, action)| {
                !service.is_empty()
                    && !action.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !action.contains(char::is_whitespace)
            });
        if !well_formed {
            return Err(at(
                place,
                &format!(
                    "{element} '{name}' must be \"*\" or a service prefix and an action, such as \"kms:Encrypt\""
                ),
            ));
        }
        let is_sts = name == "*"
            || name
                .split_once(':')
                .is_some_and(|(service, _)| service.eq_ignore_ascii_case("sts"));
        if kind == PolicyKind::Trust && !is_sts {
            return Err(at(
                place,
                &format!(
                    "{element} '{name}' is not allowed in a trust policy, which is about sts actions such as sts:AssumeRole"
                ),
            ));
        }
        match Pattern::compile(name, syntax, Fold::Ascii) {
            Ok(pattern) => patterns.push(pattern),
            Err(problem) => return Err(at(place, &format!("{element} '{name}': {problem}"))),
        }
    }
    Ok(Some(Targets { patterns, negated }))
}

fn compile_resources(
    place: &Place<'_>,
    object: &Map<String, Value>,
    kind: PolicyKind,
    variables: bool,
) -> Result<Resources, PolicyError> {
    let (element, value, negated) = match (object.get("Resource"), object.get("NotResource")) {
        (Some(_), _) if kind == PolicyKind::Trust => {
            return Err(at(place, "a trust policy cannot have Resource"));
        }
        (_, Some(_)) if kind == PolicyKind::Trust => {
            return Err(at(place, "a trust policy cannot have NotResource"));
        }
        (None, None) if kind == PolicyKind::Trust => return Ok(Resources::TheRole),
        (Some(_), Some(_)) => {
            return Err(at(
                place,
                "a statement cannot have both Resource and NotResource",
            ));
        }
        (None, None) => {
            return match kind {
                PolicyKind::KeyPolicy => Ok(Resources::Missing),
                _ => Err(at(place, "the statement has no Resource or NotResource")),
            };
        }
        (Some(value), None) => ("Resource", value, false),
        (None, Some(value)) => ("NotResource", value, true),
    };
    let names = match principal::string_list(value) {
        Ok(names) => names,
        Err(problem) => return Err(at(place, &format!("{element} {problem}"))),
    };
    let syntax = Syntax {
        wildcards: true,
        variables,
    };
    let mut patterns = Vec::with_capacity(names.len());
    for name in names {
        if name != "*" && !name.starts_with("arn:") {
            return Err(at(
                place,
                &format!("{element} '{name}' must be \"*\" or an ARN"),
            ));
        }
        match ArnPattern::compile(name, syntax) {
            Ok(pattern) => patterns.push(pattern),
            Err(problem) => return Err(at(place, &format!("{element} '{name}': {problem}"))),
        }
    }
    Ok(Resources::Listed(Targets { patterns, negated }))
}
