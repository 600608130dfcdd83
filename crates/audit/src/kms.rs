//! What of a KMS request and response goes into CloudTrail, and under which names.
//!
//! CloudTrail's KMS records keep the non-secret parameters (key id, encryption context, algorithm,
//! key spec, number of bytes, policy) under lowerCamelCase names, and never the data: plaintext,
//! ciphertext, messages, signatures, MACs, import material, passwords and grant tokens are dropped.
//! Cryptographic and read-only operations log `responseElements: null`; operations that change
//! state keep their non-secret response fields (CreateKey's `keyMetadata`, for example).

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Every operation of the KMS API, as named in `X-Amz-Target`.
const KMS_OPERATIONS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "Decapsulate",
    "Decrypt",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "Encapsulate",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncrypt",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];

/// Operations that use key material on data; CloudTrail marks them read-only.
const CRYPTOGRAPHIC_OPERATIONS: &[&str] = &[
    "Decapsulate",
    "Decrypt",
    "DeriveSharedSecret",
    "Encapsulate",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// Members that carry data or secrets, in requests and responses alike.
///
/// These are the model's blob members, its `sensitive` members, and the bearer credentials
/// (grant tokens, the XKS proxy credential, the CloudHSM `kmsuser` password).
const SECRET_MEMBERS: &[&str] = &[
    "AttestationDocument",
    "CiphertextBlob",
    "CiphertextForRecipient",
    "EncryptedKeyMaterial",
    "GrantToken",
    "GrantTokens",
    "ImportToken",
    "KeyStorePassword",
    "Mac",
    "Message",
    "Plaintext",
    "PrivateKeyCiphertextBlob",
    "PrivateKeyPlaintext",
    "PublicKey",
    "Recipient",
    "SharedSecret",
    "SharedSecretCiphertextBlob",
    "Signature",
    "XksProxyAuthenticationCredential",
];

/// Members whose values are string maps: their keys are the caller's, so they keep their case.
const MAP_MEMBERS: &[&str] = &[
    "DestinationEncryptionContext",
    "EncryptionContext",
    "EncryptionContextEquals",
    "EncryptionContextSubset",
    "SourceEncryptionContext",
];

/// Converts a KMS JSON request body into CloudTrail's `requestParameters`.
///
/// Member names become lowerCamelCase the way CloudTrail spells them (`KeyId` becomes `keyId`,
/// `AWSAccountId` stays), nested structures are converted too, encryption-context keys are kept
/// verbatim, and every secret or data member is dropped at any depth.
/// An operation that is not part of the KMS API yields null, so an unclassified request never
/// leaks its body into the audit trail.
pub fn redact_kms_request(operation: &str, body: &Map<String, Value>) -> Value {
    if !KMS_OPERATIONS.contains(&operation) {
        return Value::Null;
    }
    Value::Object(redact_members(body, false))
}

/// Converts a successful KMS response into CloudTrail's `responseElements`.
///
/// Read-only and cryptographic operations yield null, as in CloudTrail's KMS examples, since
/// their responses are either data or already visible to the caller; state-changing operations
/// keep their non-secret fields, with epoch-second dates written the way CloudTrail writes them.
pub fn kms_response_elements(operation: &str, response: &Map<String, Value>) -> Value {
    if !KMS_OPERATIONS.contains(&operation) || kms_read_only(operation) {
        return Value::Null;
    }
    let members = redact_members(response, true);
    match members.is_empty() {
        true => Value::Null,
        false => Value::Object(members),
    }
}

/// Whether CloudTrail marks `operation` read-only.
///
/// `Describe*`, `List*` and `Get*` are read-only, and so is every cryptographic operation:
/// CloudTrail's Encrypt, Decrypt, GenerateDataKey, Sign and Verify examples all say
/// `"readOnly": true`, because they change no key state.
pub fn kms_read_only(operation: &str) -> bool {
    operation.starts_with("Describe")
        || operation.starts_with("List")
        || operation.starts_with("Get")
        || CRYPTOGRAPHIC_OPERATIONS.contains(&operation)
}

fn redact_members(members: &Map<String, Value>, format_dates: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in members {
        if SECRET_MEMBERS.contains(&name.as_str()) {
            continue;
        }
        let converted = match MAP_MEMBERS.contains(&name.as_str()) {
            true => value.clone(),
            false => match (format_dates && is_date_member(name), value) {
                (true, Value::Number(seconds)) => match seconds.as_f64() {
                    Some(seconds) => Value::String(java_date(seconds)),
                    None => value.clone(),
                },
                _ => redact_value(value, format_dates),
            },
        };
        out.insert(decapitalize(name), converted);
    }
    out
}

fn redact_value(value: &Value, format_dates: bool) -> Value {
    match value {
        Value::Object(members) => Value::Object(redact_members(members, format_dates)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| redact_value(item, format_dates))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_date_member(name: &str) -> bool {
    name.ends_with("Date") || name == "ValidTo"
}

/// Lower-cases the first letter unless the first two are capitals, as Java's `Introspector` does.
///
/// That rule is why CloudTrail writes `keyId` but `AWSAccountId`.
pub(crate) fn decapitalize(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_uppercase() => {
            name.to_owned()
        }
        (Some(first), _) => {
            let mut out = String::with_capacity(name.len());
            out.extend(first.to_lowercase());
            out.push_str(&name[first.len_utf8()..]);
            out
        }
        (None, _) => String::new(),
    }
}

/// Formats epoch seconds as CloudTrail's KMS response dates: `Aug 10, 2022, 10:38:27 PM`.
fn java_date(seconds: f64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // KMS dates are whole seconds, well inside the range of an i64.
    let whole = seconds.trunc() as i64;
    let time = match OffsetDateTime::from_unix_timestamp(whole) {
        Ok(time) => time,
        Err(_) => return seconds.to_string(),
    };
    let hour = time.hour();
    let (hour12, meridiem) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!(
        "{} {}, {}, {}:{:02}:{:02} {}",
        MONTHS[usize::from(u8::from(time.month())) - 1],
        time.day(),
        time.year(),
        hour12,
        time.minute(),
        time.second(),
        meridiem
    )
}
