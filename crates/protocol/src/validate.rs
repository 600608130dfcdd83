//! Checks a request body against the operation's input shape in the AWS API model.
//!
//! One generic walk covers every operation: wrong JSON types become `SerializationException`, and
//! missing required members, lengths, ranges and enum values become one `ValidationException` listing
//! every violation in AWS's wording (`Value 'x' at 'keyId' failed to satisfy constraint: ...`).

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::ProtocolError;

/// An AWS API model (KMS, CloudHSM v2 or Secrets Manager), reduced to what validation reads.
pub(crate) struct Model {
    operations: HashMap<String, Option<String>>,
    shapes: HashMap<String, Shape>,
}

#[derive(Debug)]
enum Shape {
    Structure {
        members: Vec<(String, String)>,
        required: Vec<String>,
    },
    List {
        member: String,
        min: Option<i64>,
        max: Option<i64>,
    },
    Map {
        value: String,
        min: Option<i64>,
        max: Option<i64>,
    },
    String {
        min: Option<i64>,
        max: Option<i64>,
        allowed: Option<Vec<String>>,
        sensitive: bool,
    },
    Blob {
        min: Option<i64>,
        max: Option<i64>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean,
    Timestamp,
}

const KMS_MODEL: &str = include_str!("../model/kms-2014-11-01.json");
const CLOUDHSM_MODEL: &str = include_str!("../model/cloudhsmv2-2017-04-28.json");
const SECRETS_MANAGER_MODEL: &str = include_str!("../model/secretsmanager-2017-10-17.json");

impl Model {
    /// Parses the embedded KMS model; it is part of the binary, so a failure is a build defect.
    pub(crate) fn kms() -> Model {
        Model::parse(KMS_MODEL)
    }

    /// Parses the embedded CloudHSM v2 model, the same way.
    pub(crate) fn cloudhsm() -> Model {
        Model::parse(CLOUDHSM_MODEL)
    }

    /// Parses the embedded Secrets Manager model, the same way.
    pub(crate) fn secrets_manager() -> Model {
        Model::parse(SECRETS_MANAGER_MODEL)
    }

    fn parse(model: &str) -> Model {
        let document: Value =
            serde_json::from_str(model).expect("the embedded API model is valid JSON");
        let mut operations = HashMap::new();
        if let Some(Value::Object(ops)) = document.get("operations") {
            for (name, op) in ops {
                let input = op
                    .pointer("/input/shape")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                operations.insert(name.clone(), input);
            }
        }
        let mut shapes = HashMap::new();
        if let Some(Value::Object(all)) = document.get("shapes") {
            for (name, shape) in all {
                if let Some(parsed) = parse_shape(shape) {
                    shapes.insert(name.clone(), parsed);
                }
            }
        }
        Model { operations, shapes }
    }

    /// Whether the API has an operation of this name.
    pub(crate) fn has_operation(&self, name: &str) -> bool {
        self.operations.contains_key(name)
    }

    /// Validates `body` as the input of `operation`.
    pub(crate) fn validate(
        &self,
        operation: &str,
        body: &Map<String, Value>,
    ) -> Result<(), ProtocolError> {
        let Some(Some(input)) = self.operations.get(operation) else {
            return Ok(());
        };
        let mut violations = Vec::new();
        self.check_structure(input, body, &Path::Root, &mut violations)?;
        if violations.is_empty() {
            return Ok(());
        }
        let count = violations.len();
        let noun = if count == 1 { "error" } else { "errors" };
        Err(ProtocolError::Validation(format!(
            "{count} validation {noun} detected: {}",
            violations.join("; ")
        )))
    }

    fn check_structure(
        &self,
        shape_name: &str,
        object: &Map<String, Value>,
        path: &Path<'_>,
        violations: &mut Vec<String>,
    ) -> Result<(), ProtocolError> {
        let Some(Shape::Structure { members, required }) = self.shapes.get(shape_name) else {
            return Ok(());
        };
        for name in required {
            if object.get(name).is_none_or(Value::is_null) {
                violations.push(format!(
                    "Value null at '{}' failed to satisfy constraint: Member must not be null",
                    Path::Member(path, name)
                ));
            }
        }
        for (name, target) in members {
            match object.get(name) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    self.check_value(target, value, &Path::Member(path, name), name, violations)?
                }
            }
        }
        Ok(())
    }

    fn check_value(
        &self,
        shape_name: &str,
        value: &Value,
        path: &Path<'_>,
        field: &str,
        violations: &mut Vec<String>,
    ) -> Result<(), ProtocolError> {
        let Some(shape) = self.shapes.get(shape_name) else {
            return Ok(());
        };
        let wrong_type = |expected: &str| {
            Err(ProtocolError::Serialization(format!(
                "Field '{field}' must be {expected}, but the request has {}.",
                describe(value)
            )))
        };
        match shape {
            Shape::Structure { .. } => match value {
                Value::Object(object) => {
                    self.check_structure(shape_name, object, path, violations)?
                }
                _ => return wrong_type("a JSON object"),
            },
            Shape::List { member, min, max } => {
                let Value::Array(items) = value else {
                    return wrong_type("a JSON array");
                };
                check_length(
                    items.len() as i64,
                    *min,
                    *max,
                    path,
                    &describe(value),
                    violations,
                );
                for (index, item) in items.iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    self.check_value(
                        member,
                        item,
                        &Path::Index(path, index + 1),
                        field,
                        violations,
                    )?;
                }
            }
            Shape::Map {
                value: target,
                min,
                max,
            } => {
                let Value::Object(entries) = value else {
                    return wrong_type("a JSON object of strings");
                };
                check_length(
                    entries.len() as i64,
                    *min,
                    *max,
                    path,
                    &describe(value),
                    violations,
                );
                // KMS maps hold strings; CloudHSM's Filters map to lists, checked by their own shape.
                let strings =
                    matches!(self.shapes.get(target.as_str()), Some(Shape::String { .. }));
                for (key, entry) in entries {
                    if strings && !entry.is_string() {
                        return Err(ProtocolError::Serialization(format!(
                            "Field '{field}' must map strings to strings, but '{key}' maps to {}.",
                            describe(entry)
                        )));
                    }
                    self.check_value(target, entry, &Path::Key(path, key), field, violations)?;
                }
            }
            Shape::String {
                min,
                max,
                allowed,
                sensitive,
            } => {
                let Value::String(text) = value else {
                    return wrong_type("a string");
                };
                let length = text.chars().count() as i64;
                // Sensitive values (passwords, for example) are never echoed back.
                let shown = if *sensitive {
                    "'***'".to_owned()
                } else {
                    format!("'{text}'")
                };
                check_length(length, *min, *max, path, &shown, violations);
                if let Some(allowed) = allowed
                    && !allowed.iter().any(|member| member == text)
                {
                    violations.push(format!(
                        "Value '{text}' at '{path}' failed to satisfy constraint: Member must satisfy enum value \
                         set: [{}]",
                        allowed.join(", ")
                    ));
                }
            }
            Shape::Blob { min, max } => {
                let Value::String(text) = value else {
                    return wrong_type("a base64-encoded string");
                };
                // The length is computed without decoding; the conversion to domain values decodes once
                // and refuses invalid characters.
                let Some(len) = base64_decoded_len(text) else {
                    return Err(ProtocolError::Serialization(format!(
                        "Field '{field}' is not valid base64."
                    )));
                };
                check_length(
                    len as i64,
                    *min,
                    *max,
                    path,
                    "java.nio.HeapByteBuffer",
                    violations,
                );
            }
            Shape::Integer { min, max } => {
                let Some(number) = value.as_i64() else {
                    return wrong_type("an integer");
                };
                if min.is_some_and(|min| number < min) {
                    violations.push(format!(
                        "Value '{number}' at '{path}' failed to satisfy constraint: Member must have value greater \
                         than or equal to {}",
                        min.unwrap_or_default()
                    ));
                }
                if max.is_some_and(|max| number > max) {
                    violations.push(format!(
                        "Value '{number}' at '{path}' failed to satisfy constraint: Member must have value less \
                         than or equal to {}",
                        max.unwrap_or_default()
                    ));
                }
            }
            Shape::Boolean => {
                if !value.is_boolean() {
                    return wrong_type("true or false");
                }
            }
            Shape::Timestamp => {
                if !value.is_number() {
                    return wrong_type("a timestamp in epoch seconds");
                }
            }
        }
        Ok(())
    }
}

/// The decoded length of padded standard base64, or `None` if the text cannot be base64.
fn base64_decoded_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    Some(bytes.len() / 4 * 3 - padding)
}

fn check_length(
    length: i64,
    min: Option<i64>,
    max: Option<i64>,
    path: &Path<'_>,
    shown: &str,
    violations: &mut Vec<String>,
) {
    if let Some(min) = min
        && length < min
    {
        violations.push(format!(
            "Value {shown} at '{path}' failed to satisfy constraint: Member must have length greater than or equal \
             to {min}"
        ));
    }
    if let Some(max) = max
        && length > max
    {
        violations.push(format!(
            "Value {shown} at '{path}' failed to satisfy constraint: Member must have length less than or equal to \
             {max}"
        ));
    }
}

/// Where a value sits in the request, rendered only when a violation is reported.
///
/// AWS names members in lower camel case (`keyId`), list items `tags.1.member`, map entries by key.
enum Path<'a> {
    Root,
    Member(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Member(parent, name) => {
                if !matches!(parent, Path::Root) {
                    write!(f, "{parent}.")?;
                }
                let mut chars = name.chars();
                if let Some(first) = chars.next() {
                    write!(f, "{}{}", first.to_lowercase(), chars.as_str())?;
                }
                Ok(())
            }
            Path::Index(parent, index) => write!(f, "{parent}.{index}.member"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn parse_shape(shape: &Value) -> Option<Shape> {
    let number = |name: &str| shape.get(name).and_then(Value::as_i64);
    let target = |name: &str| {
        shape
            .pointer(&format!("/{name}/shape"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let parsed = match shape.get("type")?.as_str()? {
        "structure" => {
            let members = shape
                .get("members")
                .and_then(Value::as_object)
                .map(|members| {
                    members
                        .iter()
                        .filter_map(|(name, member)| {
                            Some((name.clone(), member.get("shape")?.as_str()?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let required = shape
                .get("required")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Shape::Structure { members, required }
        }
        "list" => Shape::List {
            member: target("member")?,
            min: number("min"),
            max: number("max"),
        },
        "map" => Shape::Map {
            value: target("value")?,
            min: number("min"),
            max: number("max"),
        },
        "string" => Shape::String {
            sensitive: shape
                .get("sensitive")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            min: number("min"),
            max: number("max"),
            allowed: shape.get("enum").and_then(Value::as_array).map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
        },
        "blob" => Shape::Blob {
            min: number("min"),
            max: number("max"),
        },
        "integer" | "long" => Shape::Integer {
            min: number("min"),
            max: number("max"),
        },
        "boolean" => Shape::Boolean,
        "timestamp" => Shape::Timestamp,
        _ => return None,
    };
    Some(parsed)
}
