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
    record TEXT,
    resources TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (account, event_time, seq);
CREATE INDEX IF NOT EXISTS events_by_key ON events (event_key);
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
/// Version 3 keeps an event's resources in its `events` row (the `resources` column, see
/// [`encode_resources`]) instead of a row per resource in an `event_resources` table with its own
/// index: three B-tree inserts per event instead of three plus two per resource.
const SCHEMA_VERSION: i64 = 3;

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

/// Moves the rows of a version 2 `event_resources` table into the `resources` column of their
/// events, then drops that table and its index.
///
/// Adding the column rewrites no row; only events with resources are rewritten, once each.
fn migrate_from_version_2(connection: &mut Connection) -> Result<(), Error> {
    let table_exists = |connection: &Connection, name: &str| -> Result<bool, Error> {
        let found: i64 = connection.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            params![name],
            |row| row.get(0),
        )?;
        Ok(found > 0)
    };
    if !table_exists(connection, "events")? {
        return Ok(());
    }
    let has_column: bool = connection.query_row(
        "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'resources'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let has_resource_table = table_exists(connection, "event_resources")?;
    if has_column && !has_resource_table {
        return Ok(());
    }
    let transaction = connection.transaction()?;
    if !has_column {
        transaction.execute_batch("ALTER TABLE events ADD COLUMN resources TEXT;")?;
    }
    if has_resource_table {
        let mut select = transaction.prepare(
            "SELECT event_seq, resource_type, resource_name FROM event_resources
             ORDER BY event_seq, rowid",
        )?;
        let mut update = transaction.prepare("UPDATE events SET resources = ?2 WHERE seq = ?1")?;
        let mut rows = select.query([])?;
        let mut event: Option<i64> = None;
        let mut resources: Vec<(String, String)> = Vec::new();
        let mut encoded = String::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if let Some(previous) = event
                && previous != seq
            {
                encode_resources(&resources, &mut encoded);
                update.execute(params![previous, encoded])?;
                resources.clear();
            }
            event = Some(seq);
            // Version 2 never wrote a NULL here; should one be there, it reads as empty.
            resources.push((
                row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            ));
        }
        if let Some(previous) = event {
            encode_resources(&resources, &mut encoded);
            update.execute(params![previous, encoded])?;
        }
    }
    transaction.execute_batch("DROP TABLE IF EXISTS event_resources;")?;
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

/// Whether the index holds a row for each of the `count` events of journal segment `segment`,
/// as it does once the indexer has caught up (a batch lost to a crash, or events since expired,
/// leave it short).
pub(crate) fn holds_segment(
    connection: &Connection,
    segment: u64,
    count: usize,
) -> Result<bool, Error> {
    let start = |segment| {
        seq_of(Location {
            segment,
            offset: 0,
            len: 0,
        })
    };
    let rows: i64 = connection.query_row(
        "SELECT count(*) FROM events WHERE seq >= ?1 AND seq < ?2",
        params![start(segment), start(segment + 1)],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(rows).is_ok_and(|rows| rows == count))
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

/// The page size of a new index file (SQLite's default is 4 KiB).
///
/// The indexer appends to three B-trees; with larger pages it splits, writes and checkpoints
/// fewer of them, which cut its CPU per event by about a quarter in the release micro-benchmark.
/// SQLite checkpoints the WAL every 1,000 pages, so it now grows to about 16 MiB between
/// checkpoints. An existing file keeps its page size: changing it takes a `VACUUM` outside WAL
/// mode, which rewrites the whole file and needs as much free disk again.
const PAGE_SIZE: i64 = 16 * 1024;

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
    // Before WAL mode is set, which writes the header of a new file; a no-op on an existing one.
    connection.pragma_update(None, "page_size", PAGE_SIZE)?;
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
        migrate_from_version_2(&mut connection)?;
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
///
/// One insert per event, into the `events` table and its two indexes. Text values are bound only
/// when they differ from the previous event's: SQLite keeps a statement's bindings from one
/// execution to the next, binding text copies it, and under load most events share their account,
/// Region, operation, caller and key.
pub(crate) fn insert_events<'a>(
    transaction: &Transaction<'_>,
    events: impl IntoIterator<Item = (&'a IndexEntry, Location)>,
) -> Result<(), Error> {
    // The parameters from ?6 on, which events under load mostly share.
    const FIRST_SHARED: usize = 6;
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO events
             (seq, event_id, event_key, event_time, record_len, account, region, event_name,
              read_only, username, access_key_id, event_source, resources)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    // Those parameters as bound now; `None` until first bound (the statement cache clears the
    // bindings of a statement it takes back).
    let mut bound: [Option<Option<&str>>; 7] = [None; 7];
    let mut bound_resources: Option<&[(String, String)]> = None;
    let mut encoded = String::new();
    for (event, location) in events {
        insert.raw_bind_parameter(1, seq_of(location))?;
        insert.raw_bind_parameter(2, event.event_id.as_str())?;
        insert.raw_bind_parameter(3, event_key(&event.event_id))?;
        insert.raw_bind_parameter(4, event.event_time)?;
        insert.raw_bind_parameter(5, location.len as i64)?;
        let shared = [
            Some(event.account.as_str()),
            Some(event.region.as_str()),
            Some(event.event_name.as_str()),
            Some(if event.read_only { "true" } else { "false" }),
            event.username.as_deref(),
            event.access_key_id.as_deref(),
            Some(event.event_source.as_str()),
        ];
        for (position, value) in shared.into_iter().enumerate() {
            if bound[position] != Some(value) {
                insert.raw_bind_parameter(FIRST_SHARED + position, value)?;
                bound[position] = Some(value);
            }
        }
        if bound_resources != Some(event.resources.as_slice()) {
            encode_resources(&event.resources, &mut encoded);
            insert.raw_bind_parameter(13, nonempty(&encoded))?;
            bound_resources = Some(&event.resources);
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// Starts each resource in the `resources` column, and ends the column.
const RESOURCE_START: char = '\u{1e}';
/// Separates a resource's type from its ARN in the `resources` column.
const RESOURCE_ARN: char = '\u{1f}';
/// Stands for itself or a separator inside a type or ARN, followed by `0`, `1` or `2`.
const RESOURCE_ESCAPE: char = '\u{1d}';
/// The characters escaped in a type or ARN; `RESOURCE_ESCAPE` followed by the digit of a position
/// in this list stands for that character.
const RESOURCE_SPECIALS: [char; 3] = [RESOURCE_ESCAPE, RESOURCE_START, RESOURCE_ARN];

/// Writes an event's resources in the form of the `resources` column into `out`, or nothing when
/// it has none (the column is then NULL).
///
/// Each resource is `\x1e type \x1f ARN`, and a last `\x1e` ends the list, so that a type is
/// exactly what stands between a `\x1e` and a `\x1f` and an ARN what stands between a `\x1f` and a
/// `\x1e`: [`resource_pattern`] finds either with `instr`. Neither separator occurs in an AWS type
/// or ARN; should one occur all the same, it is escaped (as is the escape character), so any text
/// is stored and found exactly.
fn encode_resources(resources: &[(String, String)], out: &mut String) {
    out.clear();
    if resources.is_empty() {
        return;
    }
    for (resource_type, arn) in resources {
        out.push(RESOURCE_START);
        escape_resource_text(resource_type, out);
        out.push(RESOURCE_ARN);
        escape_resource_text(arn, out);
    }
    out.push(RESOURCE_START);
}

/// The `(type, ARN)` pairs of a `resources` column.
pub(crate) fn decode_resources(column: &str) -> Vec<(String, String)> {
    column
        .split(RESOURCE_START)
        .filter(|resource| !resource.is_empty())
        .map(|resource| match resource.split_once(RESOURCE_ARN) {
            Some((resource_type, arn)) => (
                unescape_resource_text(resource_type),
                unescape_resource_text(arn),
            ),
            None => (unescape_resource_text(resource), String::new()),
        })
        .collect()
}

/// Which part of a resource a lookup names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResourcePart {
    Type,
    Arn,
}

/// What `instr(resources, ...)` looks for to find the events with a resource whose type or ARN
/// is `value`, exactly.
pub(crate) fn resource_pattern(part: ResourcePart, value: &str) -> String {
    let (before, after) = match part {
        ResourcePart::Type => (RESOURCE_START, RESOURCE_ARN),
        ResourcePart::Arn => (RESOURCE_ARN, RESOURCE_START),
    };
    let mut pattern = String::with_capacity(value.len() + 2);
    pattern.push(before);
    escape_resource_text(value, &mut pattern);
    pattern.push(after);
    pattern
}

fn escape_resource_text(text: &str, out: &mut String) {
    // The three are consecutive ASCII control characters, never part of a longer UTF-8 sequence.
    if !text.bytes().any(|byte| (0x1d..=0x1f).contains(&byte)) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match RESOURCE_SPECIALS.iter().position(|s| *s == c) {
            Some(code) => {
                out.push(RESOURCE_ESCAPE);
                out.push(char::from(b'0' + code as u8));
            }
            None => out.push(c),
        }
    }
}

fn unescape_resource_text(text: &str) -> String {
    if !text.contains(RESOURCE_ESCAPE) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            RESOURCE_ESCAPE => {
                let code = chars.next().and_then(|code| code.to_digit(10));
                match code.and_then(|code| RESOURCE_SPECIALS.get(code as usize)) {
                    Some(original) => out.push(*original),
                    None => out.push(c),
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn nonempty(text: &str) -> Option<&str> {
    match text.is_empty() {
        true => None,
        false => Some(text),
    }
}

/// Removes index rows for events before `cutoff` (Unix seconds); delivered files stay.
pub(crate) fn expire(
    connection: &mut Connection,
    cutoff: i64,
    journal_dir: &Path,
) -> Result<usize, Error> {
    let removed =
        connection.execute("DELETE FROM events WHERE event_time < ?1", params![cutoff])?;
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
