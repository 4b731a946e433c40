//! The engine's time, given, never read: every call into the engine says
//! what time it is (`Now`), and the clock keeps the latest so the parts
//! that cannot be handed the time as an argument see it too — rustls, which
//! asks its `TimeProvider` when it checks a certificate's validity or a
//! ticket's age, and the TLS session store, which rustls calls without one.
//!
//! Time never runs backwards here: calls from concurrent tasks may arrive
//! slightly out of order, and the clock keeps the latest of what it was
//! told. Tests drive it with virtual time.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;

/// The time of one call: monotonic (timeouts, ages) and wall clock
/// (records, certificate validity), read once by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl Now {
    /// The same moment `d` later, on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            instant: self.instant + d,
            unix_ms: self.unix_ms + d.as_millis() as i64,
        }
    }

    pub fn unix_secs(self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }
}

#[derive(Debug)]
pub struct Clock {
    base: Instant,
    /// Nanoseconds after `base`.
    mono: AtomicU64,
    unix_ms: AtomicI64,
}

impl Clock {
    pub fn new(start: Now) -> Self {
        Clock {
            base: start.instant,
            mono: AtomicU64::new(0),
            unix_ms: AtomicI64::new(start.unix_ms),
        }
    }

    /// Moves the clock to `now` unless it is already later.
    pub fn advance(&self, now: Now) {
        let nanos = now.instant.saturating_duration_since(self.base).as_nanos();
        self.mono
            .fetch_max(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.unix_ms.fetch_max(now.unix_ms, Ordering::Relaxed);
    }

    pub fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.mono.load(Ordering::Relaxed))
    }

    pub fn unix_time(&self) -> UnixTime {
        let ms = self.unix_ms.load(Ordering::Relaxed).max(0);
        UnixTime::since_unix_epoch(Duration::from_millis(ms as u64))
    }
}

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.unix_time())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_keeps_the_latest_time_it_was_told() {
        let t0 = Now {
            instant: crate::server::time::now().instant,
            unix_ms: 1_700_000_000_000,
        };
        let c = Clock::new(t0);
        c.advance(t0.after(Duration::from_secs(5)));
        c.advance(t0.after(Duration::from_secs(2)));
        assert_eq!(c.instant(), t0.instant + Duration::from_secs(5));
        assert_eq!(
            c.current_time(),
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                1_700_000_005
            )))
        );
    }
}
