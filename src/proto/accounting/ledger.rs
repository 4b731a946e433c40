//! The accounting state the engine keeps between requests: live sessions,
//! the fingerprints that flag delay-only resends, and the group names this
//! server issued (the only ones the by-group gauge shows).
//!
//! Sans-I/O: a verified packet and the time in, a record (and its journal
//! line) out; the stored record in, sessions and counters updated. Writing
//! the journal is the shell's job: a record is applied here only once the
//! shell says it is on disk.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::auth::Authentication;
use super::record::{self, Record, Status};
use super::sessions::{Change, Query, Session, Sessions, cursor};
use crate::metrics::AccountingMetrics;
use crate::proto::das::target::Target;
use crate::proto::dictionary::Dictionary;
use crate::proto::wire::Packet;

/// Most group names `certgate_acct_sessions_active_by_group` shows.
pub const MAX_GROUP_LABELS: usize = 256;

/// `[accounting]`'s session settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LedgerSettings {
    pub session_timeout: Duration,
    pub duplicate_window: Duration,
    pub max_sessions: usize,
}

/// A record decoded and waiting to be stored.
#[derive(Debug)]
pub struct Prepared {
    pub record: Record,
    fingerprint: u64,
}

pub struct Ledger {
    sessions: Mutex<Sessions>,
    /// Group names this server put in a Class `group=NAME` of an
    /// Access-Accept since it started (at most `MAX_GROUP_LABELS`). A NAS
    /// can send any Class in accounting; labels must not grow with what it
    /// sends.
    issued: Mutex<HashSet<String>>,
    /// Content fingerprint → Unix seconds it was stored.
    recent: Mutex<HashMap<u64, i64>>,
    settings: LedgerSettings,
    metrics: Arc<AccountingMetrics>,
}

impl Ledger {
    pub fn new(settings: LedgerSettings, metrics: Arc<AccountingMetrics>) -> Self {
        Ledger {
            sessions: Mutex::new(Sessions::new(settings.max_sessions)),
            issued: Mutex::new(HashSet::new()),
            recent: Mutex::new(HashMap::new()),
            settings,
            metrics,
        }
    }

    /// A record read back from the journal at start: rebuilds the live
    /// sessions (no counters: that traffic was counted before).
    pub fn replay(&self, record: &Record) {
        self.sessions.lock().apply(record);
    }

    /// After the replay: expires what was already silent, then publishes
    /// the gauges.
    pub fn replayed(&self, unix_secs: i64) -> usize {
        let mut sessions = self.sessions.lock();
        sessions.expire(unix_secs, self.settings.session_timeout.as_secs() as i64);
        let live = sessions.len();
        drop(sessions);
        self.publish_counts();
        live
    }

    /// Decodes one verified Accounting-Request received at `unix_ms` from
    /// client `client` at `source`, and flags it when it repeats a record
    /// stored within the duplicate window but for its Acct-Delay-Time. Its
    /// session's authentication goes with it: the one the session already
    /// carries, else the one `claim` finds (by the record's token, or by
    /// NAS, station and user). Returns it with its journal line (JSON, no
    /// newline).
    pub fn prepare(
        &self,
        packet: &Packet<'_>,
        client: &str,
        source: IpAddr,
        dict: &Dictionary,
        unix_ms: i64,
        claim: &dyn Fn(&Record) -> Option<Authentication>,
    ) -> Result<(Prepared, Vec<u8>), String> {
        let mut record = Record::decode(packet, client, dict, unix_ms);
        record.source = Some(source.to_canonical().to_string());
        if let Some(id) = &record.session_id
            && matches!(
                record.status,
                Some(Status::Start | Status::InterimUpdate | Status::Stop)
            )
        {
            let current = self.sessions.lock().auth_of(client, id).cloned();
            record.auth = match (current, &record.token) {
                (Some(a), Some(t)) if a.token == *t => Some(a),
                (current, _) => claim(&record).or(current),
            }
            .map(Box::new);
        }
        let fingerprint = record::content_fingerprint(packet, client);
        let window = self.settings.duplicate_window.as_secs() as i64;
        record.probable_duplicate = self
            .recent
            .lock()
            .get(&fingerprint)
            .is_some_and(|&t| unix_ms / 1000 - t <= window);
        let line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        Ok((
            Prepared {
                record,
                fingerprint,
            },
            line,
        ))
    }

    /// The record is on disk: it counts now.
    pub fn stored(&self, prepared: &Prepared) {
        self.recent
            .lock()
            .insert(prepared.fingerprint, prepared.record.unix);
        self.observe(&prepared.record);
    }

    fn observe(&self, r: &Record) {
        let m = &self.metrics;
        let status = r.status.map_or("none", Status::label);
        m.requests.with_label_values(&[&r.client, status]).inc();
        if r.probable_duplicate {
            m.probable_duplicates.inc();
        }
        let (change, d, client_count, group_count) = {
            let mut sessions = self.sessions.lock();
            let (change, d) = sessions.apply(r);
            let group = r.class.as_deref().and_then(|c| c.strip_prefix("group="));
            (
                change,
                d,
                sessions.client_count(&r.client),
                group.map(|g| (g, sessions.group_count(g))),
            )
        };
        let c = [r.client.as_str()];
        m.input_octets.with_label_values(&c).inc_by(d.input_octets);
        m.output_octets
            .with_label_values(&c)
            .inc_by(d.output_octets);
        m.input_packets
            .with_label_values(&c)
            .inc_by(d.input_packets);
        m.output_packets
            .with_label_values(&c)
            .inc_by(d.output_packets);
        if let Change::Stopped { duration } = change {
            m.session_duration.observe(f64::from(duration));
            let cause = match r.terminate_cause.as_deref() {
                Some(c) if !c.starts_with(|ch: char| ch.is_ascii_digit()) => c,
                Some(_) => "other",
                None => "none",
            };
            m.terminate_causes.with_label_values(&[cause]).inc();
        }
        match change {
            Change::Cleared(_) => self.publish_counts(),
            Change::Started | Change::Stopped { .. } => {
                m.sessions_active.with_label_values(&c).set(client_count);
                if let Some((g, n)) = group_count
                    && self.issued.lock().contains(g)
                {
                    m.sessions_by_group.with_label_values(&[g]).set(n);
                }
            }
            Change::Updated | Change::Ignored => {}
        }
    }

    /// Expires silent sessions and old duplicate fingerprints; about once
    /// a second.
    pub fn sweep(&self, unix_secs: i64) {
        let gone = self
            .sessions
            .lock()
            .expire(unix_secs, self.settings.session_timeout.as_secs() as i64);
        self.metrics.expired.inc_by(gone.len() as u64);
        // Cheap (one entry per client and group): also settles the gauges of
        // records that did not name their group.
        self.publish_counts();
        let window = self.settings.duplicate_window.as_secs() as i64;
        self.recent.lock().retain(|_, t| unix_secs - *t <= window);
    }

    fn publish_counts(&self) {
        let sessions = self.sessions.lock();
        let (by_client, by_group) = sessions.counts();
        let issued = self.issued.lock();
        let by_group: HashMap<String, i64> = by_group
            .iter()
            .filter(|(g, _)| issued.contains(*g))
            .map(|(g, n)| (g.clone(), *n))
            .collect();
        drop(issued);
        let m = &self.metrics;
        set_all(&m.sessions_active, by_client);
        set_all(&m.sessions_by_group, &by_group);
    }

    /// Notes the group of a Class `group=NAME` this server sent in an
    /// Access-Accept, so live sessions carrying it are counted by group.
    pub fn issued_class(&self, class: &[u8]) {
        let Some(name) = class
            .strip_prefix(b"group=")
            .and_then(|g| std::str::from_utf8(g).ok())
        else {
            return;
        };
        let mut issued = self.issued.lock();
        if issued.len() < MAX_GROUP_LABELS && !issued.contains(name) {
            issued.insert(name.to_string());
        }
    }

    /// Every live session `pick` wants, as dynamic authorization targets.
    pub fn targets(&self, pick: impl FnMut(&Session) -> bool) -> Vec<Target> {
        self.sessions.lock().targets(pick)
    }

    /// Up to `limit` live sessions `pick` wants (copies), and how many are
    /// live in all.
    pub fn sessions_matching(
        &self,
        mut pick: impl FnMut(&Session) -> bool,
        limit: usize,
    ) -> (Vec<Session>, usize) {
        let sessions = self.sessions.lock();
        let total = sessions.len();
        (sessions.matching(|s| pick(s), limit), total)
    }

    /// Notes what became of a request for a session.
    pub fn mark(&self, client: &str, session_id: &str, state: String) {
        self.sessions.lock().mark(client, session_id, state);
    }

    /// Sessions due for a directory re-check (see `Sessions::due_for_check`).
    pub fn due_for_check(
        &self,
        now_unix: i64,
        interval_secs: i64,
        max: usize,
        cursor: &mut Option<(String, String)>,
    ) -> Vec<Target> {
        self.sessions
            .lock()
            .due_for_check(now_unix, interval_secs, max, 10_000, cursor)
    }

    /// One page of live sessions as JSON: `sessions`, `next` (the cursor
    /// for the following page, or null) and `total` live sessions. The
    /// sessions lock is held only while at most `limit` sessions are
    /// copied out.
    pub fn sessions_json(&self, query: &Query) -> String {
        let page = self.sessions.lock().page(query);
        serde_json::json!({
            "count": page.sessions.len(),
            "total": page.total,
            "next": page.next.map(|(client, id)| cursor(&client, &id)),
            "sessions": page.sessions,
        })
        .to_string()
    }
}

/// Sets a one-label gauge family to `counts`, and to 0 for every label it
/// already shows that `counts` lacks. No reset: a scrape never sees a
/// series vanish and come back.
fn set_all(gauges: &prometheus::IntGaugeVec, counts: &HashMap<String, i64>) {
    use prometheus::core::Collector;
    for family in gauges.collect() {
        for metric in family.get_metric() {
            if let Some(label) = metric.get_label().first()
                && !counts.contains_key(label.value())
            {
                gauges.with_label_values(&[label.value()]).set(0);
            }
        }
    }
    for (label, n) in counts {
        gauges.with_label_values(&[label]).set(*n);
    }
}
