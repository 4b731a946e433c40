//! Rate-limited logging of dropped datagrams: every drop is counted in the
//! metrics, but a flood of garbage must not turn into a flood of log lines
//! (disk, journald and the operator's attention are finite).
//!
//! Lets through `PER_SECOND` lines a second and then one summary of how
//! many were suppressed. It must not decide what is dropped.

use std::time::Instant;

use parking_lot::Mutex;

const PER_SECOND: u32 = 20;

pub struct DropLog {
    start: Instant,
    state: Mutex<Window>,
}

struct Window {
    second: u64,
    logged: u32,
    suppressed: u64,
}

/// What the caller may log now.
pub enum Permit {
    /// Log this drop; `suppressed` lines were held back in the last window.
    Log {
        suppressed: u64,
    },
    Quiet,
}

impl DropLog {
    /// Windows of a second counted from `start`.
    pub fn new(start: Instant) -> Self {
        DropLog {
            start,
            state: Mutex::new(Window {
                second: 0,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    pub fn permit(&self, now: Instant) -> Permit {
        let second = now.saturating_duration_since(self.start).as_secs();
        let mut w = self.state.lock();
        let mut suppressed = 0;
        if w.second != second {
            suppressed = w.suppressed;
            *w = Window {
                second,
                logged: 0,
                suppressed: 0,
            };
        }
        if w.logged < PER_SECOND {
            w.logged += 1;
            Permit::Log { suppressed }
        } else {
            w.suppressed += 1;
            Permit::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_then_reports() {
        let t = crate::server::time::now().instant;
        let log = DropLog::new(t);
        let allowed = (0..100)
            .filter(|_| matches!(log.permit(t), Permit::Log { .. }))
            .count();
        assert_eq!(allowed, PER_SECOND as usize);
        match log.permit(t + Duration::from_secs(1)) {
            Permit::Log { suppressed } => assert_eq!(suppressed, 100 - u64::from(PER_SECOND)),
            Permit::Quiet => panic!("new window must log"),
        }
    }
}
