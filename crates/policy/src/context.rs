//! The request context: the condition keys a request carries and their values.

use std::collections::HashMap;

/// The values of a request's condition keys, as the caller knows them.
///
/// Policies are pure; everything about a request beyond its principal, action and resource reaches them
/// through this trait, so the service decides which keys a request carries (`kms:EncryptionContext:…`,
/// `aws:SourceIp`, `aws:username`, …).
/// Condition key names are case-insensitive: a policy always asks with the key name in lowercase
/// (`kms:encryptioncontext:purpose`), so an implementation should store its keys lowercased.
pub trait ConditionContext {
    /// The values of `key`, or `None` when the request does not carry it.
    /// Single-valued keys have one value; multi-valued keys (`aws:TagKeys`, `kms:EncryptionContextKeys`)
    /// may have several, and an empty slice counts as absent.
    fn values(&self, key: &str) -> Option<&[String]>;
}

/// A condition context held in a map, for callers that build the context per request and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContext {
    entries: HashMap<String, Vec<String>>,
}

impl MapContext {
    /// An empty context: a request that carries no condition keys.
    pub fn new() -> MapContext {
        MapContext::default()
    }

    /// Sets the values of `key` (any case), replacing earlier ones.
    pub fn insert<I, V>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        let values = values.into_iter().map(Into::into).collect();
        self.entries.insert(key.to_lowercase(), values);
    }

    /// Adds one value to `key` (any case), for building a context in one expression.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> MapContext {
        self.entries
            .entry(key.to_lowercase())
            .or_default()
            .push(value.into());
        self
    }
}

impl ConditionContext for MapContext {
    fn values(&self, key: &str) -> Option<&[String]> {
        let found = match key.chars().any(char::is_uppercase) {
            true => self.entries.get(&key.to_lowercase()),
            false => self.entries.get(key),
        };
        found.map(Vec::as_slice)
    }
}
