//! Duplicate detection (RFC 5080 §2.2.2): a request is identified by its
//! source address and port, Identifier and Request Authenticator. A
//! retransmission is answered with the cached reply and never processed
//! twice; one that arrives while the original is still being processed is
//! dropped.
//!
//! Sans-I/O: the caller passes the current time. Only packets that passed
//! every authenticity check may be put in here.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub source: SocketAddr,
    pub identifier: u8,
    pub authenticator: [u8; 16],
}

#[derive(Debug)]
enum Slot {
    InProgress,
    Done { reply: Arc<[u8]>, expires: Instant },
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// First sight: process it, then `complete` or `abandon` the key.
    New,
    /// The original is still being processed: drop this copy.
    InProgress,
    /// Already answered: send these octets again.
    Cached(Arc<[u8]>),
    /// The cache is full: process without caching (the retransmission will
    /// be processed again, which costs work but loses nothing).
    Full,
}

pub struct DedupCache {
    shards: Vec<Mutex<HashMap<DedupKey, Slot>>>,
    hasher: RandomState,
    lifetime: Duration,
    max_per_shard: usize,
}

impl DedupCache {
    pub fn new(lifetime: Duration, max_entries: usize) -> Self {
        DedupCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            lifetime,
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &DedupKey) -> MutexGuard<'_, HashMap<DedupKey, Slot>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock()
    }

    pub fn begin(&self, key: DedupKey, now: Instant) -> Lookup {
        let mut shard = self.shard(&key);
        match shard.get(&key) {
            Some(Slot::InProgress) => return Lookup::InProgress,
            Some(Slot::Done { reply, expires }) if *expires > now => {
                return Lookup::Cached(reply.clone());
            }
            _ => {}
        }
        if shard.len() >= self.max_per_shard {
            shard.retain(|_, s| !matches!(s, Slot::Done { expires, .. } if *expires <= now));
            if shard.len() >= self.max_per_shard {
                return Lookup::Full;
            }
        }
        shard.insert(key, Slot::InProgress);
        Lookup::New
    }

    pub fn complete(&self, key: DedupKey, reply: Arc<[u8]>, now: Instant) {
        let expires = now + self.lifetime;
        self.shard(&key).insert(key, Slot::Done { reply, expires });
    }

    /// Forgets a request that got no reply, so its retransmission is
    /// processed afresh.
    pub fn abandon(&self, key: &DedupKey) {
        self.shard(key).remove(key);
    }

    /// Removes expired replies; returns how many entries remain.
    pub fn sweep(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut s = s.lock();
                s.retain(|_, slot| !matches!(slot, Slot::Done { expires, .. } if *expires <= now));
                // After a burst the map would keep its peak capacity.
                if s.capacity() > 4 * s.len() + 1024 {
                    s.shrink_to_fit();
                }
                s.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> DedupKey {
        DedupKey {
            source: "127.0.0.1:5000".parse().expect("addr"),
            identifier: id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn lifecycle() {
        let c = DedupCache::new(Duration::from_secs(5), 1000);
        let t0 = crate::server::time::now().instant;
        assert_eq!(c.begin(key(1), t0), Lookup::New);
        assert_eq!(c.begin(key(1), t0), Lookup::InProgress);
        c.complete(key(1), Arc::from(&b"reply"[..]), t0);
        assert_eq!(
            c.begin(key(1), t0 + Duration::from_secs(4)),
            Lookup::Cached(Arc::from(&b"reply"[..]))
        );
        // Expired: processed again.
        assert_eq!(c.begin(key(1), t0 + Duration::from_secs(6)), Lookup::New);
        c.abandon(&key(1));
        assert_eq!(c.begin(key(1), t0), Lookup::New);
    }

    #[test]
    fn sweep_and_bound() {
        let c = DedupCache::new(Duration::from_secs(1), 16);
        let t0 = crate::server::time::now().instant;
        let mut full = 0;
        for id in 0..=255u8 {
            match c.begin(key(id), t0) {
                Lookup::New => c.complete(key(id), Arc::from(&b"r"[..]), t0),
                Lookup::Full => full += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(full > 0, "the bound was never reached");
        assert!(c.sweep(t0) <= 16 + SHARDS);
        assert_eq!(c.sweep(t0 + Duration::from_secs(2)), 0);
    }
}
