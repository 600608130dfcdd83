//! The audit log: the one handle the server holds, tying journal, delivery and index together.
//!
//! Three threads of work sit behind it: the journal writer (group commit), the indexer (feeds
//! LookupEvents), and a periodic delivery task that seals segments, writes log files and digests,
//! and expires old index rows.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::delivery::{Delivery, is_safe_component};
use crate::error::Error;
use crate::event::Event;
use crate::index::{self, IndexEntry};
use crate::journal::{self, Command, IndexBatch, Records, Writer, WriterStats};
use crate::lookup::{self, LookupPage, LookupQuery};
use crate::signing::SigningKey;

/// How many record calls may wait for the writer before callers are slowed down.
const COMMAND_QUEUE: usize = 4096;
/// The largest batch one `record` call may hand the journal.
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// How long `open` waits for a previous audit log on the same directory to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Where the audit log lives and how it delivers.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The audit directory: journal, index, and the delivered `AWSLogs/` tree.
    pub dir: PathBuf,
    /// How long LookupEvents can see an event; CloudTrail keeps 90 days.
    pub retention: Duration,
    /// How often sealed events become log files; CloudTrail delivers about every 5 minutes.
    pub file_window: Duration,
    /// How often each account and Region gets a digest; CloudTrail writes one an hour.
    pub digest_interval: Duration,
    /// The RSA key that signs digests, created with mode 0600 on first use.
    pub signing_key_path: PathBuf,
    /// The bucket name written into digests, as if the files lived in S3.
    pub bucket: String,
}

/// A durable, CloudTrail-shaped audit trail.
///
/// Cloning is cheap and shares one trail.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    ticker: JoinHandle<()>,
}

struct Shared {
    config: AuditConfig,
    journal_dir: PathBuf,
    commands: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
    indexed: watch::Receiver<u64>,
    /// Asks the indexer to catch up now rather than on its own schedule.
    index: IndexSender,
    signer: SigningKey,
    /// Delivery and expiry; holding it serialises deliveries.
    control: Mutex<Connection>,
    /// Lookups, so they do not wait behind a delivery.
    reader: Mutex<Connection>,
    /// Held locked for the audit log's lifetime: two writers would interleave one journal.
    _lock: std::fs::File,
}

impl AuditConfig {
    /// A configuration with CloudTrail's defaults: 90 days, 5-minute files, hourly digests.
    pub fn new(dir: impl Into<PathBuf>, signing_key_path: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            dir: dir.into(),
            retention: Duration::from_secs(90 * 24 * 60 * 60),
            file_window: Duration::from_secs(5 * 60),
            digest_interval: Duration::from_secs(60 * 60),
            signing_key_path: signing_key_path.into(),
            bucket: String::from("strongroom-audit"),
        }
    }
}

impl AuditLog {
    /// Opens the audit log in `config.dir`, recovering and delivering whatever a crash left.
    ///
    /// Must run inside a Tokio runtime, which hosts the periodic delivery task.
    pub async fn open(config: AuditConfig) -> Result<AuditLog, Error> {
        if config.file_window.is_zero() || config.digest_interval.is_zero() {
            return Err(Error::InvalidConfig(
                "the file window and digest interval must be positive",
            ));
        }
        if config.bucket.is_empty() {
            return Err(Error::InvalidConfig("the bucket name must not be empty"));
        }
        let file_window = config.file_window;
        let shared = tokio::task::spawn_blocking(move || open_blocking(config))
            .await
            .map_err(|_| Error::Closed)??;
        let shared = Arc::new(shared);
        let ticker = tokio::spawn(deliver_periodically(Arc::clone(&shared), file_window));
        Ok(AuditLog {
            inner: Arc::new(Inner { shared, ticker }),
        })
    }

    /// Records events, returning only once they are durable on disk.
    ///
    /// Concurrent callers share one journal flush (group commit), so the cost of durability is
    /// paid per batch rather than per event.
    /// A cross-account event is recorded once for each account involved.
    pub async fn record(&self, events: Vec<Event>) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut copies = Vec::with_capacity(events.len());
        for event in events {
            copies.extend(event.into_recipient_copies());
        }
        for copy in &copies {
            // Both name directories of the delivered tree.
            if !is_safe_component(&copy.recipient_account_id) {
                return Err(Error::InvalidEvent(
                    "the recipient account must be letters, digits and dashes",
                ));
            }
            if !is_safe_component(&copy.aws_region) {
                return Err(Error::InvalidEvent(
                    "the Region must be letters, digits and dashes",
                ));
            }
        }
        // Each event is serialised exactly once; the index and delivery reuse these bytes.
        let mut payload = Vec::with_capacity(copies.len() * 1536);
        let mut entries = Vec::with_capacity(copies.len());
        for event in copies {
            let start = payload.len();
            serde_json::to_writer(&mut payload, &event)?;
            let end = payload.len();
            payload.push(b'\n');
            entries.push((IndexEntry::new(event), start..end));
        }
        if payload.len() > MAX_RECORD_BYTES {
            return Err(Error::InvalidEvent("the events are larger than 16 MiB"));
        }
        let (ack, acked) = oneshot::channel();
        self.inner
            .shared
            .commands
            .send(Command::Append {
                records: Records { payload, entries },
                ack,
            })
            .await
            .map_err(|_| Error::Closed)?;
        acked.await.map_err(|_| Error::Closed)?
    }

    /// Delivers everything recorded so far and writes a digest for every account and Region now.
    ///
    /// The periodic task does the same on its schedule; this is for tests and for shutdown.
    pub async fn flush_now(&self) -> Result<(), Error> {
        self.inner.shared.deliver(true).await
    }

    /// Runs a LookupEvents query for `account`, newest events first.
    ///
    /// Sees every event whose `record` call has returned.
    pub async fn lookup(&self, account: &str, query: LookupQuery) -> Result<LookupPage, Error> {
        let shared = Arc::clone(&self.inner.shared);
        shared.index_caught_up().await;
        let account = account.to_owned();
        tokio::task::spawn_blocking(move || {
            let connection = lock(&shared.reader);
            lookup::lookup(&connection, &shared.journal_dir, &account, &query)
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Removes from the index every event older than the retention period before `now`.
    ///
    /// Delivered log files and digests are never touched. Returns how many events were removed.
    pub async fn expire(&self, now: OffsetDateTime) -> Result<usize, Error> {
        self.inner.shared.expire(now).await
    }

    /// The digest public key as a DER `RSAPublicKey`, to publish for [`crate::verify`].
    pub fn public_key_der(&self) -> Vec<u8> {
        self.inner.shared.signer.public_key_der()
    }

    /// The fingerprint digests carry as `digestPublicKeyFingerprint`.
    pub fn public_key_fingerprint(&self) -> String {
        self.inner.shared.signer.fingerprint().to_owned()
    }

    /// How many journal flushes have run: with group commit, far fewer than events recorded.
    pub fn fsync_count(&self) -> u64 {
        self.inner.shared.stats.fsyncs.load(Ordering::Relaxed)
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.config.dir
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl Shared {
    fn delivery(&self) -> Delivery<'_> {
        Delivery {
            root: &self.config.dir,
            journal_dir: &self.journal_dir,
            bucket: &self.config.bucket,
            signer: &self.signer,
            digest_interval: digest_interval_seconds(&self.config),
        }
    }

    /// Returns once the index holds every event acknowledged before the call.
    async fn index_caught_up(&self) {
        let target = self.stats.acked_batches.load(Ordering::Acquire);
        let mut indexed = self.indexed.clone();
        if *indexed.borrow() < target {
            // The indexer works lazily; make it index everything acknowledged so far now.
            // Every batch counted in `target` was queued before it was counted, so it is either
            // still queued, and taken with this catch-up, or already being indexed.
            self.index.catch_up();
        }
        // An indexer that has stopped cannot catch up; the index is then as complete as it gets.
        let _ = indexed.wait_for(|number| *number >= target).await;
    }

    /// Seals the active segment, delivers every sealed one, and writes the digests that are due.
    async fn deliver(self: &Arc<Self>, force: bool) -> Result<(), Error> {
        let (ack, sealed) = oneshot::channel();
        self.commands
            .send(Command::Rotate { ack })
            .await
            .map_err(|_| Error::Closed)?;
        let active = sealed.await.map_err(|_| Error::Closed)??;
        // With the index complete, delivery reads only the few fields it needs of each record
        // instead of parsing whole events to index them (see `Delivery::deliver_segment`).
        self.index_caught_up().await;
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let mut connection = lock(&shared.control);
            let delivery = shared.delivery();
            delivery.deliver_sealed(&mut connection, active, now)?;
            delivery.emit_digests(&mut connection, now, force)?;
            Ok(())
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    async fn expire(self: &Arc<Self>, now: OffsetDateTime) -> Result<usize, Error> {
        let retention = i64::try_from(self.config.retention.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now.unix_timestamp().saturating_sub(retention);
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut connection = lock(&shared.control);
            index::expire(&mut connection, cutoff, &shared.journal_dir)
        })
        .await
        .map_err(|_| Error::Closed)?
    }
}

fn open_blocking(config: AuditConfig) -> Result<Shared, Error> {
    let journal_dir = config.dir.join("journal");
    std::fs::create_dir_all(&journal_dir)
        .map_err(|e| Error::io("create the audit journal directory", &journal_dir, e))?;
    let lock = lock_directory(&config.dir)?;
    let signer = SigningKey::open_or_create(&config.signing_key_path)?;
    let mut control = index::open(&config.dir, true)?;
    let reader = index::open(&config.dir, false)?;
    let indexer = index::open(&config.dir, false)?;
    // The indexer writes thousands of rows per transaction; a page cache that holds them all
    // keeps SQLite from spilling half-built pages into the WAL mid-transaction (32 MiB).
    indexer.pragma_update(None, "cache_size", -32 * 1024)?;

    let found = journal::recover(&journal_dir)?;
    let delivered: Option<i64> =
        control.query_row("SELECT max(number) FROM delivered_segments", [], |row| {
            row.get(0)
        })?;
    // Kept segments count too: a segment number names an event's place in the index.
    let kept = journal::list_kept(&journal_dir)?;
    let highest = found
        .last()
        .copied()
        .unwrap_or(0)
        .max(kept.last().copied().unwrap_or(0))
        .max(delivered.map_or(0, |number| u64::try_from(number).unwrap_or(0)));
    let first_active = highest + 1;

    // Whatever a previous run left in the journal was acknowledged: deliver it before anything new.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let delivery = Delivery {
        root: &config.dir,
        journal_dir: &journal_dir,
        bucket: &config.bucket,
        signer: &signer,
        digest_interval: digest_interval_seconds(&config),
    };
    delivery.deliver_sealed(&mut control, first_active, now)?;
    delivery.emit_digests(&mut control, now, false)?;

    let stats = Arc::new(WriterStats::default());
    let index_queue = Arc::new(IndexQueue::default());
    let index_sender = IndexSender::new(Arc::clone(&index_queue));
    let (indexed_sender, indexed) = watch::channel(0);
    let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
    let shared = Shared {
        config,
        journal_dir,
        commands,
        stats: Arc::clone(&stats),
        indexed,
        index: index_sender.clone(),
        signer,
        control: Mutex::new(control),
        reader: Mutex::new(reader),
        _lock: lock,
    };

    let writer = Writer::start(
        &shared.journal_dir,
        first_active,
        shared.config.file_window,
        stats,
        index_sender,
    )?;
    std::thread::Builder::new()
        .name("audit-journal".to_owned())
        .spawn(move || writer.run(command_receiver))
        .map_err(|e| Error::io("start the audit journal writer", PathBuf::new(), e))?;
    std::thread::Builder::new()
        .name("audit-index".to_owned())
        .spawn(move || run_indexer(indexer, &index_queue, &indexed_sender))
        .map_err(|e| Error::io("start the audit indexer", PathBuf::new(), e))?;
    Ok(shared)
}

/// How long acknowledged events may wait to be indexed when no lookup asks for them.
pub(crate) const INDEX_INTERVAL: Duration = Duration::from_secs(2);
/// How many acknowledged events may wait to be indexed, which bounds the memory they hold.
pub(crate) const INDEX_PENDING_EVENTS: usize = 16 * 1024;

/// Acknowledged batches on their way from the journal writer to the indexer.
///
/// The writer queues every batch under a mutex it rarely has to wait for, and wakes the indexer
/// only when the indexer has something new to decide: when the queue stops being empty (so the
/// [`INDEX_INTERVAL`] clock starts) and when [`INDEX_PENDING_EVENTS`] are waiting. A lookup
/// wakes it to catch up. A wake per batch would cost the writer a futex call and the indexer two
/// context switches, thousands of times a second under load, only to append to a `Vec`.
#[derive(Default)]
pub(crate) struct IndexQueue {
    state: Mutex<IndexQueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct IndexQueueState {
    batches: Vec<IndexBatch>,
    /// How many events `batches` hold.
    events: usize,
    /// When the first of `batches` was queued.
    oldest: Option<Instant>,
    /// A lookup waits for everything queued.
    catch_up: bool,
    /// How many [`IndexSender`]s there are; the indexer stops when none is left.
    senders: usize,
    /// The indexer has stopped, so batches are no longer kept (delivery indexes them later).
    closed: bool,
}

/// A handle that queues batches for the indexer, or asks it to catch up.
///
/// Like a channel's sender: once every handle is dropped, the indexer indexes what is queued and
/// stops.
pub(crate) struct IndexSender {
    queue: Arc<IndexQueue>,
}

impl IndexQueue {
    fn lock(&self) -> MutexGuard<'_, IndexQueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the queued batches are due and moves them into `into` (which must be empty),
    /// or until every sender is gone, which it returns as `true`.
    ///
    /// Batches are due when a lookup asks for them, when the oldest has waited
    /// [`INDEX_INTERVAL`], or when [`INDEX_PENDING_EVENTS`] are waiting, whichever comes first.
    pub(crate) fn take_due(&self, into: &mut Vec<IndexBatch>) -> bool {
        let mut state = self.lock();
        let stop = loop {
            if state.senders == 0 {
                break true;
            }
            if state.catch_up || state.events >= INDEX_PENDING_EVENTS {
                break false;
            }
            state = match state.oldest {
                None => self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(oldest) => {
                    let left = (oldest + INDEX_INTERVAL).saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    self.wake
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        };
        std::mem::swap(&mut state.batches, into);
        state.events = 0;
        state.oldest = None;
        state.catch_up = false;
        stop
    }
}

impl IndexSender {
    pub(crate) fn new(queue: Arc<IndexQueue>) -> IndexSender {
        queue.lock().senders += 1;
        IndexSender { queue }
    }

    /// Queues an acknowledged batch, waking the indexer only if that changes what it waits for.
    pub(crate) fn push(&self, batch: IndexBatch) {
        let events: usize = batch
            .records
            .iter()
            .map(|(_, records)| records.entries.len())
            .sum();
        let mut state = self.queue.lock();
        if state.closed {
            return;
        }
        let was_empty = state.batches.is_empty();
        if was_empty {
            state.oldest = Some(Instant::now());
        }
        let was_below = state.events < INDEX_PENDING_EVENTS;
        state.events += events;
        state.batches.push(batch);
        let wake = was_empty || (was_below && state.events >= INDEX_PENDING_EVENTS);
        drop(state);
        if wake {
            self.queue.wake.notify_one();
        }
    }

    /// Asks the indexer to index everything queued now.
    pub(crate) fn catch_up(&self) {
        self.queue.lock().catch_up = true;
        self.queue.wake.notify_one();
    }
}

impl Clone for IndexSender {
    fn clone(&self) -> IndexSender {
        IndexSender::new(Arc::clone(&self.queue))
    }
}

impl Drop for IndexSender {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.queue.wake.notify_one();
        }
    }
}

/// Feeds acknowledged batches to the index lazily, in large transactions.
///
/// The request path never waits for the index. Batches wait in the [`IndexQueue`] until a lookup
/// asks for them ([`IndexSender::catch_up`]), until the oldest has waited [`INDEX_INTERVAL`], or
/// until [`INDEX_PENDING_EVENTS`] events are waiting, whichever comes first. Few large
/// transactions cost far less per event than many small ones, and a lookup still sees every
/// acknowledged event. Once every sender is gone, what is left is indexed and the thread ends.
pub(crate) fn run_indexer(
    mut connection: Connection,
    queue: &IndexQueue,
    indexed: &watch::Sender<u64>,
) {
    /// Closes the queue when the indexer ends, even by a panic, so batches stop piling up there.
    struct Closer<'a>(&'a IndexQueue);
    impl Drop for Closer<'_> {
        fn drop(&mut self) {
            let mut state = self.0.lock();
            state.closed = true;
            state.batches = Vec::new();
        }
    }
    let _closer = Closer(queue);
    let mut pending: Vec<IndexBatch> = Vec::new();
    loop {
        let stop = queue.take_due(&mut pending);
        if let Some(last) = pending.last() {
            index_pending(&mut connection, &pending);
            indexed.send_replace(last.number);
        }
        // Emptied here, off the lock; its capacity goes back to the queue at the next swap.
        pending.clear();
        if stop {
            return;
        }
    }
}

fn index_pending(connection: &mut Connection, pending: &[IndexBatch]) {
    let outcome = connection
        .transaction()
        .map_err(Error::from)
        .and_then(|transaction| {
            index::insert_events(
                &transaction,
                pending.iter().flat_map(|batch| {
                    batch
                        .records
                        .iter()
                        .flat_map(move |(base, records)| records.rows(batch.segment, *base))
                }),
            )?;
            transaction.commit().map_err(Error::from)
        });
    if let Err(error) = outcome {
        // Delivery indexes every event again, so this only delays their visibility.
        tracing::warn!("failed to index audit events: {error}");
    }
}

async fn deliver_periodically(shared: Arc<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; open has just delivered.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(error) = shared.deliver(false).await {
            tracing::error!("failed to deliver audit logs: {error}");
        }
        if let Err(error) = shared.expire(OffsetDateTime::now_utc()).await {
            tracing::error!("failed to expire audit index rows: {error}");
        }
    }
}

/// Takes the audit directory's lock, waiting briefly for a previous audit log that is closing.
fn lock_directory(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open the audit lock file", &path, e))?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("lock the audit directory", &path, e));
            }
        }
    }
}

fn digest_interval_seconds(config: &AuditConfig) -> i64 {
    i64::try_from(config.digest_interval.as_secs())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}
