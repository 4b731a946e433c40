//! The table of running EAP conversations, keyed by the State attribute
//! (RFC 2865 §5.24) the server hands out in every Access-Challenge.
//!
//! Sans-I/O: time is passed in. A conversation is checked out while one
//! request works on it and put back afterwards, so two requests never run
//! one conversation at once (the second finds no such State). The table
//! bounds how many conversations exist, expires idle ones and, when asked,
//! lets a station's new conversation replace its older one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::conversation::Conversation;

pub type State = [u8; 16];

const SHARDS: usize = 16;

/// Why a new conversation was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

pub struct ConversationTable {
    shards: Vec<Mutex<HashMap<State, Conversation>>>,
    /// (NAS, Calling-Station-Id) → the station's current conversation.
    stations: Mutex<HashMap<(String, String), State>>,
    /// Conversations that exist, in the table or checked out.
    count: AtomicUsize,
    cap: usize,
    idle_timeout: Duration,
}

/// A conversation taken out of the table. Dropping it ends the
/// conversation; `ConversationTable::put_back` returns it.
pub struct CheckedOut<'t> {
    table: &'t ConversationTable,
    pub state: State,
    pub conversation: Option<Conversation>,
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conversation.take() {
            self.table.forget(&self.state, &c);
        }
    }
}

impl CheckedOut<'_> {
    /// Ends the conversation and hands it over for a last look.
    pub fn into_inner(mut self) -> Option<Conversation> {
        let c = self.conversation.take()?;
        self.table.forget(&self.state, &c);
        Some(c)
    }

    /// Ends the conversation now (it would also end on drop).
    pub fn end(mut self) {
        if let Some(c) = self.conversation.take() {
            self.table.forget(&self.state, &c);
        }
    }
}

fn shard_of(state: &State) -> usize {
    usize::from(state[0]) % SHARDS
}

impl ConversationTable {
    pub fn new(cap: usize, idle_timeout: Duration) -> Self {
        ConversationTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            stations: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            cap,
            idle_timeout,
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most conversations the table admits (fixed at start).
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Admits a new conversation under a fresh random State, unless the
    /// table is full. It is checked out: `put_back` stores it.
    pub fn admit(&self, conversation: Conversation) -> Result<CheckedOut<'_>, TableFull> {
        let mut n = self.count.load(Ordering::Relaxed);
        loop {
            if n >= self.cap {
                return Err(TableFull);
            }
            match self
                .count
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        Ok(CheckedOut {
            table: self,
            state: rand::random(),
            conversation: Some(conversation),
        })
    }

    /// Takes a conversation out for one request; None for unknown State or
    /// one that has been idle past the timeout.
    pub fn take(&self, state: &[u8], now: Instant) -> Option<CheckedOut<'_>> {
        let state: State = state.try_into().ok()?;
        let conv = lock(&self.shards[shard_of(&state)]).remove(&state)?;
        let out = CheckedOut {
            table: self,
            state,
            conversation: Some(conv),
        };
        let idle = out
            .conversation
            .as_ref()
            .is_some_and(|c| now.saturating_duration_since(c.last_seen) > self.idle_timeout);
        if idle {
            out.end();
            return None;
        }
        Some(out)
    }

    /// Returns a conversation after a request that continues it. When it
    /// carries a Calling-Station-Id and `replace` is set, a different
    /// conversation of the same station at the same NAS ends; returns
    /// whether one did.
    pub fn put_back(&self, mut out: CheckedOut<'_>, replace: bool) -> bool {
        let Some(conv) = out.conversation.take() else {
            return false;
        };
        let state = out.state;
        let mut replaced = false;
        if replace {
            if let Some(station) = &conv.calling_station {
                let key = (conv.nas.clone(), station.clone());
                let old = lock(&self.stations).insert(key, state);
                if let Some(old) = old.filter(|o| *o != state) {
                    if lock(&self.shards[shard_of(&old)]).remove(&old).is_some() {
                        self.count.fetch_sub(1, Ordering::AcqRel);
                        replaced = true;
                    }
                }
            }
        }
        lock(&self.shards[shard_of(&state)]).insert(state, conv);
        replaced
    }

    /// Ends conversations idle past the timeout; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|_, c| now.saturating_duration_since(c.last_seen) <= self.idle_timeout);
            removed += before - map.len();
        }
        if removed > 0 {
            self.count.fetch_sub(removed, Ordering::AcqRel);
            let mut stations = lock(&self.stations);
            stations.retain(|_, s| lock(&self.shards[shard_of(s)]).contains_key(s));
        }
        removed
    }

    fn forget(&self, state: &State, conv: &Conversation) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        if let Some(station) = &conv.calling_station {
            let mut stations = lock(&self.stations);
            let key = (conv.nas.clone(), station.clone());
            if stations.get(&key) == Some(state) {
                stations.remove(&key);
            }
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of a map
/// whose entries stay individually valid; keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
