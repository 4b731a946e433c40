//! The shell reads the clocks; the engine is told (`proto::Now`).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::proto::Now;

/// Both clocks, now.
pub fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
}
