//! The shapes of IAM names, paths, tags and ARNs, and the random ids IAM gives new entities.
//!
//! Checks follow the IAM and STS models' constraints and answer in AWS's `ValidationError` wording, so a
//! client sees the message it would see from AWS.

use strongroom_keystore::random_bytes;
use strongroom_types::{AccountId, Tag};

use crate::IamError;

/// The most tags a user, role, policy or session may carry.
pub(crate) const MAX_TAGS: usize = 50;

/// Checks a user, role or group name: 1 to `max` characters of letters, digits and `_+=,.@-`.
pub(crate) fn check_name(value: &str, member: &str, max: usize) -> Result<(), IamError> {
    check_length(value, member, 1, max)?;
    if !value.chars().all(is_name_char) {
        return Err(pattern_error(value, member, r"[\w+=,.@-]+"));
    }
    Ok(())
}

/// Checks a role session name: 2 to 64 characters of letters, digits and `_+=,.@-`.
pub(crate) fn check_session_name(value: &str) -> Result<(), IamError> {
    check_length(value, "roleSessionName", 2, 64)?;
    if !value.chars().all(is_name_char) {
        return Err(pattern_error(value, "roleSessionName", r"[\w+=,.@-]*"));
    }
    Ok(())
}

/// Checks a path, `/` or `/a/b/`, of printable ASCII; `None` means `/`.
pub(crate) fn check_path(value: Option<&str>) -> Result<String, IamError> {
    let Some(path) = value else {
        return Ok("/".to_owned());
    };
    check_length(path, "path", 1, 512)?;
    let well_formed = path == "/"
        || (path.len() >= 3
            && path.starts_with('/')
            && path.ends_with('/')
            && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if !well_formed {
        return Err(pattern_error(
            path,
            "path",
            r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        ));
    }
    Ok(path.to_owned())
}

/// Checks a path prefix for listing: starts with `/`, printable ASCII.
pub(crate) fn check_path_prefix(value: Option<&str>) -> Result<&str, IamError> {
    let Some(prefix) = value else {
        return Ok("/");
    };
    check_length(prefix, "pathPrefix", 1, 512)?;
    if !prefix.starts_with('/') || !prefix.bytes().all(|b| (0x21..=0x7f).contains(&b)) {
        return Err(pattern_error(
            prefix,
            "pathPrefix",
            r"\u002F[\u0021-\u007F]*",
        ));
    }
    Ok(prefix)
}

/// Checks a description against the role and policy models: at most 1000 characters.
pub(crate) fn check_description(value: Option<&str>) -> Result<String, IamError> {
    let description = value.unwrap_or_default();
    check_length(description, "description", 0, 1000)?;
    Ok(description.to_owned())
}

/// Checks tags for a create or tag call: at most 50, well-formed, no key twice, none under `aws:`.
pub(crate) fn check_tags(tags: &[Tag]) -> Result<(), IamError> {
    if tags.len() > MAX_TAGS {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length \
             less than or equal to {MAX_TAGS}"
        )));
    }
    for (index, tag) in tags.iter().enumerate() {
        let member = format!("tags.{}.member.key", index + 1);
        check_length(&tag.key, &member, 1, 128)?;
        if !tag.key.chars().all(is_tag_char) {
            return Err(pattern_error(
                &tag.key,
                &member,
                r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+",
            ));
        }
        let member = format!("tags.{}.member.value", index + 1);
        check_length(&tag.value, &member, 0, 256)?;
        if !tag.value.chars().all(is_tag_char) {
            return Err(pattern_error(
                &tag.value,
                &member,
                r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*",
            ));
        }
        if has_prefix_ignore_case(&tag.key, "aws:") {
            return Err(IamError::InvalidInput(format!(
                "The tag key '{}' uses the reserved prefix 'aws:'.",
                tag.key
            )));
        }
        if tags[..index]
            .iter()
            .any(|earlier| earlier.key.eq_ignore_ascii_case(&tag.key))
        {
            return Err(IamError::InvalidInput(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive."
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

/// Adds `new` to `tags`, replacing values of keys that exist (without regard to case), keeping order.
pub(crate) fn merge_tags(tags: &mut Vec<Tag>, new: &[Tag]) -> Result<(), IamError> {
    check_tags(new)?;
    for tag in new {
        match tags
            .iter_mut()
            .find(|existing| existing.key.eq_ignore_ascii_case(&tag.key))
        {
            Some(existing) => existing.value = tag.value.clone(),
            None => tags.push(tag.clone()),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerResource: {MAX_TAGS}."
        )));
    }
    Ok(())
}

/// Removes the tags with the given keys (without regard to case); unknown keys are ignored, as in AWS.
pub(crate) fn remove_tags(tags: &mut Vec<Tag>, keys: &[String]) {
    tags.retain(|tag| !keys.iter().any(|key| key.eq_ignore_ascii_case(&tag.key)));
}

/// Checks `MaxItems`: 1 to 1000, 100 when absent.
pub(crate) fn page_size(max_items: Option<i64>) -> Result<usize, IamError> {
    match max_items {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(usize::try_from(n).unwrap_or(1000)),
        Some(n) => Err(IamError::Validation(format!(
            "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must \
             have value between 1 and 1000"
        ))),
    }
}

/// A fresh unique id for a user (`AIDA`), role (`AROA`) or policy (`ANPA`): the prefix and 17 characters.
pub(crate) fn unique_id(prefix: &str) -> String {
    let mut id = prefix.to_owned();
    id.push_str(&base32(&random_bytes(11))[..17]);
    id
}

/// A fresh access key id: `AKIA` for long-term keys or `ASIA` for temporary ones, and 16 characters.
pub(crate) fn access_key_id(prefix: &str) -> String {
    let mut id = prefix.to_owned();
    id.push_str(&base32(&random_bytes(10)));
    id
}

/// A fresh 40-character secret access key of letters, digits, `+` and `/`, as AWS's look.
pub(crate) fn secret_access_key() -> String {
    base64(&random_bytes(30))
}

/// A fresh session token: 96 random bytes in base64, long enough that it cannot be guessed.
pub(crate) fn session_token() -> String {
    base64(&random_bytes(96))
}

/// A role's account and name from its ARN, `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
pub(crate) fn parse_role_arn(arn: &str) -> Result<(AccountId, String), IamError> {
    parse_iam_arn(arn, "role", "roleArn")
}

/// A managed policy's account and name from its ARN, `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
pub(crate) fn parse_policy_arn(arn: &str) -> Result<(AccountId, String), IamError> {
    parse_iam_arn(arn, "policy", "policyArn")
}

fn parse_iam_arn(arn: &str, kind: &str, member: &str) -> Result<(AccountId, String), IamError> {
    let invalid = || {
        IamError::Validation(format!(
            "Invalid ARN '{arn}' at '{member}': expected arn:aws:iam::ACCOUNT:{kind}/NAME."
        ))
    };
    let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
    let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
    if account == "aws" {
        return Err(IamError::NoSuchEntity(format!(
            "Policy {arn} does not exist or is not attachable: AWS managed policies are not available in Strongroom."
        )));
    }
    let account: AccountId = account.parse().map_err(|_| invalid())?;
    let path_and_name = resource
        .strip_prefix(kind)
        .filter(|rest| rest.starts_with('/'))
        .ok_or_else(invalid)?;
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid());
    }
    Ok((account, name.to_owned()))
}

/// SHA-256 of a session token: what storage keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// Whether a token matches a stored hash, compared in constant time.
pub(crate) fn token_matches(token: &str, hash: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(&token_hash(token), hash).is_ok()
}

/// Whether `text` starts with `prefix`, ASCII letters compared without regard to case.
pub(crate) fn has_prefix_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

fn check_length(value: &str, member: &str, min: usize, max: usize) -> Result<(), IamError> {
    let length = value.chars().count();
    if length < min {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must \
             have length greater than or equal to {min}"
        )));
    }
    if length > max {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length \
             less than or equal to {max}"
        )));
    }
    Ok(())
}

fn pattern_error(value: &str, member: &str, pattern: &str) -> IamError {
    IamError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must \
         satisfy regular expression pattern: {pattern}"
    ))
}

/// Base32 (RFC 4648 alphabet) without padding, as AWS ids look.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    out
}

/// Standard base64 of a length divisible by three, so no padding is needed.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
