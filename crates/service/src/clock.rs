//! The service's notion of now, injectable so tests can move time and production cannot.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use strongroom_types::Timestamp;

/// Where the service reads the time; held as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: the only clock a production server uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that stands still until a test moves it forward.
///
/// Only tests construct one: the `strongroom` binary always runs on [`SystemClock`].
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock reading the current wall-clock time.
    pub fn starting_now() -> ManualClock {
        ManualClock {
            now: Mutex::new(Timestamp::from_system_time(SystemTime::now())),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.plus(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
