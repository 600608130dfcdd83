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
use crate::journal::{self, Location};

/// The index file's name inside the audit directory.
pub(crate) const INDEX_FILE: &str = "index.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    event_key INTEGER NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    event_name TEXT NOT NULL,
    read_only TEXT NOT NULL,
    username TEXT,
    access_key_id TEXT,
    event_source TEXT NOT NULL,
    record_len INTEGER NOT NULL,
    record TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (account, event_time, seq);
CREATE INDEX IF NOT EXISTS events_by_key ON events (event_key);
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

/// The schema version this code writes (`PRAGMA user_version`).
///
/// Version 1 kept each event's JSON record in the `events` table, with a unique index on the
/// event id; version 2 keeps only where the record is in the journal (`seq` encodes the segment
/// and byte offset, `record_len` the length), which made indexing about twice as cheap. Rows
/// migrated from version 1 keep their `record`.
const SCHEMA_VERSION: i64 = 2;

/// Rebuilds a version 1 `events` table in the version 2 layout, keeping every row.
fn migrate_from_version_1(connection: &mut Connection) -> Result<(), Error> {
    let has_v1_events: bool = connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'
             AND sql LIKE '%event_id TEXT NOT NULL UNIQUE%'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_v1_events {
        return Ok(());
    }
    let transaction = connection.transaction()?;
    transaction.execute_batch(
        "ALTER TABLE events RENAME TO events_v1;
         DROP INDEX IF EXISTS events_by_time;",
    )?;
    transaction.execute_batch(SCHEMA)?;
    {
        let mut select = transaction.prepare(
            "SELECT seq, event_id, account, region, event_time, event_name, read_only, username,
                    access_key_id, event_source, record FROM events_v1",
        )?;
        let mut insert = transaction.prepare(
            "INSERT INTO events (seq, event_id, event_key, account, region, event_time, event_name,
                                 read_only, username, access_key_id, event_source, record_len, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let event_id: String = row.get(1)?;
            let record: String = row.get(10)?;
            insert.execute(params![
                row.get::<_, i64>(0)?,
                event_id,
                event_key(&event_id),
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, Option<String>>(8)?,
                row.get::<_, String>(9)?,
                record.len() as i64,
                record,
            ])?;
        }
    }
    transaction.execute_batch("DROP TABLE events_v1;")?;
    transaction.commit()?;
    Ok(())
}

/// The indexed form of an event id: its first 64 bits when it is a UUID (as every id Strongroom
/// writes is), else a hash of it. Event ids are UUID version 7, so these keys grow with time and
/// the index on them is appended to rather than written at random places.
pub(crate) fn event_key(event_id: &str) -> i64 {
    match uuid::Uuid::try_parse(event_id) {
        Ok(id) => id.as_u64_pair().0 as i64,
        Err(_) => {
            let digest = crate::signing::sha256(event_id.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            i64::from_be_bytes(first)
        }
    }
}

/// The `seq` of an event stored at `location`: segment and byte offset in one integer, so that
/// indexing the same event twice (the indexer, then delivery) finds the row already there.
pub(crate) fn seq_of(location: Location) -> i64 {
    ((location.segment << 32) | (location.offset & 0xffff_ffff)) as i64
}

/// Where the JSON line of the event with this `seq` and length is.
pub(crate) fn location_of(seq: i64, record_len: i64) -> Location {
    let seq = seq as u64;
    Location {
        segment: seq >> 32,
        offset: seq & 0xffff_ffff,
        len: u64::try_from(record_len).unwrap_or(0),
    }
}

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
    let mut connection = connection;
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < SCHEMA_VERSION {
        migrate_from_version_1(&mut connection)?;
        connection.execute_batch(SCHEMA)?;
        connection.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
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

/// Adds events to the index, each with where its JSON record is in the journal, skipping any
/// already there.
pub(crate) fn insert_events<'a>(
    transaction: &Transaction<'_>,
    events: impl IntoIterator<Item = (&'a IndexEntry, Location)>,
) -> Result<(), Error> {
    let mut insert_event = transaction.prepare_cached(
        "INSERT OR IGNORE INTO events
             (seq, event_id, event_key, account, region, event_time, event_name, read_only,
              username, access_key_id, event_source, record_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut insert_resource = transaction.prepare_cached(
        "INSERT INTO event_resources (event_seq, resource_type, resource_name) VALUES (?1, ?2, ?3)",
    )?;
    for (event, location) in events {
        let seq = seq_of(location);
        let inserted = insert_event.execute(params![
            seq,
            event.event_id,
            event_key(&event.event_id),
            event.account,
            event.region,
            event.event_time,
            event.event_name,
            if event.read_only { "true" } else { "false" },
            event.username,
            event.access_key_id,
            event.event_source,
            location.len as i64,
        ])?;
        if inserted == 0 {
            continue;
        }
        for (resource_type, arn) in &event.resources {
            insert_resource.execute(params![seq, resource_type, arn])?;
        }
    }
    Ok(())
}

/// Removes index rows for events before `cutoff` (Unix seconds); delivered files stay.
pub(crate) fn expire(
    connection: &mut Connection,
    cutoff: i64,
    journal_dir: &Path,
) -> Result<usize, Error> {
    let transaction = connection.transaction()?;
    transaction.execute(
        "DELETE FROM event_resources
         WHERE event_seq IN (SELECT seq FROM events WHERE event_time < ?1)",
        params![cutoff],
    )?;
    let removed =
        transaction.execute("DELETE FROM events WHERE event_time < ?1", params![cutoff])?;
    transaction.commit()?;
    // A kept segment is needed while any of its events can still be looked up. Delivery indexes
    // every event of a segment before keeping it, so a segment without rows has only expired ones.
    let mut any_left = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE seq >= ?1 AND seq < ?2)")?;
    let mut dropped = false;
    for number in journal::list_kept(journal_dir)? {
        let first = seq_of(Location {
            segment: number,
            offset: 0,
            len: 0,
        });
        let end = seq_of(Location {
            segment: number + 1,
            offset: 0,
            len: 0,
        });
        let left: bool = any_left.query_row(params![first, end], |row| row.get(0))?;
        if !left {
            let path = journal::kept_path(journal_dir, number);
            match std::fs::remove_file(&path) {
                Ok(()) => dropped = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove an expired journal segment", &path, e)),
            }
        }
    }
    if dropped {
        journal::sync_dir(journal_dir)?;
    }
    Ok(removed)
}
