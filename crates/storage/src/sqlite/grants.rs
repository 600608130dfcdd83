//! Grants in SQLite: `grants`, with their encryption-context constraints in `grant_constraints`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use strongroom_types::{GrantRecord, KeyId, Namespace, Timestamp};

use crate::StoreError;
use crate::grants::GrantStore;
use crate::sqlite::{SqliteStore, backend, column, parse_column};

const COLUMNS: &str = "grant_id, account, region, key_id, name, grantee_principal, retiring_principal, \
     operations, has_equals, has_subset, issuing_account, created";
const EQUALS: &str = "equals";
const SUBSET: &str = "subset";

fn read_grant(connection: &Connection, row: &Row<'_>) -> Result<GrantRecord, StoreError> {
    let grant_id: String = column(row, "grant", "grant_id")?;
    let what = format!("grant {grant_id}");
    let operations: String = column(row, &what, "operations")?;
    let has_equals: bool = column(row, &what, "has_equals")?;
    let has_subset: bool = column(row, &what, "has_subset")?;
    let mut equals = BTreeMap::new();
    let mut subset = BTreeMap::new();
    let mut statement = connection
        .prepare_cached(
            "SELECT kind, pair_key, pair_value FROM grant_constraints WHERE grant_id = ?1",
        )
        .map_err(backend)?;
    let mut rows = statement.query(params![grant_id]).map_err(backend)?;
    while let Some(pair) = rows.next().map_err(backend)? {
        let kind: String = column(pair, &what, "kind")?;
        let key: String = column(pair, &what, "pair_key")?;
        let value: String = column(pair, &what, "pair_value")?;
        match kind.as_str() {
            EQUALS => equals.insert(key, value),
            _ => subset.insert(key, value),
        };
    }
    Ok(GrantRecord {
        namespace: Namespace {
            account: parse_column(row, &what, "account")?,
            region: parse_column(row, &what, "region")?,
        },
        key_id: parse_column(row, &what, "key_id")?,
        name: column(row, &what, "name")?,
        grantee_principal: column(row, &what, "grantee_principal")?,
        retiring_principal: column(row, &what, "retiring_principal")?,
        operations: operations
            .split(',')
            .filter(|op| !op.is_empty())
            .map(str::to_owned)
            .collect(),
        context_equals: has_equals.then_some(equals),
        context_subset: has_subset.then_some(subset),
        issuing_account: parse_column(row, &what, "issuing_account")?,
        created: Timestamp::from_millis(column(row, &what, "created")?),
        grant_id,
    })
}

fn query(
    connection: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<GrantRecord>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    let mut rows = statement.query(args).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        out.push(read_grant(connection, row)?);
    }
    Ok(out)
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        let grant = grant.clone();
        self.write(move |connection| {
            let inserted = connection
                .execute(
                    &format!(
                        "INSERT INTO grants ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                         ON CONFLICT DO NOTHING"
                    ),
                    params![
                        grant.grant_id,
                        grant.namespace.account.as_str(),
                        grant.namespace.region.as_str(),
                        grant.key_id.as_str(),
                        grant.name,
                        grant.grantee_principal,
                        grant.retiring_principal,
                        grant.operations.join(","),
                        grant.context_equals.is_some(),
                        grant.context_subset.is_some(),
                        grant.issuing_account.as_str(),
                        grant.created.millis(),
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!("Grant {}", grant.grant_id)));
            }
            let kinds = [(EQUALS, &grant.context_equals), (SUBSET, &grant.context_subset)];
            for (kind, pairs) in kinds {
                for (key, value) in pairs.iter().flatten() {
                    connection
                        .execute(
                            "INSERT INTO grant_constraints (grant_id, kind, pair_key, pair_value) VALUES (?1, ?2, ?3, ?4)",
                            params![grant.grant_id, kind, key, value],
                        )
                        .map_err(backend)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_grant(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
        grant_id: &str,
    ) -> Result<(), StoreError> {
        let (account, region, key_id, grant_id) = (
            namespace.account.as_str().to_owned(),
            namespace.region.as_str().to_owned(),
            key_id.as_str().to_owned(),
            grant_id.to_owned(),
        );
        self.write(move |connection| {
            let deleted = connection
                .execute(
                    "DELETE FROM grants WHERE grant_id = ?1 AND account = ?2 AND region = ?3 AND key_id = ?4",
                    params![grant_id, account, region, key_id],
                )
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("Grant {grant_id}")));
            }
            connection
                .execute("DELETE FROM grant_constraints WHERE grant_id = ?1", params![grant_id])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn grants_for_key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let (account, region, key_id) = (
            namespace.account.as_str().to_owned(),
            namespace.region.as_str().to_owned(),
            key_id.as_str().to_owned(),
        );
        self.read(move |connection| {
            let sql = format!(
                "SELECT {COLUMNS} FROM grants WHERE account = ?1 AND region = ?2 AND key_id = ?3 ORDER BY created, grant_id"
            );
            query(connection, &sql, &[&account, &region, &key_id])
        })
        .await
    }

    async fn grants_retirable_by(&self, principal: &str) -> Result<Vec<GrantRecord>, StoreError> {
        let principal = principal.to_owned();
        self.read(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM grants WHERE retiring_principal = ?1 ORDER BY created, grant_id");
            query(connection, &sql, &[&principal])
        })
        .await
    }
}
