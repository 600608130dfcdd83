//! Multi-Region key sets in SQLite: `multi_region_keys`, one row per Region holding a key of a set.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use strongroom_types::{AccountId, KeyId, Timestamp};

use crate::StoreError;
use crate::multi_region::{MultiRegionMember, MultiRegionRole, MultiRegionStore, Transition};
use crate::sqlite::{SqliteStore, backend, column, corrupt, parse, parse_column};

pub(super) const SELECT_SET: &str = "SELECT region, role, transition_until, state_after, \
     pending_window_days FROM multi_region_keys WHERE account = ?1 AND key_id = ?2 ORDER BY region";
pub(super) const DELETE_SET: &str =
    "DELETE FROM multi_region_keys WHERE account = ?1 AND key_id = ?2";
const INSERT_MEMBER: &str = "INSERT INTO multi_region_keys (account, key_id, region, role, \
     transition_until, state_after, pending_window_days) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(super) const TRANSITIONS_DUE: &str = "SELECT DISTINCT account, key_id FROM multi_region_keys \
     WHERE transition_until IS NOT NULL AND transition_until <= ?1";
const ALL_SETS: &str =
    "SELECT DISTINCT account, key_id FROM multi_region_keys ORDER BY account, key_id";

fn read_set(
    connection: &Connection,
    account: &str,
    key_id: &str,
) -> Result<Vec<MultiRegionMember>, StoreError> {
    let what = format!("multi_region_keys {account} {key_id}");
    let mut statement = connection.prepare_cached(SELECT_SET).map_err(backend)?;
    let mut rows = statement.query(params![account, key_id]).map_err(backend)?;
    let mut members = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let role: String = column(row, &what, "role")?;
        let role = match role.as_str() {
            "PRIMARY" => MultiRegionRole::Primary,
            "REPLICA" => MultiRegionRole::Replica,
            other => return Err(corrupt(&what, format!("role: '{other}'"))),
        };
        let until: Option<i64> = column(row, &what, "transition_until")?;
        let state_after: Option<String> = column(row, &what, "state_after")?;
        let transition = match (until, state_after) {
            (Some(until), Some(state)) => Some(Transition {
                until: Timestamp::from_millis(until),
                state_after: parse(&what, "state_after", &state)?,
            }),
            _ => None,
        };
        let window: Option<i64> = column(row, &what, "pending_window_days")?;
        let pending_window_days = match window {
            None => None,
            Some(days) => Some(
                u32::try_from(days)
                    .map_err(|_| corrupt(&what, format!("pending_window_days: {days}")))?,
            ),
        };
        members.push(MultiRegionMember {
            region: parse_column(row, &what, "region")?,
            role,
            transition,
            pending_window_days,
        });
    }
    Ok(members)
}

fn list_sets(
    connection: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<(AccountId, KeyId)>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    let mut rows = statement.query(args).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let what = "multi_region_keys";
        out.push((
            parse_column(row, what, "account")?,
            parse_column(row, what, "key_id")?,
        ));
    }
    Ok(out)
}

#[async_trait]
impl MultiRegionStore for SqliteStore {
    async fn multi_region_set(
        &self,
        account: &AccountId,
        key_id: &KeyId,
    ) -> Result<Vec<MultiRegionMember>, StoreError> {
        let account = account.as_str().to_owned();
        let key_id = key_id.as_str().to_owned();
        self.read(move |connection| read_set(connection, &account, &key_id))
            .await
    }

    async fn put_multi_region_set(
        &self,
        account: &AccountId,
        key_id: &KeyId,
        members: &[MultiRegionMember],
    ) -> Result<(), StoreError> {
        let account = account.as_str().to_owned();
        let key_id = key_id.as_str().to_owned();
        let members = members.to_vec();
        self.write(move |connection| {
            connection
                .prepare_cached(DELETE_SET)
                .map_err(backend)?
                .execute(params![account, key_id])
                .map_err(backend)?;
            let mut insert = connection.prepare_cached(INSERT_MEMBER).map_err(backend)?;
            for member in &members {
                insert
                    .execute(params![
                        account,
                        key_id,
                        member.region.as_str(),
                        member.role.as_str(),
                        member.transition.map(|t| t.until.millis()),
                        member.transition.map(|t| t.state_after.as_str()),
                        member.pending_window_days.map(i64::from),
                    ])
                    .map_err(|error| match error.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => {
                            StoreError::AlreadyExists(format!(
                                "A key of multi-Region key {key_id} in Region {} or a second primary",
                                member.region
                            ))
                        }
                        _ => backend(error),
                    })?;
            }
            Ok(())
        })
        .await
    }

    async fn multi_region_transitions_due(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(AccountId, KeyId)>, StoreError> {
        self.read(move |connection| list_sets(connection, TRANSITIONS_DUE, &[&now.millis()]))
            .await
    }

    async fn multi_region_sets(&self) -> Result<Vec<(AccountId, KeyId)>, StoreError> {
        self.read(move |connection| list_sets(connection, ALL_SETS, &[]))
            .await
    }
}
