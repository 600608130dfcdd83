//! Stack files: YAML with parameters, parsed and checked before anything is planned.
//!
//! Reading a file takes three passes. A loose parse finds YAML syntax errors and the `parameters`
//! section; `${name}` references are then replaced by the parameters' values (the defaults in the file,
//! overridden by the ones given with the command); a strict parse reads the result into [`StackFile`],
//! refusing unknown fields. Every error names the line and the field, so an operator can fix the file
//! without guessing.
//!
//! Secrets are never in a file: the fields that need one hold a [`SecretRef`], which says where the
//! server finds the secret when a step needs it.

use std::collections::BTreeMap;

use serde::Deserialize;
use strongroom_types::{KeySpec, KeyUsage};

use crate::error::Error;

/// The built-in parameters that qualify the names of created resources, and their defaults.
pub const SYSTEM: &str = "system";
/// See [`SYSTEM`].
pub const PURPOSE: &str = "purpose";
const DEFAULT_SYSTEM: &str = "strongroom";
const DEFAULT_PURPOSE: &str = "1";
/// The crypto user a custom key store logs in as.
pub(crate) const KMSUSER: &str = "kmsuser";
const HSM_TYPES: &[&str] = &["hsm1.medium", "hsm2m.medium"];
const MAX_HSMS_PER_CLUSTER: u32 = 28;

/// Where the server finds a secret: a Secrets Manager secret (read as the stack's owner), or, for
/// simple setups, a file or an environment variable of the server process.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretSource")]
pub enum SecretRef {
    /// The current value of the Secrets Manager secret with this name or ARN.
    Secret(String),
    /// The contents of this file on the server's host (one trailing newline is ignored).
    File(String),
    /// The value of this environment variable of the server process.
    Env(String),
}

/// A [`SecretRef`] as written: a mapping with exactly one of `secret`, `file` and `env`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    secret: Option<String>,
    file: Option<String>,
    env: Option<String>,
}

impl TryFrom<SecretSource> for SecretRef {
    type Error = String;

    fn try_from(source: SecretSource) -> Result<SecretRef, String> {
        match (source.secret, source.file, source.env) {
            (Some(name), None, None) => Ok(SecretRef::Secret(name)),
            (None, Some(path), None) => Ok(SecretRef::File(path)),
            (None, None, Some(name)) => Ok(SecretRef::Env(name)),
            _ => Err(
                "a secret is given as exactly one of {secret: NAME}, {file: PATH} and {env: VARIABLE}"
                    .to_owned(),
            ),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Secret(name) => write!(f, "secret {name}"),
            SecretRef::File(path) => write!(f, "file {path}"),
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// A stack file after parameter substitution: what the operator declared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackFile {
    /// The stack's name; `${system}-${purpose}` when absent.
    pub name: Option<String>,
    /// Free text for people.
    pub description: Option<String>,
    /// Parameters and their defaults (a value, or `{default, description}`).
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_norway::Value>,
    /// The HSM cluster.
    pub cluster: Option<ClusterSpec>,
    /// The cluster's crypto user.
    pub crypto_user: Option<CryptoUserSpec>,
    /// The custom key store over the cluster.
    pub key_store: Option<KeyStoreSpec>,
    /// KMS keys, by the stack's name for each.
    #[serde(default)]
    pub keys: BTreeMap<String, KeySpecFile>,
}

/// `cluster`: an HSM cluster, its HSMs per availability zone, the CA that signs its CSR, and the
/// admin password that activates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// `hsm1.medium` or `hsm2m.medium` (the default).
    #[serde(default = "default_hsm_type")]
    pub hsm_type: String,
    /// How many HSMs in each availability zone (the cluster's subnets); 0 keeps a zone without an
    /// HSM. Changing a count adds or removes HSMs.
    pub hsms: BTreeMap<String, u32>,
    /// The CA whose certificate becomes the trust anchor and whose key signs the cluster CSR.
    pub certificate_authority: CertificateAuthority,
    /// The crypto officer (admin) password that activates the cluster.
    pub admin_password: SecretRef,
    /// Whether deleting the stack deletes the cluster too (only when nothing refers to it).
    #[serde(default)]
    pub destroy_on_delete: bool,
    /// Tags of the cluster.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `cluster.certificate_authority`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateAuthority {
    /// The CA certificate (PEM).
    pub certificate: SecretRef,
    /// The CA private key (PEM, PKCS#8 or PKCS#1).
    pub private_key: SecretRef,
}

/// `crypto_user`: the cluster's crypto user, which a key store logs in as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoUserSpec {
    /// The user name; a key store needs `kmsuser`.
    #[serde(default = "default_kmsuser")]
    pub name: String,
    /// Its password.
    pub password: SecretRef,
    /// Raised by the operator to rotate the password: the stack then disconnects the key store,
    /// changes the password on the HSMs and in the key store, and reconnects.
    #[serde(default = "default_generation")]
    pub generation: u32,
    /// Take over a crypto user that already exists on the cluster (made outside the stack), after
    /// checking that its password is the one the file names.
    #[serde(default)]
    pub adopt: bool,
}

/// `key_store`: a custom key store over the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyStoreSpec {
    /// The name, qualified as `<system>-<purpose>-<name>`.
    pub name: String,
    /// Whether deleting the stack deletes the key store (only when it has no KMS keys left).
    #[serde(default = "default_true")]
    pub delete_with_stack: bool,
    /// The cluster the key store uses when it is not the stack's own: a cluster related to it (created
    /// from a backup of it), to move the existing key store there.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    /// In the stack's custom key store, generated inside the HSMs.
    Custom,
    /// In the default (software) key store.
    Default,
}

/// `keys.<name>`: a KMS key with its aliases and grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpecFile {
    /// `custom` or `default`; `custom` when the stack has a key store.
    pub key_store: Option<KeyLocation>,
    /// The key's description.
    #[serde(default)]
    pub description: String,
    /// The key spec; `SYMMETRIC_DEFAULT` when absent.
    pub key_spec: Option<String>,
    /// The key usage; `ENCRYPT_DECRYPT` when absent.
    pub key_usage: Option<String>,
    /// The key policy: JSON text or a YAML mapping; the default key policy when absent.
    pub policy: Option<serde_norway::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Aliases, qualified as `alias/<system>/<purpose>/<alias>`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Grants on the key.
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
}

/// `keys.<name>.grants[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The grant's name, unique for its key.
    pub name: String,
    /// The grantee principal (an ARN).
    pub grantee: String,
    /// Grant operations such as `Encrypt` and `Decrypt`.
    pub operations: Vec<String>,
    /// Who may retire the grant.
    pub retiring_principal: Option<String>,
}

fn default_hsm_type() -> String {
    "hsm2m.medium".to_owned()
}

fn default_kmsuser() -> String {
    KMSUSER.to_owned()
}

fn default_generation() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// A stack file read and checked, with the parameters it was read with.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The stack's name.
    pub name: String,
    /// The `system` parameter.
    pub system: String,
    /// The `purpose` parameter.
    pub purpose: String,
    /// Every parameter's value.
    pub parameters: BTreeMap<String, String>,
    /// The declarations.
    pub file: StackFile,
}

impl Parsed {
    /// A name qualified by the stack's system and purpose, joined with `separator`.
    pub(crate) fn qualified(&self, name: &str, separator: &str) -> String {
        format!(
            "{}{separator}{}{separator}{name}",
            self.system, self.purpose
        )
    }

    /// Where a key lives, with the default applied.
    pub(crate) fn location(&self, key: &KeySpecFile) -> KeyLocation {
        key.key_store.unwrap_or(match self.file.key_store {
            Some(_) => KeyLocation::Custom,
            None => KeyLocation::Default,
        })
    }
}

/// Reads and checks a stack file with `overrides` for its parameters.
pub fn parse(text: &str, overrides: &[(String, String)]) -> Result<Parsed, Error> {
    let loose: serde_norway::Value = serde_norway::from_str(text)
        .map_err(|e| Error::Validation(format!("The stack file is not valid YAML: {e}.")))?;
    if !loose.is_mapping() {
        return Err(Error::Validation(
            "The stack file must be a YAML mapping with fields such as name, parameters, cluster and keys."
                .to_owned(),
        ));
    }
    let mut parameters = BTreeMap::new();
    parameters.insert(SYSTEM.to_owned(), DEFAULT_SYSTEM.to_owned());
    parameters.insert(PURPOSE.to_owned(), DEFAULT_PURPOSE.to_owned());
    if let Some(declared) = loose.get("parameters") {
        let Some(map) = declared.as_mapping() else {
            return Err(at(
                text,
                &["parameters"],
                "parameters must map each parameter's name to its default value",
            ));
        };
        for (name, value) in map {
            let Some(name) = name.as_str() else {
                return Err(at(text, &["parameters"], "a parameter name must be text"));
            };
            let default = match value {
                serde_norway::Value::Mapping(fields) => fields.get("default").and_then(scalar),
                other => scalar(other),
            };
            let Some(default) = default else {
                return Err(at(
                    text,
                    &["parameters", name],
                    "give the parameter a default value: a string or a number, or {default: ..., description: ...}",
                ));
            };
            parameters.insert(name.to_owned(), default);
        }
    }
    for (name, value) in overrides {
        if !parameters.contains_key(name) {
            return Err(Error::Validation(format!(
                "Parameter '{name}' is not declared in the stack file; declare it under parameters (system and \
                 purpose always exist)."
            )));
        }
        parameters.insert(name.clone(), value.clone());
    }
    for (name, value) in &parameters {
        check_parameter_value(name, value)?;
    }
    let substituted = substitute(text, &parameters)?;
    let file: StackFile = serde_norway::from_str(&substituted)
        .map_err(|e| Error::Validation(format!("The stack file is not valid: {e}.")))?;
    let system = parameters[SYSTEM].clone();
    let purpose = parameters[PURPOSE].clone();
    let name = file
        .name
        .clone()
        .unwrap_or_else(|| format!("{system}-{purpose}"));
    let parsed = Parsed {
        name,
        system,
        purpose,
        parameters,
        file,
    };
    check(&parsed, &substituted)?;
    Ok(parsed)
}

fn scalar(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(text) => Some(text.clone()),
        serde_norway::Value::Number(number) => Some(number.to_string()),
        serde_norway::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Parameter values are substituted into the YAML text, so they are restricted to characters that
/// cannot change its structure.
fn check_parameter_value(name: &str, value: &str) -> Result<(), Error> {
    let fine = !value.is_empty()
        && value.len() <= 256
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/@+=".contains(c));
    if !fine {
        return Err(Error::Validation(format!(
            "Parameter '{name}' has the value '{value}': parameter values are 1 to 256 letters, digits and the \
             characters . _ - / @ + =."
        )));
    }
    if (name == SYSTEM || name == PURPOSE)
        && !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Validation(format!(
            "Parameter '{name}' has the value '{value}': it qualifies key store and alias names, so it may hold \
             only letters, digits, '-' and '_'."
        )));
    }
    Ok(())
}

/// Replaces every `${name}` outside comments by the parameter's value.
fn substitute(text: &str, parameters: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(Error::Validation(format!(
                    "line {}: '${{' starts a parameter reference that is not closed with '}}'.",
                    index + 1
                )));
            };
            let name = &after[..end];
            match parameters.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(Error::Validation(format!(
                        "line {}: ${{{name}}} names no parameter; declare '{name}' under parameters.",
                        index + 1
                    )));
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// A validation error located at the line of `path` in `text` (block-style YAML), naming the field.
pub(crate) fn at(text: &str, path: &[&str], problem: &str) -> Error {
    let field = path.join(".");
    match line_of(text, path) {
        Some(line) => Error::Validation(format!("line {line}: {field}: {problem}.")),
        None => Error::Validation(format!("{field}: {problem}.")),
    }
}

/// The 1-based line where `path` is written, found by following indentation: each segment is looked
/// for as `segment:` (or `- segment`) below the previous one, more indented.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for segment in path {
        let mut hit = None;
        for (index, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if let Some(parent) = parent_indent
                && indent <= parent
                && index > from
            {
                break;
            }
            let item = trimmed.trim_start_matches("- ");
            let key = item.trim_start_matches(['"', '\'']);
            if key.starts_with(&format!("{segment}:"))
                || key.starts_with(&format!("{segment}\":"))
                || key.starts_with(&format!("{segment}':"))
                || item == *segment
            {
                hit = Some((index, indent));
                break;
            }
        }
        let (index, indent) = hit?;
        found = Some(index + 1);
        from = index + 1;
        parent_indent = Some(indent);
    }
    found
}

fn is_simple_name(name: &str, extra: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(c))
}

/// The checks a parse cannot make: names, counts, references between sections.
fn check(parsed: &Parsed, text: &str) -> Result<(), Error> {
    let file = &parsed.file;
    let name_ok = parsed.name.len() <= 128
        && parsed.name.starts_with(|c: char| c.is_ascii_alphabetic())
        && is_simple_name(&parsed.name, "");
    if !name_ok {
        return Err(at(
            text,
            &["name"],
            &format!(
                "'{}' is not a valid stack name: use up to 128 letters, digits, '-' and '_', starting with a letter",
                parsed.name
            ),
        ));
    }
    if let Some(cluster) = &file.cluster {
        if !HSM_TYPES.contains(&cluster.hsm_type.as_str()) {
            return Err(at(
                text,
                &["cluster", "hsm_type"],
                &format!(
                    "'{}' is not an HSM type: use {}",
                    cluster.hsm_type,
                    HSM_TYPES.join(" or ")
                ),
            ));
        }
        if cluster.hsms.is_empty() {
            return Err(at(
                text,
                &["cluster", "hsms"],
                "declare how many HSMs each availability zone gets, for example us-east-1a: 1",
            ));
        }
        let mut total = 0;
        for (zone, count) in &cluster.hsms {
            let zone_ok = zone.starts_with(|c: char| c.is_ascii_lowercase())
                && zone.contains('-')
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !zone_ok {
                return Err(at(
                    text,
                    &["cluster", "hsms", zone],
                    &format!("'{zone}' is not an availability zone name such as us-east-1a"),
                ));
            }
            total += count;
        }
        if total == 0 {
            return Err(at(
                text,
                &["cluster", "hsms"],
                "a cluster needs at least one HSM: give a zone 1 or more (a zone with 0 keeps its subnet \
                 without an HSM)",
            ));
        }
        if total > MAX_HSMS_PER_CLUSTER {
            return Err(at(
                text,
                &["cluster", "hsms"],
                &format!("a cluster has at most {MAX_HSMS_PER_CLUSTER} HSMs, not {total}"),
            ));
        }
    }
    if let Some(user) = &file.crypto_user {
        if file.cluster.is_none() {
            return Err(at(
                text,
                &["crypto_user"],
                "a crypto user needs a cluster: declare cluster too",
            ));
        }
        let user_ok = user.name.len() <= 31 && is_simple_name(&user.name, "");
        if !user_ok {
            return Err(at(
                text,
                &["crypto_user", "name"],
                &format!("'{}' is not a valid user name", user.name),
            ));
        }
        if user.generation == 0 {
            return Err(at(
                text,
                &["crypto_user", "generation"],
                "generations count from 1",
            ));
        }
    }
    if let Some(store) = &file.key_store {
        match &file.crypto_user {
            Some(user) if user.name == KMSUSER => {}
            Some(_) => {
                return Err(at(
                    text,
                    &["crypto_user", "name"],
                    "a custom key store logs in as kmsuser, so the crypto user must be kmsuser",
                ));
            }
            None => {
                return Err(at(
                    text,
                    &["key_store"],
                    "a custom key store needs a cluster and its crypto user: declare cluster and crypto_user",
                ));
            }
        }
        if let Some(cluster) = &store.cluster
            && !is_cluster_id(cluster)
        {
            return Err(at(
                text,
                &["key_store", "cluster"],
                &format!(
                    "'{cluster}' is not a cluster id (cluster- and 11 to 16 letters and digits 2 to 7)"
                ),
            ));
        }
        let qualified = parsed.qualified(&store.name, "-");
        if !is_simple_name(&store.name, ".") || qualified.len() > 256 {
            return Err(at(
                text,
                &["key_store", "name"],
                &format!(
                    "'{}' is not a valid key store name: use letters, digits, '-', '_' and '.'",
                    store.name
                ),
            ));
        }
    }
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    for (name, key) in &file.keys {
        if !is_simple_name(name, "") || name.len() > 64 {
            return Err(at(
                text,
                &["keys", name],
                "a key's name in the stack is 1 to 64 letters, digits, '-' and '_'",
            ));
        }
        let spec = match &key.key_spec {
            None => KeySpec::SymmetricDefault,
            Some(text_spec) => text_spec.parse().map_err(|_| {
                at(
                    text,
                    &["keys", name, "key_spec"],
                    &format!(
                        "'{text_spec}' is not a KMS key spec such as SYMMETRIC_DEFAULT or RSA_2048"
                    ),
                )
            })?,
        };
        let usage = match &key.key_usage {
            None => KeyUsage::EncryptDecrypt,
            Some(text_usage) => text_usage.parse().map_err(|_| {
                at(
                    text,
                    &["keys", name, "key_usage"],
                    &format!(
                        "'{text_usage}' is not a key usage such as ENCRYPT_DECRYPT or SIGN_VERIFY"
                    ),
                )
            })?,
        };
        if !spec.usages().contains(&usage) {
            return Err(at(
                text,
                &["keys", name, "key_usage"],
                &format!("key usage {usage} does not fit key spec {spec}"),
            ));
        }
        if parsed.location(key) == KeyLocation::Custom {
            if file.key_store.is_none() {
                return Err(at(
                    text,
                    &["keys", name, "key_store"],
                    "the key is to live in the custom key store, but the stack declares no key_store",
                ));
            }
            if spec != KeySpec::SymmetricDefault {
                return Err(at(
                    text,
                    &["keys", name, "key_spec"],
                    "a custom key store holds only SYMMETRIC_DEFAULT keys; use key_store: default for other specs",
                ));
            }
        }
        if let Some(policy) = &key.policy {
            policy_json(policy).map_err(|problem| at(text, &["keys", name, "policy"], &problem))?;
        }
        for alias in &key.aliases {
            if !is_simple_name(alias, "/") || alias.starts_with("aws/") || alias.len() > 200 {
                return Err(at(
                    text,
                    &["keys", name, "aliases"],
                    &format!(
                        "'{alias}' is not a valid alias: use letters, digits, '/', '-' and '_'"
                    ),
                ));
            }
            if let Some(other) = aliases.insert(alias.clone(), name.clone()) {
                return Err(at(
                    text,
                    &["keys", name, "aliases"],
                    &format!("alias '{alias}' is also declared for key '{other}'"),
                ));
            }
        }
        let mut grants = Vec::new();
        for grant in &key.grants {
            if !is_simple_name(&grant.name, "") {
                return Err(at(
                    text,
                    &["keys", name, "grants"],
                    &format!("'{}' is not a valid grant name", grant.name),
                ));
            }
            if grants.contains(&&grant.name) {
                return Err(at(
                    text,
                    &["keys", name, "grants"],
                    &format!("two grants are named '{}'", grant.name),
                ));
            }
            grants.push(&grant.name);
            if grant.operations.is_empty() || grant.grantee.is_empty() {
                return Err(at(
                    text,
                    &["keys", name, "grants"],
                    &format!(
                        "grant '{}' needs a grantee and at least one operation",
                        grant.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A key policy given as JSON text or a YAML mapping, as compact JSON text.
pub(crate) fn policy_json(value: &serde_norway::Value) -> Result<String, String> {
    let json: serde_json::Value = match value {
        serde_norway::Value::String(text) => {
            serde_json::from_str(text).map_err(|e| format!("the policy is not valid JSON: {e}"))?
        }
        serde_norway::Value::Mapping(_) => serde_json::to_value(value)
            .map_err(|e| format!("the policy cannot be written as JSON: {e}"))?,
        _ => {
            return Err("give the policy as JSON text or as a YAML mapping".to_owned());
        }
    };
    if !json.is_object() {
        return Err("a key policy is a JSON object".to_owned());
    }
    Ok(json.to_string())
}

/// Whether `id` has the form of a CloudHSM cluster id.
fn is_cluster_id(id: &str) -> bool {
    id.strip_prefix("cluster-").is_some_and(|rest| {
        (11..=16).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
    })
}
