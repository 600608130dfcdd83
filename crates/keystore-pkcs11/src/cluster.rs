//! A cluster of HSMs that acts as one: users kept identical, keys replicated, load spread, and
//! failures routed around.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::attributes::{ObjectKind, RESERVED_PREFIX};
use crate::config::{ClusterOptions, HsmConfig, Pin};
use crate::error::Error;
use crate::health::HealthMonitor;
use crate::hsm::{Hsm, HsmState, HsmStatus, KeyPairSpec, Sealed, SignMechanism};
use crate::module::ModuleSet;

/// HSMs acting as one logical HSM, like a CloudHSM cluster.
///
/// Cheap to share: clone the `Arc` it is usually held in; every method takes `&self`.
#[derive(Debug)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

#[derive(Debug)]
pub(crate) struct ClusterInner {
    hsms: RwLock<Vec<Arc<Hsm>>>,
    modules: ModuleSet,
    options: ClusterOptions,
    /// Rotates the starting point of HSM selection, so that ties are broken round robin.
    cursor: AtomicUsize,
    /// Serializes administrative work (users, wrapping keys, key creation, membership), so that,
    /// for example, a key created while an HSM joins is not missed by the copy.
    admin: Mutex<()>,
    user_pin: Mutex<Option<Arc<Pin>>>,
}

/// Where a new key ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHandleSet {
    /// The key's label, the KMS key ARN.
    pub label: String,
    /// One entry per HSM holding the key; the first is where it was generated.
    pub replicas: Vec<KeyReplica>,
}

/// One HSM's copy of a key, named the way CloudTrail's `backingKey` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReplica {
    /// The HSM's id.
    pub hsm: String,
    /// The object handle on that HSM (valid while the HSM keeps a session open).
    pub handle: u64,
}

/// The outcome of an operation on one HSM, for operations that try every HSM.
#[derive(Debug)]
pub struct HsmResult<T> {
    /// The HSM's id.
    pub hsm: String,
    /// What happened there.
    pub result: Result<T, Error>,
}

/// What a synchronization copied, and what it could not.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Backing keys copied.
    pub copied_keys: Vec<SyncItem>,
    /// Data objects (certificates) copied.
    pub copied_objects: Vec<SyncItem>,
    /// Copies that failed, and HSMs that could not even be listed.
    pub failures: Vec<SyncFailure>,
}

/// An object copied to an HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncItem {
    /// The HSM that received the copy.
    pub hsm: String,
    /// The object's label.
    pub label: String,
}

/// A copy that failed.
#[derive(Debug)]
pub struct SyncFailure {
    /// The HSM that should have received the copy (or could not be listed).
    pub hsm: String,
    /// The object's label; `None` when the HSM's objects could not be listed.
    pub label: Option<String>,
    /// Why.
    pub error: Error,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn check_label(label: &str) -> Result<(), Error> {
    if label.is_empty() {
        return Err(Error::InvalidLabel {
            label: label.to_owned(),
            reason: "labels are not empty",
        });
    }
    if label.starts_with(RESERVED_PREFIX) {
        return Err(Error::InvalidLabel {
            label: label.to_owned(),
            reason: "the prefix is reserved for the cluster's own objects",
        });
    }
    Ok(())
}

impl Cluster {
    /// Opens every HSM of `configs`; nobody is logged in yet.
    pub fn open(
        configs: &[HsmConfig],
        modules: &ModuleSet,
        options: ClusterOptions,
    ) -> Result<Cluster, Error> {
        let mut hsms: Vec<Arc<Hsm>> = Vec::new();
        for config in configs {
            if hsms.iter().any(|hsm| hsm.id() == config.id) {
                return Err(Error::DuplicateHsm {
                    hsm: config.id.clone(),
                });
            }
            hsms.push(Arc::new(Hsm::open(config, modules, &options)?));
        }
        Ok(Cluster {
            inner: Arc::new(ClusterInner {
                hsms: RwLock::new(hsms),
                modules: modules.clone(),
                options,
                cursor: AtomicUsize::new(0),
                admin: Mutex::new(()),
                user_pin: Mutex::new(None),
            }),
        })
    }

    /// Every HSM, in configuration order.
    pub fn hsms(&self) -> Vec<Arc<Hsm>> {
        self.inner.hsms()
    }

    /// The HSM with this id.
    pub fn hsm(&self, id: &str) -> Option<Arc<Hsm>> {
        self.inner.hsms().into_iter().find(|hsm| hsm.id() == id)
    }

    /// Health and load of every HSM.
    pub fn status(&self) -> Vec<HsmStatus> {
        self.inner.hsms().iter().map(|hsm| hsm.status()).collect()
    }

    /// Probes every HSM now, bringing degraded ones back when they answer.
    pub fn probe(&self) -> Vec<HsmStatus> {
        self.inner.probe_all();
        self.status()
    }

    /// Probes every HSM each `interval` on a background thread until the monitor is dropped.
    pub fn spawn_health_monitor(&self, interval: Duration) -> HealthMonitor {
        HealthMonitor::spawn(Arc::downgrade(&self.inner), interval)
    }

    fn admin(&self) -> MutexGuard<'_, ()> {
        lock(&self.inner.admin)
    }

    // Users.

    /// Creates the crypto user with password `user_pin` on every HSM (`C_InitPIN` as each HSM's
    /// Security Officer). Running it again resets the password, so a failure can be retried.
    pub fn create_crypto_user(&self, user_pin: &Pin) -> Result<(), Error> {
        let _admin = self.admin();
        for hsm in self.inner.hsms() {
            hsm.create_crypto_user(user_pin)?;
        }
        Ok(())
    }

    /// Logs the crypto user in on every HSM, as KMS does when it connects a custom key store.
    ///
    /// A refused password on any HSM fails the whole login (nobody stays logged in); an HSM
    /// that does not answer is marked degraded and logs in when a probe finds it back.
    pub fn login_crypto_user(&self, pin: &Pin) -> Result<(), Error> {
        self.login_crypto_user_with_any(std::slice::from_ref(pin))
    }

    /// Logs the crypto user in on every HSM with the first of `pins` that HSM accepts, for a
    /// password rotation that stopped part-way (a crash, an HSM that failed): each HSM then holds
    /// one of the passwords the caller recorded, not necessarily the same one.
    ///
    /// An HSM that accepts none of them fails the whole login with its last refusal (nobody stays
    /// logged in); an HSM that does not answer is marked degraded, keeps the first password, and
    /// logs in with it when a probe finds it back. [`Cluster::move_crypto_user_password`] then
    /// brings every HSM to one password.
    pub fn login_crypto_user_with_any(&self, pins: &[Pin]) -> Result<(), Error> {
        let Some(first) = pins.first() else {
            return Err(Error::InvalidArgument {
                reason: "at least one password is needed to log in",
            });
        };
        let _admin = self.admin();
        let pins: Vec<Arc<Pin>> = pins.iter().map(|pin| Arc::new(pin.clone())).collect();
        let hsms = self.inner.hsms();
        let mut accepted: Option<Arc<Pin>> = None;
        for hsm in &hsms {
            let mut refusal = None;
            for pin in &pins {
                match hsm.login_crypto_user(pin.clone()) {
                    Ok(()) => {
                        accepted.get_or_insert_with(|| pin.clone());
                        refusal = None;
                        break;
                    }
                    Err(err) if err.is_device_failure() => {
                        hsm.remember_user_pin(Arc::new(first.clone()));
                        refusal = None;
                        break;
                    }
                    // Another of the passwords may be the one this HSM holds.
                    Err(err @ Error::InvalidCredentials { .. }) => refusal = Some(err),
                    Err(err) => {
                        refusal = Some(err);
                        break;
                    }
                }
            }
            if let Some(err) = refusal {
                for hsm in &hsms {
                    hsm.logout_crypto_user();
                }
                return Err(err);
            }
        }
        match accepted {
            None => Err(Error::NoActiveHsm),
            Some(pin) => {
                *lock(&self.inner.user_pin) = Some(pin);
                Ok(())
            }
        }
    }

    /// Logs the crypto user out everywhere and forgets the password, as a disconnect does.
    pub fn logout_crypto_user(&self) {
        let _admin = self.admin();
        for hsm in self.inner.hsms() {
            hsm.logout_crypto_user();
        }
        *lock(&self.inner.user_pin) = None;
    }

    /// Whether the crypto user is logged in, as while a key store is connected.
    pub fn is_logged_in(&self) -> bool {
        lock(&self.inner.user_pin).is_some()
    }

    /// Changes the crypto user's password on every HSM, keeping them identical: if any HSM
    /// refuses, those already changed are set back to `old` and the failure is reported.
    pub fn change_crypto_user_password(&self, old: &Pin, new: &Pin) -> Result<(), Error> {
        let _admin = self.admin();
        let hsms = self.inner.hsms();
        let mut changed: Vec<&Arc<Hsm>> = Vec::new();
        for hsm in &hsms {
            match hsm.set_crypto_user_password(old, new) {
                Ok(()) => changed.push(hsm),
                Err(err) => {
                    let mut rolled_back = Vec::new();
                    let mut rollback_failed = Vec::new();
                    for done in changed {
                        match done.set_crypto_user_password(new, old) {
                            Ok(()) => rolled_back.push(done.id().to_owned()),
                            Err(rollback_err) => {
                                tracing::error!(hsm = %done.id(), error = %rollback_err, "password rollback failed");
                                rollback_failed.push(done.id().to_owned());
                            }
                        }
                    }
                    return Err(Error::PasswordChangeFailed {
                        hsm: hsm.id().to_owned(),
                        source: Box::new(err),
                        rolled_back,
                        rollback_failed,
                    });
                }
            }
        }
        let mut known = lock(&self.inner.user_pin);
        if known.is_some() {
            *known = Some(Arc::new(new.clone()));
        }
        Ok(())
    }

    /// Moves the crypto user of every HSM to password `new`, from the password each one logged in
    /// with ([`Cluster::login_crypto_user_with_any`]); HSMs that already hold `new` are left as they
    /// are. `moved` hears of each HSM that holds `new` once it does, in configuration order.
    ///
    /// Unlike [`Cluster::change_crypto_user_password`] nothing is rolled back: the move stops at the
    /// first HSM that fails, leaving the HSMs before it on `new` and the others on their old
    /// password. A caller that recorded both passwords before calling (as a custom key store does)
    /// therefore knows every HSM's password whatever happens, even if the process dies midway, and
    /// finishes the move by logging in with both and calling this again.
    pub fn move_crypto_user_password(
        &self,
        new: &Pin,
        mut moved: impl FnMut(&str),
    ) -> Result<(), Error> {
        let _admin = self.admin();
        let new = Arc::new(new.clone());
        let mut done = Vec::new();
        for hsm in self.inner.hsms() {
            let result = match hsm.known_user_pin() {
                None => Err(Error::NotLoggedIn {
                    hsm: hsm.id().to_owned(),
                }),
                Some(old) if same_secret(old.expose(), new.expose()) => Ok(()),
                Some(old) => match hsm.set_crypto_user_password(&old, &new) {
                    Ok(()) => Ok(()),
                    // An HSM that was down at login kept a password it never checked; it may hold
                    // `new` already.
                    Err(err @ Error::InvalidCredentials { .. }) => {
                        hsm.login_crypto_user(new.clone()).map_err(|_| err)
                    }
                    Err(err) => Err(err),
                },
            };
            match result {
                Ok(()) => {
                    done.push(hsm.id().to_owned());
                    moved(hsm.id());
                }
                Err(err) => {
                    return Err(Error::PasswordMoveStopped {
                        hsm: hsm.id().to_owned(),
                        source: Box::new(err),
                        moved: done,
                    });
                }
            }
        }
        let mut known = lock(&self.inner.user_pin);
        if known.is_some() {
            *known = Some(new);
        }
        Ok(())
    }

    // The cluster wrapping key.

    /// Makes sure every HSM holds the same cluster wrapping key, generating it on the first HSM
    /// if none has one and carrying it to the others by ECDH (see the crate documentation).
    /// Needs each HSM's Security Officer PIN and every HSM reachable; idempotent.
    pub fn establish_wrapping_key(&self) -> Result<(), Error> {
        let _admin = self.admin();
        let hsms = self.inner.hsms();
        let mut founder: Option<(&Arc<Hsm>, Vec<u8>)> = None;
        let mut lacking = Vec::new();
        for hsm in &hsms {
            match (hsm.wrapping_key_id()?, &founder) {
                (None, _) => lacking.push(hsm),
                (Some(id), None) => founder = Some((hsm, id)),
                (Some(id), Some((first, first_id))) => {
                    if id != *first_id {
                        return Err(Error::WrappingKeyMismatch {
                            first: first.id().to_owned(),
                            second: hsm.id().to_owned(),
                        });
                    }
                }
            }
        }
        let founder = match founder {
            Some((hsm, _)) => hsm,
            None => {
                let Some(first) = lacking.first() else {
                    return Err(Error::NoActiveHsm);
                };
                first.generate_wrapping_key()?;
                lacking.remove(0)
            }
        };
        for hsm in lacking {
            founder.send_wrapping_key(hsm)?;
        }
        Ok(())
    }

    // Membership and synchronization.

    /// Brings a new HSM into the cluster, the equivalent of CloudHSM's "create HSM from backup":
    /// gives it the crypto user with the cluster's password (as its Security Officer, replacing any
    /// user PIN its token kept from an earlier membership) and the cluster wrapping key, copies every
    /// backing key and certificate to it, then lets it serve requests. Works while the cluster
    /// serves requests: a connected key store takes a new HSM without disconnecting.
    pub fn add_hsm(&self, config: &HsmConfig) -> Result<SyncReport, Error> {
        let _admin = self.admin();
        if self.inner.hsms().iter().any(|hsm| hsm.id() == config.id) {
            return Err(Error::DuplicateHsm {
                hsm: config.id.clone(),
            });
        }
        let Some(pin) = lock(&self.inner.user_pin).clone() else {
            return Err(Error::NotLoggedIn {
                hsm: config.id.clone(),
            });
        };
        let new = Arc::new(Hsm::open(config, &self.inner.modules, &self.inner.options)?);
        new.create_crypto_user(&pin)?;
        new.login_crypto_user(pin)?;

        let members = self.inner.active();
        let Some(member) = members.first() else {
            return Err(Error::NoActiveHsm);
        };
        let Some(cluster_id) = member.wrapping_key_id()? else {
            return Err(Error::WrappingKeyMissing {
                hsm: member.id().to_owned(),
            });
        };
        match new.wrapping_key_id()? {
            None => member.send_wrapping_key(&new)?,
            Some(id) if id == cluster_id => {}
            Some(_) => {
                return Err(Error::WrappingKeyMismatch {
                    first: member.id().to_owned(),
                    second: new.id().to_owned(),
                });
            }
        }

        let mut involved = members.clone();
        involved.push(new.clone());
        let report = self.synchronize_among(&involved);
        self.inner
            .hsms
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(new);
        Ok(report)
    }

    /// Takes the HSM `id` out of the cluster: it serves no more requests and its sessions close.
    /// False when the cluster has no such HSM.
    pub fn remove_hsm(&self, id: &str) -> bool {
        let _admin = self.admin();
        let removed = {
            let mut hsms = self
                .inner
                .hsms
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let position = hsms.iter().position(|hsm| hsm.id() == id);
            position.map(|position| hsms.remove(position))
        };
        match removed {
            Some(hsm) => {
                hsm.logout_crypto_user();
                true
            }
            None => false,
        }
    }

    /// Copies every backing key and certificate that some active HSM has to the active HSMs that
    /// lack it, as after an HSM was unreachable while keys were created.
    ///
    /// A key deleted while an HSM was unreachable is still on that HSM and would be copied back,
    /// so callers should finish pending deletions (see [`Cluster::delete_key`]) first.
    pub fn synchronize(&self) -> SyncReport {
        let _admin = self.admin();
        self.synchronize_among(&self.inner.active())
    }

    fn synchronize_among(&self, hsms: &[Arc<Hsm>]) -> SyncReport {
        let mut report = SyncReport::default();
        // What each reachable HSM holds: backing key labels, then data object labels.
        let mut holdings: Vec<(Arc<Hsm>, Vec<String>, Vec<String>)> = Vec::new();
        for hsm in hsms {
            let labels = hsm
                .backing_key_labels()
                .and_then(|keys| Ok((keys, hsm.data_labels()?)));
            match labels {
                Ok((keys, data)) => holdings.push((hsm.clone(), keys, data)),
                Err(error) => report.failures.push(SyncFailure {
                    hsm: hsm.id().to_owned(),
                    label: None,
                    error,
                }),
            }
        }

        let key_labels: BTreeSet<String> = holdings
            .iter()
            .flat_map(|(_, keys, _)| keys.iter().cloned())
            .collect();
        for label in key_labels {
            let Some(source) = holdings
                .iter()
                .find(|(_, keys, _)| keys.contains(&label))
                .map(|(hsm, _, _)| hsm.clone())
            else {
                continue;
            };
            let mut wrapped = None;
            for (target, keys, _) in holdings.iter_mut() {
                if keys.contains(&label) {
                    continue;
                }
                let exported = match &wrapped {
                    Some(blob) => Ok(Zeroizing::clone(blob)),
                    None => source.export_backing_key(&label).map(Zeroizing::new),
                };
                let copied = exported.and_then(|blob| {
                    target.import_backing_key(&label, &blob)?;
                    Ok(blob)
                });
                match copied {
                    Ok(blob) => {
                        wrapped = Some(blob);
                        keys.push(label.clone());
                        report.copied_keys.push(SyncItem {
                            hsm: target.id().to_owned(),
                            label: label.clone(),
                        });
                    }
                    Err(error) => report.failures.push(SyncFailure {
                        hsm: target.id().to_owned(),
                        label: Some(label.clone()),
                        error,
                    }),
                }
            }
        }

        let data_labels: BTreeSet<String> = holdings
            .iter()
            .flat_map(|(_, _, data)| data.iter().cloned())
            .collect();
        for label in data_labels {
            let Some(source) = holdings
                .iter()
                .find(|(_, _, data)| data.contains(&label))
                .map(|(hsm, _, _)| hsm.clone())
            else {
                continue;
            };
            for (target, _, data) in holdings.iter_mut() {
                if data.contains(&label) {
                    continue;
                }
                let copied = source
                    .read_data(&label)
                    .and_then(|value| target.write_data(&label, &value));
                match copied {
                    Ok(()) => {
                        data.push(label.clone());
                        report.copied_objects.push(SyncItem {
                            hsm: target.id().to_owned(),
                            label: label.clone(),
                        });
                    }
                    Err(error) => report.failures.push(SyncFailure {
                        hsm: target.id().to_owned(),
                        label: Some(label.clone()),
                        error,
                    }),
                }
            }
        }
        report
    }

    // Backing keys.

    /// Generates a backing key labelled `label` (the KMS key ARN) on one HSM and copies it to
    /// every other active HSM, wrapped under the cluster wrapping key.
    ///
    /// Fails with [`Error::InsufficientReplicas`], leaving no copy behind, when the key would
    /// exist on fewer HSMs than the key availability quorum.
    pub fn generate_key(&self, label: &str) -> Result<KeyHandleSet, Error> {
        check_label(label)?;
        let _admin = self.admin();
        let required = self.inner.options.key_availability_quorum;
        let candidates = self.inner.candidates();
        if candidates.len() < required {
            return Err(Error::InsufficientReplicas {
                label: label.to_owned(),
                replicas: candidates.len(),
                required,
            });
        }
        let mut reachable = Vec::new();
        let mut refused = None;
        for hsm in candidates {
            match hsm.key_exists(label) {
                Ok(true) => {
                    return Err(Error::LabelInUse {
                        label: label.to_owned(),
                    });
                }
                Ok(false) => reachable.push(hsm),
                Err(err) if err.is_worth_retrying_elsewhere() => {
                    if !err.is_device_failure() {
                        refused = Some(err);
                    }
                }
                Err(err) => return Err(err),
            }
        }
        if reachable.is_empty() {
            return Err(refused.unwrap_or(Error::NoActiveHsm));
        }

        let mut replicas: Vec<(Arc<Hsm>, u64)> = Vec::new();
        let mut source = None;
        for (index, hsm) in reachable.iter().enumerate() {
            match hsm.generate_backing_key(label) {
                Ok(handle) => {
                    replicas.push((hsm.clone(), handle.handle()));
                    source = Some(index);
                    break;
                }
                Err(err) if err.is_worth_retrying_elsewhere() => {}
                Err(err) => return Err(err),
            }
        }
        let Some(source_index) = source else {
            return Err(Error::NoActiveHsm);
        };
        let source = reachable[source_index].clone();
        let targets = reachable.iter().skip(source_index + 1);
        match source.export_backing_key(label) {
            Ok(wrapped) => {
                let wrapped = Zeroizing::new(wrapped);
                for target in targets {
                    match target.import_backing_key(label, &wrapped) {
                        Ok(handle) => replicas.push((target.clone(), handle.handle())),
                        Err(err) => {
                            tracing::warn!(hsm = %target.id(), %label, error = %err, "key not replicated");
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(hsm = %source.id(), %label, error = %err, "key could not be exported for replication");
            }
        }

        if replicas.len() < required {
            for (hsm, _) in &replicas {
                if let Err(err) = hsm.destroy(ObjectKind::BackingKey, label) {
                    tracing::warn!(hsm = %hsm.id(), %label, error = %err, "orphaned key not removed");
                }
            }
            return Err(Error::InsufficientReplicas {
                label: label.to_owned(),
                replicas: replicas.len(),
                required,
            });
        }
        Ok(KeyHandleSet {
            label: label.to_owned(),
            replicas: replicas
                .into_iter()
                .map(|(hsm, handle)| KeyReplica {
                    hsm: hsm.id().to_owned(),
                    handle,
                })
                .collect(),
        })
    }

    /// Deletes the backing key `label` from every HSM, reporting per HSM whether it was there;
    /// best effort, like KMS deleting backing keys after the waiting period.
    pub fn delete_key(&self, label: &str) -> Vec<HsmResult<bool>> {
        let _admin = self.admin();
        self.inner
            .hsms()
            .iter()
            .map(|hsm| HsmResult {
                hsm: hsm.id().to_owned(),
                result: hsm.destroy(ObjectKind::BackingKey, label),
            })
            .collect()
    }

    /// The certificate stored under `label` as each HSM holds it, to check every HSM's identity.
    pub fn read_certificate_everywhere(&self, label: &str) -> Vec<HsmResult<Vec<u8>>> {
        self.inner
            .hsms()
            .iter()
            .map(|hsm| HsmResult {
                hsm: hsm.id().to_owned(),
                result: hsm.read_data(label),
            })
            .collect()
    }

    /// Whether each HSM holds the backing key `label`.
    pub fn key_exists(&self, label: &str) -> Vec<HsmResult<bool>> {
        self.inner
            .hsms()
            .iter()
            .map(|hsm| HsmResult {
                hsm: hsm.id().to_owned(),
                result: hsm.key_exists(label),
            })
            .collect()
    }

    /// Encrypts with AES-256-GCM under the backing key `label` on the least busy active HSM.
    ///
    /// `aad` is authenticated with the ciphertext and may be empty.
    pub fn encrypt(&self, label: &str, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, Error> {
        self.inner
            .run_anywhere(|hsm| hsm.encrypt(label, aad, plaintext))
    }

    /// Decrypts what [`Cluster::encrypt`] produced, on any active HSM.
    pub fn decrypt(
        &self,
        label: &str,
        aad: &[u8],
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.inner
            .run_anywhere(|hsm| hsm.decrypt(label, aad, sealed))
    }

    /// Random bytes from an HSM's generator, for `GenerateRandom` with a custom key store.
    pub fn random(&self, len: usize) -> Result<Vec<u8>, Error> {
        self.inner.run_anywhere(|hsm| hsm.random(len))
    }

    // The cluster's own certificate and key pair.

    /// Stores a certificate (DER) as a public data object on every active HSM, replacing any
    /// previous one with this label; HSMs that are down get it at the next synchronization.
    pub fn write_certificate(&self, label: &str, der: &[u8]) -> Result<(), Error> {
        check_label(label)?;
        let _admin = self.admin();
        let mut written = 0;
        for hsm in self.inner.active() {
            match hsm.write_data(label, der) {
                Ok(()) => written += 1,
                Err(err) if err.is_worth_retrying_elsewhere() => {}
                Err(err) => return Err(err),
            }
        }
        match written {
            0 => Err(Error::NoActiveHsm),
            _ => Ok(()),
        }
    }

    /// The certificate stored under `label`, from any active HSM.
    pub fn read_certificate(&self, label: &str) -> Result<Vec<u8>, Error> {
        self.inner.run_anywhere(|hsm| hsm.read_data(label))
    }

    /// Generates a key pair for the cluster's identity inside one HSM and returns the public key
    /// as SubjectPublicKeyInfo DER, for the cluster CSR. The private key never leaves that HSM.
    pub fn generate_cluster_key_pair(
        &self,
        label: &str,
        spec: KeyPairSpec,
    ) -> Result<Vec<u8>, Error> {
        check_label(label)?;
        let _admin = self.admin();
        // The pair lives on one HSM, but its label must mean one key pair cluster-wide.
        for hsm in self.inner.active() {
            match hsm.object_exists(ObjectKind::PrivateKey, label) {
                Ok(true) => {
                    return Err(Error::LabelInUse {
                        label: label.to_owned(),
                    });
                }
                Ok(false) => {}
                Err(err) if err.is_worth_retrying_elsewhere() => {}
                Err(err) => return Err(err),
            }
        }
        self.inner
            .run_anywhere(|hsm| hsm.generate_key_pair(label, spec))
    }

    /// The public key `label` as SubjectPublicKeyInfo DER.
    pub fn public_key(&self, label: &str) -> Result<Vec<u8>, Error> {
        self.inner.run_anywhere(|hsm| hsm.public_key(label))
    }

    /// Signs `data` with the private key `label` inside the HSM that holds it (for the CSR).
    pub fn sign(
        &self,
        label: &str,
        mechanism: SignMechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.inner
            .run_anywhere(|hsm| hsm.sign(label, mechanism, data))
    }
}

impl ClusterInner {
    fn hsms(&self) -> Vec<Arc<Hsm>> {
        self.hsms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Active HSMs in configuration order.
    fn active(&self) -> Vec<Arc<Hsm>> {
        self.hsms()
            .into_iter()
            .filter(|hsm| hsm.state() == HsmState::Active)
            .collect()
    }

    /// Active HSMs in the order requests should try them: least busy first, ties round robin.
    fn candidates(&self) -> Vec<Arc<Hsm>> {
        let mut hsms = self.active();
        if hsms.is_empty() {
            return hsms;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % hsms.len();
        hsms.rotate_left(start);
        // A stable sort keeps the rotation among equally busy HSMs.
        hsms.sort_by_key(|hsm| hsm.in_flight());
        hsms
    }

    /// Runs `op` on the best HSM, then on the others while failures are the device's fault or
    /// the HSM lacks the key (it may not have received it yet).
    fn run_anywhere<T>(&self, op: impl Fn(&Hsm) -> Result<T, Error>) -> Result<T, Error> {
        let mut tried: Vec<Arc<Hsm>> = Vec::new();
        let mut missing = None;
        let mut refused = None;
        let mut probed = false;
        loop {
            let next = self
                .candidates()
                .into_iter()
                .find(|hsm| !tried.iter().any(|done| Arc::ptr_eq(done, hsm)));
            let Some(hsm) = next else {
                if let Some(err) = missing {
                    return Err(err);
                }
                if probed {
                    // "Not logged in" or "busy" says more than "no active HSM" when every HSM
                    // that answered said so.
                    return Err(refused.unwrap_or(Error::NoActiveHsm));
                }
                // Without a health monitor nothing else would bring a degraded HSM back.
                probed = true;
                for hsm in self.hsms() {
                    hsm.probe_if_due(self.options.probe_interval);
                }
                tried.retain(|hsm| hsm.state() != HsmState::Active);
                continue;
            };
            tried.push(hsm.clone());
            match op(&hsm) {
                Ok(value) => return Ok(value),
                Err(err) if err.is_worth_retrying_elsewhere() => {
                    tracing::debug!(hsm = %hsm.id(), error = %err, "retrying on another HSM");
                    if !err.is_device_failure() {
                        refused = Some(err);
                    }
                }
                Err(err @ Error::KeyNotFound { .. }) => missing = Some(err),
                Err(err) => return Err(err),
            }
        }
    }

    /// Probes every HSM, for the health monitor and [`Cluster::probe`].
    pub(crate) fn probe_all(&self) {
        for hsm in self.hsms() {
            hsm.probe();
        }
    }
}
