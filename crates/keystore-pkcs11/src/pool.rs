//! A bounded pool of PKCS#11 sessions for one token.
//!
//! A `cryptoki::Session` may move between threads but not be shared, so each operation leases
//! one. The pool counts a generation that moves on whenever it closes a session: a token may
//! renumber object handles once its last session closes, so handles are cached per generation.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::session::Session;

use crate::error::Error;

/// Sessions of one token, at most `capacity` open at a time.
#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    returned: Condvar,
    capacity: usize,
    wait: Duration,
}

#[derive(Debug)]
struct PoolState {
    idle: Vec<Session>,
    open: usize,
    generation: u64,
}

/// A session taken from the pool, returned to it when dropped.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    generation: u64,
    discard: bool,
}

impl Pool {
    pub(crate) fn new(capacity: usize, wait: Duration) -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
                generation: 0,
            }),
            returned: Condvar::new(),
            capacity,
            wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases an idle session, opens a new one with `open` while under capacity, or waits.
    ///
    /// `busy` builds the error returned when no session frees up in time.
    pub(crate) fn checkout(
        &self,
        open: impl FnOnce() -> Result<Session, Error>,
        busy: impl FnOnce() -> Error,
    ) -> Result<Lease<'_>, Error> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation: state.generation,
                    discard: false,
                });
            }
            if state.open < self.capacity {
                state.open += 1;
                let generation = state.generation;
                drop(state);
                // Opening and logging in talk to the device; the pool stays usable meanwhile.
                return match open() {
                    Ok(session) => Ok(Lease {
                        pool: self,
                        session: Some(session),
                        generation,
                        discard: false,
                    }),
                    Err(err) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(err)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(busy());
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes every idle session and makes leased ones close when returned.
    pub(crate) fn drain(&self) {
        let idle = {
            let mut state = self.lock();
            state.generation += 1;
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        // Closing talks to the device, so it happens outside the lock.
        drop(idle);
        self.returned.notify_all();
    }

    /// The most sessions the pool opens.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many sessions are open, idle or leased.
    pub(crate) fn open_sessions(&self) -> usize {
        self.lock().open
    }
}

impl Lease<'_> {
    pub(crate) fn session(&self) -> &Session {
        // The session is taken out only in `drop`.
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }

    /// The pool generation the session belongs to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Closes the session instead of returning it, because it may be broken.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if self.discard || self.generation != state.generation {
            state.open -= 1;
            if self.discard && self.generation == state.generation {
                // Closing may renumber handles, so cached ones must not be trusted any more.
                state.generation += 1;
            }
            drop(state);
            drop(session);
        } else {
            state.idle.push(session);
            drop(state);
        }
        self.pool.returned.notify_one();
    }
}
