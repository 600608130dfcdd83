//! Log file integrity validation, in the manner of `aws cloudtrail validate-logs`.
//!
//! Validation starts at the newest digest in the requested range and walks the chain backwards
//! through each digest's `previousDigestS3Object`.
//! A digest is valid when it is where it says it is, its public key is one of the given keys, its
//! signature verifies, and its hash and signature match what the next digest recorded.
//! Every log file a valid digest lists must exist and hash to the recorded value.
//! Beyond what the CLI checks, log files that no digest lists are reported, as are digests that
//! are in the range but not on the chain; both are signs of files added after delivery.
//!
//! A limit shared with CloudTrail: deleting the newest digests (and their log files) leaves a
//! shorter chain that is still valid.
//! Their absence shows only against an expectation, such as the digest interval.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use time::{Duration, OffsetDateTime};

use crate::delivery::{
    DigestFile, SIGNATURE_SUFFIX, SignatureFile, data_to_sign, parse_digest_time,
    parse_log_file_time, prefix,
};
use crate::event::timestamp;
use crate::signing::{SIGNATURE_ALGORITHM, fingerprint, sha256_hex, verify_signature};

/// The result of validating one account's trail in one Region over a time range.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// The start of the range asked for.
    pub requested_start: OffsetDateTime,
    /// The end of the range asked for.
    pub requested_end: OffsetDateTime,
    /// The range the valid digests actually cover, if any digest was valid.
    pub found: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Every digest examined, newest first.
    pub digests: Vec<DigestCheck>,
    /// Every log file examined.
    pub log_files: Vec<LogFileCheck>,
}

/// The verdict on one digest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestCheck {
    /// The digest's path under the audit directory.
    pub key: String,
    /// What was found.
    pub outcome: DigestOutcome,
}

/// What validation found for a digest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestOutcome {
    /// Signed by a known key, in place, and linked to its neighbours.
    Valid,
    /// The chain names this digest but it is gone.
    NotFound,
    /// It is not a gzip JSON digest.
    InvalidFormat,
    /// Its contents name another location: it was moved, copied or swapped.
    Moved,
    /// It was signed by a key that is not among the trusted public keys.
    UnknownPublicKey(String),
    /// Its signature does not verify: the digest or its signature was modified or forged.
    BadSignature,
    /// It verifies, but its hash or signature differs from what the next digest recorded.
    ChainBroken,
    /// It is in the range but no newer digest links to it.
    NotInChain,
}

/// The verdict on one log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFileCheck {
    /// The log file's path under the audit directory.
    pub key: String,
    /// What was found.
    pub outcome: LogFileOutcome,
}

/// What validation found for a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFileOutcome {
    /// Its hash matches its digest.
    Valid,
    /// Its hash differs from its digest: it was modified.
    Modified,
    /// A digest lists it but it is gone.
    NotFound,
    /// It is not a gzip file.
    InvalidFormat,
    /// No digest lists it although it is older than the newest digest: it was added later.
    NotInAnyDigest,
    /// It was delivered after the newest digest, whose successor will list it.
    AwaitingDigest,
}

impl VerifyReport {
    /// Whether everything examined is intact.
    pub fn is_ok(&self) -> bool {
        self.digests
            .iter()
            .all(|check| check.outcome == DigestOutcome::Valid)
            && self.log_files.iter().all(|check| {
                matches!(
                    check.outcome,
                    LogFileOutcome::Valid | LogFileOutcome::AwaitingDigest
                )
            })
    }
}

/// Validates the trail of `account` in `region` for digests ending between `start` and `end`.
///
/// `dir` is the audit directory and `public_keys` are the trusted digest keys as DER
/// `RSAPublicKey`s, as [`crate::AuditLog::public_key_der`] returns them.
pub fn verify(
    dir: &Path,
    account: &str,
    region: &str,
    start: OffsetDateTime,
    end: OffsetDateTime,
    public_keys: &[Vec<u8>],
) -> VerifyReport {
    let keys: HashMap<String, &[u8]> = public_keys
        .iter()
        .map(|der| (fingerprint(der), der.as_slice()))
        .collect();
    let all_digests = list_files(dir, &prefix(account, "CloudTrail-Digest", region), |name| {
        parse_digest_time(name, account, region)
    });
    let newest_digest = all_digests.last().map(|(time, _)| *time);

    // Every digest on disk, valid or not, counts for "is this log file listed anywhere".
    let mut listed: HashSet<String> = HashSet::new();
    for (_, key) in &all_digests {
        if let Ok(loaded) = load_digest(dir, key) {
            listed.extend(
                loaded
                    .digest
                    .log_files
                    .into_iter()
                    .map(|file| file.s3_object),
            );
        }
    }

    let spill_over = end + Duration::hours(1);
    let mut remaining: BTreeSet<(OffsetDateTime, String)> = all_digests
        .into_iter()
        .filter(|(time, _)| *time >= start && *time <= spill_over)
        .collect();

    let mut digests = Vec::new();
    let mut valid_digests = Vec::new();
    let mut found: Option<(OffsetDateTime, OffsetDateTime)> = None;
    let mut visited: HashSet<String> = HashSet::new();
    let mut next = remaining.pop_last().map(|(_, key)| (key, None));
    while let Some((key, link)) = next.take() {
        if !visited.insert(key.clone()) {
            break;
        }
        let key_time = key
            .rsplit('/')
            .next()
            .and_then(|name| parse_digest_time(name, account, region));
        let mut follow = None;
        let mut reached_start = false;
        let outcome = match load_digest(dir, &key) {
            Err(outcome) => outcome,
            Ok(loaded) => {
                let outcome = check_digest(&loaded, &key, account, &keys, link.as_ref());
                if outcome == DigestOutcome::Valid {
                    let digest_start = timestamp::parse(&loaded.digest.digest_start_time);
                    let digest_end = timestamp::parse(&loaded.digest.digest_end_time);
                    if let (Some(digest_start), Some(digest_end)) = (digest_start, digest_end) {
                        let found_start = digest_start.max(start);
                        found = Some(match found {
                            Some((_, found_end)) => (found_start, found_end),
                            None => (found_start, digest_end.min(end)),
                        });
                        reached_start = digest_start < start;
                    }
                    follow = loaded
                        .digest
                        .previous_digest_s3_object
                        .clone()
                        .map(|previous| {
                            (
                                previous,
                                Some(Link {
                                    hash: loaded.digest.previous_digest_hash_value.clone(),
                                    signature: loaded.digest.previous_digest_signature.clone(),
                                }),
                            )
                        });
                    valid_digests.push(loaded.digest);
                }
                outcome
            }
        };
        digests.push(DigestCheck { key, outcome });
        if reached_start {
            break;
        }
        next = match follow {
            Some(previous) => Some(previous),
            // Without a trustworthy link, carry on with the next older digest on disk.
            None => match key_time {
                Some(key_time) => take_older(&mut remaining, key_time, &mut visited, &mut digests),
                None => remaining.pop_last().map(|(_, key)| (key, None)),
            },
        };
    }
    for (_, key) in remaining {
        if !visited.contains(&key) {
            digests.push(DigestCheck {
                key,
                outcome: DigestOutcome::NotInChain,
            });
        }
    }

    let mut log_files = Vec::new();
    let mut checked: HashSet<String> = HashSet::new();
    for digest in &valid_digests {
        for file in &digest.log_files {
            if checked.insert(file.s3_object.clone()) {
                log_files.push(LogFileCheck {
                    key: file.s3_object.clone(),
                    outcome: check_log_file(dir, &file.s3_object, &file.hash_value),
                });
            }
        }
    }
    let window_start = start - Duration::seconds(i64::from(start.second()));
    // Log file names carry only the minute, so a file named in the newest digest's minute may
    // predate it; such a file counts as unlisted, which errs towards reporting.
    let newest_digest_minute =
        newest_digest.map(|time| time - Duration::seconds(i64::from(time.second())));
    for (time, key) in list_files(dir, &prefix(account, "CloudTrail", region), |name| {
        parse_log_file_time(name, account, region)
    }) {
        if time < window_start || time > end || listed.contains(&key) || checked.contains(&key) {
            continue;
        }
        let outcome = match newest_digest_minute {
            Some(minute) if time > minute => LogFileOutcome::AwaitingDigest,
            _ => LogFileOutcome::NotInAnyDigest,
        };
        log_files.push(LogFileCheck { key, outcome });
    }

    VerifyReport {
        requested_start: start,
        requested_end: end,
        found,
        digests,
        log_files,
    }
}

/// What a newer digest recorded about its predecessor.
struct Link {
    hash: Option<String>,
    signature: Option<String>,
}

struct LoadedDigest {
    digest: DigestFile,
    raw: Vec<u8>,
    signature: Option<SignatureFile>,
}

fn load_digest(dir: &Path, key: &str) -> Result<LoadedDigest, DigestOutcome> {
    let path = dir.join(key);
    let compressed = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DigestOutcome::NotFound),
        Err(_) => return Err(DigestOutcome::InvalidFormat),
    };
    let raw = gunzip(&compressed).ok_or(DigestOutcome::InvalidFormat)?;
    let digest: DigestFile =
        serde_json::from_slice(&raw).map_err(|_| DigestOutcome::InvalidFormat)?;
    let mut signature_path = path.into_os_string();
    signature_path.push(SIGNATURE_SUFFIX);
    let signature = fs::read(signature_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    Ok(LoadedDigest {
        digest,
        raw,
        signature,
    })
}

fn check_digest(
    loaded: &LoadedDigest,
    key: &str,
    account: &str,
    keys: &HashMap<String, &[u8]>,
    link: Option<&Link>,
) -> DigestOutcome {
    let digest = &loaded.digest;
    if digest.digest_s3_object != key || digest.aws_account_id != account {
        return DigestOutcome::Moved;
    }
    let public_key = match keys.get(&digest.digest_public_key_fingerprint) {
        Some(public_key) => *public_key,
        None => {
            return DigestOutcome::UnknownPublicKey(digest.digest_public_key_fingerprint.clone());
        }
    };
    let signature = match &loaded.signature {
        Some(signature) if signature.signature_algorithm == SIGNATURE_ALGORITHM => signature,
        _ => return DigestOutcome::BadSignature,
    };
    let hash = sha256_hex(&loaded.raw);
    let message = data_to_sign(digest, &hash);
    if !verify_signature(public_key, message.as_bytes(), &signature.signature) {
        return DigestOutcome::BadSignature;
    }
    match link {
        Some(link)
            if link.hash.as_deref() != Some(hash.as_str())
                || link.signature.as_deref() != Some(signature.signature.as_str()) =>
        {
            DigestOutcome::ChainBroken
        }
        _ => DigestOutcome::Valid,
    }
}

/// The next older digest on disk than `before`; newer ones left unvisited are off the chain.
fn take_older(
    remaining: &mut BTreeSet<(OffsetDateTime, String)>,
    before: OffsetDateTime,
    visited: &mut HashSet<String>,
    digests: &mut Vec<DigestCheck>,
) -> Option<(String, Option<Link>)> {
    while let Some((time, key)) = remaining.pop_last() {
        if visited.contains(&key) {
            continue;
        }
        if time >= before {
            visited.insert(key.clone());
            digests.push(DigestCheck {
                key,
                outcome: DigestOutcome::NotInChain,
            });
            continue;
        }
        return Some((key, None));
    }
    None
}

fn check_log_file(dir: &Path, key: &str, expected_hash: &str) -> LogFileOutcome {
    let compressed = match fs::read(dir.join(key)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LogFileOutcome::NotFound,
        Err(_) => return LogFileOutcome::InvalidFormat,
    };
    match gunzip(&compressed) {
        Some(content) if sha256_hex(&content) == expected_hash => LogFileOutcome::Valid,
        Some(_) => LogFileOutcome::Modified,
        None => LogFileOutcome::InvalidFormat,
    }
}

fn gunzip(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(compressed).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Files under `dir/prefix` whose names `parse` accepts, as (time, key), oldest first.
fn list_files(
    dir: &Path,
    prefix: &str,
    parse: impl Fn(&str) -> Option<OffsetDateTime>,
) -> Vec<(OffsetDateTime, String)> {
    let mut found = Vec::new();
    let mut pending = vec![prefix.to_owned()];
    while let Some(relative) = pending.pop() {
        let entries = match fs::read_dir(dir.join(&relative)) {
            Ok(entries) => entries,
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = format!("{relative}/{name}");
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(key),
                Ok(_) => {
                    if let Some(time) = parse(&name) {
                        found.push((time, key));
                    }
                }
                Err(_) => {}
            }
        }
    }
    found.sort();
    found
}

impl fmt::Display for VerifyReport {
    /// Writes the report the way `aws cloudtrail validate-logs` does: problems, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut problems = false;
        for check in &self.digests {
            let reason = match &check.outcome {
                DigestOutcome::Valid => continue,
                DigestOutcome::NotFound => "not found".to_owned(),
                DigestOutcome::InvalidFormat => "invalid format".to_owned(),
                DigestOutcome::Moved => "has been moved from its original location".to_owned(),
                DigestOutcome::UnknownPublicKey(fingerprint) => {
                    format!("public key not found for fingerprint {fingerprint}")
                }
                DigestOutcome::BadSignature => "signature verification failed".to_owned(),
                DigestOutcome::ChainBroken => {
                    "hash or signature doesn't match the next digest's record of it".to_owned()
                }
                DigestOutcome::NotInChain => "not part of the digest chain".to_owned(),
            };
            writeln!(f, "Digest file\t{}\tINVALID: {reason}", check.key)?;
            problems = true;
        }
        let mut awaiting = 0;
        for check in &self.log_files {
            let reason = match check.outcome {
                LogFileOutcome::Valid => continue,
                LogFileOutcome::AwaitingDigest => {
                    awaiting += 1;
                    continue;
                }
                LogFileOutcome::Modified => "hash value doesn't match",
                LogFileOutcome::NotFound => "not found",
                LogFileOutcome::InvalidFormat => "invalid format",
                LogFileOutcome::NotInAnyDigest => "not listed in any digest",
            };
            writeln!(f, "Log file\t{}\tINVALID: {reason}", check.key)?;
            problems = true;
        }
        if problems {
            writeln!(f)?;
        }
        writeln!(
            f,
            "Results requested for {} to {}",
            timestamp::format(self.requested_start),
            timestamp::format(self.requested_end)
        )?;
        if self.digests.is_empty() && self.log_files.is_empty() {
            return writeln!(f, "No digests found");
        }
        match self.found {
            Some((found_start, found_end)) => writeln!(
                f,
                "Results found for {} to {}:",
                timestamp::format(found_start),
                timestamp::format(found_end)
            )?,
            None => writeln!(f, "No valid digests found in range")?,
        }
        writeln!(f)?;
        let valid_digests = self
            .digests
            .iter()
            .filter(|check| check.outcome == DigestOutcome::Valid)
            .count();
        write_ratio(f, valid_digests, self.digests.len(), "digest")?;
        let counted = self.log_files.len() - awaiting;
        let valid_logs = self
            .log_files
            .iter()
            .filter(|check| check.outcome == LogFileOutcome::Valid)
            .count();
        write_ratio(f, valid_logs, counted, "log")?;
        if awaiting > 0 {
            writeln!(f, "{awaiting} log files not yet listed in a digest")?;
        }
        Ok(())
    }
}

fn write_ratio(f: &mut fmt::Formatter<'_>, valid: usize, total: usize, name: &str) -> fmt::Result {
    if total == 0 {
        return Ok(());
    }
    write!(f, "{valid}/{total} {name} files valid")?;
    if valid < total {
        write!(f, ", {}/{total} {name} files INVALID", total - valid)?;
    }
    writeln!(f)
}
