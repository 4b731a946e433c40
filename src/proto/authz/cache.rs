//! Directory answers kept for a while: found identities for the positive
//! TTL, unknown and disabled ones for the (shorter) negative TTL, at most
//! `capacity` entries. Errors are never cached.
//!
//! Sans-I/O: the caller passes the time. It must not decide anything; a
//! hit returns exactly what the directory said.

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Lookup;

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub capacity: usize,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
}

#[derive(Debug)]
pub struct Cache {
    settings: CacheSettings,
    /// One lock is enough: it is taken once per authentication, not per
    /// packet.
    entries: Mutex<HashMap<String, (Instant, Lookup)>>,
}

impl Cache {
    pub fn new(settings: CacheSettings) -> Self {
        Cache {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, (Instant, Lookup)>> {
        self.entries.lock()
    }

    /// The cached answer for a lower-cased identity, if still fresh.
    pub fn get(&self, key: &str, now: Instant) -> Option<Lookup> {
        let mut map = self.map();
        match map.get(key) {
            Some((expires, lookup)) if *expires > now => Some(lookup.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores an answer; returns how many entries were evicted to make room.
    pub fn put(&self, key: &str, lookup: &Lookup, now: Instant) -> usize {
        let ttl = match lookup {
            Lookup::Found(_) => self.settings.positive_ttl,
            Lookup::NotFound | Lookup::Disabled { .. } => self.settings.negative_ttl,
        };
        if ttl.is_zero() || self.settings.capacity == 0 {
            return 0;
        }
        let mut map = self.map();
        let mut evicted = 0;
        if map.len() >= self.settings.capacity && !map.contains_key(key) {
            let before = map.len();
            map.retain(|_, (expires, _)| *expires > now);
            evicted = before - map.len();
            if map.len() >= self.settings.capacity {
                // Still full of fresh entries: drop any one. A full cache of
                // live answers means the capacity is too small; the eviction
                // counter says so.
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                    evicted += 1;
                }
            }
        }
        map.insert(key.to_string(), (now + ttl, lookup.clone()));
        evicted
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authz::Entry;

    fn cache(capacity: usize) -> Cache {
        Cache::new(CacheSettings {
            capacity,
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
        })
    }

    #[test]
    fn ttls_differ_for_found_and_not_found() {
        let c = cache(10);
        // Time comes from the shell, tests included.
        let t0 = crate::server::time::now().instant;
        c.put("alice", &Lookup::Found(Entry::default()), t0);
        c.put("zed", &Lookup::NotFound, t0);
        let t = t0 + Duration::from_secs(30);
        assert!(matches!(c.get("alice", t), Some(Lookup::Found(_))));
        assert_eq!(c.get("zed", t), None);
        assert_eq!(c.get("alice", t0 + Duration::from_secs(61)), None);
        assert_eq!(c.len(), 0, "expired entries are removed when read");
    }

    #[test]
    fn bounded() {
        let c = cache(3);
        // Time comes from the shell, tests included.
        let t0 = crate::server::time::now().instant;
        for i in 0..3 {
            assert_eq!(c.put(&format!("u{i}"), &Lookup::NotFound, t0), 0);
        }
        // Fresh entries: one is evicted.
        assert_eq!(c.put("u3", &Lookup::NotFound, t0), 1);
        assert_eq!(c.len(), 3);
        // Expired entries go first, all of them.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(c.put("u4", &Lookup::NotFound, later), 3);
        assert_eq!(c.len(), 1);
        let off = Cache::new(CacheSettings {
            capacity: 10,
            positive_ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
        });
        off.put("a", &Lookup::NotFound, t0);
        assert!(off.is_empty());
    }
}
