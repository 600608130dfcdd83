//! Secrets in SQLite: `secrets` (one row per secret), `secret_tags`, `secret_versions` (each version's
//! encrypted value) and `secret_stages` (which version each staging label is on).

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use strongroom_types::{Namespace, Tag, Timestamp};

use crate::StoreError;
use crate::secrets::{SecretRecord, SecretStore, SecretValueRecord, SecretVersionInfo};
use crate::sqlite::{SqliteStore, backend, column, parse, parse_column};

const INSERT_SECRET: &str = "INSERT INTO secrets (account, region, name, arn_suffix, description, \
     kms_key_id, created, last_changed, last_accessed, deletion_date) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const UPDATE_SECRET: &str = "UPDATE secrets SET arn_suffix = ?4, description = ?5, kms_key_id = ?6, \
     created = ?7, last_changed = ?8, last_accessed = ?9, deletion_date = ?10 \
     WHERE account = ?1 AND region = ?2 AND name = ?3";
const SELECT_SECRET: &str = "SELECT name, arn_suffix, description, kms_key_id, created, last_changed, \
     last_accessed, deletion_date FROM secrets WHERE account = ?1 AND region = ?2 AND name = ?3";
const SELECT_SECRET_NAMES: &str =
    "SELECT name FROM secrets WHERE account = ?1 AND region = ?2 ORDER BY name";
const DELETE_SECRET: &str = "DELETE FROM secrets WHERE account = ?1 AND region = ?2 AND name = ?3";
const SELECT_DUE: &str = "SELECT account, region, name FROM secrets \
     WHERE deletion_date IS NOT NULL AND deletion_date <= ?1 ORDER BY account, region, name";

const INSERT_TAG: &str = "INSERT INTO secret_tags (account, region, name, position, tag_key, \
     tag_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const SELECT_TAGS: &str = "SELECT tag_key, tag_value FROM secret_tags \
     WHERE account = ?1 AND region = ?2 AND name = ?3 ORDER BY position";
const DELETE_TAGS: &str =
    "DELETE FROM secret_tags WHERE account = ?1 AND region = ?2 AND name = ?3";

const INSERT_VERSION: &str = "INSERT INTO secret_versions (account, region, name, version_id, \
     created, kind, key_arn, encrypted_data_key, sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const SELECT_VERSIONS: &str = "SELECT version_id, created FROM secret_versions \
     WHERE account = ?1 AND region = ?2 AND name = ?3 ORDER BY created, version_id";
const SELECT_VALUE: &str = "SELECT kind, key_arn, encrypted_data_key, sealed FROM secret_versions \
     WHERE account = ?1 AND region = ?2 AND name = ?3 AND version_id = ?4";
const DELETE_VERSION: &str = "DELETE FROM secret_versions \
     WHERE account = ?1 AND region = ?2 AND name = ?3 AND version_id = ?4";
const DELETE_VERSIONS: &str =
    "DELETE FROM secret_versions WHERE account = ?1 AND region = ?2 AND name = ?3";

const INSERT_STAGE: &str = "INSERT INTO secret_stages (account, region, name, stage, version_id) \
     VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT_STAGES: &str = "SELECT stage, version_id FROM secret_stages \
     WHERE account = ?1 AND region = ?2 AND name = ?3 ORDER BY stage";
const DELETE_STAGES: &str =
    "DELETE FROM secret_stages WHERE account = ?1 AND region = ?2 AND name = ?3";

fn row_name(namespace: &Namespace, name: &str) -> String {
    format!("secrets {} {} {name}", namespace.account, namespace.region)
}

fn read(
    connection: &Connection,
    namespace: &Namespace,
    name: &str,
) -> Result<Option<SecretRecord>, StoreError> {
    let what = row_name(namespace, name);
    let keys = params![namespace.account.as_str(), namespace.region.as_str(), name];
    let mut statement = connection.prepare_cached(SELECT_SECRET).map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    let Some(row) = rows.next().map_err(backend)? else {
        return Ok(None);
    };
    let optional_time = |value: Option<i64>| value.map(Timestamp::from_millis);
    let mut record = SecretRecord {
        namespace: namespace.clone(),
        name: column(row, &what, "name")?,
        arn_suffix: column(row, &what, "arn_suffix")?,
        description: column(row, &what, "description")?,
        kms_key_id: column(row, &what, "kms_key_id")?,
        created: Timestamp::from_millis(column(row, &what, "created")?),
        last_changed: Timestamp::from_millis(column(row, &what, "last_changed")?),
        last_accessed: optional_time(column(row, &what, "last_accessed")?),
        deletion_date: optional_time(column(row, &what, "deletion_date")?),
        tags: Vec::new(),
        versions: Vec::new(),
    };
    drop(rows);

    let mut statement = connection.prepare_cached(SELECT_TAGS).map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        record.tags.push(Tag {
            key: column(row, &what, "tag_key")?,
            value: column(row, &what, "tag_value")?,
        });
    }
    drop(rows);

    let mut statement = connection
        .prepare_cached(SELECT_VERSIONS)
        .map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        record.versions.push(SecretVersionInfo {
            version_id: column(row, &what, "version_id")?,
            created: Timestamp::from_millis(column(row, &what, "created")?),
            stages: Vec::new(),
        });
    }
    drop(rows);

    let mut statement = connection.prepare_cached(SELECT_STAGES).map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let stage: String = column(row, &what, "stage")?;
        let version_id: String = column(row, &what, "version_id")?;
        match record
            .versions
            .iter_mut()
            .find(|version| version.version_id == version_id)
        {
            Some(version) => version.stages.push(stage),
            None => {
                return Err(crate::sqlite::corrupt(
                    &what,
                    format!("stage {stage} is on version {version_id}, which does not exist"),
                ));
            }
        }
    }
    Ok(Some(record))
}

/// Writes the secret's row (inserting or updating), then its tags, version list and stages.
fn write(
    connection: &Connection,
    secret: &SecretRecord,
    value: Option<&SecretValueRecord>,
    insert: bool,
) -> Result<(), StoreError> {
    let namespace = &secret.namespace;
    let account = namespace.account.as_str();
    let region = namespace.region.as_str();
    let name = secret.name.as_str();
    let sql = if insert { INSERT_SECRET } else { UPDATE_SECRET };
    let changed = connection
        .prepare_cached(sql)
        .map_err(backend)?
        .execute(params![
            account,
            region,
            name,
            secret.arn_suffix,
            secret.description,
            secret.kms_key_id,
            secret.created.millis(),
            secret.last_changed.millis(),
            secret.last_accessed.map(Timestamp::millis),
            secret.deletion_date.map(Timestamp::millis),
        ]);
    match changed {
        Ok(0) => return Err(StoreError::NotFound(format!("secret {}", secret.arn()))),
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::AlreadyExists(format!(
                "secret {name} in {account} {region}"
            )));
        }
        Err(error) => return Err(backend(error)),
    }
    let keys = params![account, region, name];

    connection
        .prepare_cached(DELETE_TAGS)
        .map_err(backend)?
        .execute(keys)
        .map_err(backend)?;
    let mut statement = connection.prepare_cached(INSERT_TAG).map_err(backend)?;
    for (position, tag) in secret.tags.iter().enumerate() {
        statement
            .execute(params![
                account,
                region,
                name,
                position as i64,
                tag.key,
                tag.value
            ])
            .map_err(backend)?;
    }

    if let Some(value) = value {
        let Some(info) = secret
            .versions
            .iter()
            .find(|version| version.version_id == value.version_id)
        else {
            return Err(StoreError::NotFound(format!(
                "version {} in the record of secret {}",
                value.version_id,
                secret.arn()
            )));
        };
        connection
            .prepare_cached(INSERT_VERSION)
            .map_err(backend)?
            .execute(params![
                account,
                region,
                name,
                value.version_id,
                info.created.millis(),
                value.kind.as_str(),
                value.key_arn,
                value.encrypted_data_key,
                value.sealed,
            ])
            .map_err(|error| match error {
                rusqlite::Error::SqliteFailure(failure, _)
                    if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::AlreadyExists(format!(
                        "version {} of secret {}",
                        value.version_id,
                        secret.arn()
                    ))
                }
                other => backend(other),
            })?;
    }

    // Versions the record no longer lists go, with their values; every listed version must have a value.
    let listed: HashSet<&str> = secret
        .versions
        .iter()
        .map(|version| version.version_id.as_str())
        .collect();
    let mut stored = Vec::new();
    {
        let mut statement = connection
            .prepare_cached(SELECT_VERSIONS)
            .map_err(backend)?;
        let mut rows = statement.query(keys).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let version_id: String = column(row, &row_name(namespace, name), "version_id")?;
            stored.push(version_id);
        }
    }
    let mut delete = connection.prepare_cached(DELETE_VERSION).map_err(backend)?;
    for version_id in &stored {
        if !listed.contains(version_id.as_str()) {
            delete
                .execute(params![account, region, name, version_id])
                .map_err(backend)?;
        }
    }
    if let Some(missing) = listed
        .iter()
        .find(|version_id| !stored.iter().any(|stored| stored == *version_id))
    {
        return Err(StoreError::NotFound(format!(
            "the value of version {missing} of secret {}",
            secret.arn()
        )));
    }

    connection
        .prepare_cached(DELETE_STAGES)
        .map_err(backend)?
        .execute(keys)
        .map_err(backend)?;
    let mut statement = connection.prepare_cached(INSERT_STAGE).map_err(backend)?;
    for version in &secret.versions {
        for stage in &version.stages {
            statement
                .execute(params![account, region, name, stage, version.version_id])
                .map_err(|error| match error {
                    rusqlite::Error::SqliteFailure(failure, _)
                        if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        StoreError::AlreadyExists(format!(
                            "staging label {stage} on two versions of secret {}",
                            secret.arn()
                        ))
                    }
                    other => backend(other),
                })?;
        }
    }
    Ok(())
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn insert_secret(
        &self,
        secret: &SecretRecord,
        value: Option<&SecretValueRecord>,
    ) -> Result<(), StoreError> {
        let secret = secret.clone();
        let value = value.cloned();
        self.write(move |connection| write(connection, &secret, value.as_ref(), true))
            .await
    }

    async fn put_secret(
        &self,
        secret: &SecretRecord,
        value: Option<&SecretValueRecord>,
    ) -> Result<(), StoreError> {
        let secret = secret.clone();
        let value = value.cloned();
        self.write(move |connection| write(connection, &secret, value.as_ref(), false))
            .await
    }

    async fn secret(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let namespace = namespace.clone();
        let name = name.to_owned();
        self.read(move |connection| read(connection, &namespace, &name))
            .await
    }

    async fn secret_value(
        &self,
        namespace: &Namespace,
        name: &str,
        version_id: &str,
    ) -> Result<Option<SecretValueRecord>, StoreError> {
        let namespace = namespace.clone();
        let name = name.to_owned();
        let version_id = version_id.to_owned();
        self.read(move |connection| {
            let what = format!("{} version {version_id}", row_name(&namespace, &name));
            let mut statement = connection.prepare_cached(SELECT_VALUE).map_err(backend)?;
            let found = statement
                .query_row(
                    params![
                        namespace.account.as_str(),
                        namespace.region.as_str(),
                        name,
                        version_id
                    ],
                    |row| {
                        Ok((
                            row.get::<_, String>("kind")?,
                            row.get::<_, String>("key_arn")?,
                            row.get::<_, Vec<u8>>("encrypted_data_key")?,
                            row.get::<_, Vec<u8>>("sealed")?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((kind, key_arn, encrypted_data_key, sealed)) = found else {
                return Ok(None);
            };
            Ok(Some(SecretValueRecord {
                kind: parse(&what, "kind", &kind)?,
                version_id,
                key_arn,
                encrypted_data_key,
                sealed,
            }))
        })
        .await
    }

    async fn list_secrets(&self, namespace: &Namespace) -> Result<Vec<SecretRecord>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |connection| {
            let names = super::names_in(connection, SELECT_SECRET_NAMES, &namespace, "secrets")?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                if let Some(record) = read(connection, &namespace, &name)? {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_secret(&self, namespace: &Namespace, name: &str) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let name = name.to_owned();
        self.write(move |connection| {
            let keys = params![namespace.account.as_str(), namespace.region.as_str(), name];
            let deleted = connection
                .prepare_cached(DELETE_SECRET)
                .map_err(backend)?
                .execute(keys)
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!(
                    "secret {name} in {} {}",
                    namespace.account, namespace.region
                )));
            }
            for sql in [DELETE_TAGS, DELETE_VERSIONS, DELETE_STAGES] {
                connection
                    .prepare_cached(sql)
                    .map_err(backend)?
                    .execute(keys)
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn secrets_due(&self, now: Timestamp) -> Result<Vec<(Namespace, String)>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_DUE).map_err(backend)?;
            let mut rows = statement.query(params![now.millis()]).map_err(backend)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let namespace = Namespace {
                    account: parse_column(row, "secrets", "account")?,
                    region: parse_column(row, "secrets", "region")?,
                };
                out.push((namespace, column(row, "secrets", "name")?));
            }
            Ok(out)
        })
        .await
    }
}
