//! The table of running EAP conversations, keyed by the State attribute
//! (RFC 2865 §5.24) the server hands out in every Access-Challenge.
//!
//! Sans-I/O: time is passed in. A conversation is checked out while one
//! request works on it and put back afterwards, so two requests never run
//! one conversation at once (the second finds no such State). The table
//! bounds how many conversations exist, in all and per NAS, expires idle
//! ones and, when asked, lets a station's new conversation replace its
//! older one.
//!
//! When a new conversation finds no room, the table evicts the one idle
//! longest — an abandoned half-open handshake, typically — from its own NAS
//! when that NAS has used its share, else from the NAS holding the most. A
//! conversation that has made progress within `evictable_after` is never
//! evicted. Each NAS keeps a queue of (last activity, State) in the order
//! conversations were last put back, so finding the idlest is a look at
//! the queue's front; entries left behind by later activity are dropped
//! lazily (they no longer match the conversation's `last_seen`).
//!
//! Lock order: `nases` before a shard or `stations`; never the reverse.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::conversation::Conversation;

pub type State = [u8; 16];

const SHARDS: usize = 16;

/// Bounds on the table, fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Conversations at once, in all.
    pub cap: usize,
    /// Conversations at once from one NAS.
    pub per_nas: usize,
    /// A conversation without a request for this long is forgotten.
    pub idle_timeout: Duration,
    /// A conversation idle for less than this is never evicted.
    pub evictable_after: Duration,
}

/// The configuration's defaults (`[eap]` left empty; checked in the config
/// tests): 100 000 conversations, half of them per NAS.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            cap: 100_000,
            per_nas: 50_000,
            idle_timeout: Duration::from_secs(30),
            evictable_after: Duration::from_secs(1),
        }
    }
}

/// What ran out of room: why a new conversation was refused, and why an
/// idle one was evicted to admit one. The names are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The whole table.
    TableFull,
    /// The NAS's share of it.
    NasShare,
}

impl NoRoom {
    pub const ALL: [NoRoom; 2] = [NoRoom::TableFull, NoRoom::NasShare];

    pub fn reason(self) -> &'static str {
        match self {
            NoRoom::TableFull => "table_full",
            NoRoom::NasShare => "nas_share",
        }
    }
}

/// One NAS's part of the table.
#[derive(Default)]
struct Nas {
    /// Its conversations, in the table or checked out.
    count: usize,
    /// (last_seen, State) in put-back order; may hold stale entries.
    queue: VecDeque<(Instant, State)>,
}

pub struct ConversationTable {
    shards: Vec<Mutex<HashMap<State, Conversation>>>,
    /// (NAS, Calling-Station-Id) → the station's current conversation.
    stations: Mutex<HashMap<(String, String), State>>,
    nases: Mutex<HashMap<Arc<str>, Nas>>,
    /// Conversations that exist, in the table or checked out; changed only
    /// under the `nases` lock, read without it for metrics.
    count: AtomicUsize,
    evicted: [AtomicU64; 2],
    limits: Limits,
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
    pub fn new(limits: Limits) -> Self {
        ConversationTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            stations: Mutex::new(HashMap::new()),
            nases: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            evicted: [AtomicU64::new(0), AtomicU64::new(0)],
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Conversations of one NAS.
    pub fn nas_len(&self, nas: &str) -> usize {
        lock(&self.nases).get(nas).map_or(0, |n| n.count)
    }

    /// Evictions since the last call, by reason.
    pub fn take_evictions(&self) -> [(NoRoom, u64); 2] {
        NoRoom::ALL.map(|e| (e, self.evicted[e as usize].swap(0, Ordering::Relaxed)))
    }

    /// Admits a new conversation under a fresh random State, evicting an
    /// idle one when there is no room. It is checked out: `put_back`
    /// stores it.
    pub fn admit(
        &self,
        conversation: Conversation,
        now: Instant,
    ) -> Result<CheckedOut<'_>, NoRoom> {
        let mut nases = lock(&self.nases);
        let held = nases.get(&*conversation.nas).map_or(0, |n| n.count);
        // With a share as large as the table, a full share is a full table.
        if held >= self.limits.per_nas && self.limits.per_nas < self.limits.cap {
            if !self.evict_from(&mut nases, &conversation.nas, now) {
                return Err(NoRoom::NasShare);
            }
            self.evicted[NoRoom::NasShare as usize].fetch_add(1, Ordering::Relaxed);
        } else if self.count.load(Ordering::Relaxed) >= self.limits.cap {
            if !self.evict_from_largest(&mut nases, now) {
                return Err(NoRoom::TableFull);
            }
            self.evicted[NoRoom::TableFull as usize].fetch_add(1, Ordering::Relaxed);
        }
        match nases.get_mut(&*conversation.nas) {
            Some(n) => n.count += 1,
            None => {
                nases.insert(
                    conversation.nas.clone(),
                    Nas {
                        count: 1,
                        queue: VecDeque::new(),
                    },
                );
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        drop(nases);
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
            .is_some_and(|c| now.saturating_duration_since(c.last_seen) > self.limits.idle_timeout);
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
        let mut replaced = None;
        if replace && let Some(station) = &conv.calling_station {
            let key = (conv.nas.to_string(), station.clone());
            let old = lock(&self.stations).insert(key, state);
            if let Some(old) = old.filter(|o| *o != state) {
                replaced = lock(&self.shards[shard_of(&old)]).remove(&old);
            }
        }
        let entry = (conv.last_seen, state);
        let nas = conv.nas.clone();
        lock(&self.shards[shard_of(&state)]).insert(state, conv);
        let mut nases = lock(&self.nases);
        if let Some(old) = &replaced {
            self.uncount(&mut nases, &old.nas);
        }
        if let Some(n) = nases.get_mut(&*nas) {
            if n.queue.back() != Some(&entry) {
                n.queue.push_back(entry);
            }
            // Stale entries pile up under steady traffic between sweeps;
            // compacting at twice the live count keeps the cost amortised.
            if n.queue.len() > 2 * n.count + 64 {
                self.compact(n);
            }
        }
        drop(nases);
        // Dropping a conversation frees a TLS connection: outside the locks.
        replaced.is_some()
    }

    /// Ends conversations idle past the timeout; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut expired = Vec::new();
        for shard in &self.shards {
            let mut map = lock(shard);
            let idle: Vec<State> = map
                .iter()
                .filter(|(_, c)| {
                    now.saturating_duration_since(c.last_seen) > self.limits.idle_timeout
                })
                .map(|(s, _)| *s)
                .collect();
            expired.extend(
                idle.into_iter()
                    .filter_map(|s| map.remove(&s).map(|c| (s, c))),
            );
            // After a flood the map keeps its peak capacity otherwise.
            if map.capacity() > 4 * map.len() + 1024 {
                map.shrink_to_fit();
            }
        }
        let mut nases = lock(&self.nases);
        for (_, c) in &expired {
            self.uncount(&mut nases, &c.nas);
        }
        for n in nases.values_mut() {
            self.compact(n);
        }
        nases.retain(|_, n| n.count > 0 || !n.queue.is_empty());
        drop(nases);
        for (state, c) in &expired {
            self.unstation(c, state);
        }
        let mut stations = lock(&self.stations);
        if stations.capacity() > 4 * stations.len() + 1024 {
            stations.shrink_to_fit();
        }
        drop(stations);
        expired.len()
    }

    /// Evicts the idlest evictable conversation of `nas`.
    fn evict_from(&self, nases: &mut HashMap<Arc<str>, Nas>, nas: &str, now: Instant) -> bool {
        let Some(n) = nases.get_mut(nas) else {
            return false;
        };
        let Some(victim) = self.pop_idlest(n, now) else {
            return false;
        };
        n.count -= 1;
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.unstation(&victim.1, &victim.0);
        true
    }

    /// Evicts from the NAS holding the most conversations, or the next
    /// largest when all of its conversations are recent.
    fn evict_from_largest(&self, nases: &mut HashMap<Arc<str>, Nas>, now: Instant) -> bool {
        let mut order: Vec<(usize, Arc<str>)> =
            nases.iter().map(|(k, n)| (n.count, k.clone())).collect();
        order.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        order
            .iter()
            .any(|(_, nas)| self.evict_from(nases, nas, now))
    }

    /// Removes the idlest conversation of one NAS if it has been idle for
    /// `evictable_after`; returns its State and conversation.
    fn pop_idlest(&self, n: &mut Nas, now: Instant) -> Option<(State, Conversation)> {
        while let Some(&(seen, state)) = n.queue.front() {
            if now.saturating_duration_since(seen) < self.limits.evictable_after {
                // The front is the oldest entry: everything behind it is
                // at least as recent.
                return None;
            }
            n.queue.pop_front();
            let mut shard = lock(&self.shards[shard_of(&state)]);
            if shard.get(&state).is_some_and(|c| c.last_seen == seen) {
                return shard.remove(&state).map(|c| (state, c));
            }
        }
        None
    }

    /// Drops queue entries that no longer describe a stored conversation.
    fn compact(&self, n: &mut Nas) {
        n.queue.retain(|(seen, state)| {
            lock(&self.shards[shard_of(state)])
                .get(state)
                .is_some_and(|c| c.last_seen == *seen)
        });
        if n.queue.capacity() > 4 * n.queue.len() + 64 {
            n.queue.shrink_to_fit();
        }
    }

    fn uncount(&self, nases: &mut HashMap<Arc<str>, Nas>, nas: &str) {
        if let Some(n) = nases.get_mut(nas) {
            n.count = n.count.saturating_sub(1);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    fn unstation(&self, conv: &Conversation, state: &State) {
        if let Some(station) = &conv.calling_station {
            let mut stations = lock(&self.stations);
            let key = (conv.nas.to_string(), station.clone());
            if stations.get(&key) == Some(state) {
                stations.remove(&key);
            }
        }
    }

    fn forget(&self, state: &State, conv: &Conversation) {
        self.uncount(&mut lock(&self.nases), &conv.nas);
        self.unstation(conv, state);
    }
}

/// A poisoned lock only means another thread panicked mid-update of a map
/// whose entries stay individually valid; keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
