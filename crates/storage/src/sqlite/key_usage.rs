//! Key usage in SQLite: `key_last_usage`, one row per key that has been used.

use async_trait::async_trait;
use rusqlite::params;
use strongroom_types::{KeyId, Namespace, Timestamp};

use crate::StoreError;
use crate::key_usage::{KeyUsageRecord, KeyUsageStore};
use crate::sqlite::{SqliteStore, backend, column};

const UPSERT: &str = "INSERT INTO key_last_usage (account, region, key_id, operation, used, request_id, \
     event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account, region, key_id) DO UPDATE SET \
     operation = excluded.operation, used = excluded.used, request_id = excluded.request_id, \
     event_id = excluded.event_id WHERE excluded.used >= key_last_usage.used";
pub(super) const SELECT: &str = "SELECT operation, used, request_id, event_id FROM key_last_usage \
     WHERE account = ?1 AND region = ?2 AND key_id = ?3";
pub(super) const DELETE: &str =
    "DELETE FROM key_last_usage WHERE account = ?1 AND region = ?2 AND key_id = ?3";

#[async_trait]
impl KeyUsageStore for SqliteStore {
    async fn put_key_usages(&self, usages: &[KeyUsageRecord]) -> Result<(), StoreError> {
        let usages = usages.to_vec();
        self.write(move |connection| {
            let mut statement = connection.prepare_cached(UPSERT).map_err(backend)?;
            for usage in &usages {
                statement
                    .execute(params![
                        usage.namespace.account.as_str(),
                        usage.namespace.region.as_str(),
                        usage.key_id.as_str(),
                        usage.operation,
                        usage.used.millis(),
                        usage.request_id,
                        usage.event_id,
                    ])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn key_usage(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<KeyUsageRecord>, StoreError> {
        let namespace = namespace.clone();
        let key_id = key_id.clone();
        self.read(move |connection| {
            let what = format!("key_last_usage {}", namespace.key_arn(&key_id));
            let mut statement = connection.prepare_cached(SELECT).map_err(backend)?;
            let mut rows = statement
                .query(params![
                    namespace.account.as_str(),
                    namespace.region.as_str(),
                    key_id.as_str()
                ])
                .map_err(backend)?;
            let Some(row) = rows.next().map_err(backend)? else {
                return Ok(None);
            };
            Ok(Some(KeyUsageRecord {
                operation: column(row, &what, "operation")?,
                used: Timestamp::from_millis(column(row, &what, "used")?),
                request_id: column(row, &what, "request_id")?,
                event_id: column(row, &what, "event_id")?,
                namespace: namespace.clone(),
                key_id: key_id.clone(),
            }))
        })
        .await
    }

    async fn delete_key_usage(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let key_id = key_id.clone();
        self.write(move |connection| {
            connection
                .prepare_cached(DELETE)
                .map_err(backend)?
                .execute(params![
                    namespace.account.as_str(),
                    namespace.region.as_str(),
                    key_id.as_str()
                ])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
