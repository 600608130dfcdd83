//! Backups: taking them, `DescribeBackups`, `DeleteBackup`, `RestoreBackup`,
//! `ModifyBackupAttributes`, and finding what a new HSM is seeded from.
//!
//! A backup holds the cluster's keys wrapped inside an HSM under the cluster wrapping key, its users and
//! its certificates, sealed by the root key (see [`crate::backup_contents`] and the crate
//! documentation); `RestoreBackup` is CloudHSM's, undoing a pending deletion, and clusters are created
//! from backups by `CreateCluster`.

use std::sync::Arc;

use strongroom_keystore_pkcs11::{ExportedKeys, Hsm, HsmConfig, export_backing_keys};
use strongroom_storage::clusters::{BackupRecord, BackupState, ClusterRecord, ClusterState};
use strongroom_types::Namespace;

use crate::backup_contents::BackupContents;
use crate::clusters::paginate;
use crate::error::Error;
use crate::{ControlPlane, Page, ids, tokens};

/// `DescribeBackups` pages hold at most this many backups.
const MAX_BACKUPS_PER_PAGE: usize = 50;
/// A deleted backup can be restored for this many days.
const RESTORE_WINDOW_DAYS: u32 = 7;

impl ControlPlane {
    /// `DescribeBackups`: the namespace's backups matching `filters` (`backupIds`, `sourceBackupIds`,
    /// `clusterIds`, `states`, `neverExpires`), oldest first unless `sort_ascending` is false.
    pub async fn describe_backups(
        &self,
        namespace: &Namespace,
        filters: &[(String, Vec<String>)],
        sort_ascending: bool,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<Page<BackupRecord>, Error> {
        let mut states: Option<Vec<BackupState>> = None;
        for (name, values) in filters {
            match name.as_str() {
                "backupIds" | "clusterIds" | "sourceBackupIds" | "neverExpires" => {}
                "states" => {
                    let mut parsed = Vec::new();
                    for value in values {
                        parsed.push(value.parse().map_err(|e| {
                            Error::InvalidRequest(format!("Filter 'states': {e}."))
                        })?);
                    }
                    states = Some(parsed);
                }
                other => {
                    return Err(Error::InvalidRequest(format!(
                        "Filter '{other}' is not supported by DescribeBackups: use backupIds, sourceBackupIds, \
                         clusterIds, states or neverExpires."
                    )));
                }
            }
        }
        let values = |wanted: &str| {
            filters
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, values)| values.as_slice())
        };
        let now = self.now();
        let mut backups: Vec<BackupRecord> = self
            .store
            .backups(namespace)
            .await?
            .into_iter()
            .filter(|backup| !is_gone(backup, now))
            .filter(|backup| values("backupIds").is_none_or(|ids| ids.contains(&backup.backup_id)))
            .filter(|backup| {
                values("clusterIds").is_none_or(|ids| ids.contains(&backup.cluster_id))
            })
            // No backup here is a copy of another, so a source filter matches none.
            .filter(|_| values("sourceBackupIds").is_none())
            .filter(|backup| {
                values("neverExpires").is_none_or(|flags| {
                    flags
                        .iter()
                        .any(|flag| flag.eq_ignore_ascii_case(&backup.never_expires.to_string()))
                })
            })
            .filter(|backup| {
                states
                    .as_ref()
                    .is_none_or(|states| states.contains(&backup.state))
            })
            .collect();
        if !sort_ascending {
            backups.reverse();
        }
        paginate(
            backups,
            |backup| backup.backup_id.as_str(),
            next_token,
            max_results,
            MAX_BACKUPS_PER_PAGE,
        )
    }

    /// `DeleteBackup`: marks a backup `PENDING_DELETION`; it disappears after seven days unless restored.
    pub async fn delete_backup(
        &self,
        namespace: &Namespace,
        backup_id: &str,
    ) -> Result<BackupRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut backup = self.backup(namespace, backup_id).await?;
        if backup.state == BackupState::PendingDeletion {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} is already pending deletion."
            )));
        }
        backup.state = BackupState::PendingDeletion;
        backup.deleted = Some(self.now());
        self.store.put_backup(&backup).await?;
        Ok(backup)
    }

    /// `RestoreBackup`: undoes a pending deletion.
    pub async fn restore_backup(
        &self,
        namespace: &Namespace,
        backup_id: &str,
    ) -> Result<BackupRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut backup = self.backup(namespace, backup_id).await?;
        if backup.state != BackupState::PendingDeletion {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} is {}, not PENDING_DELETION: only a deleted backup can be restored.",
                backup.state
            )));
        }
        backup.state = BackupState::Ready;
        backup.deleted = None;
        self.store.put_backup(&backup).await?;
        Ok(backup)
    }

    /// `ModifyBackupAttributes`: sets whether the backup is exempt from the retention policy.
    pub async fn modify_backup_attributes(
        &self,
        namespace: &Namespace,
        backup_id: &str,
        never_expires: bool,
    ) -> Result<BackupRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut backup = self.backup(namespace, backup_id).await?;
        backup.never_expires = never_expires;
        self.store.put_backup(&backup).await?;
        Ok(backup)
    }

    /// The backup `backup_id` of `namespace`, unless its deletion is final.
    pub(crate) async fn backup(
        &self,
        namespace: &Namespace,
        backup_id: &str,
    ) -> Result<BackupRecord, Error> {
        let now = self.now();
        let found = self
            .store
            .backups(namespace)
            .await?
            .into_iter()
            .find(|backup| backup.backup_id == backup_id && !is_gone(backup, now));
        match found {
            Some(backup) => Ok(backup),
            None => Err(Error::ResourceNotFound(format!(
                "Backup {backup_id} does not exist."
            ))),
        }
    }
}

/// An HSM that may hold a lineage's cluster wrapping key, to seed a new token from.
pub(crate) struct Holder {
    /// The declared HSM.
    pub(crate) config: HsmConfig,
    /// The `Hsm` a connected custom key store has open for that token, if any: Security Officer work on
    /// a token whose crypto user this process has logged in must go through it (PKCS#11 logs users in
    /// per token and process).
    pub(crate) live: Option<Arc<Hsm>>,
}

impl ControlPlane {
    /// Records a backup of `cluster` as it is now: its users, certificates and, when they can be
    /// exported, its keys, from `exported` or else through a PKCS#11 cluster of it that this process
    /// has open with the crypto user logged in (a connected custom key store's).
    pub(crate) async fn take_backup(
        &self,
        cluster: &ClusterRecord,
        exported: Option<ExportedKeys>,
    ) -> Result<(), Error> {
        let backup_id = ids::new_backup_id()?;
        let contents = self.capture(cluster, exported).await;
        let sealed = contents.seal(self.root_key.as_ref(), &backup_id)?;
        let backup = BackupRecord {
            backup_id,
            cluster_id: cluster.cluster_id.clone(),
            namespace: cluster.namespace.clone(),
            state: BackupState::Ready,
            hsm_type: cluster.hsm_type.clone(),
            mode: cluster.mode,
            never_expires: false,
            created: self.now(),
            deleted: None,
            tags: Vec::new(),
            sealed_contents: Some(sealed),
        };
        self.store.insert_backup(&backup).await?;
        Ok(())
    }

    async fn capture(
        &self,
        cluster: &ClusterRecord,
        exported: Option<ExportedKeys>,
    ) -> BackupContents {
        let activated = matches!(cluster.state, ClusterState::Active | ClusterState::Degraded);
        let mut contents = BackupContents {
            cluster_id: cluster.cluster_id.clone(),
            activated,
            crypto_users: cluster.crypto_users.clone(),
            identity: cluster.identity.clone(),
            certificates: cluster.certificates.clone(),
            wrapping_key_id: None,
            keys: None,
        };
        if !activated {
            // No wrapping key yet, and so no key.
            contents.keys = Some(Vec::new());
            return contents;
        }
        let exported = match exported {
            Some(exported) => Some(exported),
            None => self.export_live(&cluster.cluster_id).await,
        };
        match exported {
            Some(exported) => {
                tracing::debug!(cluster = %cluster.cluster_id, hsm = %exported.hsm, keys = exported.keys.len(),
                    "backup took the cluster's keys");
                contents.wrapping_key_id = Some(exported.wrapping_key_id);
                contents.keys = Some(exported.keys);
            }
            None if cluster.crypto_users.is_empty() => {
                // Only the crypto user makes keys, so there are none; the wrapping key's id is public.
                contents.wrapping_key_id = self.read_wrapping_key_id(cluster).await;
                contents.keys = Some(Vec::new());
            }
            None => {
                tracing::info!(cluster = %cluster.cluster_id,
                    "backup taken without the cluster's keys: no HSM of it has the crypto user logged in \
                     in this server (connect its custom key store, or run `strongroom hsm sync`)");
            }
        }
        contents
    }

    /// The keys of `cluster_id`, exported through a PKCS#11 cluster of it this process has open with
    /// the crypto user logged in; `None` when there is none.
    async fn export_live(&self, cluster_id: &str) -> Option<ExportedKeys> {
        for live in self.live.opened(cluster_id) {
            match tokio::task::spawn_blocking(move || export_backing_keys(&live)).await {
                Ok(Ok(exported)) => return Some(exported),
                Ok(Err(error)) => {
                    tracing::debug!(cluster = %cluster_id, %error, "an open cluster could not export keys");
                }
                Err(error) => tracing::warn!(cluster = %cluster_id, %error, "key export panicked"),
            }
        }
        None
    }

    /// The id of the wrapping key the cluster's active HSMs hold, read from the first that answers.
    async fn read_wrapping_key_id(&self, cluster: &ClusterRecord) -> Option<Vec<u8>> {
        let hsms = self.hsms_of(&cluster.cluster_id).await.ok()?;
        let active: Vec<_> = hsms
            .into_iter()
            .filter(|hsm| hsm.state == strongroom_storage::clusters::HsmState::Active)
            .collect();
        let configs = self.configs(&active).ok()?;
        let modules = self.modules.clone();
        tokio::task::spawn_blocking(move || tokens::first_wrapping_key_id(&configs, &modules))
            .await
            .ok()
            .flatten()
    }

    /// What the backup holds, opened; refused for a backup taken before backups held anything.
    pub(crate) fn backup_contents(&self, backup: &BackupRecord) -> Result<BackupContents, Error> {
        match &backup.sealed_contents {
            Some(sealed) => BackupContents::open(self.root_key.as_ref(), &backup.backup_id, sealed),
            None => Err(Error::InvalidRequest(format!(
                "Backup {} was taken before Strongroom kept users, certificates and keys in backups: it \
                 holds metadata only and cannot be restored. Use a later backup.",
                backup.backup_id
            ))),
        }
    }

    /// The backup a new HSM of `cluster` is seeded from when none of its HSMs is active: its newest
    /// `READY` backup that holds its keys, else the backup it was created from; `None` if neither.
    pub(crate) async fn seed_backup(
        &self,
        cluster: &ClusterRecord,
    ) -> Result<Option<(BackupRecord, BackupContents)>, Error> {
        let now = self.now();
        let mut own: Vec<BackupRecord> = self
            .store
            .backups(&cluster.namespace)
            .await?
            .into_iter()
            .filter(|backup| {
                backup.cluster_id == cluster.cluster_id
                    && backup.state == BackupState::Ready
                    && !is_gone(backup, now)
            })
            .collect();
        own.reverse();
        for backup in own {
            if backup.sealed_contents.is_none() {
                continue;
            }
            let contents = self.backup_contents(&backup)?;
            if contents.keys.is_some() && contents.wrapping_key_id.is_some() {
                return Ok(Some((backup, contents)));
            }
        }
        let Some(source) = &cluster.source_backup_id else {
            return Ok(None);
        };
        let backup = self.backup(&cluster.namespace, source).await?;
        let contents = self.backup_contents(&backup)?;
        Ok(Some((backup, contents)))
    }

    /// The HSMs of the namespace's clusters that share `cluster_certificate_pem` (the lineage), other than
    /// the declared HSM `except`: those a connected store does not use first, so that a seed disturbs
    /// no store when it can.
    pub(crate) async fn lineage_holders(
        &self,
        namespace: &Namespace,
        cluster_certificate_pem: &str,
        except: &str,
    ) -> Result<(Vec<Holder>, Vec<String>), Error> {
        let related: Vec<String> = self
            .store
            .list_clusters(namespace)
            .await?
            .into_iter()
            .filter(|cluster| {
                cluster.certificates.as_ref().is_some_and(|certificates| {
                    certificates.cluster_certificate_pem.trim() == cluster_certificate_pem.trim()
                })
            })
            .map(|cluster| cluster.cluster_id)
            .collect();
        let mut quiet = Vec::new();
        let mut busy = Vec::new();
        for hsm in self.store.hsms().await? {
            if !related.contains(&hsm.cluster_id) || hsm.declared_hsm == except {
                continue;
            }
            let Ok(config) = self.declared(&hsm.declared_hsm).cloned() else {
                continue;
            };
            let live = self
                .live
                .opened(&hsm.cluster_id)
                .iter()
                .find_map(|cluster| cluster.hsm(&hsm.declared_hsm));
            match live {
                Some(live) => busy.push(Holder {
                    config,
                    live: Some(live),
                }),
                None => quiet.push(Holder { config, live: None }),
            }
        }
        quiet.extend(busy);
        Ok((quiet, related))
    }
}

/// Whether a deleted backup's restore window has passed; such records are treated as gone.
fn is_gone(backup: &BackupRecord, now: strongroom_types::Timestamp) -> bool {
    match backup.deleted {
        Some(deleted) => deleted.plus_days(RESTORE_WINDOW_DAYS) <= now,
        None => false,
    }
}
