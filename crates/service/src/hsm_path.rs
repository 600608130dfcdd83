//! The hot path of cryptography in custom key stores: finding a key's cluster without the database,
//! and calling its HSMs, whose PKCS#11 calls block, from async requests without a thread hand-off
//! per call.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use strongroom_types::{KeyId, KeyRecord, Namespace, Origin};

use crate::{Error, Kms};

/// The custom key store of each custom key store key this process has used, so that cryptographic
/// requests find the key's cluster without reading the database (two queries, each on the blocking
/// pool, cost more than the HSM operation itself): a key stays in the store it was created in for
/// its whole life, and key ids are never reused.
#[derive(Default)]
pub(crate) struct BackingStores(RwLock<HashMap<KeyId, Vec<Placement>>>);

/// A key's namespace (key ids may repeat across namespaces) and the id of its store.
type Placement = (Namespace, Arc<str>);

impl BackingStores {
    fn get(&self, namespace: &Namespace, key_id: &KeyId) -> Option<Arc<str>> {
        let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
        known
            .get(key_id)?
            .iter()
            .find(|(held_in, _)| held_in == namespace)
            .map(|(_, store)| store.clone())
    }

    fn insert(&self, namespace: &Namespace, key_id: &KeyId, store: Arc<str>) {
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let entries = known.entry(key_id.clone()).or_default();
        entries.retain(|(held_in, _)| held_in != namespace);
        entries.push((namespace.clone(), store));
    }

    /// Forgets a key whose backing key was deleted.
    pub(crate) fn forget(&self, namespace: &Namespace, key_id: &KeyId) {
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entries) = known.get_mut(key_id) {
            entries.retain(|(held_in, _)| held_in != namespace);
            if entries.is_empty() {
                known.remove(key_id);
            }
        }
    }
}

impl Kms {
    /// The id of the custom key store that holds a key's backing key; `None` for a key of another
    /// origin or one the store records do not place.
    pub(crate) async fn backing_store_id(
        &self,
        record: &KeyRecord,
    ) -> Result<Option<Arc<str>>, Error> {
        if record.origin != Origin::AwsCloudhsm {
            return Ok(None);
        }
        let Some(records) = &self.custom_key_stores.records else {
            return Ok(None);
        };
        let placed = &self.custom_key_stores.backing_stores;
        if let Some(store) = placed.get(&record.namespace, &record.key_id) {
            return Ok(Some(store));
        }
        let Some(store) = records
            .key_store_of(&record.namespace, &record.key_id)
            .await?
        else {
            return Ok(None);
        };
        let store: Arc<str> = store.into();
        placed.insert(&record.namespace, &record.key_id, store.clone());
        Ok(Some(store))
    }

    /// Runs a blocking call to a cluster's HSMs (see [`HsmCalls`]).
    pub(crate) async fn in_cluster<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        self.custom_key_stores.hsm_calls.run(call).await
    }
}

/// A call queued for a drainer.
type Call = Box<dyn FnOnce() + Send>;

/// How many drainers run at most while calls are queued, before any is stuck, when calls wait on
/// the HSMs rather than compute: enough for HSMs a network away to see as many calls at once as
/// their sessions allow.
const REMOTE_DRAINERS: usize = 16;
/// How many drainers may exist at all, stuck ones included.
const MAX_DRAINERS: usize = 64;
/// Calls that take less than this, on average, compute rather than wait: the HSM runs on this
/// machine's CPUs (SoftHSM), or answers that fast.
const LOCAL_CALL: Duration = Duration::from_micros(500);
/// How long a drainer may be in one call before it is taken to be stuck in an HSM that stopped
/// answering.
const STALL: Duration = Duration::from_millis(20);

/// Blocking calls to HSMs for async callers, run by *drainers*: tasks on tokio's blocking pool that
/// each run queued calls one after another until the queue is empty.
///
/// `spawn_blocking` per call wakes a pool thread and parks it again for every call, and many calls
/// at once contend inside the PKCS#11 module: on SoftHSM that cost a third of the throughput. A
/// drainer that finds more calls queued runs them without a hand-off, so a new drainer starts only
/// when queued calls outnumber the drainers and the limit allows: while calls compute (they take
/// less than [`LOCAL_CALL`] on average) one drainer per two CPUs, since more only contend for the
/// CPUs the requests need too; while they wait on the HSMs, up to [`REMOTE_DRAINERS`].
///
/// A drainer that has been in one call for [`STALL`] is taken to be stuck in an HSM that stopped
/// answering and no longer counts, so that the calls behind it get another drainer (up to
/// [`MAX_DRAINERS`] drainers in all): a hung HSM holds up only the calls already in it. A waiting
/// caller checks for that itself every [`STALL`], so this holds without further traffic.
pub(crate) struct HsmCalls {
    queue: Arc<Mutex<Queue>>,
    /// The drainer limit while calls compute.
    local_drainers: usize,
}

impl Default for HsmCalls {
    fn default() -> HsmCalls {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        HsmCalls {
            queue: Arc::default(),
            local_drainers: (cpus / 2).max(1),
        }
    }
}

#[derive(Default)]
struct Queue {
    calls: VecDeque<Call>,
    /// One per drainer that may be running, found again by its index.
    drainers: Vec<Drainer>,
    /// How long calls take, a moving average.
    call_time: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drainer {
    /// No drainer has this index.
    Gone,
    /// Between calls.
    Ready,
    /// Running a call it started then.
    Calling(Instant),
}

impl Queue {
    /// Drainers that exist and are not stuck in a call.
    fn healthy(&self) -> usize {
        self.drainers
            .iter()
            .filter(|drainer| match drainer {
                Drainer::Gone => false,
                Drainer::Ready => true,
                Drainer::Calling(since) => since.elapsed() < STALL,
            })
            .count()
    }

    fn count(&self) -> usize {
        self.drainers
            .iter()
            .filter(|drainer| **drainer != Drainer::Gone)
            .count()
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HsmCalls {
    async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, mut result) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(call)));
        });
        {
            let mut queue = lock(&self.queue);
            queue.calls.push_back(call);
            self.start_drainer_if_needed(&mut queue);
        }
        loop {
            match tokio::time::timeout(STALL, &mut result).await {
                Ok(Ok(Ok(value))) => return Ok(value),
                Ok(Ok(Err(_panic))) => {
                    return Err(Error::internal(std::io::Error::other(
                        "a call to the HSMs panicked",
                    )));
                }
                // Drainers run every call they take, so a call is never dropped unrun.
                Ok(Err(closed)) => return Err(Error::internal(closed)),
                // Drainers may have got stuck since.
                Err(_elapsed) => self.start_drainer_if_needed(&mut lock(&self.queue)),
            }
        }
    }

    fn start_drainer_if_needed(&self, queue: &mut Queue) {
        if queue.calls.is_empty() || queue.count() >= MAX_DRAINERS {
            return;
        }
        let limit = match queue.call_time < LOCAL_CALL {
            true => self.local_drainers,
            false => REMOTE_DRAINERS,
        };
        let healthy = queue.healthy();
        if healthy > 0 && (queue.calls.len() <= healthy || healthy >= limit) {
            return;
        }
        let index = match queue.drainers.iter().position(|it| *it == Drainer::Gone) {
            Some(index) => index,
            None => {
                queue.drainers.push(Drainer::Gone);
                queue.drainers.len() - 1
            }
        };
        queue.drainers[index] = Drainer::Ready;
        let shared = self.queue.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                let call = {
                    let mut queue = lock(&shared);
                    if let Drainer::Calling(started) = queue.drainers[index] {
                        // An average over about the last 32 calls, where a call that hung for
                        // minutes weighs as one that was merely slow.
                        let took = started.elapsed().min(STALL);
                        queue.call_time = (queue.call_time * 31 + took) / 32;
                    }
                    match queue.calls.pop_front() {
                        Some(call) => {
                            queue.drainers[index] = Drainer::Calling(Instant::now());
                            call
                        }
                        None => {
                            queue.drainers[index] = Drainer::Gone;
                            return;
                        }
                    }
                };
                // Calls catch their own panics.
                call();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn calls(local_drainers: usize) -> Arc<HsmCalls> {
        Arc::new(HsmCalls {
            queue: Arc::default(),
            local_drainers,
        })
    }

    /// Runs `count` calls from `callers` concurrent tasks, each call taking `takes`; returns the most
    /// drainers seen at once.
    async fn load(calls: &Arc<HsmCalls>, callers: usize, count: usize, takes: Duration) -> usize {
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (calls, most) = (calls.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..count / callers {
                        let (queue, most) = (calls.queue.clone(), most.clone());
                        let seen = calls
                            .run(move || {
                                most.fetch_max(lock(&queue).count(), Ordering::Relaxed);
                                std::thread::sleep(takes);
                                lock(&queue).count()
                            })
                            .await
                            .unwrap();
                        assert!(seen >= 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        most.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn calls_return_their_values_and_a_panic_is_an_internal_error() {
        let calls = calls(1);
        assert_eq!(calls.run(|| 7).await.unwrap(), 7);
        let panicked = calls
            .run(|| -> u8 { panic!("an HSM call that panics") })
            .await;
        assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
        assert_eq!(calls.run(|| 8).await.unwrap(), 8);
        // Drainers end with the queue.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(lock(&calls.queue).count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fast_calls_share_one_drainer_and_slow_ones_get_more() {
        let calls = calls(1);
        let most = load(&calls, 16, 400, Duration::ZERO).await;
        // One drainer; two if a busy machine held one up in a call for as long as a stuck one.
        assert!(most <= 2, "{most} drainers for calls that compute");
        // Calls that wait (an HSM a network away) run side by side once they are seen to wait.
        let most = load(&calls, 16, 160, Duration::from_millis(2)).await;
        assert!(
            (2..=REMOTE_DRAINERS).contains(&most),
            "{most} drainers for calls that wait"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_call_holds_up_only_itself() {
        let calls = calls(1);
        let (release, hang) = std::sync::mpsc::channel::<()>();
        let hung = {
            let calls = calls.clone();
            tokio::spawn(async move { calls.run(move || hang.recv().is_ok()).await })
        };
        // The only drainer takes the hanging call...
        while !lock(&calls.queue).calls.is_empty() || lock(&calls.queue).count() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // ...and the calls behind it are served by another, without more traffic.
        assert_eq!(calls.run(|| 1).await.unwrap(), 1);
        let most = load(&calls, 4, 40, Duration::ZERO).await;
        assert!((2..=3).contains(&most), "{most}");
        // Once the hung drainer counts as stuck, calls do not wait for it to be found out again.
        let started = Instant::now();
        for n in 0..100 {
            assert_eq!(calls.run(move || n).await.unwrap(), n);
        }
        assert!(started.elapsed() < STALL * 50, "{:?}", started.elapsed());
        assert!(!hung.is_finished());
        release.send(()).unwrap();
        assert!(hung.await.unwrap().unwrap());
    }
}
