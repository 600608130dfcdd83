//! The embedded SQLite backend: one database file, written through one connection and read through a few.
//!
//! Every trait method is one SQLite transaction run on tokio's blocking pool, so a slow disk never stalls
//! the async runtime.
//! Writes go through a single connection behind a mutex, which is SQLite's own model (one writer at a time),
//! and begin `IMMEDIATE` so a second process on the same file waits instead of failing mid-transaction.
//! Reads use separate read-only connections; in write-ahead-log mode they see the last committed state
//! without waiting for a write in progress.
//!
//! **Invariant:** the file is in WAL mode with `synchronous=FULL`, so a commit is on disk before the method
//! returns, and an acknowledged write survives `kill -9` and power loss.

mod aliases;
mod clusters;
mod grants;
mod identities;
mod key_stores;
mod key_usage;
mod keys;
mod multi_region;
mod schema;
mod secrets;
mod stacks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use strongroom_types::{AliasName, AliasRecord, KeyId, KeyRecord, Namespace, Timestamp};

use crate::{Store, StoreError};

/// A [`Store`] kept in one SQLite file: the embedded default, needing no database server.
///
/// Open it once and share it as `Arc<dyn Store>`; a second `SqliteStore` on the same file works but
/// its writes wait for each other through SQLite's file lock.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
}

/// How many read-only connections serve reads; enough for concurrent requests, few enough to stay small.
const READERS: usize = 4;

/// How long a statement waits for another process's lock on the file before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for every distinct statement the backend prepares, so none is compiled twice.
const STATEMENT_CACHE: usize = 32;

const SELECT_SETTING: &str = "SELECT value FROM settings WHERE name = ?1";

const UPSERT_SETTING: &str = "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Failures particular to this backend, carried inside [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
enum SqliteError {
    #[error("cannot open the SQLite database at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the SQLite database at {path} cannot use write-ahead logging (its journal mode stays {mode})"
    )]
    NoWal { path: PathBuf, mode: String },
    #[error(
        "the SQLite database has schema version {found}; this build knows versions 0 to {known}"
    )]
    UnknownSchema { found: i64, known: usize },
    #[error("cannot make the creation of {path} durable")]
    SyncDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt row {row}: {problem}")]
    Corrupt { row: String, problem: String },
    #[error("a storage task stopped before finishing")]
    Task(#[source] tokio::task::JoinError),
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its schema if missing and migrating an older
    /// schema forward.
    ///
    /// This blocks on disk I/O, so call it at startup rather than from a request.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let write_flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = connect(path, write_flags)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(Box::new(SqliteError::NoWal {
                path: path.to_owned(),
                mode,
            })));
        }
        // In WAL mode, FULL syncs the log at every commit; NORMAL would lose the last commits on power loss.
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        schema::migrate(&mut writer)?;
        sync_parent_directory(path)?;

        let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Mutex::new(connect(path, read_flags)?));
        }
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: readers.into(),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Runs `work` in one write transaction on the blocking pool, committing only if it succeeds.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = lock(&writer);
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let value = work(&transaction)?;
            transaction.commit().map_err(backend)?;
            Ok(value)
        });
        join(task.await)
    }

    /// Runs `work` in one read transaction on the blocking pool, so it sees a single committed state.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = lock_any(&readers, start);
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(backend)?;
            let value = work(&transaction)?;
            // Ending a read transaction writes nothing; committing just releases the snapshot.
            transaction.commit().map_err(backend)?;
            Ok(value)
        });
        join(task.await)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |connection| keys::insert(connection, &key))
            .await
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |connection| keys::replace(connection, &key))
            .await
    }

    async fn key(
        &self,
        namespace: &Namespace,
        key_id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let namespace = namespace.clone();
        let key_id = key_id.clone();
        self.read(move |connection| keys::read(connection, &namespace, &key_id))
            .await
    }

    async fn delete_key(&self, namespace: &Namespace, key_id: &KeyId) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let key_id = key_id.clone();
        self.write(move |connection| keys::delete(connection, &namespace, &key_id))
            .await
    }

    async fn list_keys(
        &self,
        namespace: &Namespace,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyId>, StoreError> {
        let namespace = namespace.clone();
        let after = after.cloned();
        self.read(move |connection| keys::list(connection, &namespace, after.as_ref(), limit))
            .await
    }

    async fn keys_due(&self, now: Timestamp) -> Result<Vec<(Namespace, KeyId)>, StoreError> {
        self.read(move |connection| keys::due(connection, now))
            .await
    }

    async fn insert_alias(&self, alias: &AliasRecord) -> Result<(), StoreError> {
        let alias = alias.clone();
        self.write(move |connection| aliases::insert(connection, &alias))
            .await
    }

    async fn put_alias(&self, alias: &AliasRecord) -> Result<(), StoreError> {
        let alias = alias.clone();
        self.write(move |connection| aliases::update(connection, &alias))
            .await
    }

    async fn delete_alias(
        &self,
        namespace: &Namespace,
        name: &AliasName,
    ) -> Result<(), StoreError> {
        let namespace = namespace.clone();
        let name = name.clone();
        self.write(move |connection| aliases::delete(connection, &namespace, &name))
            .await
    }

    async fn alias(
        &self,
        namespace: &Namespace,
        name: &AliasName,
    ) -> Result<Option<AliasRecord>, StoreError> {
        let namespace = namespace.clone();
        let name = name.clone();
        self.read(move |connection| aliases::read(connection, &namespace, &name))
            .await
    }

    async fn list_aliases(
        &self,
        namespace: &Namespace,
        target: Option<&KeyId>,
        after: Option<&AliasName>,
        limit: usize,
    ) -> Result<Vec<AliasRecord>, StoreError> {
        let namespace = namespace.clone();
        let target = target.cloned();
        let after = after.cloned();
        self.read(move |connection| {
            aliases::list(
                connection,
                &namespace,
                target.as_ref(),
                after.as_ref(),
                limit,
            )
        })
        .await
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_SETTING).map_err(backend)?;
            statement
                .query_row(params![name], |row| row.get(0))
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let name = name.to_owned();
        let value = value.to_vec();
        self.write(move |connection| {
            let mut statement = connection.prepare_cached(UPSERT_SETTING).map_err(backend)?;
            statement.execute(params![name, value]).map_err(backend)?;
            Ok(())
        })
        .await
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// Opens one connection with the settings every connection shares.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let open_failed = |source| {
        StoreError::Backend(Box::new(SqliteError::Open {
            path: path.to_owned(),
            source,
        }))
    };
    let connection = Connection::open_with_flags(path, flags).map_err(open_failed)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// Makes the directory entry of a newly created database file durable, which SQLite does not do itself
/// for the main file (it does for the write-ahead log).
fn sync_parent_directory(path: &Path) -> Result<(), StoreError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let sync = std::fs::File::open(directory).and_then(|handle| handle.sync_all());
    match sync {
        Ok(()) => Ok(()),
        Err(source) => Err(StoreError::Backend(Box::new(SqliteError::SyncDirectory {
            path: directory.to_owned(),
            source,
        }))),
    }
}

/// Locks a connection, recovering it from a panic in an earlier task.
///
/// Recovery is sound because the panicking task's `Transaction` rolled back as it unwound, so the
/// connection holds no half-done work.
fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks the first idle reader from `start` on, or waits for the one at `start` if all are busy.
fn lock_any(readers: &[Mutex<Connection>], start: usize) -> MutexGuard<'_, Connection> {
    for offset in 0..readers.len() {
        match readers[(start + offset) % readers.len()].try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    lock(&readers[start % readers.len()])
}

/// Unwraps a blocking task's result; a task that panicked or was cancelled is a backend failure.
fn join<T>(joined: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    match joined {
        Ok(res) => res,
        Err(join_error) => Err(StoreError::Backend(Box::new(SqliteError::Task(join_error)))),
    }
}

/// Wraps an SQLite error.
fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// Reports a row that does not decode, naming it so an operator can find it.
fn corrupt(row: &str, problem: impl fmt::Display) -> StoreError {
    StoreError::Backend(Box::new(SqliteError::Corrupt {
        row: row.to_owned(),
        problem: problem.to_string(),
    }))
}

/// Reads a column by name, blaming the row if its value has the wrong type or range.
/// The `name` column of the rows `select` returns for a namespace (its parameters are the account and
/// the Region), in the order the statement gives.
fn names_in(
    connection: &Connection,
    select: &str,
    namespace: &Namespace,
    row_name: &str,
) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached(select).map_err(backend)?;
    let mut rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str()
        ])
        .map_err(backend)?;
    let mut names = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        names.push(column(row, row_name, "name")?);
    }
    Ok(names)
}

fn column<T: FromSql>(row: &Row<'_>, row_name: &str, name: &str) -> Result<T, StoreError> {
    match row.get(name) {
        Ok(value) => Ok(value),
        Err(error) => Err(corrupt(row_name, format!("{name}: {error}"))),
    }
}

/// Reads a text column holding a parsed value such as an enumeration's wire spelling.
fn parse_column<T>(row: &Row<'_>, row_name: &str, name: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    let text: String = column(row, row_name, name)?;
    parse(row_name, name, &text)
}

/// Parses a stored value, blaming the row if it does not parse.
fn parse<T>(row_name: &str, name: &str, text: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match text.parse() {
        Ok(value) => Ok(value),
        Err(error) => Err(corrupt(row_name, format!("{name}: {error}"))),
    }
}

#[cfg(test)]
mod tests;
