//! The journal: where an event is durable before it is acknowledged, and the group-commit writer.
//!
//! The journal is a directory of numbered segment files.
//! Each write appends one frame holding every event that arrived while the previous flush was
//! running, and one `fdatasync` makes the whole frame durable; callers are acknowledged only after
//! it returns.
//! That is group commit: under load, hundreds of concurrent callers share one flush.
//!
//! A frame is `magic (4) | payload length (u32 LE) | first 8 bytes of SHA-256(payload) | payload`,
//! and the payload is one JSON event per line.
//! A crash can leave a torn frame only at the end of the last segment, and only for events nobody
//! was told were durable; recovery truncates it.
//!
//! The active segment is extended with zeros ahead of the frames (`PREALLOCATION_BYTES` at a time),
//! so each flush overwrites blocks that already exist and `fdatasync` has no file size to commit:
//! that halves its latency on ext4, and every caller waits for it. Zeros after the last frame are
//! preallocation, not a torn frame; recovery and sealing cut them off.
//!
//! Filling megabytes with zeros and flushing them takes milliseconds, and every caller would wait
//! for it. So while a segment is active, a helper thread prepares the next one as `N.prepared`:
//! created, filled with zeros (about as many as the last segment used, from `PREALLOCATION_BYTES`
//! up to `MAX_SEGMENT_BYTES`) and flushed. Rotation renames it to `N.journal`, and under steady
//! load the writer never zero-fills on the path of a request. A `.prepared` file holds no events;
//! one left by a crash or a shutdown is removed when the journal opens.
//!
//! **Invariant:** only the segment with the highest number is ever written; every lower one is
//! sealed (no preallocated tail) and may be delivered.
//!
//! A delivered segment is renamed from `N.journal` to `N.kept` and stays until every event in it
//! has outlived the LookupEvents retention: the query index stores where each event's JSON line
//! is (segment, byte offset, length), not the line itself, so the bytes are written to disk once.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::audit_log::IndexSender;
use crate::error::Error;
use crate::index::IndexEntry;
use crate::signing::sha256;

const FRAME_MAGIC: [u8; 4] = *b"SRJ1";
const FRAME_HEADER_LEN: usize = 16;
/// A batch stops growing at this size, so one huge burst cannot delay every caller behind it.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A segment is sealed once it grows past this size, even between deliveries.
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// How far ahead of its frames the active segment is filled with zeros.
pub(crate) const PREALLOCATION_BYTES: u64 = 8 * 1024 * 1024;
/// When the last flush carried at least this many callers, the writer waits [`GATHER_WAIT`] for
/// more before the next flush, once its queue is empty.
const GATHER_AFTER_BATCH: usize = 8;
/// How long a busy writer waits for more callers before it flushes. Under load this gives fewer,
/// larger flushes; on the benchmark machine it halved Encrypt's p99 with the trail on and did not
/// lower its rate (docs/PERFORMANCE.md, eighth session). A lightly loaded writer (small batches)
/// never waits, so a lone request's latency is unchanged.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// Whether the writer, whose last flush carried `last_batch` callers, waits for more.
pub(crate) fn gathers_after(last_batch: usize) -> bool {
    last_batch >= GATHER_AFTER_BATCH
}

/// A request to the writer thread.
pub(crate) enum Command {
    /// Append these serialised events and reply once they are durable.
    Append {
        records: Records,
        ack: oneshot::Sender<Result<(), Error>>,
    },
    /// Seal the active segment (if it holds anything) and reply with the new active number.
    Rotate {
        ack: oneshot::Sender<Result<u64, Error>>,
    },
}

/// Counters the writer keeps, shared with the audit log.
#[derive(Default)]
pub(crate) struct WriterStats {
    /// How many `fdatasync` calls the writer has made.
    pub(crate) fsyncs: AtomicU64,
    /// The number of the last batch whose callers were acknowledged.
    pub(crate) acked_batches: AtomicU64,
}

/// Events of one `record` call, serialised once: the journal, the index and delivery all use
/// these bytes.
pub(crate) struct Records {
    /// One JSON event per line.
    pub(crate) payload: Vec<u8>,
    /// Each event's index columns, and where its JSON line (without the newline) is in `payload`.
    pub(crate) entries: Vec<(IndexEntry, std::ops::Range<usize>)>,
}

impl Records {
    /// Each event's index entry with where its JSON line is, given that `payload` starts at byte
    /// `base` of segment `segment`.
    pub(crate) fn rows(
        &self,
        segment: u64,
        base: u64,
    ) -> impl Iterator<Item = (&IndexEntry, Location)> {
        self.entries.iter().map(move |(entry, range)| {
            (
                entry,
                Location {
                    segment,
                    offset: base + range.start as u64,
                    len: (range.end - range.start) as u64,
                },
            )
        })
    }
}

/// Where one event's JSON line is: a segment, a byte offset in it, and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// An acknowledged batch, on its way to the query index.
pub(crate) struct IndexBatch {
    pub(crate) number: u64,
    /// The segment the batch's frame was written to.
    pub(crate) segment: u64,
    /// Each `record` call's events, with the byte offset of its payload in the segment.
    pub(crate) records: Vec<(u64, Records)>,
}

pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.journal"))
}

/// Where the segment `number` is made ready before it becomes the active one.
pub(crate) fn prepared_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.prepared"))
}

/// Where a delivered segment is kept for LookupEvents.
pub(crate) fn kept_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.kept"))
}

/// The numbers of the delivered segments kept in `dir`, ascending.
pub(crate) fn list_kept(dir: &Path) -> Result<Vec<u64>, Error> {
    list_with_suffix(dir, ".kept")
}

/// Reads one event's JSON line, from the segment if it is still in the journal, or from its kept
/// copy once delivered. `None` when neither holds it any more (expired).
pub(crate) fn read_line(dir: &Path, location: Location) -> Result<Option<String>, Error> {
    let len = usize::try_from(location.len).unwrap_or(usize::MAX);
    // Delivery may rename the file between the two attempts, so the journal name is tried first.
    for path in [
        segment_path(dir, location.segment),
        kept_path(dir, location.segment),
    ] {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read an audit record", &path, e)),
        };
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, location.offset)
            .map_err(|e| Error::io("read an audit record", &path, e))?;
        return match String::from_utf8(bytes) {
            Ok(line) => Ok(Some(line)),
            Err(_) => Err(Error::io(
                "read an audit record",
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
            )),
        };
    }
    Ok(None)
}

/// The numbers of the segments in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, Error> {
    list_with_suffix(dir, ".journal")
}

fn list_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<u64>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list the journal", dir, e))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list the journal", dir, e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_suffix(suffix))
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(number) = number {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The event lines of a segment, and the length of its valid prefix.
pub(crate) struct SegmentContents {
    pub(crate) lines: Vec<String>,
    /// The byte offset of each line in the segment.
    pub(crate) offsets: Vec<u64>,
    pub(crate) valid_len: u64,
    pub(crate) file_len: u64,
    /// Whether anything but preallocated zeros follows the last intact frame.
    pub(crate) torn: bool,
}

/// Reads every whole, intact frame of a segment; reading stops at the first torn or corrupt one.
pub(crate) fn read_segment(path: &Path) -> Result<SegmentContents, Error> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("read a journal segment", path, e))?;
    let mut lines = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = 0;
    while let Some(payload) = frame_at(&bytes, offset) {
        let mut line_start = offset + FRAME_HEADER_LEN;
        for line in payload.split(|byte| *byte == b'\n') {
            let at = line_start;
            line_start += line.len() + 1;
            if line.is_empty() {
                continue;
            }
            // A frame with a valid checksum holds the UTF-8 JSON the writer put there.
            lines.push(String::from_utf8_lossy(line).into_owned());
            offsets.push(at as u64);
        }
        offset += FRAME_HEADER_LEN + payload.len();
    }
    let torn = bytes[offset..].iter().any(|byte| *byte != 0);
    Ok(SegmentContents {
        lines,
        offsets,
        valid_len: offset as u64,
        file_len: bytes.len() as u64,
        torn,
    })
}

fn frame_at(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    let header = bytes.get(offset..offset + FRAME_HEADER_LEN)?;
    if header[..4] != FRAME_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let start = offset + FRAME_HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    match sha256(payload)[..8] == header[8..16] {
        true => Some(payload),
        false => None,
    }
}

/// Fills in the header of `frame`, whose payload follows `FRAME_HEADER_LEN` reserved bytes.
fn seal_frame(frame: &mut [u8]) {
    let (header, payload) = frame.split_at_mut(FRAME_HEADER_LEN);
    header[..4].copy_from_slice(&FRAME_MAGIC);
    // Batches are capped far below 4 GiB, so the length fits.
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&sha256(payload)[..8]);
}

/// Truncates torn tails left by a crash, removes prepared segments nobody used, and returns the
/// segment numbers found.
pub(crate) fn recover(dir: &Path) -> Result<Vec<u64>, Error> {
    for number in list_with_suffix(dir, ".prepared")? {
        let path = prepared_path(dir, number);
        fs::remove_file(&path)
            .map_err(|e| Error::io("remove an unused prepared segment", &path, e))?;
    }
    let numbers = list_segments(dir)?;
    for number in &numbers {
        let path = segment_path(dir, *number);
        let contents = read_segment(&path)?;
        if contents.valid_len < contents.file_len {
            if contents.torn {
                tracing::warn!(
                    segment = %path.display(),
                    dropped_bytes = contents.file_len - contents.valid_len,
                    "truncating a torn journal frame left by a crash; its events were never acknowledged"
                );
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open a journal segment", &path, e))?;
            file.set_len(contents.valid_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("truncate a journal segment", &path, e))?;
        }
    }
    Ok(numbers)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::io("flush a directory", dir, e))
}

/// The writer thread's state: the active segment and what it has acknowledged.
pub(crate) struct Writer {
    dir: PathBuf,
    active_number: u64,
    active: File,
    active_len: u64,
    /// How far the active segment has been filled with zeros ahead of its frames.
    active_allocated: u64,
    active_since: Instant,
    max_age: std::time::Duration,
    stats: Arc<WriterStats>,
    /// Where acknowledged batches go to be indexed.
    index: IndexSender,
    /// The frame being built, reused from batch to batch.
    frame: Vec<u8>,
    failed: bool,
    /// The helper thread preparing segment `active_number + 1`, when one was started.
    next: Option<std::thread::JoinHandle<std::io::Result<Prepared>>>,
}

/// A segment file filled with zeros and flushed, under its `.prepared` name.
struct Prepared {
    file: File,
    allocated: u64,
}

impl Writer {
    /// Creates the active segment `first_number`, which must not exist yet.
    pub(crate) fn start(
        dir: &Path,
        first_number: u64,
        max_age: std::time::Duration,
        stats: Arc<WriterStats>,
        index: IndexSender,
    ) -> Result<Writer, Error> {
        let active = create_segment(dir, first_number)?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            active_number: first_number,
            active,
            active_len: 0,
            active_allocated: 0,
            active_since: Instant::now(),
            max_age,
            stats,
            index,
            frame: Vec::with_capacity(64 * 1024),
            failed: false,
            next: None,
        };
        writer.prepare_next(prepared_size(0));
        Ok(writer)
    }

    /// Starts preparing segment `active_number + 1` with `size` bytes of zeros, on a helper thread.
    fn prepare_next(&mut self, size: u64) {
        let path = prepared_path(&self.dir, self.active_number + 1);
        let spawned = std::thread::Builder::new()
            .name("audit-prepare".to_owned())
            .spawn(move || prepare_segment(&path, size));
        match spawned {
            Ok(handle) => self.next = Some(handle),
            // Rotation then creates the segment itself, as it would without a helper.
            Err(error) => {
                tracing::warn!("could not start preparing the next journal segment: {error}")
            }
        }
    }

    /// The file for segment `number` (`active_number + 1`) and how much of it is allocated: the
    /// prepared one, renamed into place, or else a new empty file.
    fn take_next(&mut self, number: u64) -> Result<(File, u64), Error> {
        let prepared = prepared_path(&self.dir, number);
        let outcome = match self.next.take().map(|handle| handle.join()) {
            None => return Ok((create_segment(&self.dir, number)?, 0)),
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(std::io::Error::other("the preparing thread panicked")),
        };
        match outcome {
            Ok(next) => {
                let path = segment_path(&self.dir, number);
                fs::rename(&prepared, &path)
                    .map_err(|e| Error::io("rename a prepared journal segment", &path, e))?;
                // The new name must survive a crash, or a later frame could land in a file that vanishes.
                sync_dir(&self.dir)?;
                Ok((next.file, next.allocated))
            }
            Err(error) => {
                tracing::warn!(
                    segment = %prepared.display(),
                    "could not prepare the next journal segment, creating it now: {error}"
                );
                let _ = fs::remove_file(&prepared);
                Ok((create_segment(&self.dir, number)?, 0))
            }
        }
    }

    /// Waits for the helper thread and removes the segment it prepared, which holds no events.
    fn discard_next(&mut self) {
        if let Some(handle) = self.next.take() {
            let _ = handle.join();
            let _ = fs::remove_file(prepared_path(&self.dir, self.active_number + 1));
        }
    }

    /// Serves commands until every sender is gone.
    ///
    /// Each turn takes every command already queued, so the callers that arrived during the last
    /// flush share the next one. After a large batch it also waits briefly for more (see
    /// [`GATHER_WAIT`]).
    pub(crate) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch_number = 0;
        let mut last_batch = 0;
        while let Some(first) = commands.blocking_recv() {
            // One buffer per batch: the frame header, then every caller's lines.
            let mut frame = std::mem::take(&mut self.frame);
            frame.clear();
            frame.resize(FRAME_HEADER_LEN, 0);
            let mut records: Vec<(u64, Records)> = Vec::new();
            let mut acks = Vec::new();
            let mut rotations = Vec::new();
            let mut next = Some(first);
            let mut gather = gathers_after(last_batch);
            while let Some(command) = next.take() {
                match command {
                    Command::Append {
                        records: batch,
                        ack,
                    } => {
                        // Relative to the frame for now; made absolute once the frame is placed.
                        let start = frame.len() as u64;
                        let mut batch = batch;
                        frame.extend_from_slice(&batch.payload);
                        // The index needs only where the lines are, not the bytes.
                        batch.payload = Vec::new();
                        records.push((start, batch));
                        acks.push(ack);
                    }
                    Command::Rotate { ack } => rotations.push(ack),
                }
                if frame.len() < FRAME_HEADER_LEN + MAX_BATCH_BYTES {
                    next = commands.try_recv().ok();
                    if next.is_none() && std::mem::take(&mut gather) {
                        std::thread::sleep(GATHER_WAIT);
                        next = commands.try_recv().ok();
                    }
                }
            }
            last_batch = acks.len();
            if !acks.is_empty() {
                batch_number += 1;
                let (segment, frame_start) = (self.active_number, self.active_len);
                for (start, _) in &mut records {
                    *start += frame_start;
                }
                let outcome = self.append(&mut frame);
                match outcome {
                    Ok(()) => {
                        // The index is a convenience; a lost batch is re-indexed at delivery.
                        // Queued before the batch counts as acknowledged, so a lookup that sees the
                        // new count and then asks the indexer to catch up finds the batch queued
                        // (or already being indexed). Queuing wakes the indexer only now and then.
                        self.index.push(IndexBatch {
                            number: batch_number,
                            segment,
                            records,
                        });
                        self.stats
                            .acked_batches
                            .store(batch_number, Ordering::Release);
                        for ack in acks {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Err(error) => {
                        tracing::error!("failed to append to the audit journal: {error}");
                        for ack in acks {
                            let _ = ack.send(Err(Error::JournalFailed));
                        }
                    }
                }
            }
            self.frame = frame;
            let due = self.active_len > 0
                && (self.active_len >= MAX_SEGMENT_BYTES
                    || self.active_since.elapsed() >= self.max_age);
            if !rotations.is_empty() || due {
                let outcome = self.rotate();
                if let Err(error) = &outcome {
                    tracing::error!("failed to seal an audit journal segment: {error}");
                }
                for ack in rotations {
                    let reply = match &outcome {
                        Ok(number) => Ok(*number),
                        Err(_) => Err(Error::JournalFailed),
                    };
                    let _ = ack.send(reply);
                }
            }
        }
        self.discard_next();
    }

    /// Writes `frame` (header space plus payload) and flushes it.
    fn append(&mut self, frame: &mut [u8]) -> Result<(), Error> {
        if self.failed {
            return Err(Error::JournalFailed);
        }
        seal_frame(frame);
        let path = segment_path(&self.dir, self.active_number);
        let end = self.active_len + frame.len() as u64;
        let outcome = self
            .preallocate(end)
            .and_then(|()| self.active.write_all_at(frame, self.active_len))
            .and_then(|()| self.active.sync_data());
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                self.active_len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                // After a failed write or flush the file's state is unknown: stop acknowledging.
                self.failed = true;
                Err(Error::io("append to the audit journal", path, e))
            }
        }
    }

    /// Makes sure the active segment is allocated up to `end`, extending it with zeros and
    /// flushing the new size when it is not.
    fn preallocate(&mut self, end: u64) -> std::io::Result<()> {
        if end <= self.active_allocated {
            return Ok(());
        }
        let target = end.max(self.active_allocated + PREALLOCATION_BYTES);
        let zeros = vec![0u8; 1024 * 1024];
        let mut at = self.active_allocated;
        while at < target {
            let len = (target - at).min(zeros.len() as u64) as usize;
            self.active.write_all_at(&zeros[..len], at)?;
            at += len as u64;
        }
        self.active.sync_all()?;
        self.active_allocated = target;
        Ok(())
    }

    fn rotate(&mut self) -> Result<u64, Error> {
        if self.failed {
            return Err(Error::JournalFailed);
        }
        if self.active_len == 0 {
            return Ok(self.active_number);
        }
        // A sealed segment ends with its last frame.
        let path = segment_path(&self.dir, self.active_number);
        let next = self.active_number + 1;
        let switched = self
            .active
            .set_len(self.active_len)
            .and_then(|()| self.active.sync_all())
            .map_err(|e| Error::io("seal a journal segment", &path, e))
            .and_then(|()| self.take_next(next));
        let (active, allocated) = match switched {
            Ok(switched) => switched,
            Err(error) => {
                // Half a rotation (a sealed segment still active, or a next segment already named)
                // would break the invariant above: stop acknowledging, as after a failed flush.
                self.failed = true;
                return Err(error);
            }
        };
        // The next segment is prepared as large as this one grew, so that under steady load the
        // writer never extends a segment itself.
        let size = prepared_size(self.active_len);
        self.active = active;
        self.active_number = next;
        self.active_len = 0;
        self.active_allocated = allocated;
        self.active_since = Instant::now();
        self.prepare_next(size);
        Ok(next)
    }
}

/// How many bytes of zeros to prepare for the segment after one that grew to `previous` bytes:
/// the next power of two, from `PREALLOCATION_BYTES` to `MAX_SEGMENT_BYTES`, plus room for the
/// frame that carries a segment past its size limit.
pub(crate) fn prepared_size(previous: u64) -> u64 {
    previous
        .next_power_of_two()
        .clamp(PREALLOCATION_BYTES, MAX_SEGMENT_BYTES)
        + PREALLOCATION_BYTES / 8
}

/// Creates `path` (replacing a leftover), fills it with `size` zeros and flushes it.
fn prepare_segment(path: &Path, size: u64) -> std::io::Result<Prepared> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; 1024 * 1024];
    let mut at = 0;
    while at < size {
        let len = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..len], at)?;
        at += len as u64;
    }
    file.sync_all()?;
    Ok(Prepared {
        file,
        allocated: size,
    })
}

fn create_segment(dir: &Path, number: u64) -> Result<File, Error> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create a journal segment", &path, e))?;
    // The new name must survive a crash, or a later frame could land in a file that vanishes.
    sync_dir(dir)?;
    Ok(file)
}
