//! The SQLite file beside the journal: the LookupEvents index and the delivery bookkeeping.
//!
//! The index is derived data: every event in it is also in a journal segment or a delivered log
//! file, so it may lag behind the journal and is completed again at each delivery.
//! The delivery tables are not derived: they remember which segments were delivered, the log
//! files no digest lists yet, and each digest chain's last link.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, params};

use crate::error::Error;
use crate::event::Event;

/// The index file's name inside the audit directory.
pub(crate) const INDEX_FILE: &str = "index.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    event_name TEXT NOT NULL,
    read_only TEXT NOT NULL,
    username TEXT,
    access_key_id TEXT,
    event_source TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (account, event_time, seq);
CREATE TABLE IF NOT EXISTS event_resources (
    event_seq INTEGER NOT NULL,
    resource_type TEXT,
    resource_name TEXT
);
CREATE INDEX IF NOT EXISTS event_resources_by_event ON event_resources (event_seq);
CREATE TABLE IF NOT EXISTS delivered_segments (
    number INTEGER PRIMARY KEY,
    delivered_at INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS digest_chains (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    last_end INTEGER,
    last_object TEXT,
    last_hash TEXT,
    last_signature TEXT,
    pending_end INTEGER,
    PRIMARY KEY (account, region)
);
CREATE TABLE IF NOT EXISTS undigested_log_files (
    s3_object TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    hash TEXT NOT NULL,
    oldest_event INTEGER NOT NULL,
    newest_event INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    digest_end INTEGER
);
";

/// Opens (creating if needed) the index in `dir`, with the schema in place.
///
/// `durable` selects `synchronous=FULL`, for the connection whose commits gate the deletion of
/// journal segments; the others may lose their last commits in a power cut, which delivery repairs.
///
/// The others stay at `NORMAL` rather than `OFF`, although the index rows they write can always be
/// rebuilt from the journal: in WAL mode `NORMAL` already skips the flush on commit and only
/// flushes at checkpoints, while `OFF` would also skip those, and an unflushed checkpoint can
/// corrupt the database file after a power cut. That file also holds the delivery bookkeeping,
/// which is not derived data, so `OFF` would save little and risk much.
pub(crate) fn open(dir: &Path, durable: bool) -> Result<Connection, Error> {
    let path = dir.join(INDEX_FILE);
    let connection = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::from_secs(30))?;
    let _mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    connection.pragma_update(
        None,
        "synchronous",
        match durable {
            true => "FULL",
            false => "NORMAL",
        },
    )?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// What the index stores of one event besides its JSON record.
///
/// Built by moving fields out of the [`Event`], so the request path neither clones the event nor
/// serialises it a second time for the index.
pub(crate) struct IndexEntry {
    event_id: String,
    account: String,
    region: String,
    event_time: i64,
    event_name: String,
    read_only: bool,
    username: Option<String>,
    access_key_id: Option<String>,
    event_source: String,
    /// `(type, ARN)` of each resource.
    resources: Vec<(String, String)>,
}

impl IndexEntry {
    pub(crate) fn new(event: Event) -> IndexEntry {
        let username = event.user_identity.lookup_username();
        IndexEntry {
            event_id: event.event_id,
            account: event.recipient_account_id,
            region: event.aws_region,
            event_time: event.event_time.unix_timestamp(),
            event_name: event.event_name,
            read_only: event.read_only,
            username,
            access_key_id: event.user_identity.access_key_id,
            event_source: event.event_source,
            resources: event
                .resources
                .into_iter()
                .map(|resource| (resource.resource_type, resource.arn))
                .collect(),
        }
    }
}

/// Adds events to the index, each with its JSON record as written to the journal, skipping any
/// already there.
pub(crate) fn insert_events<'a>(
    transaction: &Transaction<'_>,
    events: impl IntoIterator<Item = (&'a IndexEntry, &'a str)>,
) -> Result<(), Error> {
    let mut insert_event = transaction.prepare_cached(
        "INSERT OR IGNORE INTO events
             (event_id, account, region, event_time, event_name, read_only, username,
              access_key_id, event_source, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut insert_resource = transaction.prepare_cached(
        "INSERT INTO event_resources (event_seq, resource_type, resource_name) VALUES (?1, ?2, ?3)",
    )?;
    for (event, record) in events {
        let inserted = insert_event.execute(params![
            event.event_id,
            event.account,
            event.region,
            event.event_time,
            event.event_name,
            if event.read_only { "true" } else { "false" },
            event.username,
            event.access_key_id,
            event.event_source,
            record,
        ])?;
        if inserted == 0 {
            continue;
        }
        let seq = transaction.last_insert_rowid();
        for (resource_type, arn) in &event.resources {
            insert_resource.execute(params![seq, resource_type, arn])?;
        }
    }
    Ok(())
}

/// Removes index rows for events before `cutoff` (Unix seconds); delivered files stay.
pub(crate) fn expire(connection: &mut Connection, cutoff: i64) -> Result<usize, Error> {
    let transaction = connection.transaction()?;
    transaction.execute(
        "DELETE FROM event_resources
         WHERE event_seq IN (SELECT seq FROM events WHERE event_time < ?1)",
        params![cutoff],
    )?;
    let removed =
        transaction.execute("DELETE FROM events WHERE event_time < ?1", params![cutoff])?;
    transaction.commit()?;
    Ok(removed)
}
