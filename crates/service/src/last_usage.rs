//! GetKeyLastUsage, and the record of each key's last successful cryptographic operation behind it.
//!
//! Tracking must not slow cryptography, so a use is recorded in memory only: a map from key ARN to the
//! last use, split into shards behind their own mutexes so concurrent requests rarely meet, updated in
//! place (no allocation once a key has an entry). [`Kms::persist_key_usage`] writes the uses recorded since
//! its last run to storage in one transaction; the server calls it from the scheduler and at shutdown.
//! Entries written and not used again since are dropped from memory, so memory holds only the keys used
//! within one scheduler interval. GetKeyLastUsage reads memory first, then storage.
//!
//! The cost of this choice: after `kill -9`, uses since the last scheduled run are lost (GetKeyLastUsage
//! then shows an older use). AWS documents the same eventual consistency, and CloudTrail, not this
//! operation, remains the authoritative record.
//!
//! The protocol edge reports uses ([`Kms::record_key_use`]) because only it knows the request id and the
//! audit record's event id; the service's own operations know neither.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use strongroom_storage::key_usage::KeyUsageRecord;
use strongroom_types::{KeyId, KeyRef, Timestamp};

use crate::authz::RequestFacts;
use crate::keyring::Forms;
use crate::{Caller, Error, Kms};

/// The operations GetKeyLastUsage reports (`KeyLastUsageTrackingOperation`).
const TRACKED: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
    "Encapsulate",
    "Decapsulate",
];

/// The server setting holding when tracking began (milliseconds, big-endian).
const TRACKING_START_SETTING: &str = "key_usage_tracking_start";

/// How many independently locked parts the in-memory map has.
const SHARDS: usize = 16;

/// Whether GetKeyLastUsage reports `operation`, so the edge can skip the rest for other operations.
pub fn is_tracked(operation: &str) -> bool {
    TRACKED.contains(&operation)
}

/// GetKeyLastUsage's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLastUsage {
    /// The key id.
    pub key_id: KeyId,
    /// The last successful cryptographic operation since tracking began, if any.
    pub last: Option<LastUse>,
    /// When tracking began for this key: the later of the server's tracking start and the key's creation.
    pub tracking_start: Timestamp,
    /// When the key was created.
    pub key_created: Timestamp,
}

/// One use of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    /// The operation, such as `Encrypt`.
    pub operation: String,
    /// When it happened.
    pub used: Timestamp,
    /// The request id returned to the caller.
    pub request_id: String,
    /// The CloudTrail event id of the record in the key owner's account, when the trail is on.
    pub event_id: Option<String>,
}

struct Entry {
    operation: &'static str,
    used: Timestamp,
    request_id: String,
    event_id: Option<String>,
    /// Not yet written to storage.
    dirty: bool,
}

/// The in-memory record of recent key uses.
pub(crate) struct UsageTracker {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    tracking_start: OnceLock<Timestamp>,
}

impl Default for UsageTracker {
    fn default() -> UsageTracker {
        UsageTracker {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            tracking_start: OnceLock::new(),
        }
    }
}

impl UsageTracker {
    /// The shard of a key ARN: FNV-1a over its last bytes, which hold the random part of the key id.
    fn shard(&self, key_arn: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let bytes = key_arn.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(12)..];
        let mut hash: u32 = 0x811c_9dc5;
        for byte in tail {
            hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
        }
        self.shards[hash as usize % self.shards.len()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn replace(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}

impl Kms {
    /// Records a successful cryptographic operation on the key `key_arn`; called by the protocol edge for
    /// each key a response names. Never blocks on storage; operations GetKeyLastUsage does not report are
    /// ignored.
    pub fn record_key_use(
        &self,
        key_arn: &str,
        operation: &str,
        request_id: &str,
        event_id: Option<&str>,
    ) {
        let Some(operation) = TRACKED
            .iter()
            .copied()
            .find(|tracked| *tracked == operation)
        else {
            return;
        };
        let used = self.clock.now();
        let mut shard = self.last_usage.shard(key_arn);
        match shard.get_mut(key_arn) {
            Some(entry) => {
                // Requests finish out of order; keep the latest use.
                if used < entry.used {
                    return;
                }
                entry.operation = operation;
                entry.used = used;
                replace(&mut entry.request_id, request_id);
                match (&mut entry.event_id, event_id) {
                    (Some(held), Some(new)) => replace(held, new),
                    (held, new) => *held = new.map(str::to_owned),
                }
                entry.dirty = true;
            }
            None => {
                shard.insert(
                    key_arn.to_owned(),
                    Entry {
                        operation,
                        used,
                        request_id: request_id.to_owned(),
                        event_id: event_id.map(str::to_owned),
                        dirty: true,
                    },
                );
            }
        }
    }

    /// Loads (or, on a server's first start, records) when key usage tracking began; the server calls it at
    /// start so the date never moves.
    pub async fn start_key_usage_tracking(&self) -> Result<Timestamp, Error> {
        if let Some(start) = self.last_usage.tracking_start.get() {
            return Ok(*start);
        }
        let start = match self.store.setting(TRACKING_START_SETTING).await? {
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(millis) => Timestamp::from_millis(i64::from_be_bytes(millis)),
                Err(_) => {
                    return Err(Error::internal(std::io::Error::other(format!(
                        "the server setting {TRACKING_START_SETTING} is not 8 bytes"
                    ))));
                }
            },
            None => {
                let now = self.clock.now();
                self.store
                    .put_setting(TRACKING_START_SETTING, &now.millis().to_be_bytes())
                    .await?;
                now
            }
        };
        Ok(*self.last_usage.tracking_start.get_or_init(|| start))
    }

    /// Writes the uses recorded since the last call to storage, in one transaction; returns how many.
    ///
    /// Entries written and not used again meanwhile leave memory. On failure they stay, to be written by
    /// the next call.
    pub async fn persist_key_usage(&self) -> Result<usize, Error> {
        let mut batch = Vec::new();
        for index in 0..self.last_usage.shards.len() {
            let mut shard = self.last_usage.shards[index]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (arn, entry) in shard.iter_mut().filter(|(_, entry)| entry.dirty) {
                let Ok(KeyRef::KeyArn(namespace, key_id)) = KeyRef::parse(arn) else {
                    continue;
                };
                entry.dirty = false;
                batch.push(KeyUsageRecord {
                    namespace,
                    key_id,
                    operation: entry.operation.to_owned(),
                    used: entry.used,
                    request_id: entry.request_id.clone(),
                    event_id: entry.event_id.clone(),
                });
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let written = self.store.put_key_usages(&batch).await;
        for record in &batch {
            let arn = record.namespace.key_arn(&record.key_id);
            let mut shard = self.last_usage.shard(&arn);
            match &written {
                // Used again since it was taken: leave it for the next batch.
                Ok(()) => {
                    if shard.get(&arn).is_some_and(|entry| !entry.dirty) {
                        shard.remove(&arn);
                    }
                }
                Err(_) => {
                    if let Some(entry) = shard.get_mut(&arn) {
                        entry.dirty = true;
                    }
                }
            }
        }
        written?;
        Ok(batch.len())
    }

    /// Forgets a deleted key's usage, in memory and in storage.
    pub(crate) async fn forget_key_usage(
        &self,
        record: &strongroom_types::KeyRecord,
    ) -> Result<(), Error> {
        let arn = record.arn();
        self.last_usage.shard(&arn).remove(&arn);
        self.store
            .delete_key_usage(&record.namespace, &record.key_id)
            .await?;
        Ok(())
    }

    /// GetKeyLastUsage: the key's last successful cryptographic operation, by key id or key ARN of the
    /// caller's own account.
    pub async fn key_last_usage(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KeyLastUsage, Error> {
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(
            caller,
            "kms:GetKeyLastUsage",
            &live,
            RequestFacts::default(),
        )?;
        let record = &live.record;
        let in_memory = self
            .last_usage
            .shard(live.arn_str())
            .get(live.arn_str())
            .map(|entry| LastUse {
                operation: entry.operation.to_owned(),
                used: entry.used,
                request_id: entry.request_id.clone(),
                event_id: entry.event_id.clone(),
            });
        let last = match in_memory {
            Some(last) => Some(last),
            None => self
                .store
                .key_usage(&record.namespace, &record.key_id)
                .await?
                .map(|stored| LastUse {
                    operation: stored.operation,
                    used: stored.used,
                    request_id: stored.request_id,
                    event_id: stored.event_id,
                }),
        };
        let tracking_start = self.start_key_usage_tracking().await?;
        Ok(KeyLastUsage {
            key_id: record.key_id.clone(),
            last,
            tracking_start: tracking_start.max(record.created),
            key_created: record.created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_exactly_the_model_operations() {
        assert!(is_tracked("Encrypt"));
        assert!(is_tracked("GenerateDataKeyPairWithoutPlaintext"));
        assert!(!is_tracked("DescribeKey"));
        assert!(!is_tracked("GenerateRandom"));
    }

    #[test]
    fn spreads_keys_over_shards() {
        let tracker = UsageTracker::default();
        let mut used = std::collections::HashSet::new();
        for n in 0..64u32 {
            let arn =
                format!("arn:aws:kms:us-east-1:111122223333:key/{n:08x}-0000-4000-8000-{n:012x}");
            let shard = tracker.shard(&arn);
            used.insert(&*shard as *const HashMap<String, Entry> as usize);
        }
        assert!(used.len() > SHARDS / 2, "{} shards used", used.len());
    }
}
