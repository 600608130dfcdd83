//! Stacks in SQLite: `stacks` (one row per stack), `stack_resources` and `stack_steps`, each written whole
//! with its stack.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use strongroom_types::{Namespace, Timestamp};

use crate::StoreError;
use crate::sqlite::{SqliteStore, backend, column, parse, parse_column};
use crate::stacks::{StackRecord, StackResource, StackStep, StackStore};

const INSERT_STACK: &str = "INSERT INTO stacks (account, region, name, owner_arn, owner_access_key_id, \
     document, parameters, status, on_failure, reason, created, updated) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const UPDATE_STACK: &str = "UPDATE stacks SET owner_arn = ?4, owner_access_key_id = ?5, document = ?6, \
     parameters = ?7, status = ?8, on_failure = ?9, reason = ?10, created = ?11, updated = ?12 \
     WHERE account = ?1 AND region = ?2 AND name = ?3";
const SELECT_STACK: &str = "SELECT owner_arn, owner_access_key_id, document, parameters, status, \
     on_failure, reason, created, updated FROM stacks WHERE account = ?1 AND region = ?2 AND name = ?3";
const SELECT_NAMES: &str =
    "SELECT name FROM stacks WHERE account = ?1 AND region = ?2 ORDER BY name";
const SELECT_IN_PROGRESS: &str = "SELECT account, region, name FROM stacks \
     WHERE status IN ('APPLY_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS', 'DELETE_IN_PROGRESS') \
     ORDER BY account, region, name";
const DELETE_STACK: &str = "DELETE FROM stacks WHERE account = ?1 AND region = ?2 AND name = ?3";

const INSERT_RESOURCE: &str = "INSERT INTO stack_resources (account, region, stack, position, \
     logical_id, physical_id, properties, retained) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const SELECT_RESOURCES: &str = "SELECT logical_id, physical_id, properties, retained \
     FROM stack_resources WHERE account = ?1 AND region = ?2 AND stack = ?3 ORDER BY position";
const DELETE_RESOURCES: &str =
    "DELETE FROM stack_resources WHERE account = ?1 AND region = ?2 AND stack = ?3";

const INSERT_STEP: &str = "INSERT INTO stack_steps (account, region, stack, position, logical_id, \
     action, state, started, finished, log, desired) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const SELECT_STEPS: &str = "SELECT logical_id, action, state, started, finished, log, desired \
     FROM stack_steps WHERE account = ?1 AND region = ?2 AND stack = ?3 ORDER BY position";
const DELETE_STEPS: &str =
    "DELETE FROM stack_steps WHERE account = ?1 AND region = ?2 AND stack = ?3";

fn row_name(namespace: &Namespace, name: &str) -> String {
    format!("stacks {} {} {name}", namespace.account, namespace.region)
}

fn encode_parameters(parameters: &[(String, String)]) -> String {
    parameters
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_parameters(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn read(
    connection: &Connection,
    namespace: &Namespace,
    name: &str,
) -> Result<Option<StackRecord>, StoreError> {
    let what = row_name(namespace, name);
    let keys = params![namespace.account.as_str(), namespace.region.as_str(), name];
    let mut statement = connection.prepare_cached(SELECT_STACK).map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    let Some(row) = rows.next().map_err(backend)? else {
        return Ok(None);
    };
    let parameters: String = column(row, &what, "parameters")?;
    let mut record = StackRecord {
        namespace: namespace.clone(),
        name: name.to_owned(),
        owner_arn: column(row, &what, "owner_arn")?,
        owner_access_key_id: column(row, &what, "owner_access_key_id")?,
        document: column(row, &what, "document")?,
        parameters: decode_parameters(&parameters),
        status: parse_column(row, &what, "status")?,
        on_failure: column(row, &what, "on_failure")?,
        reason: column(row, &what, "reason")?,
        created: Timestamp::from_millis(column(row, &what, "created")?),
        updated: Timestamp::from_millis(column(row, &what, "updated")?),
        resources: Vec::new(),
        steps: Vec::new(),
    };
    drop(rows);

    let mut statement = connection
        .prepare_cached(SELECT_RESOURCES)
        .map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        record.resources.push(StackResource {
            logical_id: column(row, &what, "logical_id")?,
            physical_id: column(row, &what, "physical_id")?,
            properties: column(row, &what, "properties")?,
            retained: column(row, &what, "retained")?,
        });
    }
    drop(rows);

    let mut statement = connection.prepare_cached(SELECT_STEPS).map_err(backend)?;
    let mut rows = statement.query(keys).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let state: String = column(row, &what, "state")?;
        let log: String = column(row, &what, "log")?;
        let optional_time = |value: Option<i64>| value.map(Timestamp::from_millis);
        record.steps.push(StackStep {
            logical_id: column(row, &what, "logical_id")?,
            action: column(row, &what, "action")?,
            state: parse(&what, "state", &state)?,
            started: optional_time(column(row, &what, "started")?),
            finished: optional_time(column(row, &what, "finished")?),
            log: log.lines().map(str::to_owned).collect(),
            desired: column(row, &what, "desired")?,
        });
    }
    Ok(Some(record))
}

fn write(connection: &Connection, stack: &StackRecord, insert: bool) -> Result<(), StoreError> {
    let namespace = &stack.namespace;
    let account = namespace.account.as_str();
    let region = namespace.region.as_str();
    let sql = if insert { INSERT_STACK } else { UPDATE_STACK };
    let written = connection
        .prepare_cached(sql)
        .map_err(backend)?
        .execute(params![
            account,
            region,
            stack.name,
            stack.owner_arn,
            stack.owner_access_key_id,
            stack.document,
            encode_parameters(&stack.parameters),
            stack.status.as_str(),
            stack.on_failure,
            stack.reason,
            stack.created.millis(),
            stack.updated.millis(),
        ]);
    match written {
        Ok(0) => return Err(StoreError::NotFound(row_name(namespace, &stack.name))),
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::AlreadyExists(row_name(namespace, &stack.name)));
        }
        Err(error) => return Err(backend(error)),
    }
    let keys = params![account, region, stack.name];
    for sql in [DELETE_RESOURCES, DELETE_STEPS] {
        connection
            .prepare_cached(sql)
            .map_err(backend)?
            .execute(keys)
            .map_err(backend)?;
    }
    let mut statement = connection
        .prepare_cached(INSERT_RESOURCE)
        .map_err(backend)?;
    for (position, resource) in stack.resources.iter().enumerate() {
        statement
            .execute(params![
                account,
                region,
                stack.name,
                position as i64,
                resource.logical_id,
                resource.physical_id,
                resource.properties,
                resource.retained,
            ])
            .map_err(backend)?;
    }
    let mut statement = connection.prepare_cached(INSERT_STEP).map_err(backend)?;
    for (position, step) in stack.steps.iter().enumerate() {
        statement
            .execute(params![
                account,
                region,
                stack.name,
                position as i64,
                step.logical_id,
                step.action,
                step.state.as_str(),
                step.started.map(Timestamp::millis),
                step.finished.map(Timestamp::millis),
                step.log.join("\n"),
                step.desired,
            ])
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl StackStore for SqliteStore {
    async fn insert_stack(&self, stack: &StackRecord) -> Result<(), StoreError> {
        let stack = stack.clone();
        self.write(move |connection| write(connection, &stack, true))
            .await
    }

    async fn put_stack(&self, stack: &StackRecord) -> Result<(), StoreError> {
        let stack = stack.clone();
        self.write(move |connection| write(connection, &stack, false))
            .await
    }

    async fn stack(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<StackRecord>, StoreError> {
        let namespace = namespace.clone();
        let name = name.to_owned();
        self.read(move |connection| read(connection, &namespace, &name))
            .await
    }

    async fn list_stacks(&self, namespace: &Namespace) -> Result<Vec<StackRecord>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |connection| {
            let names = super::names_in(connection, SELECT_NAMES, &namespace, "stacks")?;
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

    async fn stacks_in_progress(&self) -> Result<Vec<(Namespace, String)>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(SELECT_IN_PROGRESS)
                .map_err(backend)?;
            let mut rows = statement.query([]).map_err(backend)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let namespace = Namespace {
                    account: parse_column(row, "stacks", "account")?,
                    region: parse_column(row, "stacks", "region")?,
                };
                out.push((namespace, column(row, "stacks", "name")?));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_stack(&self, namespace: &Namespace, name: &str) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let name = name.to_owned();
        self.write(move |connection| {
            let keys = params![namespace.account.as_str(), namespace.region.as_str(), name];
            let deleted = connection
                .prepare_cached(DELETE_STACK)
                .map_err(backend)?
                .execute(keys)
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(row_name(&namespace, &name)));
            }
            for sql in [DELETE_RESOURCES, DELETE_STEPS] {
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
}
