//! The control plane's records in SQLite: `hsm_clusters` with its subnets, crypto users and tags,
//! `hsm_assignments`, and `hsm_backups`.
//!
//! Functions here run inside a transaction the caller opened, so a record is always written and read whole.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use strongroom_types::{Namespace, Tag, Timestamp};

use crate::StoreError;
use crate::clusters::{
    BackupRecord, ClusterCertificates, ClusterIdentity, ClusterRecord, ClusterStore, HsmRecord,
    SubnetMapping,
};
use crate::sqlite::{SqliteStore, backend, column, corrupt, parse_column};

const CLUSTER_COLUMNS: &str = "cluster_id, account, region, state, state_message, hsm_type, mode, \
     backup_retention_days, security_group, created, key_label, public_key, csr, cluster_certificate, \
     trust_anchor, source_backup_id";

const INSERT_CLUSTER: &str = "INSERT INTO hsm_clusters (cluster_id, account, region, state, state_message, \
     hsm_type, mode, backup_retention_days, security_group, created, key_label, public_key, csr, \
     cluster_certificate, trust_anchor, source_backup_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING";
const UPDATE_CLUSTER: &str = "UPDATE hsm_clusters SET state = ?4, state_message = ?5, hsm_type = ?6, \
     mode = ?7, backup_retention_days = ?8, security_group = ?9, created = ?10, key_label = ?11, \
     public_key = ?12, csr = ?13, cluster_certificate = ?14, trust_anchor = ?15, \
     source_backup_id = ?16 \
     WHERE cluster_id = ?1 AND account = ?2 AND region = ?3";
const DELETE_CLUSTER: &str =
    "DELETE FROM hsm_clusters WHERE cluster_id = ?1 AND account = ?2 AND region = ?3";

const INSERT_SUBNET: &str = "INSERT INTO hsm_cluster_subnets (cluster_id, availability_zone, subnet_id) \
     VALUES (?1, ?2, ?3)";
const DELETE_SUBNETS: &str = "DELETE FROM hsm_cluster_subnets WHERE cluster_id = ?1";
const SELECT_SUBNETS: &str = "SELECT availability_zone, subnet_id FROM hsm_cluster_subnets \
     WHERE cluster_id = ?1 ORDER BY availability_zone";

const INSERT_USER: &str = "INSERT INTO hsm_crypto_users (cluster_id, username) VALUES (?1, ?2)";
const DELETE_USERS: &str = "DELETE FROM hsm_crypto_users WHERE cluster_id = ?1";
const SELECT_USERS: &str =
    "SELECT username FROM hsm_crypto_users WHERE cluster_id = ?1 ORDER BY username";

const INSERT_TAG: &str = "INSERT INTO hsm_tags (resource_id, position, tag_key, tag_value) \
     VALUES (?1, ?2, ?3, ?4)";
const DELETE_TAGS: &str = "DELETE FROM hsm_tags WHERE resource_id = ?1";
const SELECT_TAGS: &str =
    "SELECT tag_key, tag_value FROM hsm_tags WHERE resource_id = ?1 ORDER BY position";

const HSM_COLUMNS: &str = "hsm_id, cluster_id, declared_hsm, availability_zone, subnet_id, eni_id, \
     eni_ip, state, state_message, created";
/// Fails on either unique column, the HSM id or the declared HSM; the change count tells.
const INSERT_HSM: &str = "INSERT INTO hsm_assignments (hsm_id, cluster_id, declared_hsm, \
     availability_zone, subnet_id, eni_id, eni_ip, state, state_message, created) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";
const UPDATE_HSM: &str = "UPDATE hsm_assignments SET cluster_id = ?2, declared_hsm = ?3, \
     availability_zone = ?4, subnet_id = ?5, eni_id = ?6, eni_ip = ?7, state = ?8, state_message = ?9, \
     created = ?10 WHERE hsm_id = ?1";
const DELETE_HSM: &str = "DELETE FROM hsm_assignments WHERE hsm_id = ?1";

const BACKUP_COLUMNS: &str = "backup_id, cluster_id, account, region, state, hsm_type, mode, never_expires, created, deleted, contents";
const INSERT_BACKUP: &str = "INSERT INTO hsm_backups (backup_id, cluster_id, account, region, state, \
     hsm_type, mode, never_expires, created, deleted, contents) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING";
const UPDATE_BACKUP: &str = "UPDATE hsm_backups SET cluster_id = ?2, state = ?5, hsm_type = ?6, \
     mode = ?7, never_expires = ?8, created = ?9, deleted = ?10, contents = ?11 \
     WHERE backup_id = ?1 AND account = ?3 AND region = ?4";
const DELETE_BACKUP: &str =
    "DELETE FROM hsm_backups WHERE backup_id = ?1 AND account = ?2 AND region = ?3";

fn insert_cluster(connection: &Connection, cluster: &ClusterRecord) -> Result<(), StoreError> {
    if write_cluster_row(connection, INSERT_CLUSTER, cluster)? == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "Cluster {}",
            cluster.cluster_id
        )));
    }
    write_children(connection, cluster)
}

fn put_cluster(connection: &Connection, cluster: &ClusterRecord) -> Result<(), StoreError> {
    if write_cluster_row(connection, UPDATE_CLUSTER, cluster)? == 0 {
        return Err(StoreError::NotFound(format!(
            "Cluster {}",
            cluster.cluster_id
        )));
    }
    delete_children(connection, &cluster.cluster_id)?;
    write_children(connection, cluster)
}

fn write_cluster_row(
    connection: &Connection,
    sql: &str,
    cluster: &ClusterRecord,
) -> Result<usize, StoreError> {
    let identity = cluster.identity.as_ref();
    let certificates = cluster.certificates.as_ref();
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            cluster.cluster_id,
            cluster.namespace.account.as_str(),
            cluster.namespace.region.as_str(),
            cluster.state.as_str(),
            cluster.state_message,
            cluster.hsm_type,
            cluster.mode.as_str(),
            cluster.backup_retention_days,
            cluster.security_group,
            cluster.created.millis(),
            identity.map(|it| it.key_label.as_str()),
            identity.map(|it| it.public_key.as_slice()),
            identity.map(|it| it.csr_pem.as_str()),
            certificates.map(|it| it.cluster_certificate_pem.as_str()),
            certificates.map(|it| it.trust_anchor_pem.as_str()),
            cluster.source_backup_id,
        ])
        .map_err(backend)
}

/// Writes the subnets, users and tags of a cluster whose old ones are gone.
fn write_children(connection: &Connection, cluster: &ClusterRecord) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(INSERT_SUBNET).map_err(backend)?;
    for subnet in &cluster.subnets {
        statement
            .execute(params![
                cluster.cluster_id,
                subnet.availability_zone,
                subnet.subnet_id
            ])
            .map_err(backend)?;
    }
    let mut statement = connection.prepare_cached(INSERT_USER).map_err(backend)?;
    for user in &cluster.crypto_users {
        statement
            .execute(params![cluster.cluster_id, user])
            .map_err(backend)?;
    }
    write_tags(connection, &cluster.cluster_id, &cluster.tags)
}

fn delete_children(connection: &Connection, cluster_id: &str) -> Result<(), StoreError> {
    for sql in [DELETE_SUBNETS, DELETE_USERS, DELETE_TAGS] {
        let mut statement = connection.prepare_cached(sql).map_err(backend)?;
        statement.execute(params![cluster_id]).map_err(backend)?;
    }
    Ok(())
}

fn write_tags(connection: &Connection, resource_id: &str, tags: &[Tag]) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(INSERT_TAG).map_err(backend)?;
    for (position, tag) in tags.iter().enumerate() {
        statement
            .execute(params![resource_id, position, tag.key, tag.value])
            .map_err(backend)?;
    }
    Ok(())
}

fn read_tags(connection: &Connection, resource_id: &str) -> Result<Vec<Tag>, StoreError> {
    let mut statement = connection.prepare_cached(SELECT_TAGS).map_err(backend)?;
    let mut rows = statement.query(params![resource_id]).map_err(backend)?;
    let mut tags = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        tags.push(Tag {
            key: column(row, resource_id, "tag_key")?,
            value: column(row, resource_id, "tag_value")?,
        });
    }
    Ok(tags)
}

fn read_cluster(
    connection: &Connection,
    cluster_id: &str,
) -> Result<Option<ClusterRecord>, StoreError> {
    let sql = format!("SELECT {CLUSTER_COLUMNS} FROM hsm_clusters WHERE cluster_id = ?1");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let found = statement
        .query_row(params![cluster_id], |row| Ok(cluster_row(row)))
        .optional()
        .map_err(backend)?;
    match found {
        None => Ok(None),
        Some(cluster) => Ok(Some(with_children(connection, cluster?)?)),
    }
}

fn list_clusters(
    connection: &Connection,
    namespace: &Namespace,
) -> Result<Vec<ClusterRecord>, StoreError> {
    let sql = format!(
        "SELECT {CLUSTER_COLUMNS} FROM hsm_clusters WHERE account = ?1 AND region = ?2 ORDER BY cluster_id"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str()
        ])
        .map_err(backend)?;
    let mut clusters = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        clusters.push(cluster_row(row)?);
    }
    drop(rows);
    clusters
        .into_iter()
        .map(|cluster| with_children(connection, cluster))
        .collect()
}

/// Decodes the cluster's own row; subnets, users and tags are read separately.
fn cluster_row(row: &Row<'_>) -> Result<ClusterRecord, StoreError> {
    let cluster_id: String = column(row, "hsm_clusters", "cluster_id")?;
    let name = format!("hsm_clusters {cluster_id}");
    let identity = match (
        column::<Option<String>>(row, &name, "key_label")?,
        column::<Option<Vec<u8>>>(row, &name, "public_key")?,
        column::<Option<String>>(row, &name, "csr")?,
    ) {
        (Some(key_label), Some(public_key), Some(csr_pem)) => Some(ClusterIdentity {
            key_label,
            public_key,
            csr_pem,
        }),
        (None, None, None) => None,
        _ => return Err(corrupt(&name, "the identity columns are set only in part")),
    };
    let certificates = match (
        column::<Option<String>>(row, &name, "cluster_certificate")?,
        column::<Option<String>>(row, &name, "trust_anchor")?,
    ) {
        (Some(cluster_certificate_pem), Some(trust_anchor_pem)) => Some(ClusterCertificates {
            cluster_certificate_pem,
            trust_anchor_pem,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                &name,
                "the certificate columns are set only in part",
            ));
        }
    };
    Ok(ClusterRecord {
        namespace: Namespace {
            account: parse_column(row, &name, "account")?,
            region: parse_column(row, &name, "region")?,
        },
        state: parse_column(row, &name, "state")?,
        state_message: column(row, &name, "state_message")?,
        hsm_type: column(row, &name, "hsm_type")?,
        mode: parse_column(row, &name, "mode")?,
        backup_retention_days: column(row, &name, "backup_retention_days")?,
        subnets: Vec::new(),
        security_group: column(row, &name, "security_group")?,
        created: Timestamp::from_millis(column(row, &name, "created")?),
        identity,
        certificates,
        crypto_users: Vec::new(),
        tags: Vec::new(),
        source_backup_id: column(row, &name, "source_backup_id")?,
        cluster_id,
    })
}

fn with_children(
    connection: &Connection,
    mut cluster: ClusterRecord,
) -> Result<ClusterRecord, StoreError> {
    let name = format!("hsm_cluster_subnets {}", cluster.cluster_id);
    let mut statement = connection.prepare_cached(SELECT_SUBNETS).map_err(backend)?;
    let mut rows = statement
        .query(params![cluster.cluster_id])
        .map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        cluster.subnets.push(SubnetMapping {
            availability_zone: column(row, &name, "availability_zone")?,
            subnet_id: column(row, &name, "subnet_id")?,
        });
    }
    drop(rows);
    let name = format!("hsm_crypto_users {}", cluster.cluster_id);
    let mut statement = connection.prepare_cached(SELECT_USERS).map_err(backend)?;
    let mut rows = statement
        .query(params![cluster.cluster_id])
        .map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        cluster.crypto_users.push(column(row, &name, "username")?);
    }
    drop(rows);
    cluster.tags = read_tags(connection, &cluster.cluster_id)?;
    Ok(cluster)
}

fn delete_cluster(
    connection: &Connection,
    namespace: &Namespace,
    cluster_id: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_CLUSTER).map_err(backend)?;
    let deleted = statement
        .execute(params![
            cluster_id,
            namespace.account.as_str(),
            namespace.region.as_str()
        ])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("Cluster {cluster_id}")));
    }
    delete_children(connection, cluster_id)
}

fn write_hsm(connection: &Connection, sql: &str, hsm: &HsmRecord) -> Result<usize, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            hsm.hsm_id,
            hsm.cluster_id,
            hsm.declared_hsm,
            hsm.availability_zone,
            hsm.subnet_id,
            hsm.eni_id,
            hsm.eni_ip,
            hsm.state.as_str(),
            hsm.state_message,
            hsm.created.millis(),
        ])
        .map_err(backend)
}

fn insert_hsm(connection: &Connection, hsm: &HsmRecord) -> Result<(), StoreError> {
    if write_hsm(connection, INSERT_HSM, hsm)? == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "HSM {} or an assignment of declared HSM {}",
            hsm.hsm_id, hsm.declared_hsm
        )));
    }
    Ok(())
}

fn put_hsm(connection: &Connection, hsm: &HsmRecord) -> Result<(), StoreError> {
    match write_hsm(connection, UPDATE_HSM, hsm) {
        Ok(0) => Err(StoreError::NotFound(format!("HSM {}", hsm.hsm_id))),
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

fn delete_hsm(connection: &Connection, hsm_id: &str) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_HSM).map_err(backend)?;
    if statement.execute(params![hsm_id]).map_err(backend)? == 0 {
        return Err(StoreError::NotFound(format!("HSM {hsm_id}")));
    }
    Ok(())
}

fn list_hsms(connection: &Connection) -> Result<Vec<HsmRecord>, StoreError> {
    let sql = format!("SELECT {HSM_COLUMNS} FROM hsm_assignments ORDER BY created, hsm_id");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    let mut hsms = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let hsm_id: String = column(row, "hsm_assignments", "hsm_id")?;
        let name = format!("hsm_assignments {hsm_id}");
        hsms.push(HsmRecord {
            cluster_id: column(row, &name, "cluster_id")?,
            declared_hsm: column(row, &name, "declared_hsm")?,
            availability_zone: column(row, &name, "availability_zone")?,
            subnet_id: column(row, &name, "subnet_id")?,
            eni_id: column(row, &name, "eni_id")?,
            eni_ip: column(row, &name, "eni_ip")?,
            state: parse_column(row, &name, "state")?,
            state_message: column(row, &name, "state_message")?,
            created: Timestamp::from_millis(column(row, &name, "created")?),
            hsm_id,
        });
    }
    Ok(hsms)
}

fn write_backup(
    connection: &Connection,
    sql: &str,
    backup: &BackupRecord,
) -> Result<usize, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            backup.backup_id,
            backup.cluster_id,
            backup.namespace.account.as_str(),
            backup.namespace.region.as_str(),
            backup.state.as_str(),
            backup.hsm_type,
            backup.mode.as_str(),
            backup.never_expires,
            backup.created.millis(),
            backup.deleted.map(Timestamp::millis),
            backup.sealed_contents,
        ])
        .map_err(backend)
}

fn insert_backup(connection: &Connection, backup: &BackupRecord) -> Result<(), StoreError> {
    if write_backup(connection, INSERT_BACKUP, backup)? == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "Backup {}",
            backup.backup_id
        )));
    }
    write_tags(connection, &backup.backup_id, &backup.tags)
}

fn put_backup(connection: &Connection, backup: &BackupRecord) -> Result<(), StoreError> {
    if write_backup(connection, UPDATE_BACKUP, backup)? == 0 {
        return Err(StoreError::NotFound(format!("Backup {}", backup.backup_id)));
    }
    let mut statement = connection.prepare_cached(DELETE_TAGS).map_err(backend)?;
    statement
        .execute(params![backup.backup_id])
        .map_err(backend)?;
    write_tags(connection, &backup.backup_id, &backup.tags)
}

fn delete_backup(
    connection: &Connection,
    namespace: &Namespace,
    backup_id: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_BACKUP).map_err(backend)?;
    let deleted = statement
        .execute(params![
            backup_id,
            namespace.account.as_str(),
            namespace.region.as_str()
        ])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("Backup {backup_id}")));
    }
    let mut statement = connection.prepare_cached(DELETE_TAGS).map_err(backend)?;
    statement.execute(params![backup_id]).map_err(backend)?;
    Ok(())
}

fn list_backups(
    connection: &Connection,
    namespace: &Namespace,
) -> Result<Vec<BackupRecord>, StoreError> {
    let sql = format!(
        "SELECT {BACKUP_COLUMNS} FROM hsm_backups WHERE account = ?1 AND region = ?2 \
         ORDER BY created, backup_id"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str()
        ])
        .map_err(backend)?;
    let mut backups = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let backup_id: String = column(row, "hsm_backups", "backup_id")?;
        let name = format!("hsm_backups {backup_id}");
        backups.push(BackupRecord {
            cluster_id: column(row, &name, "cluster_id")?,
            namespace: Namespace {
                account: parse_column(row, &name, "account")?,
                region: parse_column(row, &name, "region")?,
            },
            state: parse_column(row, &name, "state")?,
            hsm_type: column(row, &name, "hsm_type")?,
            mode: parse_column(row, &name, "mode")?,
            never_expires: column(row, &name, "never_expires")?,
            created: Timestamp::from_millis(column(row, &name, "created")?),
            deleted: column::<Option<i64>>(row, &name, "deleted")?.map(Timestamp::from_millis),
            tags: Vec::new(),
            sealed_contents: column(row, &name, "contents")?,
            backup_id,
        });
    }
    drop(rows);
    for backup in &mut backups {
        backup.tags = read_tags(connection, &backup.backup_id)?;
    }
    Ok(backups)
}

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn insert_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError> {
        let cluster = cluster.clone();
        self.write(move |connection| insert_cluster(connection, &cluster))
            .await
    }

    async fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError> {
        let cluster = cluster.clone();
        self.write(move |connection| put_cluster(connection, &cluster))
            .await
    }

    async fn cluster(&self, cluster_id: &str) -> Result<Option<ClusterRecord>, StoreError> {
        let cluster_id = cluster_id.to_owned();
        self.read(move |connection| read_cluster(connection, &cluster_id))
            .await
    }

    async fn list_clusters(&self, namespace: &Namespace) -> Result<Vec<ClusterRecord>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |connection| list_clusters(connection, &namespace))
            .await
    }

    async fn delete_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let cluster_id = cluster_id.to_owned();
        self.write(move |connection| delete_cluster(connection, &namespace, &cluster_id))
            .await
    }

    async fn insert_hsm(&self, hsm: &HsmRecord) -> Result<(), StoreError> {
        let hsm = hsm.clone();
        self.write(move |connection| insert_hsm(connection, &hsm))
            .await
    }

    async fn put_hsm(&self, hsm: &HsmRecord) -> Result<(), StoreError> {
        let hsm = hsm.clone();
        self.write(move |connection| put_hsm(connection, &hsm))
            .await
    }

    async fn delete_hsm(&self, hsm_id: &str) -> Result<(), StoreError> {
        let hsm_id = hsm_id.to_owned();
        self.write(move |connection| delete_hsm(connection, &hsm_id))
            .await
    }

    async fn hsms(&self) -> Result<Vec<HsmRecord>, StoreError> {
        self.read(list_hsms).await
    }

    async fn insert_backup(&self, backup: &BackupRecord) -> Result<(), StoreError> {
        let backup = backup.clone();
        self.write(move |connection| insert_backup(connection, &backup))
            .await
    }

    async fn put_backup(&self, backup: &BackupRecord) -> Result<(), StoreError> {
        let backup = backup.clone();
        self.write(move |connection| put_backup(connection, &backup))
            .await
    }

    async fn delete_backup(
        &self,
        namespace: &Namespace,
        backup_id: &str,
    ) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let backup_id = backup_id.to_owned();
        self.write(move |connection| delete_backup(connection, &namespace, &backup_id))
            .await
    }

    async fn backups(&self, namespace: &Namespace) -> Result<Vec<BackupRecord>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |connection| list_backups(connection, &namespace))
            .await
    }
}
