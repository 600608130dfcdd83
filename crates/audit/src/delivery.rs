//! Delivery: sealed journal segments become CloudTrail log files, and log files become signed digests.
//!
//! The layout is CloudTrail's S3 layout, rooted at the audit directory:
//!
//! ```text
//! AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 chars>.json.gz
//! AWSLogs/<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/<account>_CloudTrail-Digest_<region>_<trail>_<region>_<YYYYMMDDTHHMMSSZ>.json.gz
//! ```
//!
//! Each segment yields one log file per account and Region, and each digest lists the log files
//! delivered since the previous digest of its chain, with their SHA-256, and carries the previous
//! digest's hash and signature.
//! A digest's own signature lives beside it in a `.sig` file, where S3 would keep it in object
//! metadata.
//!
//! Both steps are idempotent: file names and contents are fixed before anything is written (the
//! log file suffix is derived from the segment, gzip output is deterministic, PKCS#1 v1.5
//! signatures are deterministic), so a delivery interrupted by a crash is redone byte for byte.
//!
//! **Invariant:** a delivered log file or digest is never modified or removed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::error::Error;
use crate::event::{Event, timestamp};
use crate::index::{self, IndexEntry};
use crate::journal::{self, Location, list_segments, read_segment, segment_path};
use crate::signing::{HASH_ALGORITHM, SIGNATURE_ALGORITHM, SigningKey, sha256, sha256_hex};

/// The trail name written into digest file names.
pub(crate) const TRAIL_NAME: &str = "strongroom";

/// The suffix of a digest's signature file.
pub(crate) const SIGNATURE_SUFFIX: &str = ".sig";

const MINUTE_STAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute]Z");
const SECOND_STAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
const DATE_PATH: &[BorrowedFormatItem<'static>] = format_description!("[year]/[month]/[day]");

/// Where and how delivery writes.
pub(crate) struct Delivery<'a> {
    /// The audit directory, which plays the role of the bucket root.
    pub(crate) root: &'a Path,
    /// The journal directory.
    pub(crate) journal_dir: &'a Path,
    /// The bucket name recorded in digests.
    pub(crate) bucket: &'a str,
    /// Signs digests.
    pub(crate) signer: &'a SigningKey,
    /// Seconds between scheduled digests of a chain.
    pub(crate) digest_interval: i64,
}

/// A digest file's contents, field for field as CloudTrail writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DigestFile {
    pub(crate) aws_account_id: String,
    pub(crate) digest_start_time: String,
    pub(crate) digest_end_time: String,
    #[serde(rename = "digestS3Bucket")]
    pub(crate) digest_s3_bucket: String,
    #[serde(rename = "digestS3Object")]
    pub(crate) digest_s3_object: String,
    pub(crate) digest_public_key_fingerprint: String,
    pub(crate) digest_signature_algorithm: String,
    pub(crate) newest_event_time: Option<String>,
    pub(crate) oldest_event_time: Option<String>,
    #[serde(rename = "previousDigestS3Bucket")]
    pub(crate) previous_digest_s3_bucket: Option<String>,
    #[serde(rename = "previousDigestS3Object")]
    pub(crate) previous_digest_s3_object: Option<String>,
    pub(crate) previous_digest_hash_value: Option<String>,
    pub(crate) previous_digest_hash_algorithm: Option<String>,
    pub(crate) previous_digest_signature: Option<String>,
    pub(crate) log_files: Vec<DigestLogFile>,
}

/// One log file as a digest lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DigestLogFile {
    #[serde(rename = "s3Bucket")]
    pub(crate) s3_bucket: String,
    #[serde(rename = "s3Object")]
    pub(crate) s3_object: String,
    pub(crate) hash_value: String,
    pub(crate) hash_algorithm: String,
    pub(crate) newest_event_time: String,
    pub(crate) oldest_event_time: String,
}

/// The stand-in for S3 object metadata: a digest's signature.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SignatureFile {
    pub(crate) signature: String,
    #[serde(rename = "signature-algorithm")]
    pub(crate) signature_algorithm: String,
}

/// Whether `text` is safe as one path component: account ids and Region names only.
pub(crate) fn is_safe_component(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// The string CloudTrail signs for a digest.
pub(crate) fn data_to_sign(digest: &DigestFile, digest_hash: &str) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        digest.digest_end_time,
        digest.digest_s3_bucket,
        digest.digest_s3_object,
        digest_hash,
        digest
            .previous_digest_signature
            .as_deref()
            .unwrap_or("null"),
    )
}

/// The directory under the root holding `kind` files (`CloudTrail` or `CloudTrail-Digest`).
pub(crate) fn prefix(account: &str, kind: &str, region: &str) -> String {
    format!("AWSLogs/{account}/{kind}/{region}")
}

/// The time stamp in a log file name: the minute it was delivered.
pub(crate) fn parse_log_file_time(
    name: &str,
    account: &str,
    region: &str,
) -> Option<OffsetDateTime> {
    let rest = name
        .strip_prefix(&format!("{account}_CloudTrail_{region}_"))?
        .strip_suffix(".json.gz")?;
    let (stamp, suffix) = rest.split_once('_')?;
    if suffix.len() != 16 || !suffix.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return None;
    }
    time::PrimitiveDateTime::parse(stamp, MINUTE_STAMP)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// The time stamp in a digest file name: the digest's end time.
pub(crate) fn parse_digest_time(name: &str, account: &str, region: &str) -> Option<OffsetDateTime> {
    let stamp = name
        .strip_prefix(&format!(
            "{account}_CloudTrail-Digest_{region}_{TRAIL_NAME}_{region}_"
        ))?
        .strip_suffix(".json.gz")?;
    time::PrimitiveDateTime::parse(stamp, SECOND_STAMP)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

impl Delivery<'_> {
    /// Turns every sealed segment (numbered below `active`) into log files, then removes it.
    ///
    /// Returns how many log files were written.
    pub(crate) fn deliver_sealed(
        &self,
        connection: &mut Connection,
        active: u64,
        now: i64,
    ) -> Result<usize, Error> {
        let mut written = 0;
        for number in list_segments(self.journal_dir)? {
            if number >= active {
                break;
            }
            written += self.deliver_segment(connection, number, now)?;
        }
        Ok(written)
    }

    fn deliver_segment(
        &self,
        connection: &mut Connection,
        number: u64,
        now: i64,
    ) -> Result<usize, Error> {
        let path = segment_path(self.journal_dir, number);
        let row: Option<(i64, bool)> = connection
            .query_row(
                "SELECT delivered_at, done FROM delivered_segments WHERE number = ?1",
                params![number as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let delivered_at = match row {
            // The segment was delivered but the process stopped before keeping it.
            Some((_, true)) => {
                keep_segment(self.journal_dir, number)?;
                return Ok(0);
            }
            // A crash interrupted this delivery: redo it with the same time, hence the same names.
            Some((delivered_at, false)) => delivered_at,
            None => {
                connection.execute(
                    "INSERT INTO delivered_segments (number, delivered_at) VALUES (?1, ?2)",
                    params![number as i64, now],
                )?;
                now
            }
        };

        let contents = read_segment(&path)?;
        // The indexer has usually indexed every event of the segment; then the few fields below
        // are all delivery reads of each record. Otherwise whole events are parsed, and the ones
        // the index lacks are indexed with the log files.
        let indexed = index::holds_segment(connection, number, contents.lines.len())?;
        let mut heads = Vec::with_capacity(contents.lines.len());
        let mut unindexed = Vec::new();
        for line in &contents.lines {
            if indexed {
                heads.push(serde_json::from_str::<Head<'_>>(line)?);
            } else {
                let event: Event = serde_json::from_str(line)?;
                heads.push(Head::of(&event));
                unindexed.push(IndexEntry::new(event));
            }
        }
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for (position, head) in heads.iter().enumerate() {
            if !is_safe_component(&head.account) || !is_safe_component(&head.region) {
                tracing::error!(
                    event_id = %head.event_id,
                    "skipping an audit event whose account or Region cannot name a directory"
                );
                continue;
            }
            groups
                .entry((&head.account, &head.region))
                .or_default()
                .push(position);
        }

        let mut delivered = Vec::new();
        for ((account, region), positions) in &groups {
            let mut content = String::from("{\"Records\":[");
            for (i, position) in positions.iter().enumerate() {
                if i > 0 {
                    content.push(',');
                }
                content.push_str(&contents.lines[*position]);
            }
            content.push_str("]}");
            let times = positions
                .iter()
                .map(|position| heads[*position].event_time.unix_timestamp());
            let oldest = times.clone().min().unwrap_or(delivered_at);
            let newest = times.max().unwrap_or(delivered_at);
            let key = log_file_key(account, region, delivered_at, number);
            write_once(self.root, &key, &gzip(content.as_bytes())?)?;
            delivered.push((
                key,
                (*account).to_owned(),
                (*region).to_owned(),
                sha256_hex(content.as_bytes()),
                oldest,
                newest,
            ));
        }

        let transaction = connection.transaction()?;
        for (key, account, region, hash, oldest, newest) in &delivered {
            transaction.execute(
                "INSERT OR IGNORE INTO undigested_log_files
                     (s3_object, account, region, hash, oldest_event, newest_event, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key, account, region, hash, oldest, newest, delivered_at],
            )?;
            transaction.execute(
                "INSERT OR IGNORE INTO digest_chains (account, region, start_time)
                 VALUES (?1, ?2, ?3)",
                params![account, region, delivered_at],
            )?;
        }
        drop(groups);
        index::insert_events(
            &transaction,
            unindexed
                .iter()
                .zip(
                    contents
                        .offsets
                        .iter()
                        .zip(&contents.lines)
                        .map(|(offset, line)| Location {
                            segment: number,
                            offset: *offset,
                            len: line.len() as u64,
                        }),
                ),
        )?;
        transaction.execute(
            "UPDATE delivered_segments SET done = 1 WHERE number = ?1",
            params![number as i64],
        )?;
        transaction.commit()?;
        keep_segment(self.journal_dir, number)?;
        Ok(delivered.len())
    }

    /// Writes the digests that are due (all of them when `force`), plus any a crash interrupted.
    ///
    /// Returns how many digests were written.
    pub(crate) fn emit_digests(
        &self,
        connection: &mut Connection,
        now: i64,
        force: bool,
    ) -> Result<usize, Error> {
        let chains: Vec<Chain> = {
            let mut statement = connection.prepare(
                "SELECT account, region, start_time, last_end, last_object, last_hash,
                        last_signature, pending_end
                 FROM digest_chains ORDER BY account, region",
            )?;
            statement
                .query_map([], |row| {
                    Ok(Chain {
                        account: row.get(0)?,
                        region: row.get(1)?,
                        start_time: row.get(2)?,
                        last_end: row.get(3)?,
                        last_object: row.get(4)?,
                        last_hash: row.get(5)?,
                        last_signature: row.get(6)?,
                        pending_end: row.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?
        };
        let mut written = 0;
        for chain in chains {
            let since = chain.last_end.unwrap_or(chain.start_time);
            let due = force || chain.pending_end.is_some() || now >= since + self.digest_interval;
            if !due {
                continue;
            }
            self.emit_digest(connection, &chain, now)?;
            written += 1;
        }
        Ok(written)
    }

    fn emit_digest(
        &self,
        connection: &mut Connection,
        chain: &Chain,
        now: i64,
    ) -> Result<(), Error> {
        let start = chain.last_end.unwrap_or(chain.start_time);
        // Fix the end time and the log files first, so a redo after a crash writes the same digest.
        let end = match chain.pending_end {
            Some(end) => end,
            None => {
                let end = now.max(start + 1);
                let transaction = connection.transaction()?;
                transaction.execute(
                    "UPDATE digest_chains SET pending_end = ?3 WHERE account = ?1 AND region = ?2",
                    params![chain.account, chain.region, end],
                )?;
                transaction.execute(
                    "UPDATE undigested_log_files SET digest_end = ?3
                     WHERE account = ?1 AND region = ?2 AND digest_end IS NULL",
                    params![chain.account, chain.region, end],
                )?;
                transaction.commit()?;
                end
            }
        };
        let log_files: Vec<(String, String, i64, i64)> = {
            let mut statement = connection.prepare(
                "SELECT s3_object, hash, oldest_event, newest_event FROM undigested_log_files
                 WHERE account = ?1 AND region = ?2 AND digest_end = ?3
                 ORDER BY delivered_at, s3_object",
            )?;
            statement
                .query_map(params![chain.account, chain.region, end], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?
        };

        let key = digest_key(&chain.account, &chain.region, end);
        let oldest = log_files.iter().map(|file| file.2).min();
        let newest = log_files.iter().map(|file| file.3).max();
        let has_previous = chain.last_object.is_some();
        let digest = DigestFile {
            aws_account_id: chain.account.clone(),
            digest_start_time: iso(start),
            digest_end_time: iso(end),
            digest_s3_bucket: self.bucket.to_owned(),
            digest_s3_object: key.clone(),
            digest_public_key_fingerprint: self.signer.fingerprint().to_owned(),
            digest_signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
            newest_event_time: newest.map(iso),
            oldest_event_time: oldest.map(iso),
            previous_digest_s3_bucket: has_previous.then(|| self.bucket.to_owned()),
            previous_digest_s3_object: chain.last_object.clone(),
            previous_digest_hash_value: chain.last_hash.clone(),
            previous_digest_hash_algorithm: has_previous.then(|| HASH_ALGORITHM.to_owned()),
            previous_digest_signature: chain.last_signature.clone(),
            log_files: log_files
                .iter()
                .map(|(object, hash, oldest, newest)| DigestLogFile {
                    s3_bucket: self.bucket.to_owned(),
                    s3_object: object.clone(),
                    hash_value: hash.clone(),
                    hash_algorithm: HASH_ALGORITHM.to_owned(),
                    newest_event_time: iso(*newest),
                    oldest_event_time: iso(*oldest),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&digest)?;
        let hash = sha256_hex(&bytes);
        let signature = self
            .signer
            .sign_hex(data_to_sign(&digest, &hash).as_bytes())?;
        let signature_file = serde_json::to_vec(&SignatureFile {
            signature: signature.clone(),
            signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
        })?;
        // The signature goes first, so a digest never exists without one.
        write_once(
            self.root,
            &format!("{key}{SIGNATURE_SUFFIX}"),
            &signature_file,
        )?;
        write_once(self.root, &key, &gzip(&bytes)?)?;

        let transaction = connection.transaction()?;
        transaction.execute(
            "UPDATE digest_chains
             SET last_end = ?3, last_object = ?4, last_hash = ?5, last_signature = ?6,
                 pending_end = NULL
             WHERE account = ?1 AND region = ?2",
            params![chain.account, chain.region, end, key, hash, signature],
        )?;
        transaction.execute(
            "DELETE FROM undigested_log_files WHERE account = ?1 AND region = ?2 AND digest_end = ?3",
            params![chain.account, chain.region, end],
        )?;
        transaction.commit()?;
        Ok(())
    }
}

/// A digest chain's state, one per account and Region.
struct Chain {
    account: String,
    region: String,
    start_time: i64,
    last_end: Option<i64>,
    last_object: Option<String>,
    last_hash: Option<String>,
    last_signature: Option<String>,
    pending_end: Option<i64>,
}

/// What delivery reads of a record: where its log file goes, and its time. Parsed from the record's
/// JSON without building the event (the fields not named here are skipped).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "recipientAccountId", borrow)]
    account: Cow<'a, str>,
    #[serde(rename = "awsRegion", borrow)]
    region: Cow<'a, str>,
    #[serde(rename = "eventTime", with = "timestamp")]
    event_time: OffsetDateTime,
    #[serde(rename = "eventID", borrow)]
    event_id: Cow<'a, str>,
}

impl<'a> Head<'a> {
    fn of(event: &Event) -> Head<'a> {
        Head {
            account: Cow::Owned(event.recipient_account_id.clone()),
            region: Cow::Owned(event.aws_region.clone()),
            event_time: event.event_time,
            event_id: Cow::Owned(event.event_id.clone()),
        }
    }
}

fn log_file_key(account: &str, region: &str, delivered_at: i64, segment: u64) -> String {
    let time = at(delivered_at);
    format!(
        "{}/{}/{account}_CloudTrail_{region}_{}_{}.json.gz",
        prefix(account, "CloudTrail", region),
        format_with(time, DATE_PATH),
        format_with(time, MINUTE_STAMP),
        file_suffix(account, region, segment),
    )
}

fn digest_key(account: &str, region: &str, end: i64) -> String {
    let time = at(end);
    format!(
        "{}/{}/{account}_CloudTrail-Digest_{region}_{TRAIL_NAME}_{region}_{}.json.gz",
        prefix(account, "CloudTrail-Digest", region),
        format_with(time, DATE_PATH),
        format_with(time, SECOND_STAMP),
    )
}

/// Sixteen letters and digits that look random, derived from the segment so a redo reuses them.
fn file_suffix(account: &str, region: &str, segment: u64) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let hash = sha256(format!("{segment}/{account}/{region}").as_bytes());
    hash[..16]
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn iso(seconds: i64) -> String {
    timestamp::format(at(seconds))
}

fn format_with(time: OffsetDateTime, format: &[BorrowedFormatItem<'_>]) -> String {
    time.format(format).unwrap_or_default()
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| Error::io("compress a log file", PathBuf::new(), e))
}

/// Writes `bytes` to `root/key` through a temporary file, unless the file is already there.
///
/// An existing file can only be the complete result of an interrupted, identical delivery,
/// because files appear by rename.
fn write_once(root: &Path, key: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = root.join(key);
    if path.exists() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(dir) => dir.to_path_buf(),
        None => root.to_path_buf(),
    };
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(|e| Error::io("create a delivery directory", &dir, e))?;
        // New directories must be durable too, or the file could vanish with them.
        let mut created = dir.as_path();
        while let Some(parent) = created.parent() {
            journal::sync_dir(parent)?;
            if parent == root {
                break;
            }
            created = parent;
        }
    }
    let mut tmp_name = path.clone().into_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::io("deliver", &path, e))?;
    journal::sync_dir(&dir)
}

/// Renames a delivered segment out of the journal, keeping it for LookupEvents until its events
/// expire (see [`crate::index::expire`]).
fn keep_segment(journal_dir: &Path, number: u64) -> Result<(), Error> {
    let path = segment_path(journal_dir, number);
    match fs::rename(&path, journal::kept_path(journal_dir, number)) {
        Ok(()) => journal::sync_dir(journal_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("keep a delivered journal segment", &path, e)),
    }
}
