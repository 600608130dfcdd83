//! Identifiers: accounts, Regions, key ids, alias names, and the four ways a request may name a key.

use std::fmt;
use std::str::FromStr;

/// A value that does not have the shape an identifier requires; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId(pub String);

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(AccountId(s.to_owned()));
        }
        Err(InvalidId(format!(
            "'{s}' is not an account id: an account id is 12 digits"
        )))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Region name such as `us-east-1`; any name of lowercase letters, digits and dashes is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let well_formed = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed {
            return Ok(Region(s.to_owned()));
        }
        Err(InvalidId(format!(
            "'{s}' is not a Region name: use lowercase letters, digits and dashes, up to 32 characters"
        )))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account and a Region: every key and alias lives in exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    /// The owning account.
    pub account: AccountId,
    /// The Region.
    pub region: Region,
}

impl Namespace {
    /// The ARN of a key in this namespace.
    pub fn key_arn(&self, key_id: &KeyId) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region, self.account, key_id
        )
    }

    /// The ARN of an alias in this namespace.
    pub fn alias_arn(&self, alias: &AliasName) -> String {
        format!("arn:aws:kms:{}:{}:{}", self.region, self.account, alias)
    }
}

/// A key id: a lowercase UUID, or `mrk-` and 32 lowercase hex digits for a multi-Region key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random single-Region key id.
    pub fn random() -> KeyId {
        KeyId(uuid::Uuid::new_v4().to_string())
    }

    /// A fresh random multi-Region key id.
    pub fn random_multi_region() -> KeyId {
        KeyId(format!("mrk-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let is_hex = |t: &str| {
            t.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if let Some(rest) = s.strip_prefix("mrk-") {
            if rest.len() == 32 && is_hex(rest) {
                return Ok(KeyId(s.to_owned()));
            }
        } else if let Ok(uuid) = uuid::Uuid::parse_str(s) {
            // Accept only the canonical hyphenated form, in any case, and keep it lowercase as AWS does.
            if s.len() == 36 {
                return Ok(KeyId(uuid.hyphenated().to_string()));
            }
        }
        Err(InvalidId(format!("Invalid keyId '{s}'")))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one version of a key's material: 32 bytes, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyMaterialId(pub [u8; 32]);

impl KeyMaterialId {
    /// The 64-digit hex form used on the wire.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
        }
        out
    }
}

impl FromStr for KeyMaterialId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let invalid = || {
            InvalidId(format!(
                "'{s}' is not a key material id: expected 64 lowercase hex digits"
            ))
        };
        if s.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(invalid)?;
            let lo = hex_digit(pair[1]).ok_or_else(invalid)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(KeyMaterialId(out))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// An alias name: `alias/` followed by letters, digits, `/`, `_`, `-` or `:`, 1 to 256 characters in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

impl AliasName {
    /// The full name, including the `alias/` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is in the `alias/aws/` namespace reserved for AWS managed keys.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("alias/aws/")
    }
}

impl FromStr for AliasName {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let Some(rest) = s.strip_prefix("alias/") else {
            return Err(InvalidId(format!(
                "Alias must start with the prefix \"alias/\": '{s}'"
            )));
        };
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b':');
        if rest.is_empty() || s.len() > 256 || !rest.bytes().all(allowed) {
            return Err(InvalidId(format!(
                "Alias name '{s}' is not valid: after \"alias/\" use 1 or more letters, digits, '/', '_', '-' or ':', \
                 256 characters in all at most"
            )));
        }
        Ok(AliasName(s.to_owned()))
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The four ways a request can name a key: key id, key ARN, alias name, alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A bare key id, resolved in the caller's namespace.
    Id(KeyId),
    /// A key ARN, naming its own namespace.
    KeyArn(Namespace, KeyId),
    /// An alias name, resolved in the caller's namespace.
    Alias(AliasName),
    /// An alias ARN, naming its own namespace.
    AliasArn(Namespace, AliasName),
}

/// Why a key reference could not be parsed; the two map to different AWS errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefError {
    /// Looks like an ARN but is not a valid KMS key or alias ARN (`InvalidArnException`).
    InvalidArn(String),
    /// Not a key id nor an alias; AWS answers `NotFoundException`.
    NotFound(String),
}

impl KeyRef {
    /// Parses any of the four forms.
    pub fn parse(s: &str) -> Result<KeyRef, KeyRefError> {
        if s.starts_with("arn:") {
            return parse_arn(s);
        }
        if s.starts_with("alias/") {
            return match s.parse() {
                Ok(alias) => Ok(KeyRef::Alias(alias)),
                Err(InvalidId(_)) => {
                    Err(KeyRefError::NotFound(format!("Alias '{s}' is not found.")))
                }
            };
        }
        match s.parse() {
            Ok(id) => Ok(KeyRef::Id(id)),
            Err(InvalidId(message)) => Err(KeyRefError::NotFound(message)),
        }
    }
}

fn parse_arn(s: &str) -> Result<KeyRef, KeyRefError> {
    let invalid =
        || KeyRefError::InvalidArn(format!("ARN '{s}' is not a valid KMS key or alias ARN"));
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("kms"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if !partition.starts_with("aws") {
        return Err(invalid());
    }
    let namespace = Namespace {
        account: account.parse().map_err(|_| invalid())?,
        region: region.parse().map_err(|_| invalid())?,
    };
    if let Some(id) = resource.strip_prefix("key/") {
        let id = id
            .parse()
            .map_err(|InvalidId(m)| KeyRefError::NotFound(m))?;
        return Ok(KeyRef::KeyArn(namespace, id));
    }
    if resource.starts_with("alias/") {
        let alias = resource.parse().map_err(|_| invalid())?;
        return Ok(KeyRef::AliasArn(namespace, alias));
    }
    Err(invalid())
}
