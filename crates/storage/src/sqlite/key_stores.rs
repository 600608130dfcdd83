//! Custom key stores in SQLite: `custom_key_stores` and `custom_key_store_keys`.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use strongroom_types::{KeyId, Namespace, Timestamp};

use crate::StoreError;
use crate::key_stores::{CustomKeyStoreRecord, KeyStoreStore};
use crate::sqlite::{SqliteStore, backend, column, parse_column};

const COLUMNS: &str = "custom_key_store_id, account, region, name, cluster_id, trust_anchor, \
     wrapped_password, connection_state, connection_error, created, wrapped_pending_password";
const INSERT: &str = "INSERT INTO custom_key_stores (custom_key_store_id, account, region, name, \
     cluster_id, trust_anchor, wrapped_password, connection_state, connection_error, created, \
     wrapped_pending_password) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING";
const UPDATE: &str = "UPDATE OR IGNORE custom_key_stores SET name = ?4, cluster_id = ?5, trust_anchor = ?6, \
     wrapped_password = ?7, connection_state = ?8, connection_error = ?9, created = ?10, \
     wrapped_pending_password = ?11 \
     WHERE custom_key_store_id = ?1 AND account = ?2 AND region = ?3";
const EXISTS: &str = "SELECT 1 FROM custom_key_stores \
     WHERE custom_key_store_id = ?1 AND account = ?2 AND region = ?3";

fn write_row(
    connection: &Connection,
    sql: &str,
    r: &CustomKeyStoreRecord,
) -> Result<usize, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            r.custom_key_store_id,
            r.namespace.account.as_str(),
            r.namespace.region.as_str(),
            r.name,
            r.cluster_id,
            r.trust_anchor_pem,
            r.wrapped_password,
            r.connection_state,
            r.connection_error,
            r.created.millis(),
            r.wrapped_pending_password,
        ])
        .map_err(backend)
}

fn read_row(row: &Row<'_>) -> Result<CustomKeyStoreRecord, StoreError> {
    let id: String = column(row, "custom_key_stores", "custom_key_store_id")?;
    let name = format!("custom_key_stores {id}");
    Ok(CustomKeyStoreRecord {
        namespace: Namespace {
            account: parse_column(row, &name, "account")?,
            region: parse_column(row, &name, "region")?,
        },
        name: column(row, &name, "name")?,
        cluster_id: column(row, &name, "cluster_id")?,
        trust_anchor_pem: column(row, &name, "trust_anchor")?,
        wrapped_password: column(row, &name, "wrapped_password")?,
        wrapped_pending_password: column(row, &name, "wrapped_pending_password")?,
        connection_state: column(row, &name, "connection_state")?,
        connection_error: column(row, &name, "connection_error")?,
        created: Timestamp::from_millis(column(row, &name, "created")?),
        custom_key_store_id: id,
    })
}

fn select(
    connection: &Connection,
    namespace: &Namespace,
    id: Option<&str>,
) -> Result<Vec<CustomKeyStoreRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM custom_key_stores WHERE account = ?1 AND region = ?2 \
         AND (?3 IS NULL OR custom_key_store_id = ?3) ORDER BY custom_key_store_id"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str(),
            id
        ])
        .map_err(backend)?;
    read_rows(rows)
}

fn read_rows(mut rows: rusqlite::Rows<'_>) -> Result<Vec<CustomKeyStoreRecord>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        out.push(read_row(row)?);
    }
    Ok(out)
}

#[async_trait]
impl KeyStoreStore for SqliteStore {
    async fn insert_key_store(&self, record: &CustomKeyStoreRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |connection| {
            if write_row(connection, INSERT, &record)? == 0 {
                return Err(StoreError::AlreadyExists(format!(
                    "Custom key store {} or its name",
                    record.custom_key_store_id
                )));
            }
            Ok(())
        })
        .await
    }

    async fn put_key_store(&self, record: &CustomKeyStoreRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |connection| {
            if write_row(connection, UPDATE, &record)? == 0 {
                let exists = connection
                    .query_row(
                        EXISTS,
                        params![
                            record.custom_key_store_id,
                            record.namespace.account.as_str(),
                            record.namespace.region.as_str()
                        ],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(backend)?
                    .is_some();
                return Err(if exists {
                    StoreError::AlreadyExists(format!("Custom key store name {}", record.name))
                } else {
                    StoreError::NotFound(format!("Custom key store {}", record.custom_key_store_id))
                });
            }
            Ok(())
        })
        .await
    }

    async fn key_store(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<Option<CustomKeyStoreRecord>, StoreError> {
        let (namespace, id) = (namespace.clone(), id.to_owned());
        self.read(move |connection| Ok(select(connection, &namespace, Some(&id))?.pop()))
            .await
    }

    async fn list_key_stores(
        &self,
        namespace: &Namespace,
    ) -> Result<Vec<CustomKeyStoreRecord>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |connection| select(connection, &namespace, None))
            .await
    }

    async fn all_key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>, StoreError> {
        self.read(move |connection| {
            let sql = format!(
                "SELECT {COLUMNS} FROM custom_key_stores \
                 ORDER BY account, region, custom_key_store_id"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
            let rows = statement.query([]).map_err(backend)?;
            read_rows(rows)
        })
        .await
    }

    async fn delete_key_store(&self, namespace: &Namespace, id: &str) -> Result<(), StoreError> {
        let (namespace, id) = (namespace.clone(), id.to_owned());
        self.write(move |connection| {
            let n = connection
                .execute(
                    "DELETE FROM custom_key_stores WHERE custom_key_store_id = ?1 AND account = ?2 AND region = ?3",
                    params![id, namespace.account.as_str(), namespace.region.as_str()],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("Custom key store {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn insert_key_store_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
        id: &str,
    ) -> Result<(), StoreError> {
        let (namespace, key_id, id) = (namespace.clone(), key_id.clone(), id.to_owned());
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO custom_key_store_keys (account, region, key_id, custom_key_store_id) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        namespace.account.as_str(),
                        namespace.region.as_str(),
                        key_id.as_str(),
                        id
                    ],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn key_store_of(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<String>, StoreError> {
        let (namespace, key_id) = (namespace.clone(), key_id.clone());
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT custom_key_store_id FROM custom_key_store_keys \
                     WHERE account = ?1 AND region = ?2 AND key_id = ?3",
                    params![
                        namespace.account.as_str(),
                        namespace.region.as_str(),
                        key_id.as_str()
                    ],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn count_key_store_keys(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<u64, StoreError> {
        let (namespace, id) = (namespace.clone(), id.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM custom_key_store_keys \
                     WHERE account = ?1 AND region = ?2 AND custom_key_store_id = ?3",
                    params![namespace.account.as_str(), namespace.region.as_str(), id],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(backend)
        })
        .await
    }

    async fn delete_key_store_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<(), StoreError> {
        let (namespace, key_id) = (namespace.clone(), key_id.clone());
        self.write(move |connection| {
            connection
                .execute(
                    "DELETE FROM custom_key_store_keys WHERE account = ?1 AND region = ?2 AND key_id = ?3",
                    params![
                        namespace.account.as_str(),
                        namespace.region.as_str(),
                        key_id.as_str()
                    ],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
