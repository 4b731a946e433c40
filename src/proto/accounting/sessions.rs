//! Live sessions from accounting records: Start creates, Interim-Update
//! updates (creating when the Start was missed), Stop removes, and
//! Accounting-On/Off from a NAS clears that NAS's sessions; sessions silent
//! past the timeout expire. Keyed by (NAS client, Acct-Session-Id).
//!
//! Sans-I/O: records and times in, changes and counter deltas out, so the
//! same code serves live traffic and the replay of the journal on start.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use serde::Serialize;

use super::auth::Authentication;
use super::record::{Record, Status};
use crate::proto::das::target::Target;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub client: String,
    pub session_id: String,
    pub user: Option<String>,
    pub nas_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nas_identifier: Option<String>,
    pub calling_station: Option<String>,
    pub called_station: Option<String>,
    pub framed_ip: Option<String>,
    pub class: Option<String>,
    /// The authorization group, when Class is `group=NAME`.
    pub group: Option<String>,
    pub started: i64,
    pub updated: i64,
    pub session_time: u32,
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
    /// Where its accounting comes from (the NAS, or its RadSec peer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Access-Accept it began with, when the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<Authentication>>,
    /// The last dynamic authorization request for it and how it ended
    /// (`pending`, `ack`, `nak 503`, `timeout`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<String>,
    /// Unix seconds of its last directory re-check (or its Accept).
    #[serde(skip)]
    pub checked: i64,
}

impl Session {
    /// The session as a dynamic authorization request names it.
    pub fn target(&self) -> Target {
        Target {
            nas: self.client.clone(),
            source: self
                .source
                .as_deref()
                .or(self.auth.as_ref().map(|a| a.source.as_str()))
                .and_then(|s| s.parse().ok()),
            session_id: Some(self.session_id.clone()),
            user: self.user.clone(),
            calling_station: self.calling_station.clone(),
            nas_identifier: self.nas_identifier.clone(),
            nas_ip: self.nas_ip.clone(),
            framed_ip: self.framed_ip.clone(),
            group: self.group.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// Counter increases a record brought (never negative: a NAS that resets
/// its counters is taken from zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deltas {
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Started,
    Updated,
    /// Removed at Stop, with its duration in seconds.
    Stopped {
        duration: u32,
    },
    /// Accounting-On/Off cleared this many sessions of the NAS.
    Cleared(usize),
    /// No session id, unknown status, or the table is full.
    Ignored,
}

/// Which sessions a page of `/sessions` lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub user: Option<String>,
    /// A NAS client name.
    pub nas: Option<String>,
    /// At most this many sessions.
    pub limit: usize,
    /// Only sessions after this key (client, Acct-Session-Id), in key order.
    pub after: Option<(String, String)>,
}

/// A page cursor for the key (client, Acct-Session-Id): hex of the two
/// joined by a NUL octet, so any session id travels in a URL unharmed.
pub fn cursor(client: &str, session_id: &str) -> String {
    let mut raw = Vec::with_capacity(client.len() + 1 + session_id.len());
    raw.extend_from_slice(client.as_bytes());
    raw.push(0);
    raw.extend_from_slice(session_id.as_bytes());
    crate::proto::hex::encode(&raw)
}

/// The key a `cursor` names; None for anything `cursor` did not make.
pub fn parse_cursor(text: &str) -> Option<(String, String)> {
    let raw = crate::proto::hex::decode(text)?;
    let split = raw.iter().position(|&b| b == 0)?;
    let client = String::from_utf8(raw[..split].to_vec()).ok()?;
    let id = String::from_utf8(raw[split + 1..].to_vec()).ok()?;
    Some((client, id))
}

/// One page of sessions, copied out of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub sessions: Vec<Session>,
    /// The key to ask for the next page with; None on the last page.
    pub next: Option<(String, String)>,
    /// Live sessions in all (not only those the query matches).
    pub total: usize,
}

#[derive(Debug, Default)]
pub struct Sessions {
    /// Ordered by key, so pages are stable and a NAS's sessions are one
    /// range.
    map: BTreeMap<(String, String), Session>,
    max: usize,
    /// Live sessions per client and per group, kept as sessions come and
    /// go so the gauges never need a scan of the whole table.
    by_client: HashMap<String, i64>,
    by_group: HashMap<String, i64>,
}

fn bump(counts: &mut HashMap<String, i64>, key: &str, by: i64) {
    match counts.get_mut(key) {
        Some(n) => {
            *n += by;
            if *n <= 0 {
                counts.remove(key);
            }
        }
        None if by > 0 => {
            counts.insert(key.to_string(), by);
        }
        None => {}
    }
}

fn group_of(class: Option<&str>) -> Option<String> {
    class?.strip_prefix("group=").map(str::to_string)
}

fn delta(new: Option<u64>, old: u64) -> u64 {
    match new {
        Some(n) if n >= old => n - old,
        Some(n) => n,
        None => 0,
    }
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Sessions {
            map: BTreeMap::new(),
            max,
            by_client: HashMap::new(),
            by_group: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn apply(&mut self, r: &Record) -> (Change, Deltas) {
        let status = match r.status {
            Some(s) => s,
            None => return (Change::Ignored, Deltas::default()),
        };
        if matches!(status, Status::AccountingOn | Status::AccountingOff) {
            let keys: Vec<(String, String)> = self
                .map
                .range((r.client.clone(), String::new())..)
                .map(|(k, _)| k)
                .take_while(|(client, _)| client == &r.client)
                .cloned()
                .collect();
            for k in &keys {
                self.remove(k);
            }
            return (Change::Cleared(keys.len()), Deltas::default());
        }
        let Some(id) = r.session_id.clone() else {
            return (Change::Ignored, Deltas::default());
        };
        let key = (r.client.clone(), id);
        let old = self.map.get(&key);
        let d = Deltas {
            input_octets: delta(r.input_octets, old.map_or(0, |s| s.input_octets)),
            output_octets: delta(r.output_octets, old.map_or(0, |s| s.output_octets)),
            input_packets: delta(
                r.input_packets.map(u64::from),
                old.map_or(0, |s| s.input_packets),
            ),
            output_packets: delta(
                r.output_packets.map(u64::from),
                old.map_or(0, |s| s.output_packets),
            ),
        };
        match status {
            Status::Stop => {
                let removed = self.remove(&key);
                let duration = r.session_time.unwrap_or_else(|| {
                    removed.map_or(0, |s| u32::try_from(r.unix - s.started).unwrap_or(0))
                });
                (Change::Stopped { duration }, d)
            }
            Status::Start | Status::InterimUpdate => {
                let exists = self.map.contains_key(&key);
                if !exists && self.map.len() >= self.max {
                    return (Change::Ignored, d);
                }
                let old_group = self.map.get(&key).and_then(|s| s.group.clone());
                let s = self.map.entry(key.clone()).or_insert_with(|| Session {
                    client: r.client.clone(),
                    session_id: key.1.clone(),
                    user: None,
                    nas_ip: None,
                    nas_identifier: None,
                    calling_station: None,
                    called_station: None,
                    framed_ip: None,
                    class: None,
                    group: None,
                    started: r.unix - i64::from(r.session_time.unwrap_or(0)),
                    updated: r.unix,
                    session_time: 0,
                    input_octets: 0,
                    output_octets: 0,
                    input_packets: 0,
                    output_packets: 0,
                    source: None,
                    auth: None,
                    disconnect: None,
                    checked: r.unix,
                });
                s.updated = r.unix;
                let keep = |slot: &mut Option<String>, v: &Option<String>| {
                    if v.is_some() {
                        slot.clone_from(v);
                    }
                };
                keep(&mut s.user, &r.user);
                keep(&mut s.nas_ip, &r.nas_ip);
                keep(&mut s.nas_identifier, &r.nas_identifier);
                keep(&mut s.source, &r.source);
                if let Some(auth) = &r.auth
                    && s.auth.as_ref().is_none_or(|a| a.token != auth.token)
                {
                    s.checked = s.checked.max(auth.at);
                    s.auth = Some(auth.clone());
                }
                keep(&mut s.calling_station, &r.calling_station);
                keep(&mut s.called_station, &r.called_station);
                keep(&mut s.framed_ip, &r.framed_ip);
                keep(&mut s.class, &r.class);
                s.group = group_of(s.class.as_deref());
                s.session_time = r.session_time.unwrap_or(s.session_time);
                s.input_octets = r.input_octets.unwrap_or(s.input_octets);
                s.output_octets = r.output_octets.unwrap_or(s.output_octets);
                s.input_packets = r.input_packets.map_or(s.input_packets, u64::from);
                s.output_packets = r.output_packets.map_or(s.output_packets, u64::from);
                let new_group = s.group.clone();
                if !exists {
                    bump(&mut self.by_client, &r.client, 1);
                }
                if !exists || old_group != new_group {
                    if exists && let Some(g) = &old_group {
                        bump(&mut self.by_group, g, -1);
                    }
                    if let Some(g) = &new_group {
                        bump(&mut self.by_group, g, 1);
                    }
                }
                (
                    if exists {
                        Change::Updated
                    } else {
                        Change::Started
                    },
                    d,
                )
            }
            _ => (Change::Ignored, d),
        }
    }

    fn remove(&mut self, key: &(String, String)) -> Option<Session> {
        let s = self.map.remove(key)?;
        bump(&mut self.by_client, &s.client, -1);
        if let Some(g) = &s.group {
            bump(&mut self.by_group, g, -1);
        }
        Some(s)
    }

    /// Removes sessions not updated for `timeout_secs`; returns them.
    pub fn expire(&mut self, now_unix: i64, timeout_secs: i64) -> Vec<Session> {
        let keys: Vec<(String, String)> = self
            .map
            .iter()
            .filter(|(_, s)| now_unix - s.updated > timeout_secs)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// One page of the sessions a query matches, in key order. Copies at
    /// most `limit` sessions; a NAS filter reads only that NAS's range.
    pub fn page(&self, q: &Query) -> Page {
        let start = match (&q.after, &q.nas) {
            (Some(after), _) => Bound::Excluded(after.clone()),
            (None, Some(nas)) => Bound::Included((nas.clone(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut matching = self
            .map
            .range((start, Bound::Unbounded))
            .take_while(|((client, _), _)| q.nas.as_ref().is_none_or(|n| client <= n))
            .filter(|((client, _), s)| {
                q.nas.as_ref().is_none_or(|n| client == n)
                    && q.user.as_ref().is_none_or(|u| s.user.as_ref() == Some(u))
            });
        let sessions: Vec<Session> = matching
            .by_ref()
            .take(q.limit)
            .map(|(_, s)| s.clone())
            .collect();
        let more = matching.next().is_some();
        Page {
            next: more
                .then(|| {
                    sessions
                        .last()
                        .map(|s| (s.client.clone(), s.session_id.clone()))
                })
                .flatten(),
            sessions,
            total: self.map.len(),
        }
    }

    /// The authentication a session of `client` with this id carries.
    pub fn auth_of(&self, client: &str, session_id: &str) -> Option<&Authentication> {
        self.map
            .get(&(client.to_string(), session_id.to_string()))
            .and_then(|s| s.auth.as_deref())
    }

    /// Every session `pick` wants, as targets.
    pub fn targets(&self, mut pick: impl FnMut(&Session) -> bool) -> Vec<Target> {
        self.map
            .values()
            .filter(|s| pick(s))
            .map(Session::target)
            .collect()
    }

    /// Up to `limit` sessions `pick` wants, in key order (copies).
    pub fn matching(&self, mut pick: impl FnMut(&Session) -> bool, limit: usize) -> Vec<Session> {
        self.map
            .values()
            .filter(|s| pick(s))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Notes what became of a request for a session (if it is still live).
    pub fn mark(&mut self, client: &str, session_id: &str, state: String) {
        if let Some(s) = self
            .map
            .get_mut(&(client.to_string(), session_id.to_string()))
        {
            s.disconnect = Some(state);
        }
    }

    /// Up to `max` sessions with an authentication last checked
    /// `interval_secs` ago or longer, marked checked now. Examines at most
    /// `scan` sessions, going on from `cursor` (updated), so a table of a
    /// million costs a bounded slice of work per call.
    pub fn due_for_check(
        &mut self,
        now_unix: i64,
        interval_secs: i64,
        max: usize,
        scan: usize,
        cursor: &mut Option<(String, String)>,
    ) -> Vec<Target> {
        let start = match cursor.take() {
            Some(c) => Bound::Excluded(c),
            None => Bound::Unbounded,
        };
        let mut due = Vec::new();
        let mut last = None;
        let mut seen = 0;
        for (key, s) in self.map.range_mut((start, Bound::Unbounded)) {
            seen += 1;
            last = Some(key.clone());
            if s.auth.is_some() && now_unix - s.checked >= interval_secs {
                s.checked = now_unix;
                due.push(s.target());
            }
            if due.len() >= max || seen >= scan {
                break;
            }
        }
        // At the end of the table the next call starts again from the top.
        *cursor = if seen >= scan || due.len() >= max {
            last
        } else {
            None
        };
        due
    }

    /// Active sessions by NAS client and by group (small maps: one entry
    /// per configured client and group with live sessions).
    pub fn counts(&self) -> (&HashMap<String, i64>, &HashMap<String, i64>) {
        (&self.by_client, &self.by_group)
    }

    pub fn client_count(&self, client: &str) -> i64 {
        self.by_client.get(client).copied().unwrap_or(0)
    }

    pub fn group_count(&self, group: &str) -> i64 {
        self.by_group.get(group).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: &str, status: Status, id: &str, unix: i64, octets: Option<u64>) -> Record {
        Record {
            time: String::new(),
            unix,
            client: client.into(),
            status: Some(status),
            session_id: Some(id.into()),
            user: Some("alice".into()),
            nas_ip: None,
            nas_identifier: None,
            calling_station: None,
            called_station: None,
            framed_ip: None,
            class: Some("group=staff".into()),
            session_time: None,
            input_octets: octets,
            output_octets: None,
            input_packets: None,
            output_packets: None,
            terminate_cause: None,
            delay_time: None,
            source: None,
            token: None,
            auth: None,
            probable_duplicate: false,
            attributes: Default::default(),
        }
    }

    #[test]
    fn lifecycle_deltas_clear_and_expiry() {
        let mut s = Sessions::new(10);
        let (c, d) = s.apply(&rec("nas", Status::Start, "1", 100, None));
        assert_eq!((c, d), (Change::Started, Deltas::default()));
        let (c, d) = s.apply(&rec("nas", Status::InterimUpdate, "1", 160, Some(1000)));
        assert_eq!(c, Change::Updated);
        assert_eq!(d.input_octets, 1000);
        let (_, d) = s.apply(&rec("nas", Status::InterimUpdate, "1", 220, Some(1500)));
        assert_eq!(d.input_octets, 500);
        assert_eq!(s.group_count("staff"), 1);
        assert_eq!(s.client_count("nas"), 1);
        let (c, d) = s.apply(&rec("nas", Status::Stop, "1", 250, Some(1600)));
        assert_eq!(c, Change::Stopped { duration: 150 });
        assert_eq!(d.input_octets, 100);
        assert!(s.is_empty());

        s.apply(&rec("nas", Status::InterimUpdate, "2", 300, None));
        s.apply(&rec("other", Status::Start, "3", 300, None));
        let (c, _) = s.apply(&rec("nas", Status::AccountingOn, "x", 310, None));
        assert_eq!(c, Change::Cleared(1));
        let other = Query {
            nas: Some("other".into()),
            limit: 10,
            ..Query::default()
        };
        assert_eq!(s.page(&other).sessions.len(), 1);
        assert_eq!(s.client_count("nas"), 0);
        assert_eq!(s.group_count("staff"), 1);
        assert_eq!(s.expire(400, 60).len(), 1);
        assert!(s.is_empty());
        assert!(s.counts().0.is_empty() && s.counts().1.is_empty());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = cursor("ap-1", "id with spaces & =");
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            parse_cursor(&c),
            Some(("ap-1".into(), "id with spaces & =".into()))
        );
        assert_eq!(parse_cursor("zz"), None);
        assert_eq!(parse_cursor("6162"), None, "no separator");
    }

    /// Pages never copy more than asked, follow key order, and chain by
    /// their `next` key to every matching session exactly once.
    #[test]
    fn pages_are_bounded_ordered_and_complete() {
        let mut s = Sessions::new(1000);
        for nas in ["a", "b", "c"] {
            for i in 0..25 {
                let mut r = rec(nas, Status::Start, &format!("{i:03}"), 100, None);
                if i % 5 == 0 {
                    r.user = Some("bob".into());
                }
                s.apply(&r);
            }
        }
        let walk = |q: Query| {
            let mut q = q;
            let mut seen = Vec::new();
            loop {
                let page = s.page(&q);
                assert!(page.sessions.len() <= q.limit);
                assert_eq!(page.total, 75);
                seen.extend(
                    page.sessions
                        .iter()
                        .map(|x| (x.client.clone(), x.session_id.clone())),
                );
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => return seen,
                }
            }
        };
        let all = walk(Query {
            limit: 10,
            ..Query::default()
        });
        assert_eq!(all.len(), 75);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "key order, no repeats");
        let b = walk(Query {
            nas: Some("b".into()),
            limit: 7,
            ..Query::default()
        });
        assert_eq!(b.len(), 25);
        assert!(b.iter().all(|(c, _)| c == "b"));
        let bob = walk(Query {
            user: Some("bob".into()),
            limit: 4,
            ..Query::default()
        });
        assert_eq!(bob.len(), 15);
        let one = s.page(&Query {
            nas: Some("c".into()),
            user: Some("bob".into()),
            limit: 100,
            ..Query::default()
        });
        assert_eq!(one.sessions.len(), 5);
        assert_eq!(one.next, None);
    }
}
