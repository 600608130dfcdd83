//! Conversion between AWS JSON 1.1 bodies and the service's domain types.
//!
//! Requests have already passed model validation (types, required members, lengths, enums), so the
//! readers here only convert; a value that validation let through but a domain parser refuses becomes
//! a `ValidationException` naming the field.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use strongroom_types::{
    EncryptionContext, KeyRecord, KeySpec, KeyState, KeyUsage, Tag, Timestamp, UnknownVariant,
};
use zeroize::Zeroizing;

use crate::error::ProtocolError;

/// A request body's members, read by name.
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub(crate) fn str(&self, name: &str) -> Option<&'a str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub(crate) fn required_str(&self, name: &str) -> Result<&'a str, ProtocolError> {
        self.str(name).ok_or_else(|| missing(name))
    }

    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    /// A timestamp member: epoch seconds as a JSON number, kept to the millisecond.
    pub(crate) fn time(&self, name: &str) -> Option<Timestamp> {
        let seconds = self.0.get(name).and_then(Value::as_f64)?;
        Some(Timestamp::from_millis((seconds * 1000.0).round() as i64))
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    pub(crate) fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, ProtocolError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => STANDARD.decode(text).map(Some).map_err(|_| {
                ProtocolError::Serialization(format!("Field '{name}' is not valid base64."))
            }),
        }
    }

    pub(crate) fn secret_blob(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        Ok(Zeroizing::new(
            self.blob(name)?.ok_or_else(|| missing(name))?,
        ))
    }

    pub(crate) fn enumeration<T: FromStr<Err = UnknownVariant>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ProtocolError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|e: UnknownVariant| {
                ProtocolError::Validation(format!(
                    "1 validation error detected: Value '{}' at '{name}' failed to satisfy constraint: Member must \
                     satisfy enum value set: [{}]",
                    e.value,
                    e.allowed.join(", ")
                ))
            }),
        }
    }

    /// An enumeration the model requires (presence was validated against the model already).
    pub(crate) fn required_enumeration<T: FromStr<Err = UnknownVariant>>(
        &self,
        name: &str,
    ) -> Result<T, ProtocolError> {
        self.enumeration(name)?.ok_or_else(|| missing(name))
    }

    pub(crate) fn context(&self, name: &str) -> EncryptionContext {
        let pairs: BTreeMap<String, String> = match self.0.get(name) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        EncryptionContext::new(pairs)
    }

    pub(crate) fn tags(&self, name: &str) -> Vec<Tag> {
        let Some(Value::Array(items)) = self.0.get(name) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                Some(Tag {
                    key: item.get("TagKey")?.as_str()?.to_owned(),
                    value: item.get("TagValue")?.as_str()?.to_owned(),
                })
            })
            .collect()
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn missing(name: &str) -> ProtocolError {
    let mut chars = name.chars();
    let camel: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    ProtocolError::Validation(format!(
        "1 validation error detected: Value null at '{camel}' failed to satisfy constraint: Member must not be null"
    ))
}

pub(crate) fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// Epoch seconds as a JSON number, with milliseconds as the fraction.
pub(crate) fn timestamp(time: Timestamp) -> Value {
    json!(time.as_secs_f64())
}

/// `KeyMetadata` as DescribeKey, CreateKey and others return it.
pub(crate) fn key_metadata(key: &KeyRecord) -> Value {
    let arn = key.arn();
    let mut metadata = json!({
        "AWSAccountId": key.namespace.account.as_str(),
        "KeyId": key.key_id.as_str(),
        "Arn": arn,
        "CreationDate": timestamp(key.created),
        "Enabled": key.state == KeyState::Enabled,
        "Description": key.description,
        "KeyUsage": key.key_usage.as_str(),
        "KeyState": key.state.as_str(),
        "Origin": key.origin.as_str(),
        "KeyManager": key.key_manager.as_str(),
        "KeySpec": key.key_spec.as_str(),
        "MultiRegion": key.multi_region,
    });
    let Value::Object(fields) = &mut metadata else {
        return metadata;
    };
    spec_fields(fields, key.key_spec, key.key_usage);
    if let Some(deletion) = key.deletion {
        fields.insert("DeletionDate".to_owned(), timestamp(deletion.date));
    }
    if let Some(model) = key.expiration_model() {
        fields.insert("ExpirationModel".to_owned(), json!(model.as_str()));
    }
    if let Some(valid_to) = key.valid_to() {
        fields.insert("ValidTo".to_owned(), timestamp(valid_to));
    }
    if let Some(material) = key.current_material() {
        fields.insert(
            "CurrentKeyMaterialId".to_owned(),
            json!(material.id.to_hex()),
        );
    }
    if key.multi_region {
        // A primary never replicated; `with_multi_region` replaces this with the key's actual set.
        fields.insert(
            "MultiRegionConfiguration".to_owned(),
            json!({
                "MultiRegionKeyType": "PRIMARY",
                "PrimaryKey": { "Arn": arn, "Region": key.namespace.region.as_str() },
                "ReplicaKeys": [],
            }),
        );
    }
    metadata
}

/// Sets `MultiRegionConfiguration` (and `PendingDeletionWindowInDays` of a primary waiting for its
/// replicas' deletion) from the key's set of related multi-Region keys.
pub(crate) fn with_multi_region(
    mut metadata: Value,
    view: Option<&strongroom_service::multi_region::MultiRegionView>,
) -> Value {
    let (Some(view), Value::Object(fields)) = (view, &mut metadata) else {
        return metadata;
    };
    let replicas: Vec<Value> = view.replicas.iter().map(related_key).collect();
    fields.insert(
        "MultiRegionConfiguration".to_owned(),
        json!({
            "MultiRegionKeyType": view.role.as_str(),
            "PrimaryKey": related_key(&view.primary),
            "ReplicaKeys": replicas,
        }),
    );
    if let Some(days) = view.pending_window_days {
        fields.insert("PendingDeletionWindowInDays".to_owned(), json!(days));
    }
    metadata
}

fn related_key(key: &strongroom_service::multi_region::RelatedKey) -> Value {
    json!({ "Arn": key.arn, "Region": key.region.as_str() })
}

/// What a key's spec and usage allow, as KeyMetadata and GetPublicKey show it: the deprecated
/// `CustomerMasterKeySpec` (for the specs it knows) and each non-empty algorithm list.
pub(crate) fn spec_fields(fields: &mut Map<String, Value>, spec: KeySpec, usage: KeyUsage) {
    fn names<T: Copy>(list: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
        list.iter().map(|item| name(*item)).collect()
    }
    if spec.has_legacy_name() {
        fields.insert("CustomerMasterKeySpec".to_owned(), json!(spec.as_str()));
    }
    let lists = [
        (
            "EncryptionAlgorithms",
            names(spec.encryption_algorithms(usage), |a| a.as_str()),
        ),
        (
            "SigningAlgorithms",
            names(spec.signing_algorithms(usage), |a| a.as_str()),
        ),
        (
            "MacAlgorithms",
            names(spec.mac_algorithms(), |a| a.as_str()),
        ),
        (
            "KeyAgreementAlgorithms",
            names(spec.key_agreement_algorithms(usage), |a| a.as_str()),
        ),
        (
            "EncapsulationAlgorithms",
            names(spec.encapsulation_algorithms(usage), |a| a.as_str()),
        ),
    ];
    for (name, list) in lists {
        if !list.is_empty() {
            fields.insert(name.to_owned(), json!(list));
        }
    }
}

/// Adds `Truncated` and, when truncated, `NextMarker` to a list response.
pub(crate) fn paginate(mut body: Value, next_marker: Option<String>) -> Value {
    if let Value::Object(fields) = &mut body {
        fields.insert("Truncated".to_owned(), json!(next_marker.is_some()));
        if let Some(marker) = next_marker {
            fields.insert("NextMarker".to_owned(), json!(marker));
        }
    }
    body
}
