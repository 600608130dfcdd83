//! Backups: `DescribeBackups`, `DeleteBackup`, `RestoreBackup`, `ModifyBackupAttributes`.
//!
//! Backup records hold metadata only (see the crate documentation), so restoring means only undoing a
//! pending deletion.

use strongroom_storage::clusters::{BackupRecord, BackupState};
use strongroom_types::Namespace;

use crate::clusters::paginate;
use crate::error::Error;
use crate::{ControlPlane, Page};

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

/// Whether a deleted backup's restore window has passed; such records are treated as gone.
fn is_gone(backup: &BackupRecord, now: strongroom_types::Timestamp) -> bool {
    match backup.deleted {
        Some(deleted) => deleted.plus_days(RESTORE_WINDOW_DAYS) <= now,
        None => false,
    }
}
