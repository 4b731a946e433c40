//! Accounting (RFC 2866): every verified Accounting-Request becomes a
//! record in the durable journal, and only a stored record earns an
//! Accounting-Response; stored records drive the live-session table and
//! the usage metrics.
//!
//! - `record`: decoding (sans-I/O).
//! - `journal`: JSON Lines files with group commit (a writer thread).
//! - `sessions`: live sessions (sans-I/O), rebuilt from the journal on start.
//!
//! Retransmissions: an exact duplicate (same source, Identifier and Request
//! Authenticator) is answered from the RFC 5080 cache and stored once. A
//! resend with a new Acct-Delay-Time has a new authenticator, so it is
//! stored again, flagged `probable_duplicate` when every other attribute
//! equals one stored from the same client within `duplicate_window`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::AccountingMetrics;
use crate::proto::dictionary::Dictionary;
use crate::proto::wire::Packet;

pub use super::journal::{Journal, JournalConfig, JournalError};
use crate::proto::accounting::record::{self, Record, Status};
use crate::proto::accounting::sessions::{Change, Sessions};
pub use crate::proto::accounting::sessions::{Query, cursor, parse_cursor};

#[derive(Debug, Clone, PartialEq)]
pub struct AccountingConfig {
    pub journal: JournalConfig,
    pub session_timeout: Duration,
    pub duplicate_window: Duration,
    pub max_sessions: usize,
}

/// Most group names `certgate_acct_sessions_active_by_group` shows.
pub const MAX_GROUP_LABELS: usize = 256;

pub struct Accounting {
    journal: Journal,
    sessions: Mutex<Sessions>,
    /// Group names this server put in a Class `group=NAME` of an
    /// Access-Accept since it started (at most `MAX_GROUP_LABELS`): the
    /// only ones the by-group gauge shows. A NAS can send any Class in
    /// accounting; labels must not grow with what it sends.
    issued: Mutex<HashSet<String>>,
    /// Content fingerprint → Unix seconds it was stored.
    recent: Mutex<HashMap<u64, i64>>,
    config: AccountingConfig,
    metrics: Arc<AccountingMetrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent entry by entry; a panic elsewhere must not
    // stop accounting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Accounting {
    /// Repairs a torn journal tail, rebuilds live sessions from recent
    /// journal files, and starts the writer.
    pub fn start(config: AccountingConfig, metrics: Arc<AccountingMetrics>) -> Self {
        let dir = &config.journal.dir;
        if let Err(e) = super::journal::repair(dir) {
            tracing::error!(error = %e, "journal repair failed");
        }
        let mut sessions = Sessions::new(config.max_sessions);
        let now = now_ms() / 1000;
        let horizon = SystemTime::now()
            .checked_sub(config.session_timeout)
            .unwrap_or(UNIX_EPOCH);
        let mut replayed = 0u64;
        for file in super::journal::files(dir) {
            let recent_enough = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= horizon);
            if !recent_enough {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                if let Ok(r) = serde_json::from_str::<Record>(line) {
                    sessions.apply(&r);
                    replayed += 1;
                }
            }
        }
        sessions.expire(now, config.session_timeout.as_secs() as i64);
        tracing::info!(
            records = replayed,
            sessions = sessions.len(),
            "live sessions rebuilt from the journal"
        );
        let accounting = Accounting {
            journal: Journal::start(config.journal.clone(), metrics.clone()),
            sessions: Mutex::new(sessions),
            issued: Mutex::new(HashSet::new()),
            recent: Mutex::new(HashMap::new()),
            config,
            metrics,
        };
        accounting.publish_counts();
        accounting
    }

    /// Stores one verified Accounting-Request. `Ok` means it is on disk and
    /// may be acknowledged.
    pub async fn record(
        &self,
        packet: &Packet<'_>,
        client: &str,
        dict: &Dictionary,
    ) -> Result<Record, JournalError> {
        let now = now_ms();
        let mut record = Record::decode(packet, client, dict, now);
        let fingerprint = record::content_fingerprint(packet, client);
        let window = self.config.duplicate_window.as_secs() as i64;
        record.probable_duplicate = lock(&self.recent)
            .get(&fingerprint)
            .is_some_and(|&t| now / 1000 - t <= window);
        let line = serde_json::to_vec(&record).map_err(|e| JournalError::Io {
            kind: "encode",
            message: e.to_string(),
        })?;
        self.journal.append(line).await?;
        lock(&self.recent).insert(fingerprint, now / 1000);
        self.observe(&record);
        Ok(record)
    }

    fn observe(&self, r: &Record) {
        let m = &self.metrics;
        let status = r.status.map_or("none", Status::label);
        m.requests.with_label_values(&[&r.client, status]).inc();
        if r.probable_duplicate {
            m.probable_duplicates.inc();
        }
        let (change, d, client_count, group_count) = {
            let mut sessions = lock(&self.sessions);
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
                    && lock(&self.issued).contains(g)
                {
                    m.sessions_by_group.with_label_values(&[g]).set(n);
                }
            }
            Change::Updated | Change::Ignored => {}
        }
    }

    /// Expires silent sessions and old duplicate fingerprints; call about
    /// once a second.
    pub fn sweep(&self) {
        let now = now_ms() / 1000;
        let gone = lock(&self.sessions).expire(now, self.config.session_timeout.as_secs() as i64);
        self.metrics.expired.inc_by(gone.len() as u64);
        // Cheap (one entry per client and group): also settles the gauges of
        // records that did not name their group.
        self.publish_counts();
        let window = self.config.duplicate_window.as_secs() as i64;
        lock(&self.recent).retain(|_, t| now - *t <= window);
    }

    fn publish_counts(&self) {
        let sessions = lock(&self.sessions);
        let (by_client, by_group) = sessions.counts();
        let issued = lock(&self.issued);
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
        let mut issued = lock(&self.issued);
        if issued.len() < MAX_GROUP_LABELS && !issued.contains(name) {
            issued.insert(name.to_string());
        }
    }

    /// One page of live sessions as JSON: `sessions`, `next` (the cursor
    /// for the following page, or null) and `total` live sessions. The
    /// sessions lock is held only while at most `limit` sessions are
    /// copied out.
    pub fn sessions_json(&self, query: &Query) -> String {
        let page = lock(&self.sessions).page(query);
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
