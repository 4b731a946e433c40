//! Waiting on readiness, never on sleeps: one helper that asks again every
//! 20 ms until an answer comes or the time is up.

use std::future::Future;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(20);

/// Calls `check` until it gives Some, at most for `timeout`.
pub fn until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// `until`, failing the test with `what` when the time is up.
pub fn expect<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    until(timeout, check).unwrap_or_else(|| panic!("{what} (waited {timeout:?})"))
}

/// `until` for async checks, without blocking the runtime.
pub async fn until_async<T, F: Future<Output = Option<T>>>(
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(EVERY).await;
    }
}
