//! Server-side TLS session storage for resumption (TLS 1.2 session IDs and
//! TLS 1.3 stateful tickets): bounded, with a lifetime, and shared across
//! configuration reloads so a reload does not end resumption.
//!
//! rustls's own memory cache has no lifetime; this one does. rustls calls
//! it without a time, so it reads the engine's `Clock`. It must not judge
//! whether a resumed session is still authorized (the EAP layer re-checks
//! the certificate and the directory).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::server::StoresServerSessions;

use crate::proto::clock::Clock;

/// Session id or ticket → (encoded session, stored at).
type Sessions = HashMap<Vec<u8>, (Vec<u8>, Instant)>;

#[derive(Debug)]
pub struct SessionStore {
    map: Mutex<Sessions>,
    cap: usize,
    lifetime: Duration,
    clock: Arc<Clock>,
}

impl SessionStore {
    pub fn new(cap: usize, lifetime: Duration, clock: Arc<Clock>) -> Self {
        SessionStore {
            map: Mutex::new(HashMap::new()),
            cap: cap.max(1),
            lifetime,
            clock,
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// The engine's clock, which rustls reads through this store's TLS
    /// configuration too.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops sessions past their lifetime; returns how many remain.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut map = self.map.lock();
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) <= self.lifetime);
        map.len()
    }

    fn fresh(&self, at: Instant) -> bool {
        self.clock.instant().saturating_duration_since(at) <= self.lifetime
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let now = self.clock.instant();
        let mut map = self.map.lock();
        if map.len() >= self.cap && !map.contains_key(&key) {
            // Full: make room by dropping expired sessions, else the oldest.
            let lifetime = self.lifetime;
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) <= lifetime);
            if map.len() >= self.cap {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (value, now));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let map = self.map.lock();
        let (value, at) = map.get(key)?;
        self.fresh(*at).then(|| value.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (value, at) = self.map.lock().remove(key)?;
        self.fresh(at).then_some(value)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::clock::Now;

    fn clock() -> (Arc<Clock>, Now) {
        let t0 = Now {
            instant: crate::server::time::now().instant,
            unix_ms: 1_700_000_000_000,
        };
        (Arc::new(Clock::new(t0)), t0)
    }

    #[test]
    fn bounded_and_single_use_take() {
        let s = SessionStore::new(2, Duration::from_secs(60), clock().0);
        assert!(s.put(b"a".to_vec(), b"1".to_vec()));
        assert!(s.put(b"b".to_vec(), b"2".to_vec()));
        assert!(s.put(b"c".to_vec(), b"3".to_vec()));
        assert_eq!(s.len(), 2, "capped");
        assert_eq!(s.get(b"c"), Some(b"3".to_vec()));
        assert_eq!(s.take(b"c"), Some(b"3".to_vec()));
        assert_eq!(s.take(b"c"), None, "a TLS 1.3 ticket resumes once");
    }

    #[test]
    fn expired_sessions_do_not_resume() {
        let (c, t0) = clock();
        let s = SessionStore::new(10, Duration::from_secs(60), c.clone());
        s.put(b"a".to_vec(), b"1".to_vec());
        s.put(b"b".to_vec(), b"2".to_vec());
        assert_eq!(s.sweep(t0.instant), 2);
        // Past the lifetime on the engine's clock: no resumption, even
        // before the sweep runs.
        c.advance(t0.after(Duration::from_secs(61)));
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.sweep(t0.after(Duration::from_secs(61)).instant), 0);
    }
}
