//! The in-memory key cache, key resolution, and scheduled work done when a key is touched.
//!
//! A key is loaded from storage and its material unwrapped once, on first use; after that, cryptographic
//! operations touch only memory. Writers update storage first, then the cache; readers that miss insert
//! only if no entry exists, and deletions leave a tombstone, so a slow reader can never put back a stale
//! or deleted key.
//!
//! Beside its record, a cached key keeps what authorization reads about it from elsewhere in storage: its
//! grants, the names of its aliases (`kms:ResourceAliases`) and, for a multi-Region key, whether it is its
//! set's primary or a replica (`kms:MultiRegionKeyType`). All three are loaded with the key, and the writes
//! that change them (grant operations, alias operations, UpdatePrimaryRegion) update the cached key under
//! the write lock, so authorization never reads storage.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use strongroom_keystore::Material;
use strongroom_storage::multi_region::MultiRegionRole;
use strongroom_types::{
    AliasName, KeyId, KeyMaterialId, KeyRecord, KeyRef, KeyRefError, KeyState, Namespace,
    RotationType, Timestamp,
};

use crate::{Caller, Error, Kms};

/// A key with its material unwrapped, ready for cryptography.
pub(crate) struct LiveKey {
    pub(crate) record: KeyRecord,
    /// The key ARN, formatted once: responses to every cryptographic request carry it.
    arn: String,
    /// The key policy, parsed once.
    pub(crate) policy: strongroom_policy::Policy,
    /// The grants on the key, oldest first.
    pub(crate) grants: Vec<strongroom_types::GrantRecord>,
    /// The names of the aliases that point at the key (`alias/…`), in name order.
    pub(crate) aliases: Vec<String>,
    /// A multi-Region key's place in its set; `None` for a single-Region key.
    pub(crate) multi_region_role: Option<MultiRegionRole>,
    /// The materials that are in the key now (imported material that was deleted or expired is not);
    /// shared by the copies an alias change makes.
    materials: Arc<[(KeyMaterialId, Material)]>,
    /// Where in `materials` the current material is; `None` while the key has none to use.
    current: Option<usize>,
}

impl LiveKey {
    /// The material new encryptions use.
    pub(crate) fn current(&self) -> Option<(&KeyMaterialId, &Material)> {
        let (id, key) = self.materials.get(self.current?)?;
        Some((id, key))
    }

    /// The material a ciphertext names, if the key has it.
    pub(crate) fn material(&self, id: &KeyMaterialId) -> Option<&Material> {
        self.materials
            .iter()
            .find(|(candidate, _)| candidate == id)
            .map(|(_, key)| key)
    }

    pub(crate) fn arn(&self) -> String {
        self.arn.clone()
    }

    pub(crate) fn arn_str(&self) -> &str {
        &self.arn
    }

    /// What the cache keeps beside the record, for caching a new version of the record.
    fn extras(&self) -> KeyExtras {
        KeyExtras {
            grants: self.grants.clone(),
            aliases: self.aliases.clone(),
            multi_region_role: self.multi_region_role,
        }
    }

    /// The same key with other alias names; the material is shared, not unwrapped again.
    fn with_aliases(&self, aliases: Vec<String>) -> LiveKey {
        LiveKey {
            record: self.record.clone(),
            arn: self.arn.clone(),
            policy: self.policy.clone(),
            grants: self.grants.clone(),
            aliases,
            multi_region_role: self.multi_region_role,
            materials: Arc::clone(&self.materials),
            current: self.current,
        }
    }
}

/// What a cached key holds beside its record, read from storage with it.
struct KeyExtras {
    grants: Vec<strongroom_types::GrantRecord>,
    aliases: Vec<String>,
    multi_region_role: Option<MultiRegionRole>,
}

/// The most alias names loaded with a key: more than a key may have (50), so seeded aliases count too.
const ALIASES_LOADED: usize = 1000;

type KeySlot = Option<Arc<LiveKey>>;

#[derive(Default)]
pub(crate) struct Keyring {
    keys: RwLock<HashMap<(Namespace, KeyId), KeySlot>>,
    aliases: RwLock<HashMap<(Namespace, AliasName), Option<KeyId>>>,
}

/// Which key reference forms an operation accepts, and whether it may reach keys of other accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forms {
    /// Key id, key ARN, alias name and alias ARN; other accounts' keys by ARN (cryptographic operations,
    /// DescribeKey).
    AnyForm,
    /// Key id and key ARN of the caller's own account only (management operations).
    IdOrArn,
    /// Key id and key ARN; other accounts' keys by ARN (GetKeyRotationStatus and the grant operations).
    IdOrArnCrossAccount,
}

impl Forms {
    fn accepts_alias(self) -> bool {
        self == Forms::AnyForm
    }

    fn cross_account(self) -> bool {
        matches!(self, Forms::AnyForm | Forms::IdOrArnCrossAccount)
    }
}

pub(crate) fn parse_key_ref(text: &str) -> Result<KeyRef, Error> {
    KeyRef::parse(text).map_err(|e| match e {
        KeyRefError::InvalidArn(message) => Error::InvalidArn(message),
        KeyRefError::NotFound(message) => Error::NotFound(message),
    })
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the root key binds each wrapped material to: the key and the material version.
pub(crate) fn wrap_context(record: &KeyRecord, material_id: &KeyMaterialId) -> Vec<u8> {
    let mut out = record.arn().into_bytes();
    out.push(0);
    out.extend_from_slice(&material_id.0);
    out
}

impl Kms {
    /// Resolves a key reference from a request to a live key, in the forms `forms` allows.
    pub(crate) async fn resolve(
        &self,
        caller: &Caller,
        text: &str,
        forms: Forms,
    ) -> Result<Arc<LiveKey>, Error> {
        let key_ref = parse_key_ref(text)?;
        let (namespace, key_id) = match key_ref {
            KeyRef::Id(id) => (caller.namespace.clone(), id),
            KeyRef::KeyArn(namespace, id) => {
                check_namespace(caller, &namespace, text, forms)?;
                (namespace, id)
            }
            KeyRef::Alias(alias) if forms.accepts_alias() => {
                let namespace = caller.namespace.clone();
                let id = match self.alias_target(&namespace, &alias).await {
                    // A service's first use of its `alias/aws/<service>` creates the AWS managed key.
                    Err(Error::NotFound(_))
                        if crate::keys::managed_key_service(caller, &alias).is_some() =>
                    {
                        self.create_managed_key(caller, &alias).await?
                    }
                    other => other?,
                };
                (namespace, id)
            }
            KeyRef::AliasArn(namespace, alias) if forms.accepts_alias() => {
                check_namespace(caller, &namespace, text, forms)?;
                let id = self.alias_target(&namespace, &alias).await?;
                (namespace, id)
            }
            KeyRef::Alias(_) | KeyRef::AliasArn(..) => {
                return Err(Error::Validation(format!(
                    "'{text}' is an alias; this operation takes a key id or key ARN"
                )));
            }
        };
        self.key(&namespace, &key_id)
            .await?
            .ok_or_else(|| not_found(&namespace, &key_id))
    }

    /// Loads a key by id, doing any scheduled work that has come due; `None` if it does not exist.
    pub(crate) async fn key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<Arc<LiveKey>>, Error> {
        let cached = read(&self.keyring.keys)
            .get(&(namespace.clone(), key_id.clone()))
            .cloned();
        let live = match cached {
            Some(slot) => slot,
            None => {
                let loaded = match self.store.key(namespace, key_id).await? {
                    Some(record) => {
                        let extras = self.load_extras(&record).await?;
                        Some(Arc::new(self.unwrap_materials(record, extras)?))
                    }
                    None => None,
                };
                let mut keys = write(&self.keyring.keys);
                keys.entry((namespace.clone(), key_id.clone()))
                    .or_insert(loaded)
                    .clone()
            }
        };
        let Some(live) = live else {
            return Ok(None);
        };
        if is_due(&live.record, self.clock.now()) {
            return self.do_due_work(namespace, key_id).await;
        }
        Ok(Some(live))
    }

    async fn alias_target(&self, namespace: &Namespace, alias: &AliasName) -> Result<KeyId, Error> {
        let cached = read(&self.keyring.aliases)
            .get(&(namespace.clone(), alias.clone()))
            .cloned();
        let target = match cached {
            Some(target) => target,
            None => {
                let loaded = self
                    .store
                    .alias(namespace, alias)
                    .await?
                    .map(|record| record.target);
                let mut aliases = write(&self.keyring.aliases);
                aliases
                    .entry((namespace.clone(), alias.clone()))
                    .or_insert(loaded)
                    .clone()
            }
        };
        target.ok_or_else(|| {
            Error::NotFound(format!(
                "Alias {} is not found.",
                namespace.alias_arn(alias)
            ))
        })
    }

    /// Records an alias change in the cache; call with `writes` held, after storage accepted it.
    ///
    /// The alias leaves the alias names of the key it pointed at (as the cache knew it) and joins those of
    /// `target`; [`Kms::cache_alias_move`] names the previous key explicitly.
    pub(crate) fn cache_alias(
        &self,
        namespace: &Namespace,
        alias: &AliasName,
        target: Option<KeyId>,
    ) {
        self.cache_alias_move(namespace, alias, None, target);
    }

    /// Records that `alias` moved from key `from` (if it pointed at one) to `to` (`None`: deleted); call
    /// with `writes` held, after storage accepted it.
    ///
    /// The alias names of both keys change in their cached copies. A key not in the cache reads its alias
    /// names from storage when it is loaded, and storage already has the change; the alias operations load
    /// the keys they touch before taking the lock, so their entries exist and no reader's slower load can
    /// replace them.
    pub(crate) fn cache_alias_move(
        &self,
        namespace: &Namespace,
        alias: &AliasName,
        from: Option<&KeyId>,
        to: Option<KeyId>,
    ) {
        let previous = write(&self.keyring.aliases)
            .insert((namespace.clone(), alias.clone()), to.clone())
            .flatten();
        let name = alias.as_str();
        let mut left = from
            .cloned()
            .into_iter()
            .chain(previous)
            .collect::<Vec<_>>();
        left.dedup();
        for key_id in left.iter().filter(|key_id| Some(*key_id) != to.as_ref()) {
            self.edit_cached_aliases(namespace, key_id, |names| {
                names.retain(|candidate| candidate != name)
            });
        }
        if let Some(key_id) = &to {
            self.edit_cached_aliases(namespace, key_id, |names| {
                if let Err(at) = names.binary_search_by(|candidate| candidate.as_str().cmp(name)) {
                    names.insert(at, name.to_owned());
                }
            });
        }
    }

    /// Replaces a cached key with a copy whose alias names `edit` changed; does nothing for a key not cached.
    fn edit_cached_aliases(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
        edit: impl FnOnce(&mut Vec<String>),
    ) {
        let slot = (namespace.clone(), key_id.clone());
        let mut keys = write(&self.keyring.keys);
        let Some(Some(live)) = keys.get(&slot) else {
            return;
        };
        let mut aliases = live.aliases.clone();
        edit(&mut aliases);
        if aliases != live.aliases {
            let updated = Arc::new(live.with_aliases(aliases));
            keys.insert(slot, Some(updated));
        }
    }

    /// Writes a new key to storage and the cache; call with `writes` held.
    pub(crate) async fn insert_key(&self, record: KeyRecord) -> Result<Arc<LiveKey>, Error> {
        self.store.insert_key(&record).await?;
        self.cache_key(record).await
    }

    /// Replaces a key in storage and the cache; call with `writes` held.
    pub(crate) async fn put_key(&self, record: KeyRecord) -> Result<Arc<LiveKey>, Error> {
        self.store.put_key(&record).await?;
        let live = self.cache_key(record).await?;
        // A multi-Region primary's material and rotation settings reach its replicas.
        self.sync_replicas(&live.record).await?;
        Ok(live)
    }

    /// Caches a key as written, keeping the grants, alias names and multi-Region role already cached for
    /// it (grant changes go through [`Kms::refresh_grants`], alias changes through [`Kms::cache_alias`],
    /// role changes through [`Kms::recache_key`]).
    pub(crate) async fn cache_key(&self, record: KeyRecord) -> Result<Arc<LiveKey>, Error> {
        let key = (record.namespace.clone(), record.key_id.clone());
        let cached = read(&self.keyring.keys)
            .get(&key)
            .cloned()
            .flatten()
            .map(|live| live.extras());
        let extras = match cached {
            Some(extras) => extras,
            None => self.load_extras(&record).await?,
        };
        self.cache_with_extras(record, extras)
    }

    /// Caches a key as written with its grants, alias names and multi-Region role read again from
    /// storage; call with `writes` held, after a write that changed them.
    pub(crate) async fn recache_key(&self, record: KeyRecord) -> Result<Arc<LiveKey>, Error> {
        let extras = self.load_extras(&record).await?;
        self.cache_with_extras(record, extras)
    }

    /// Reads what the cache keeps beside a key's record.
    async fn load_extras(&self, record: &KeyRecord) -> Result<KeyExtras, Error> {
        let (namespace, key_id) = (&record.namespace, &record.key_id);
        let grants = self.store.grants_for_key(namespace, key_id).await?;
        let aliases = self
            .store
            .list_aliases(namespace, Some(key_id), None, ALIASES_LOADED)
            .await?
            .into_iter()
            .map(|alias| alias.name.as_str().to_owned())
            .collect();
        let multi_region_role = if record.multi_region {
            let members = self
                .store
                .multi_region_set(&namespace.account, key_id)
                .await?;
            Some(crate::multi_region::role_in(&members, &namespace.region))
        } else {
            None
        };
        Ok(KeyExtras {
            grants,
            aliases,
            multi_region_role,
        })
    }

    fn cache_with_extras(
        &self,
        record: KeyRecord,
        extras: KeyExtras,
    ) -> Result<Arc<LiveKey>, Error> {
        let key = (record.namespace.clone(), record.key_id.clone());
        let live = Arc::new(self.unwrap_materials(record, extras)?);
        write(&self.keyring.keys).insert(key, Some(live.clone()));
        Ok(live)
    }

    /// The one shape of every key management write: resolves a key of the caller's own account (key id or
    /// ARN), authorizes `action`, then under the write lock applies `edit` to a fresh copy and stores it.
    ///
    /// `edit` makes the key-state checks and may refuse; AWS managed keys are refused before it runs.
    pub(crate) async fn update_key<T>(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
        facts: crate::authz::RequestFacts<'_>,
        edit: impl FnOnce(&mut KeyRecord) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(caller, action, &live, facts)?;
        let _writes = self.writes.lock().await;
        let mut record = self.key_for_update(&live).await?;
        crate::keys::check_customer_managed(&record)?;
        let out = edit(&mut record)?;
        self.put_key(record).await?;
        Ok(out)
    }

    /// Reads a key fresh from storage for a read-modify-write; call with `writes` held.
    pub(crate) async fn key_for_update(&self, live: &LiveKey) -> Result<KeyRecord, Error> {
        let namespace = &live.record.namespace;
        let key_id = &live.record.key_id;
        self.store
            .key(namespace, key_id)
            .await?
            .ok_or_else(|| not_found(namespace, key_id))
    }

    /// Reloads a key's grants into the cache after a grant was created or removed; call with `writes` held.
    pub(crate) async fn refresh_grants(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<(), Error> {
        let Some(record) = self.store.key(namespace, key_id).await? else {
            return Ok(());
        };
        self.recache_key(record).await?;
        Ok(())
    }

    fn unwrap_materials(&self, record: KeyRecord, extras: KeyExtras) -> Result<LiveKey, Error> {
        let mut materials = Vec::with_capacity(record.materials.len());
        for material in record.materials.iter().filter(|m| m.is_present()) {
            let bytes = self
                .root_key
                .unwrap(&wrap_context(&record, &material.id), &material.wrapped)?;
            materials.push((material.id, Material::from_bytes(record.key_spec, &bytes)?));
        }
        let current = record.current_material().and_then(|current| {
            materials
                .iter()
                .position(|(candidate, _)| *candidate == current.id)
        });
        let policy = strongroom_policy::Policy::parse(
            &record.policy,
            strongroom_policy::PolicyKind::KeyPolicy,
        )
        .map_err(|e| {
            Error::internal(std::io::Error::other(format!(
                "the stored key policy of {} does not parse: {e}",
                record.arn()
            )))
        })?;
        Ok(LiveKey {
            arn: record.arn(),
            record,
            materials: materials.into(),
            current,
            policy,
            grants: extras.grants,
            aliases: extras.aliases,
            multi_region_role: extras.multi_region_role,
        })
    }

    /// Deletes keys whose waiting period is over and rotates keys whose rotation is due, anywhere.
    ///
    /// The server calls this periodically; keys are also brought up to date whenever a request touches them.
    pub async fn run_scheduled_work(&self) -> Result<usize, Error> {
        let due = self.store.keys_due(self.clock.now()).await?;
        for (namespace, key_id) in &due {
            self.do_due_work(namespace, key_id).await?;
        }
        let multi_region = self.run_multi_region_work().await?;
        self.persist_key_usage().await?;
        Ok(due.len() + multi_region)
    }

    async fn do_due_work(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<Arc<LiveKey>>, Error> {
        let _writes = self.writes.lock().await;
        let Some(mut record) = self.store.key(namespace, key_id).await? else {
            write(&self.keyring.keys).insert((namespace.clone(), key_id.clone()), None);
            return Ok(None);
        };
        let now = self.clock.now();
        if matches!(record.state, KeyState::Creating | KeyState::Updating) {
            self.end_transient_state(&mut record, now).await?;
        }
        if let Some(deletion) = record.deletion
            && deletion.date <= now
        {
            self.store.delete_key(namespace, key_id).await?;
            self.forget_backing_key(&record).await?;
            self.multi_region_key_deleted(&record).await?;
            self.forget_key_usage(&record).await?;
            write(&self.keyring.keys).insert((namespace.clone(), key_id.clone()), None);
            write(&self.keyring.aliases)
                .retain(|(ns, _), target| !(ns == namespace && target.as_ref() == Some(key_id)));
            tracing::info!(key_arn = %record.arn(), "deleted key at the end of its waiting period");
            self.events.key_deleted(&record);
            return Ok(None);
        }
        if crate::import::expire_materials(&mut record, now) {
            tracing::info!(key_arn = %record.arn(), "deleted imported key material at its ValidTo");
            let live = self.put_key(record).await?;
            self.events.key_material_expired(&live.record);
            return Ok(Some(live));
        }
        let mut rotated = false;
        while record.state == KeyState::Enabled && record.rotation.enabled {
            let (Some(next), Some(period)) = (record.rotation.next, record.rotation.period_days)
            else {
                break;
            };
            if next > now {
                break;
            }
            self.add_material(&mut record, Some(RotationType::Automatic), next)?;
            // Catch up one rotation at a time, but never schedule the next one in the past.
            let following = next.plus_days(period);
            record.rotation.next = Some(if following > now {
                following
            } else {
                now.plus_days(period)
            });
            rotated = true;
        }
        if !rotated {
            return Ok(Some(self.cache_key(record).await?));
        }
        tracing::info!(key_arn = %record.arn(), "rotated key material on schedule");
        let live = self.put_key(record).await?;
        self.events.key_rotated(&live.record);
        Ok(Some(live))
    }

    /// Generates a new material version, wraps it, and appends it as current.
    pub(crate) fn add_material(
        &self,
        record: &mut KeyRecord,
        rotation_type: Option<RotationType>,
        created: Timestamp,
    ) -> Result<(), Error> {
        let key = Material::generate(record.key_spec)?;
        self.push_material(record, &key, rotation_type, created)
    }

    /// Wraps `key` under the root key and appends it to the record as its current material.
    pub(crate) fn push_material(
        &self,
        record: &mut KeyRecord,
        key: &Material,
        rotation_type: Option<RotationType>,
        created: Timestamp,
    ) -> Result<(), Error> {
        let id = KeyMaterialId(strongroom_keystore::material_id(
            record.key_id.as_str(),
            key.secret_bytes(),
        ));
        let wrapped = self
            .root_key
            .wrap(&wrap_context(record, &id), key.secret_bytes())?;
        record.materials.push(strongroom_types::KeyMaterial {
            id,
            wrapped,
            created,
            rotation_type,
            import: None,
        });
        Ok(())
    }
}

fn is_due(record: &KeyRecord, now: Timestamp) -> bool {
    let deletion_due = record.deletion.is_some_and(|deletion| deletion.date <= now);
    let rotation_due = record.state == KeyState::Enabled
        && record.rotation.enabled
        && record.rotation.next.is_some_and(|next| next <= now);
    // Only keys of origin EXTERNAL hold imported material; the origin test keeps this off the hot path
    // of every other key.
    let expiry_due = record.origin == strongroom_types::Origin::External
        && record
            .next_material_expiry()
            .is_some_and(|valid_to| valid_to <= now);
    // Creating and Updating (multi-Region keys only) end after a moment; see `multi_region`.
    let transient = matches!(record.state, KeyState::Creating | KeyState::Updating);
    deletion_due || rotation_due || expiry_due || transient
}

fn check_namespace(
    caller: &Caller,
    namespace: &Namespace,
    text: &str,
    forms: Forms,
) -> Result<(), Error> {
    if namespace.region != caller.namespace.region {
        return Err(Error::NotFound(format!(
            "Invalid arn {text}: it names Region {}, but this request was signed for Region {}",
            namespace.region, caller.namespace.region
        )));
    }
    if namespace.account != caller.namespace.account && !forms.cross_account() {
        return Err(Error::AccessDenied(format!(
            "User: {} is not authorized to use {text}: this operation works only on keys of the caller's own account",
            caller.arn
        )));
    }
    Ok(())
}

pub(crate) fn not_found(namespace: &Namespace, key_id: &KeyId) -> Error {
    Error::NotFound(format!(
        "Key '{}' does not exist",
        namespace.key_arn(key_id)
    ))
}
