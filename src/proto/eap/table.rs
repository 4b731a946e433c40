//! The table of running EAP conversations, keyed by the State attribute
//! (RFC 2865 §5.24) the server hands out in every Access-Challenge.
//!
//! Sans-I/O: time is passed in. A conversation is checked out while one
//! request works on it and put back afterwards, so two requests never run
//! one conversation at once (the second finds no such State). Only a
//! request from the conversation's origin (its NAS client entry, and the
//! NAS-Identifier and Calling-Station-Id it started with) may check it out;
//! anyone else's request finds no such State and leaves it untouched.
//!
//! The table bounds how many conversations exist, in all and per NAS, and
//! the octets they buffer together; it expires idle ones, ones running
//! past their maximum duration, and, early, ones whose peer was sent a TLS
//! alert (a peer that refuses our certificate often goes silent instead of
//! acknowledging it). When asked, a station's new conversation ends its
//! older ones that have gone idle, keeping a few per station so a NAS that
//! fails over and re-sends a station's pending requests at once can still
//! continue the one it picks.
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
//! Lock order: `nases`, then `stations`, then a shard; never the reverse.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use super::conversation::{Claimed, Conversation};

pub type State = [u8; 16];

const SHARDS: usize = 16;

/// Conversations kept per station (NAS and Calling-Station-Id): the
/// newest and up to three older ones still in use.
const PER_STATION: usize = 4;

/// Bounds on the table, fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Conversations at once, in all.
    pub cap: usize,
    /// Conversations at once from one NAS.
    pub per_nas: usize,
    /// A conversation without a request for this long is forgotten.
    pub idle_timeout: Duration,
    /// A conversation idle for less than this is never evicted, nor
    /// replaced by a newer one of its station.
    pub evictable_after: Duration,
    /// A conversation older than this ends, however busy.
    pub max_duration: Duration,
    /// After a TLS alert went to the peer, the idle timeout is this.
    pub alert_timeout: Duration,
    /// Octets all conversations may buffer together.
    pub memory_budget: usize,
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
            max_duration: Duration::from_secs(60),
            alert_timeout: Duration::from_secs(3),
            memory_budget: 256 << 20,
        }
    }
}

/// Why the table ended a conversation by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request for `idle_timeout`.
    Idle,
    /// Running for longer than `max_duration`.
    TooLong,
    /// The peer was sent a TLS alert and did not answer within
    /// `alert_timeout`.
    AlertUnanswered,
}

impl Expiry {
    pub const ALL: [Expiry; 3] = [Expiry::Idle, Expiry::TooLong, Expiry::AlertUnanswered];

    /// A metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Expiry::Idle => "idle",
            Expiry::TooLong => "max_duration",
            Expiry::AlertUnanswered => "alert_unanswered",
        }
    }
}

impl Limits {
    /// Whether `c` has run out of time at `now`, and why.
    pub fn expiry(&self, c: &Conversation, now: Instant) -> Option<Expiry> {
        let idle = now.saturating_duration_since(c.last_seen);
        if now.saturating_duration_since(c.started) > self.max_duration {
            Some(Expiry::TooLong)
        } else if c.alert_sent().is_some() && idle > self.alert_timeout {
            Some(Expiry::AlertUnanswered)
        } else if idle > self.idle_timeout {
            Some(Expiry::Idle)
        } else {
            None
        }
    }
}

/// Why a request found no conversation to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// No conversation has this State (never had, ended, or in use by
    /// another request right now).
    Unknown,
    /// It ran out of time; it is ended now.
    Expired(Expiry),
    /// It belongs to another origin (the owner's NAS name is given for
    /// the log); it is left as it was.
    Foreign(Arc<str>),
}

/// What ran out of room: why a new conversation was refused, and why an
/// idle one was evicted to admit one. The names are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The whole table.
    TableFull,
    /// The NAS's share of it.
    NasShare,
    /// The octets all conversations may buffer.
    MemoryBudget,
}

impl NoRoom {
    pub const ALL: [NoRoom; 3] = [NoRoom::TableFull, NoRoom::NasShare, NoRoom::MemoryBudget];

    pub fn reason(self) -> &'static str {
        match self {
            NoRoom::TableFull => "table_full",
            NoRoom::NasShare => "nas_share",
            NoRoom::MemoryBudget => "memory_budget",
        }
    }
}

/// One NAS's part of the table.
#[derive(Default)]
struct Nas {
    /// Its conversations, in the table or checked out.
    count: usize,
    /// Octets its conversations were last charged for.
    bytes: usize,
    /// (last_seen, State) in put-back order; may hold stale entries.
    queue: VecDeque<(Instant, State)>,
}

pub struct ConversationTable {
    shards: Vec<Mutex<HashMap<State, Conversation>>>,
    /// (NAS, Calling-Station-Id) → the station's conversations, oldest
    /// first.
    stations: Mutex<HashMap<(String, String), Vec<State>>>,
    nases: Mutex<HashMap<Arc<str>, Nas>>,
    /// Conversations that exist, in the table or checked out; changed only
    /// under the `nases` lock, read without it for metrics.
    count: AtomicUsize,
    /// Octets charged to conversations in all; changed only under the
    /// `nases` lock.
    bytes: AtomicUsize,
    evicted: [AtomicU64; 3],
    /// Conversations a newer one of their station ended.
    replaced: AtomicU64,
    limits: Limits,
}

/// A conversation taken out of the table. Dropping it ends the
/// conversation; `ConversationTable::put_back` returns it. It holds the
/// table, so it can wait elsewhere (for a directory's answer) for as long
/// as it must.
pub struct CheckedOut {
    table: Arc<ConversationTable>,
    pub state: State,
    pub conversation: Option<Conversation>,
}

impl Drop for CheckedOut {
    fn drop(&mut self) {
        if let Some(c) = self.conversation.take() {
            self.table.forget(&self.state, &c);
        }
    }
}

impl CheckedOut {
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
            bytes: AtomicUsize::new(0),
            evicted: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            replaced: AtomicU64::new(0),
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
        self.nases.lock().get(nas).map_or(0, |n| n.count)
    }

    /// Octets the conversations buffer, as last charged.
    pub fn buffered(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Conversations replaced by a newer one of their station since the
    /// last call.
    pub fn take_replaced(&self) -> u64 {
        self.replaced.swap(0, Ordering::Relaxed)
    }

    /// Evictions since the last call, by reason.
    pub fn take_evictions(&self) -> [(NoRoom, u64); 3] {
        NoRoom::ALL.map(|e| (e, self.evicted[e as usize].swap(0, Ordering::Relaxed)))
    }

    /// Admits a new conversation under `state` (fresh and random: the
    /// caller's random source makes it), evicting an idle one when there is
    /// no room. It is checked out: `put_back` stores it.
    pub fn admit(
        self: &Arc<Self>,
        conversation: Conversation,
        state: State,
        now: Instant,
    ) -> Result<CheckedOut, NoRoom> {
        let mut nases = self.nases.lock();
        let nas = conversation.origin.nas.clone();
        let held = nases.get(&*nas).map_or(0, |n| n.count);
        // With a share as large as the table, a full share is a full table.
        if held >= self.limits.per_nas && self.limits.per_nas < self.limits.cap {
            if !self.evict_from(&mut nases, &nas, now) {
                return Err(NoRoom::NasShare);
            }
            self.evicted[NoRoom::NasShare as usize].fetch_add(1, Ordering::Relaxed);
        } else if self.count.load(Ordering::Relaxed) >= self.limits.cap {
            if !self.evict_from_largest(&mut nases, now) {
                return Err(NoRoom::TableFull);
            }
            self.evicted[NoRoom::TableFull as usize].fetch_add(1, Ordering::Relaxed);
        }
        match nases.get_mut(&*nas) {
            Some(n) => n.count += 1,
            None => {
                nases.insert(
                    nas,
                    Nas {
                        count: 1,
                        bytes: 0,
                        queue: VecDeque::new(),
                    },
                );
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        drop(nases);
        Ok(CheckedOut {
            table: self.clone(),
            state,
            conversation: Some(conversation),
        })
    }

    /// Takes a conversation out for one request from `claimed`. A
    /// conversation of another origin stays where it is, untouched; one
    /// that ran out of time ends.
    pub fn take(
        self: &Arc<Self>,
        state: &[u8],
        claimed: &Claimed<'_>,
        now: Instant,
    ) -> Result<CheckedOut, Missing> {
        let state: State = state.try_into().map_err(|_| Missing::Unknown)?;
        let conv = {
            let mut shard = self.shards[shard_of(&state)].lock();
            let owner = &shard.get(&state).ok_or(Missing::Unknown)?.origin;
            if !owner.admits(claimed) {
                return Err(Missing::Foreign(owner.nas.clone()));
            }
            shard.remove(&state).ok_or(Missing::Unknown)?
        };
        let expiry = self.limits.expiry(&conv, now);
        let out = CheckedOut {
            table: self.clone(),
            state,
            conversation: Some(conv),
        };
        match expiry {
            Some(e) => {
                out.end();
                Err(Missing::Expired(e))
            }
            None => Ok(out),
        }
    }

    /// Charges a checked-out conversation for the octets it buffers now,
    /// evicting idle conversations of the NASes buffering most when the
    /// budget would be exceeded. Err when no room can be made: the caller
    /// ends this conversation.
    pub fn charge(&self, out: &mut CheckedOut, now: Instant) -> Result<(), NoRoom> {
        let Some(conv) = out.conversation.as_mut() else {
            return Ok(());
        };
        let new = conv.buffered();
        let old = std::mem::replace(&mut conv.charged, new);
        let mut nases = self.nases.lock();
        self.recharge(&mut nases, &conv.origin.nas, old, new);
        let mut evicted = 0;
        while self.bytes.load(Ordering::Relaxed) > self.limits.memory_budget {
            if !self.evict_from_heaviest(&mut nases, now) {
                self.evicted[NoRoom::MemoryBudget as usize].fetch_add(evicted, Ordering::Relaxed);
                return Err(NoRoom::MemoryBudget);
            }
            evicted += 1;
        }
        self.evicted[NoRoom::MemoryBudget as usize].fetch_add(evicted, Ordering::Relaxed);
        Ok(())
    }

    /// Returns a conversation after a request that continues it. When it
    /// carries a Calling-Station-Id and `replace` is set, the station's
    /// other conversations that have been idle for `evictable_after` end,
    /// and so do its oldest beyond the few kept per station; returns how
    /// many ended.
    pub fn put_back(&self, mut out: CheckedOut, replace: bool, now: Instant) -> usize {
        let Some(conv) = out.conversation.take() else {
            return 0;
        };
        let state = out.state;
        let mut replaced = Vec::new();
        if replace && let Some(station) = &conv.origin.calling_station {
            let key = (conv.origin.nas.to_string(), station.clone());
            let mut stations = self.stations.lock();
            let list = stations.entry(key).or_default();
            if !list.contains(&state) {
                list.push(state);
            }
            let excess = list.len().saturating_sub(PER_STATION);
            let mut position = 0;
            list.retain(|other| {
                position += 1;
                if *other == state {
                    return true;
                }
                let mut shard = self.shards[shard_of(other)].lock();
                // A conversation checked out right now is in use: keep it.
                let Some(c) = shard.get(other) else {
                    return true;
                };
                let idle =
                    now.saturating_duration_since(c.last_seen) >= self.limits.evictable_after;
                if idle || position <= excess {
                    replaced.extend(shard.remove(other));
                    return false;
                }
                true
            });
        }
        let entry = (conv.last_seen, state);
        let nas = conv.origin.nas.clone();
        self.shards[shard_of(&state)].lock().insert(state, conv);
        let mut nases = self.nases.lock();
        for old in &replaced {
            self.uncount(&mut nases, old);
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
        self.replaced
            .fetch_add(replaced.len() as u64, Ordering::Relaxed);
        // Dropping a conversation frees a TLS connection: outside the locks.
        replaced.len()
    }

    /// Ends conversations that ran out of time; returns them with why, for
    /// the caller to count, log and drop.
    pub fn sweep(&self, now: Instant) -> Vec<(Expiry, Conversation)> {
        let mut expired = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            let due: Vec<(State, Expiry)> = map
                .iter()
                .filter_map(|(s, c)| self.limits.expiry(c, now).map(|e| (*s, e)))
                .collect();
            expired.extend(
                due.into_iter()
                    .filter_map(|(s, e)| map.remove(&s).map(|c| (s, e, c))),
            );
            // After a flood the map keeps its peak capacity otherwise.
            if map.capacity() > 4 * map.len() + 1024 {
                map.shrink_to_fit();
            }
        }
        let mut nases = self.nases.lock();
        for (_, _, c) in &expired {
            self.uncount(&mut nases, c);
        }
        for n in nases.values_mut() {
            self.compact(n);
        }
        nases.retain(|_, n| n.count > 0 || !n.queue.is_empty());
        drop(nases);
        for (state, _, c) in &expired {
            self.unstation(c, state);
        }
        let mut stations = self.stations.lock();
        if stations.capacity() > 4 * stations.len() + 1024 {
            stations.shrink_to_fit();
        }
        drop(stations);
        expired.into_iter().map(|(_, e, c)| (e, c)).collect()
    }

    /// Evicts the idlest evictable conversation of `nas`.
    fn evict_from(&self, nases: &mut HashMap<Arc<str>, Nas>, nas: &str, now: Instant) -> bool {
        let Some(n) = nases.get_mut(nas) else {
            return false;
        };
        let Some((state, victim)) = self.pop_idlest(n, now) else {
            return false;
        };
        n.count -= 1;
        n.bytes = n.bytes.saturating_sub(victim.charged);
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(victim.charged, Ordering::Relaxed);
        self.unstation(&victim, &state);
        true
    }

    /// Evicts from the NAS whose conversations buffer the most octets, or
    /// the next when all of its conversations are recent.
    fn evict_from_heaviest(&self, nases: &mut HashMap<Arc<str>, Nas>, now: Instant) -> bool {
        let mut order: Vec<(usize, Arc<str>)> =
            nases.iter().map(|(k, n)| (n.bytes, k.clone())).collect();
        order.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        order
            .iter()
            .any(|(_, nas)| self.evict_from(nases, nas, now))
    }

    fn recharge(&self, nases: &mut HashMap<Arc<str>, Nas>, nas: &str, old: usize, new: usize) {
        if let Some(n) = nases.get_mut(nas) {
            n.bytes = (n.bytes + new).saturating_sub(old);
        }
        if new >= old {
            self.bytes.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(old - new, Ordering::Relaxed);
        }
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
            let mut shard = self.shards[shard_of(&state)].lock();
            if shard.get(&state).is_some_and(|c| c.last_seen == seen) {
                return shard.remove(&state).map(|c| (state, c));
            }
        }
        None
    }

    /// Drops queue entries that no longer describe a stored conversation.
    fn compact(&self, n: &mut Nas) {
        n.queue.retain(|(seen, state)| {
            self.shards[shard_of(state)]
                .lock()
                .get(state)
                .is_some_and(|c| c.last_seen == *seen)
        });
        if n.queue.capacity() > 4 * n.queue.len() + 64 {
            n.queue.shrink_to_fit();
        }
    }

    /// Takes an ended conversation off its NAS's count and charge.
    fn uncount(&self, nases: &mut HashMap<Arc<str>, Nas>, conv: &Conversation) {
        if let Some(n) = nases.get_mut(&*conv.origin.nas) {
            n.count = n.count.saturating_sub(1);
            n.bytes = n.bytes.saturating_sub(conv.charged);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(conv.charged, Ordering::Relaxed);
    }

    fn unstation(&self, conv: &Conversation, state: &State) {
        if let Some(station) = &conv.origin.calling_station {
            let mut stations = self.stations.lock();
            let key = (conv.origin.nas.to_string(), station.clone());
            if let Some(list) = stations.get_mut(&key) {
                list.retain(|s| s != state);
                if list.is_empty() {
                    stations.remove(&key);
                }
            }
        }
    }

    fn forget(&self, state: &State, conv: &Conversation) {
        self.uncount(&mut self.nases.lock(), conv);
        self.unstation(conv, state);
    }
}
