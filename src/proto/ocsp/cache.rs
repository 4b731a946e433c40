//! Verified OCSP answers kept until their nextUpdate (capped by
//! `ocsp.max_age`), keyed by issuer key hash and serial, bounded in
//! entries (the oldest stored goes first). A resumed session is checked
//! through it like a full handshake.
//!
//! Bookkeeping only: it must not decide what a status means.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use super::Checked;

pub struct OcspCache {
    inner: Mutex<Inner>,
    max: usize,
}

struct Inner {
    map: HashMap<String, Checked>,
    order: VecDeque<String>,
}

impl OcspCache {
    pub fn new(max: usize) -> Self {
        OcspCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            max: max.max(1),
        }
    }

    /// The answer for `key` while it holds at `now` (Unix seconds).
    pub fn get(&self, key: &str, now: i64) -> Option<Checked> {
        self.inner
            .lock()
            .map
            .get(key)
            .filter(|c| c.until > now)
            .copied()
    }

    pub fn put(&self, key: &str, checked: Checked) {
        let mut i = self.inner.lock();
        if i.map.insert(key.to_string(), checked).is_none() {
            i.order.push_back(key.to_string());
        }
        while i.map.len() > self.max {
            let Some(old) = i.order.pop_front() else {
                break;
            };
            i.map.remove(&old);
        }
    }

    /// Drops what no longer holds; returns the entries left.
    pub fn sweep(&self, now: i64) -> usize {
        let mut i = self.inner.lock();
        i.map.retain(|_, c| c.until > now);
        let Inner { map, order } = &mut *i;
        order.retain(|k| map.contains_key(k));
        map.len()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ocsp::Status;

    #[test]
    fn answers_hold_until_their_time_and_the_bound_holds() {
        let c = OcspCache::new(2);
        let good = |until| Checked {
            status: Status::Good,
            until,
        };
        c.put("a", good(100));
        assert_eq!(c.get("a", 99), Some(good(100)));
        assert_eq!(c.get("a", 100), None, "expired at its nextUpdate");
        c.put("b", good(200));
        c.put("c", good(300));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 0), None, "the oldest went");
        assert_eq!(c.sweep(250), 1);
        assert!(c.get("c", 250).is_some());
    }
}
