//! Seeding: keys with fixed ids and optionally preset material, with aliases and tags, declared in a file
//! and loaded at start-up without overwriting anything that exists.

use strongroom_keystore::Material;
use strongroom_storage::StoreError;
use strongroom_types::{
    AliasName, AliasRecord, KeyId, KeyManager, KeyRecord, KeySpec, KeyState, KeyUsage, Namespace,
    Origin, Rotation, Tag,
};
use zeroize::Zeroizing;

use crate::keys::{check_policy, dedup_tags};
use crate::tags::check_new_tags;
use crate::{Error, Kms};

/// One key declared in a seed file.
#[derive(Debug)]
pub struct SeedKey {
    /// Where the key lives.
    pub namespace: Namespace,
    /// The fixed key id.
    pub key_id: KeyId,
    /// A description.
    pub description: String,
    /// Preset 256-bit key material; random when absent.
    pub material: Option<Zeroizing<Vec<u8>>>,
    /// Whether the key starts enabled.
    pub enabled: bool,
    /// A key policy; the default key policy when absent.
    pub policy: Option<String>,
    /// Aliases to point at the key.
    pub aliases: Vec<AliasName>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Automatic rotation period, if rotation is on.
    pub rotation_period_days: Option<u32>,
}

/// What seeding one key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    /// The key was created.
    Created,
    /// A key with this id existed and was left as it is.
    AlreadyPresent,
}

impl Kms {
    /// Creates a seeded key and its aliases, unless they exist; existing data is never changed.
    pub async fn seed_key(&self, seed: SeedKey) -> Result<SeedOutcome, Error> {
        let _writes = self.writes.lock().await;
        let now = self.clock.now();
        let outcome = match self.store.key(&seed.namespace, &seed.key_id).await? {
            Some(_) => SeedOutcome::AlreadyPresent,
            None => {
                let policy = match seed.policy {
                    Some(policy) => {
                        check_policy(&policy)?;
                        policy
                    }
                    None => strongroom_policy::default_key_policy(seed.namespace.account.as_str()),
                };
                check_new_tags(&[], &seed.tags)?;
                let mut record = KeyRecord {
                    namespace: seed.namespace.clone(),
                    key_id: seed.key_id.clone(),
                    created: now,
                    description: seed.description,
                    key_spec: KeySpec::SymmetricDefault,
                    key_usage: KeyUsage::EncryptDecrypt,
                    origin: Origin::AwsKms,
                    key_manager: KeyManager::Customer,
                    state: if seed.enabled {
                        KeyState::Enabled
                    } else {
                        KeyState::Disabled
                    },
                    deletion: None,
                    policy,
                    rotation: match seed.rotation_period_days {
                        Some(days) => Rotation {
                            enabled: true,
                            period_days: Some(days),
                            next: Some(now.plus_days(days)),
                            on_demand_started: None,
                        },
                        None => Rotation::OFF,
                    },
                    materials: Vec::new(),
                    tags: dedup_tags(seed.tags),
                    multi_region: seed.key_id.as_str().starts_with("mrk-"),
                };
                match &seed.material {
                    Some(bytes) => {
                        let key = Material::from_bytes(KeySpec::SymmetricDefault, bytes)
                            .map_err(|_| {
                                Error::Validation(format!(
                                    "Seed key {}: key material must be exactly 32 bytes (256 bits).",
                                    seed.key_id
                                ))
                            })?;
                        self.push_material(&mut record, &key, None, now)?;
                    }
                    None => self.add_material(&mut record, None, now)?,
                }
                self.insert_key(record).await?;
                SeedOutcome::Created
            }
        };
        for alias in seed.aliases {
            let record = AliasRecord {
                namespace: seed.namespace.clone(),
                name: alias.clone(),
                target: seed.key_id.clone(),
                created: now,
                updated: now,
            };
            match self.store.insert_alias(&record).await {
                Ok(()) => self.cache_alias(&seed.namespace, &alias, Some(seed.key_id.clone())),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(outcome)
    }
}
