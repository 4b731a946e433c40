//! Client-certificate chains this TLS context has already verified, with
//! what was read from them. A device that re-authenticates — every resumed
//! session, whose chain is checked again against the current CRLs, and
//! every full handshake of a returning device — then costs a hash instead
//! of signature verifications and an X.509 parse.
//!
//! Sound because a verification result depends only on the chain's bytes,
//! the trust anchors and CRLs (fixed for the life of the context: a reload
//! or CRL refresh builds a new context with an empty cache) and the time,
//! which is checked on every hit against the validity of every certificate
//! presented and against the earliest CRL nextUpdate when expired CRLs must
//! reject. The key is SHA-256 over the length-prefixed certificates, so a
//! different chain cannot hit another's entry.
//!
//! Sans-I/O: time is passed in. It must not verify anything itself.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::identity::CertIdentity;

pub type ChainKey = [u8; 32];

/// An entry is trusted for at most this long, whatever the certificates say.
pub const MAX_AGE_SECS: u64 = 3600;

/// What a verified chain gave, and until when it stands.
#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Arc<CertIdentity>,
    /// The latest notBefore and earliest notAfter over the chain, Unix
    /// seconds.
    pub valid_from: u64,
    pub valid_until: u64,
    stored_at: u64,
}

impl Verified {
    pub fn new(identity: Arc<CertIdentity>, valid_from: u64, valid_until: u64) -> Self {
        Verified {
            identity,
            valid_from,
            valid_until,
            stored_at: 0,
        }
    }

    fn usable(&self, now: u64, horizon: u64) -> bool {
        now >= self.valid_from
            && now < self.valid_until
            && now < horizon
            && now < self.stored_at.saturating_add(MAX_AGE_SECS)
    }
}

#[derive(Debug)]
pub struct ChainCache {
    map: Mutex<HashMap<ChainKey, Verified>>,
    cap: usize,
    /// No entry is used at or after this time (the earliest CRL nextUpdate
    /// when expired CRLs reject; otherwise never).
    horizon: u64,
}

pub fn key<C: AsRef<[u8]>>(end_entity: &[u8], intermediates: &[C]) -> ChainKey {
    let mut h = Sha256::new();
    for cert in std::iter::once(end_entity).chain(intermediates.iter().map(AsRef::as_ref)) {
        h.update((cert.len() as u64).to_be_bytes());
        h.update(cert);
    }
    h.finalize().into()
}

impl ChainCache {
    /// `cap` 0 turns the cache off.
    pub fn new(cap: usize, horizon: Option<u64>) -> Self {
        ChainCache {
            map: Mutex::new(HashMap::new()),
            cap,
            horizon: horizon.unwrap_or(u64::MAX),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChainKey, Verified>> {
        self.map.lock()
    }

    pub fn get(&self, key: &ChainKey, now: u64) -> Option<Verified> {
        if !self.enabled() {
            return None;
        }
        let mut map = self.lock();
        match map.get(key) {
            Some(v) if v.usable(now, self.horizon) => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: ChainKey, mut verified: Verified, now: u64) {
        if !self.enabled() {
            return;
        }
        verified.stored_at = now;
        let mut map = self.lock();
        if map.len() >= self.cap && !map.contains_key(&key) {
            map.retain(|_, v| v.usable(now, self.horizon));
            if map.len() >= self.cap {
                // Full of live entries (more distinct devices than the cap
                // within the hour): start over rather than track ages; a
                // miss costs one verification, nothing more.
                map.clear();
            }
        }
        map.insert(key, verified);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &[&[u8]] = &[];

    fn entry(from: u64, until: u64) -> Verified {
        Verified::new(Arc::new(CertIdentity::default()), from, until)
    }

    #[test]
    fn hits_only_within_validity_age_and_horizon() {
        let c = ChainCache::new(10, Some(5000));
        let k = key(b"ee", &[b"int"]);
        c.insert(k, entry(100, 4000), 1000);
        assert!(c.get(&k, 1000).is_some());
        assert!(c.get(&k, 99).is_none(), "before notBefore");
        c.insert(k, entry(100, 4000), 1000);
        assert!(c.get(&k, 4000).is_none(), "at notAfter");
        c.insert(k, entry(100, 9000), 1000);
        assert!(c.get(&k, 1000 + MAX_AGE_SECS).is_none(), "too old");
        c.insert(k, entry(100, 9000), 4900);
        assert!(c.get(&k, 5000).is_none(), "past the CRL horizon");
    }

    #[test]
    fn keys_separate_chains() {
        assert_ne!(key(b"ab", &[b"c"]), key(b"a", &[b"bc"]));
        assert_ne!(key(b"ee", NONE), key(b"ee", &[b"int"]));
        assert_eq!(key(b"ee", &[b"int"]), key(b"ee", &[b"int"]));
    }

    #[test]
    fn stays_bounded_and_off_when_zero() {
        let c = ChainCache::new(16, None);
        for i in 0..100u64 {
            c.insert(key(&i.to_be_bytes(), NONE), entry(0, u64::MAX), i);
            assert!(c.len() <= 16);
        }
        assert!(c.get(&key(&99u64.to_be_bytes(), NONE), 99).is_some());
        let off = ChainCache::new(0, None);
        off.insert(key(b"x", NONE), entry(0, u64::MAX), 1);
        assert!(off.get(&key(b"x", NONE), 1).is_none());
    }
}
