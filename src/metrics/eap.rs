//! Metric families of EAP-TLS and authorization. Labels are bounded: a
//! failure reason is one of the engine's fixed names, a TLS version and
//! cipher suite come from rustls's small set, an authorization backend and
//! result are fixed words.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct EapMetrics {
    pub started: IntCounter,
    pub succeeded: IntCounterVec,
    pub failed: IntCounterVec,
    pub handshake_seconds: Histogram,
    pub round_trips: Histogram,
    pub active: IntGauge,
    pub expired: IntCounterVec,
    pub replaced: IntCounter,
    pub evicted: IntCounterVec,
    pub discarded: IntCounterVec,
    pub tls_sessions: IntGauge,
    pub crl_reloads: IntCounterVec,
    pub authz_decisions: IntCounterVec,
    pub authz_seconds: HistogramVec,
}

impl EapMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = EapMetrics {
            started: IntCounter::new(
                "certgate_eap_conversations_started_total",
                "EAP conversations started (EAP-Response/Identity answered with EAP-TLS Start).",
            )?,
            succeeded: IntCounterVec::new(
                Opts::new(
                    "certgate_eap_conversations_succeeded_total",
                    "EAP-TLS conversations that ended in Access-Accept, by TLS version, cipher suite and whether the TLS session was resumed.",
                ),
                &["tls_version", "cipher_suite", "resumed"],
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    "certgate_eap_conversations_failed_total",
                    "EAP conversations that ended in Access-Reject, by reason.",
                ),
                &["reason"],
            )?,
            handshake_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_eap_conversation_duration_seconds",
                    "Time from EAP-Response/Identity to Access-Accept.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            )?,
            round_trips: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_eap_round_trips",
                    "RADIUS round trips per successful conversation.",
                )
                .buckets(vec![
                    2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 16.0, 24.0,
                ]),
            )?,
            active: IntGauge::new(
                "certgate_eap_conversations_active",
                "EAP conversations in progress.",
            )?,
            expired: IntCounterVec::new(
                Opts::new(
                    "certgate_eap_conversations_expired_total",
                    "EAP conversations the server ended by itself, by reason (idle: eap.idle_timeout; max_duration: eap.max_duration; alert_unanswered: no answer to a TLS alert within eap.alert_timeout).",
                ),
                &["reason"],
            )?,
            replaced: IntCounter::new(
                "certgate_eap_conversations_replaced_total",
                "EAP conversations ended because the same station started a new one.",
            )?,
            evicted: IntCounterVec::new(
                Opts::new(
                    "certgate_eap_conversations_evicted_total",
                    "Idle EAP conversations ended to make room, by reason (table_full: the table was full; nas_share: their NAS held its share; memory_budget: conversations buffered eap.memory_budget octets).",
                ),
                &["reason"],
            )?,
            discarded: IntCounterVec::new(
                Opts::new(
                    "certgate_eap_discarded_total",
                    "EAP responses silently discarded, by reason.",
                ),
                &["reason"],
            )?,
            tls_sessions: IntGauge::new(
                "certgate_tls_session_cache_entries",
                "TLS sessions held for resumption.",
            )?,
            crl_reloads: IntCounterVec::new(
                Opts::new(
                    "certgate_crl_reloads_total",
                    "Periodic CRL reloads, by result (unchanged, ok, failed).",
                ),
                &["result"],
            )?,
            authz_decisions: IntCounterVec::new(
                Opts::new(
                    "certgate_authz_decisions_total",
                    "Authorization decisions, by backend and result.",
                ),
                &["backend", "result"],
            )?,
            authz_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "certgate_authz_duration_seconds",
                    "Time an authorization decision took, by backend.",
                )
                .buckets(super::seconds()),
                &["backend"],
            )?,
        };
        for c in [
            Box::new(m.started.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.succeeded.clone()),
            Box::new(m.failed.clone()),
            Box::new(m.handshake_seconds.clone()),
            Box::new(m.round_trips.clone()),
            Box::new(m.active.clone()),
            Box::new(m.evicted.clone()),
            Box::new(m.expired.clone()),
            Box::new(m.replaced.clone()),
            Box::new(m.discarded.clone()),
            Box::new(m.tls_sessions.clone()),
            Box::new(m.crl_reloads.clone()),
            Box::new(m.authz_decisions.clone()),
            Box::new(m.authz_seconds.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}
