//! The Principal and NotPrincipal elements: who a resource-based statement is about.
//!
//! Matching distinguishes naming a principal exactly (its ARN, its role for a role session, its service,
//! `"*"`) from naming its whole account (`"111122223333"` or `arn:aws:iam::111122223333:root`), because AWS
//! KMS reads an account in an Allow statement as "the account's IAM policies decide".
//! Principal ARNs cannot contain wildcards; only a lone `"*"` stands for everyone.

use serde_json::Value;

use crate::request::Principal;

/// A compiled Principal or NotPrincipal element.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrincipalSet {
    everyone: bool,
    accounts: Vec<Box<str>>,
    arns: Vec<Box<str>>,
    services: Vec<Box<str>>,
    federated: Vec<Box<str>>,
}

/// How a statement's Principal element reaches a request's principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    /// The principal itself is named (or everyone is).
    pub(crate) exact: bool,
    /// The principal's account is named as a whole.
    pub(crate) account: bool,
}

impl PrincipalSet {
    /// Compiles `"*"` or `{"AWS": …, "Service": …, "Federated": …}`; the error says what is wrong.
    pub(crate) fn compile(value: &Value) -> Result<PrincipalSet, String> {
        let mut set = PrincipalSet::default();
        let entries = match value {
            Value::String(text) if text == "*" => {
                set.everyone = true;
                return Ok(set);
            }
            Value::Object(entries) if !entries.is_empty() => entries,
            Value::Object(_) => return Err("names no principals".to_owned()),
            _ => {
                return Err(
                    "must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}"
                        .to_owned(),
                );
            }
        };
        for (kind, names) in entries {
            let names = string_list(names)
                .map_err(|problem| format!("has an {kind} entry that {problem}"))?;
            for name in names {
                match kind.as_str() {
                    "AWS" => set.add_aws(name)?,
                    "Service" => {
                        check_plain(kind, name)?;
                        set.services.push(name.to_ascii_lowercase().into());
                    }
                    "Federated" => {
                        check_plain(kind, name)?;
                        set.federated.push(name.into());
                    }
                    _ => {
                        return Err(format!(
                            "has an unknown principal type '{kind}': use AWS, Service or Federated"
                        ));
                    }
                }
            }
        }
        Ok(set)
    }

    fn add_aws(&mut self, name: &str) -> Result<(), String> {
        if name == "*" {
            self.everyone = true;
            return Ok(());
        }
        if is_account_id(name) {
            self.accounts.push(name.into());
            return Ok(());
        }
        if name.contains(['*', '?']) {
            return Err(format!(
                "names '{name}': a principal cannot contain wildcards; use \"*\" alone, or a condition on aws:PrincipalArn"
            ));
        }
        if name.contains("${") {
            return Err(format!(
                "names '{name}': a principal cannot contain policy variables"
            ));
        }
        let parts: Vec<&str> = name.splitn(6, ':').collect();
        let (partition, service, region, account, resource) = match parts.as_slice() {
            ["arn", partition, service, region, account, resource] => {
                (*partition, *service, *region, *account, *resource)
            }
            _ => {
                return Err(format!(
                    "names '{name}', which is neither an account ID nor a principal ARN"
                ));
            }
        };
        let well_formed = !partition.is_empty() && region.is_empty() && is_account_id(account);
        let named = |prefix: &str| {
            resource
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/'))
        };
        let assumed_role = resource
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(role, session)| !role.is_empty() && !session.is_empty());
        match (well_formed, service) {
            (true, "iam") if resource == "root" => self.accounts.push(account.into()),
            (true, "iam") if named("user/") || named("role/") => self.arns.push(name.into()),
            (true, "sts") if assumed_role || named("federated-user/") => {
                self.arns.push(name.into())
            }
            _ => {
                return Err(format!(
                    "names '{name}', which is not an account, IAM user, IAM role, role session or federated user"
                ));
            }
        }
        Ok(())
    }

    /// How this Principal element reaches `principal`.
    pub(crate) fn reach(&self, principal: &Principal<'_>) -> Reach {
        let account = !principal.account.is_empty()
            && self
                .accounts
                .iter()
                .any(|account| **account == *principal.account);
        let exact =
            self.everyone || (account && is_root(principal)) || self.names_identity(principal);
        Reach { exact, account }
    }

    /// Whether a `NotPrincipal` element spares `principal` from its Deny statement.
    ///
    /// AWS checks an IAM principal as its account, then its role (for a role session), then itself, and the
    /// Deny applies unless every step is listed, so a user is spared only when both the user (or, for a
    /// role session, the role or the session) and its account are listed; the account root only needs its
    /// account.
    pub(crate) fn spares(&self, principal: &Principal<'_>) -> bool {
        if self.everyone {
            return true;
        }
        if principal.service.is_some() {
            return self.names_identity(principal);
        }
        let account_listed = !principal.account.is_empty()
            && self
                .accounts
                .iter()
                .any(|account| **account == *principal.account);
        account_listed && (is_root(principal) || self.names_identity(principal))
    }

    fn names_identity(&self, principal: &Principal<'_>) -> bool {
        let by_arn = self.arns.iter().any(|arn| {
            **arn == *principal.arn || principal.role_arn.is_some_and(|role| **arn == *role)
        });
        let by_service = principal.service.is_some_and(|service| {
            self.services
                .iter()
                .any(|listed| listed.eq_ignore_ascii_case(service))
        });
        let by_federation = self.federated.iter().any(|name| **name == *principal.arn);
        by_arn || by_service || by_federation
    }
}

/// Whether the principal is its account's root user, `arn:<partition>:iam::<account>:root`.
fn is_root(principal: &Principal<'_>) -> bool {
    let mut parts = principal.arn.splitn(6, ':');
    let expected = ["arn", "", "iam", "", principal.account, "root"];
    for (index, want) in expected.iter().enumerate() {
        match parts.next() {
            Some(part) if index == 1 && !part.is_empty() => {}
            Some(part) if index != 1 && part == *want => {}
            _ => return false,
        }
    }
    true
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn check_plain(kind: &str, name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && !name.contains(['*', '?', '$'])
        && !name.chars().any(char::is_whitespace);
    match plain {
        true => Ok(()),
        false => Err(format!(
            "has the {kind} principal '{name}', which must be a name without wildcards, variables or spaces"
        )),
    }
}

/// A string, or a non-empty list of strings.
pub(crate) fn string_list(value: &Value) -> Result<Vec<&str>, String> {
    match value {
        Value::String(text) => Ok(vec![text.as_str()]),
        Value::Array(items) if items.is_empty() => Err("must not be an empty list".to_owned()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.as_str()),
                _ => Err("must be a string or an array of strings".to_owned()),
            })
            .collect(),
        _ => Err("must be a string or an array of strings".to_owned()),
    }
}
