//! Aliases: one row each in `aliases`, keyed by namespace and name.
//!
//! Functions here run inside a transaction the caller opened.

use rusqlite::{Connection, Row, params};
use strongroom_types::{AliasName, AliasRecord, KeyId, Namespace, Timestamp};

use crate::StoreError;
use crate::sqlite::{backend, column, parse, parse_column};

/// Adds the row unless the primary key is taken; the change count tells which happened.
const INSERT_ALIAS: &str = "INSERT INTO aliases (account, region, name, target, created, updated) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

/// Repointing an alias changes its target and update time; its creation time stays.
pub(super) const UPDATE_ALIAS: &str =
    "UPDATE aliases SET target = ?4, updated = ?5 WHERE account = ?1 AND region = ?2 AND name = ?3";

pub(super) const DELETE_ALIAS: &str =
    "DELETE FROM aliases WHERE account = ?1 AND region = ?2 AND name = ?3";

pub(super) const SELECT_ALIAS: &str = "SELECT name, target, created, updated FROM aliases WHERE account = ?1 AND region = ?2 AND name = ?3";

/// The empty string sorts before every alias name, so it stands for "from the start".
pub(super) const LIST_ALIASES: &str = "SELECT name, target, created, updated FROM aliases \
     WHERE account = ?1 AND region = ?2 AND name > ?3 ORDER BY name LIMIT ?4";

/// Served by `aliases_by_target`, whose last column keeps each target's aliases in name order.
pub(super) const LIST_ALIASES_OF_TARGET: &str = "SELECT name, target, created, updated FROM aliases \
     WHERE account = ?1 AND region = ?2 AND target = ?5 AND name > ?3 ORDER BY name LIMIT ?4";

pub(super) fn insert(connection: &Connection, alias: &AliasRecord) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(INSERT_ALIAS).map_err(backend)?;
    let inserted = statement
        .execute(params![
            alias.namespace.account.as_str(),
            alias.namespace.region.as_str(),
            alias.name.as_str(),
            alias.target.as_str(),
            alias.created.millis(),
            alias.updated.millis(),
        ])
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "An alias with the name {}",
            alias.namespace.alias_arn(&alias.name)
        )));
    }
    Ok(())
}

pub(super) fn update(connection: &Connection, alias: &AliasRecord) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(UPDATE_ALIAS).map_err(backend)?;
    let updated = statement
        .execute(params![
            alias.namespace.account.as_str(),
            alias.namespace.region.as_str(),
            alias.name.as_str(),
            alias.target.as_str(),
            alias.updated.millis(),
        ])
        .map_err(backend)?;
    if updated == 0 {
        return Err(StoreError::NotFound(describe(
            &alias.namespace,
            &alias.name,
        )));
    }
    Ok(())
}

pub(super) fn delete(
    connection: &Connection,
    namespace: &Namespace,
    name: &AliasName,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_ALIAS).map_err(backend)?;
    let deleted = statement
        .execute(params![
            namespace.account.as_str(),
            namespace.region.as_str(),
            name.as_str()
        ])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(describe(namespace, name)));
    }
    Ok(())
}

pub(super) fn read(
    connection: &Connection,
    namespace: &Namespace,
    name: &AliasName,
) -> Result<Option<AliasRecord>, StoreError> {
    let mut statement = connection.prepare_cached(SELECT_ALIAS).map_err(backend)?;
    let mut rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str(),
            name.as_str()
        ])
        .map_err(backend)?;
    match rows.next().map_err(backend)? {
        Some(row) => Ok(Some(decode(row, namespace)?)),
        None => Ok(None),
    }
}

pub(super) fn list(
    connection: &Connection,
    namespace: &Namespace,
    target: Option<&KeyId>,
    after: Option<&AliasName>,
    limit: usize,
) -> Result<Vec<AliasRecord>, StoreError> {
    let after = after.map_or("", AliasName::as_str);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let account = namespace.account.as_str();
    let region = namespace.region.as_str();
    let mut statement;
    let mut rows = match target {
        Some(target) => {
            statement = connection
                .prepare_cached(LIST_ALIASES_OF_TARGET)
                .map_err(backend)?;
            statement
                .query(params![account, region, after, limit, target.as_str()])
                .map_err(backend)?
        }
        None => {
            statement = connection.prepare_cached(LIST_ALIASES).map_err(backend)?;
            statement
                .query(params![account, region, after, limit])
                .map_err(backend)?
        }
    };
    let mut aliases = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        aliases.push(decode(row, namespace)?);
    }
    Ok(aliases)
}

/// Decodes a row of [`SELECT_ALIAS`] or the list queries, which share their columns.
fn decode(row: &Row<'_>, namespace: &Namespace) -> Result<AliasRecord, StoreError> {
    let name: String = row.get("name").map_err(backend)?;
    let row_name = format!(
        "in aliases (account '{}', region '{}', name '{name}')",
        namespace.account, namespace.region
    );
    Ok(AliasRecord {
        namespace: namespace.clone(),
        name: parse(&row_name, "name", &name)?,
        target: parse_column(row, &row_name, "target")?,
        created: Timestamp::from_millis(column(row, &row_name, "created")?),
        updated: Timestamp::from_millis(column(row, &row_name, "updated")?),
    })
}

/// Names an alias for `NotFound`, in the words AWS uses.
fn describe(namespace: &Namespace, name: &AliasName) -> String {
    format!("Alias {}", namespace.alias_arn(name))
}
