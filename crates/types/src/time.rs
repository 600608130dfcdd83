//! Wall-clock instants, held as milliseconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, to the millisecond; AWS shows these as fractional epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

const MILLIS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    /// The instant `millis` milliseconds after the epoch.
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Converts a `SystemTime`; instants before the epoch clamp to it.
    pub fn from_system_time(time: SystemTime) -> Timestamp {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// Seconds since the epoch, with the milliseconds as a fraction: the wire form.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Whole seconds since the epoch.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus a number of days.
    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::from(days) * MILLIS_PER_DAY))
    }

    /// This instant plus a duration.
    pub fn plus(self, duration: Duration) -> Timestamp {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}
