//! Resource identifiers: random ones for what the control plane creates, and the checks that tell a
//! cluster id from a backup id.
//!
//! CloudHSM ids are a prefix and 11 to 16 characters of base32 (`[2-7a-zA-Z]`); Strongroom makes them
//! with 11 lowercase characters, 55 bits of randomness, which is plenty for ids that are also checked
//! for uniqueness by the store.

use strongroom_types::Namespace;

use crate::error::Error;

/// The base32 alphabet of CloudHSM ids, lowercase as AWS prints them.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new `cluster-…` id.
pub(crate) fn new_cluster_id() -> Result<String, Error> {
    Ok(format!("cluster-{}", random_chars(BASE32, 11)?))
}

/// A new `hsm-…` id.
pub(crate) fn new_hsm_id() -> Result<String, Error> {
    Ok(format!("hsm-{}", random_chars(BASE32, 11)?))
}

/// A new `backup-…` id.
pub(crate) fn new_backup_id() -> Result<String, Error> {
    Ok(format!("backup-{}", random_chars(BASE32, 11)?))
}

/// A synthetic network interface id, `eni-` and 17 hexadecimal digits as in AWS.
pub(crate) fn new_eni_id() -> Result<String, Error> {
    Ok(format!("eni-{}", random_chars(HEX, 17)?))
}

/// A synthetic security group id, `sg-` and 17 hexadecimal digits as in AWS.
pub(crate) fn new_security_group() -> Result<String, Error> {
    Ok(format!("sg-{}", random_chars(HEX, 17)?))
}

/// A synthetic private address for an HSM's interface in `10.0.0.0/8`; it is only a name, nothing
/// listens there.
pub(crate) fn new_eni_ip() -> Result<String, Error> {
    let mut bytes = [0u8; 3];
    random(&mut bytes)?;
    // The host part avoids 0, 1 (the subnet's router in AWS) and 255.
    let host = 2 + bytes[2] % 252;
    Ok(format!("10.{}.{}.{host}", bytes[0], bytes[1]))
}

/// A one-time password for the control plane's own crypto-user sessions (see the crate documentation);
/// 32 characters, the longest password CloudHSM allows.
pub(crate) fn new_bootstrap_password() -> Result<String, Error> {
    random_chars(BASE32, 32)
}

/// Whether `id` has the form of a cluster id (`cluster-` and 11 to 16 base32 characters).
pub(crate) fn is_cluster_id(id: &str) -> bool {
    has_form(id, "cluster-")
}

/// Whether `id` has the form of a backup id.
pub(crate) fn is_backup_id(id: &str) -> bool {
    has_form(id, "backup-")
}

/// The ARN of the cluster, HSM or backup `id` of `namespace`, as IAM policies and the audit trail
/// name it (`arn:aws:cloudhsm:<region>:<account>:cluster/<id>`, `…:hsm/<id>`, `…:backup/<id>`);
/// `None` when `id` has the form of none of them.
pub fn resource_arn(namespace: &Namespace, id: &str) -> Option<String> {
    let kind = [
        ("cluster-", "cluster"),
        ("hsm-", "hsm"),
        ("backup-", "backup"),
    ]
    .into_iter()
    .find(|(prefix, _)| has_form(id, prefix))
    .map(|(_, kind)| kind)?;
    Some(format!(
        "arn:aws:cloudhsm:{}:{}:{kind}/{id}",
        namespace.region.as_str(),
        namespace.account.as_str()
    ))
}

fn has_form(id: &str, prefix: &str) -> bool {
    match id.strip_prefix(prefix) {
        Some(rest) => {
            (11..=16).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
        }
        None => false,
    }
}

fn random_chars(alphabet: &[u8], len: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; len];
    random(&mut bytes)?;
    // Both alphabets have a power-of-two size, so the modulo is unbiased.
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

fn random(bytes: &mut [u8]) -> Result<(), Error> {
    aws_lc_rs::rand::fill(bytes).map_err(|_| Error::internal("the random generator failed"))
}
