//! Metric families of accounting and its journal. Labels are bounded: the
//! configured NAS client name, a status word, a group from the
//! configuration's Class values, a terminate cause from the dictionary's
//! named values (anything else is `other`), an error kind.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

pub struct AccountingMetrics {
    pub requests: IntCounterVec,
    pub sessions_active: IntGaugeVec,
    pub sessions_by_group: IntGaugeVec,
    pub input_octets: IntCounterVec,
    pub output_octets: IntCounterVec,
    pub input_packets: IntCounterVec,
    pub output_packets: IntCounterVec,
    pub session_duration: Histogram,
    pub terminate_causes: IntCounterVec,
    pub probable_duplicates: IntCounter,
    pub expired: IntCounter,
    pub fsync_seconds: Histogram,
    pub batch_records: Histogram,
    pub journal_errors: IntCounterVec,
}

impl AccountingMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let by_client =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["client"]);
        let m = AccountingMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "certgate_acct_records_total",
                    "Accounting requests stored in the journal, by NAS client and Acct-Status-Type.",
                ),
                &["client", "status"],
            )?,
            sessions_active: IntGaugeVec::new(
                Opts::new(
                    "certgate_acct_sessions_active",
                    "Live sessions by NAS client (Start seen, no Stop yet).",
                ),
                &["client"],
            )?,
            sessions_by_group: IntGaugeVec::new(
                Opts::new(
                    "certgate_acct_sessions_active_by_group",
                    "Live sessions by authorization group (from a Class of the form group=NAME).",
                ),
                &["group"],
            )?,
            input_octets: by_client(
                "certgate_acct_input_octets_total",
                "Octets received from users (Acct-Input-Octets with Gigawords), by NAS client.",
            )?,
            output_octets: by_client(
                "certgate_acct_output_octets_total",
                "Octets sent to users (Acct-Output-Octets with Gigawords), by NAS client.",
            )?,
            input_packets: by_client(
                "certgate_acct_input_packets_total",
                "Packets received from users, by NAS client.",
            )?,
            output_packets: by_client(
                "certgate_acct_output_packets_total",
                "Packets sent to users, by NAS client.",
            )?,
            session_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_acct_session_duration_seconds",
                    "Session length at Stop (Acct-Session-Time).",
                )
                .buckets(vec![
                    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 604800.0,
                ]),
            )?,
            terminate_causes: IntCounterVec::new(
                Opts::new(
                    "certgate_acct_terminate_causes_total",
                    "Stops by Acct-Terminate-Cause.",
                ),
                &["cause"],
            )?,
            probable_duplicates: IntCounter::new(
                "certgate_acct_probable_duplicates_total",
                "Records flagged as resends with a new Acct-Delay-Time.",
            )?,
            expired: IntCounter::new(
                "certgate_acct_sessions_expired_total",
                "Live sessions removed after silence longer than accounting.session_timeout.",
            )?,
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_journal_fsync_seconds",
                    "Time to write and fdatasync one batch of journal records.",
                )
                .buckets(super::seconds()),
            )?,
            batch_records: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_journal_batch_records",
                    "Records per journal batch (one fdatasync each).",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
                ]),
            )?,
            journal_errors: IntCounterVec::new(
                Opts::new(
                    "certgate_journal_errors_total",
                    "Failed journal batches (their requests got no Accounting-Response), by kind.",
                ),
                &["kind"],
            )?,
        };
        for c in [
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions_active.clone()),
            Box::new(m.sessions_by_group.clone()),
            Box::new(m.input_octets.clone()),
            Box::new(m.output_octets.clone()),
            Box::new(m.input_packets.clone()),
            Box::new(m.output_packets.clone()),
            Box::new(m.session_duration.clone()),
            Box::new(m.terminate_causes.clone()),
            Box::new(m.probable_duplicates.clone()),
            Box::new(m.expired.clone()),
            Box::new(m.fsync_seconds.clone()),
            Box::new(m.batch_records.clone()),
            Box::new(m.journal_errors.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}
