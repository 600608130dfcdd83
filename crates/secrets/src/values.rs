//! A secret's values: GetSecretValue and PutSecretValue, and the staging labels that move between
//! versions (`AWSCURRENT`, `AWSPREVIOUS`, custom labels).

use strongroom_service::Caller;
use strongroom_storage::secrets::{SecretRecord, SecretVersionInfo};
use strongroom_types::Timestamp;

use crate::lifecycle::{check_not_deleted, new_version_id};
use crate::{AWSCURRENT, AWSPREVIOUS, Error, MANAGED_KEY_ALIAS, SecretValue, SecretsManager};

/// How many versions a secret keeps; older versions without labels are dropped beyond it.
pub const MAX_VERSIONS: usize = 100;
/// Versions younger than this are kept even beyond [`MAX_VERSIONS`], as AWS does.
const KEEP_RECENT_MILLIS: i64 = 24 * 60 * 60 * 1000;
const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// GetSecretValue's parameters.
#[derive(Debug, Default)]
pub struct GetSecretValueRequest {
    /// The secret, by name or ARN.
    pub secret_id: String,
    /// The version by id.
    pub version_id: Option<String>,
    /// The version by staging label; `AWSCURRENT` when neither this nor `version_id` is given.
    pub version_stage: Option<String>,
}

/// GetSecretValue's result.
#[derive(Debug)]
pub struct GetSecretValueResponse {
    /// The secret's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The version returned.
    pub version_id: String,
    /// The version's value.
    pub value: SecretValue,
    /// The version's staging labels.
    pub version_stages: Vec<String>,
    /// When the version was made.
    pub created: Timestamp,
}

/// PutSecretValue's parameters.
#[derive(Debug, Default)]
pub struct PutSecretValueRequest {
    /// The secret, by name or ARN.
    pub secret_id: String,
    /// The new version's id; a fresh UUID when absent.
    pub client_request_token: Option<String>,
    /// The value.
    pub value: Option<SecretValue>,
    /// Labels to attach to the new version; `AWSCURRENT` when absent.
    pub version_stages: Option<Vec<String>>,
}

/// PutSecretValue's result.
#[derive(Debug)]
pub struct PutSecretValueResponse {
    /// The secret's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The version made (or found, for a retry).
    pub version_id: String,
    /// Its staging labels.
    pub version_stages: Vec<String>,
}

/// Attaches `stages` to the version at `target`, taking each from the version that had it; when
/// `AWSCURRENT` moves, the version it leaves gets `AWSPREVIOUS`.
pub(crate) fn attach_stages(versions: &mut [SecretVersionInfo], target: usize, stages: &[String]) {
    for stage in stages {
        let holder = versions
            .iter()
            .position(|version| version.stages.contains(stage));
        if holder == Some(target) {
            continue;
        }
        if let Some(holder) = holder {
            versions[holder].stages.retain(|s| s != stage);
            if stage == AWSCURRENT {
                for version in versions.iter_mut() {
                    version.stages.retain(|s| s != AWSPREVIOUS);
                }
                versions[holder].stages.push(AWSPREVIOUS.to_owned());
            }
        }
        versions[target].stages.push(stage.clone());
    }
}

/// Drops the oldest versions without labels, older than a day, while the secret keeps more than
/// [`MAX_VERSIONS`].
pub(crate) fn prune_versions(versions: &mut Vec<SecretVersionInfo>, now: Timestamp) {
    while versions.len() > MAX_VERSIONS {
        let Some(oldest) = versions.iter().position(|version| {
            version.stages.is_empty()
                && now.millis() - version.created.millis() > KEEP_RECENT_MILLIS
        }) else {
            return;
        };
        versions.remove(oldest);
    }
}

impl SecretsManager {
    /// GetSecretValue: decrypts one version of a secret.
    pub async fn get_secret_value(
        &self,
        caller: &Caller,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, Error> {
        let record = self
            .resolve(caller, &req.secret_id, "secretsmanager:GetSecretValue")
            .await?;
        check_not_deleted(&record)?;
        let version = select_version(
            &record,
            req.version_id.as_deref(),
            req.version_stage.as_deref(),
        )?;
        let Some(stored) = self
            .store
            .secret_value(&record.namespace, &record.name, &version.version_id)
            .await?
        else {
            return Err(Error::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {}",
                version.version_id
            )));
        };
        let arn = record.arn();
        let value = self.open(caller, &arn, &stored).await?;
        self.note_access(&record).await?;
        Ok(GetSecretValueResponse {
            arn,
            name: record.name.clone(),
            version_id: version.version_id.clone(),
            value,
            version_stages: version.stages.clone(),
            created: version.created,
        })
    }

    /// PutSecretValue: a new version of a secret, with labels moved to it.
    pub async fn put_secret_value(
        &self,
        caller: &Caller,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, Error> {
        let resolved = self
            .resolve(caller, &req.secret_id, "secretsmanager:PutSecretValue")
            .await?;
        let Some(value) = &req.value else {
            return Err(Error::InvalidRequest(
                "You must provide either SecretString or SecretBinary.".to_owned(),
            ));
        };
        let stages = req
            .version_stages
            .clone()
            .unwrap_or_else(|| vec![AWSCURRENT.to_owned()]);
        let _writes = self.writes.lock().await;
        let mut record = self.reload_locked(&resolved).await?;
        check_not_deleted(&record)?;
        let arn = record.arn();
        let version_id = req
            .client_request_token
            .clone()
            .unwrap_or_else(new_version_id);
        // A retry with the same token and value succeeds without making another version.
        if let Some(existing) = record.versions.iter().find(|v| v.version_id == version_id) {
            if !self.same_value(caller, &record, &version_id, value).await? {
                return Err(Error::ResourceExists(
                    "You can't modify an existing version, you can only create a new version."
                        .to_owned(),
                ));
            }
            return Ok(PutSecretValueResponse {
                arn,
                name: record.name.clone(),
                version_id,
                version_stages: existing.stages.clone(),
            });
        }
        let now = self.now();
        let key = record
            .kms_key_id
            .as_deref()
            .unwrap_or(MANAGED_KEY_ALIAS)
            .to_owned();
        let sealed = self.seal(caller, &key, &arn, &version_id, value).await?;
        let first = record.versions.is_empty();
        record.versions.push(SecretVersionInfo {
            version_id: version_id.clone(),
            created: now,
            stages: Vec::new(),
        });
        let target = record.versions.len() - 1;
        attach_stages(&mut record.versions, target, &stages);
        // A secret's first version is always current.
        if first
            && !record.versions[target]
                .stages
                .iter()
                .any(|s| s == AWSCURRENT)
        {
            record.versions[target].stages.push(AWSCURRENT.to_owned());
        }
        prune_versions(&mut record.versions, now);
        if record.versions.len() > MAX_VERSIONS {
            return Err(Error::LimitExceeded(format!(
                "The secret {arn} has more than {MAX_VERSIONS} versions made in the last day; remove staging \
                 labels from old versions or wait."
            )));
        }
        record.last_changed = now;
        let version_stages = record.versions[target].stages.clone();
        self.store.put_secret(&record, Some(&sealed)).await?;
        tracing::info!("added version {version_id} to secret {arn}");
        Ok(PutSecretValueResponse {
            arn,
            name: record.name,
            version_id,
            version_stages,
        })
    }

    /// Records the day a value was read, writing only when the day changes.
    async fn note_access(&self, resolved: &SecretRecord) -> Result<(), Error> {
        let now = self.now().millis();
        let today = Timestamp::from_millis(now - now.rem_euclid(DAY_MILLIS));
        if resolved.last_accessed == Some(today) {
            return Ok(());
        }
        let _writes = self.writes.lock().await;
        let Ok(mut record) = self.reload_locked(resolved).await else {
            return Ok(());
        };
        if record.last_accessed != Some(today) {
            record.last_accessed = Some(today);
            self.store.put_secret(&record, None).await?;
        }
        Ok(())
    }
}

/// The version GetSecretValue asks for: by id, by label, or both (which must agree).
fn select_version<'a>(
    record: &'a SecretRecord,
    version_id: Option<&str>,
    version_stage: Option<&str>,
) -> Result<&'a SecretVersionInfo, Error> {
    let by_stage = |stage: &str| {
        record
            .versions
            .iter()
            .find(|version| version.stages.iter().any(|s| s == stage))
    };
    let by_id = |id: &str| {
        record
            .versions
            .iter()
            .find(|version| version.version_id == id)
    };
    match (version_id, version_stage) {
        (Some(id), Some(stage)) => match by_id(id) {
            Some(version) if version.stages.iter().any(|s| s == stage) => Ok(version),
            _ => Err(Error::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {id} and staging \
                 label: {stage}"
            ))),
        },
        (Some(id), None) => by_id(id).ok_or_else(|| {
            Error::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {id}"
            ))
        }),
        (None, stage) => {
            let stage = stage.unwrap_or(AWSCURRENT);
            by_stage(stage).ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Secrets Manager can't find the specified secret value for staging label: {stage}"
                ))
            })
        }
    }
}
