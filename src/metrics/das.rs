//! Metric families of dynamic authorization (RFC 5176). Labels are
//! bounded: request kinds, fixed result and trigger words, and the
//! Error-Cause numbers RFC 5176 defines (anything else is `other`).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use crate::proto::das::Trigger;

#[derive(Clone)]
pub struct DasMetrics {
    pub requests: IntCounterVec,
    pub naks: IntCounterVec,
    pub disconnected: IntCounterVec,
    pub retransmissions: IntCounterVec,
    pub answers_refused: IntCounterVec,
    pub reauthorizations: IntCounterVec,
    pub queued: IntGauge,
    pub in_flight: IntGauge,
    pub unclaimed: IntGauge,
    pub answer_seconds: Histogram,
}

/// `certgate_das_requests_total`'s results.
pub const RESULTS: [&str; 5] = ["ack", "nak", "timeout", "dry_run", "failed"];

/// Error-Cause values of RFC 5176 §3.6, as labels.
const CAUSES: [u32; 17] = [
    201, 202, 401, 402, 403, 404, 405, 406, 407, 501, 502, 503, 504, 505, 506, 507, 508,
];

/// An Error-Cause as a bounded label.
pub fn cause_label(cause: Option<u32>) -> String {
    match cause {
        Some(c) if CAUSES.contains(&c) => c.to_string(),
        Some(_) => "other".into(),
        None => "none".into(),
    }
}

impl DasMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = DasMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "certgate_das_requests_total",
                    "Disconnect and CoA requests to NAS devices by kind and how they ended (ack, nak, timeout, dry_run, failed).",
                ),
                &["kind", "result"],
            )?,
            naks: IntCounterVec::new(
                Opts::new(
                    "certgate_das_naks_total",
                    "NAKs by Error-Cause (RFC 5176 §3.6; none when the NAS gave none).",
                ),
                &["cause"],
            )?,
            disconnected: IntCounterVec::new(
                Opts::new(
                    "certgate_das_sessions_disconnected_total",
                    "Sessions a NAS acknowledged disconnecting, by trigger (operator, revocation, directory).",
                ),
                &["trigger"],
            )?,
            retransmissions: IntCounterVec::new(
                Opts::new(
                    "certgate_das_retransmissions_total",
                    "Disconnect and CoA requests sent again for want of an answer, by kind.",
                ),
                &["kind"],
            )?,
            answers_refused: IntCounterVec::new(
                Opts::new(
                    "certgate_das_answers_refused_total",
                    "Datagrams on the DAS socket that answer no request in flight (unknown) or fail verification (invalid).",
                ),
                &["reason"],
            )?,
            reauthorizations: IntCounterVec::new(
                Opts::new(
                    "certgate_das_reauthorizations_total",
                    "Live sessions re-checked against the directory, by result (unchanged, changed, rejected, unavailable).",
                ),
                &["result"],
            )?,
            queued: IntGauge::new(
                "certgate_das_queued",
                "Requests waiting for their turn under das.rate.",
            )?,
            in_flight: IntGauge::new(
                "certgate_das_in_flight",
                "Requests sent and waiting for an answer.",
            )?,
            unclaimed: IntGauge::new(
                "certgate_das_unclaimed_authentications",
                "Access-Accepts no accounting session has claimed yet (still disconnectable by User-Name and station).",
            )?,
            answer_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_das_answer_seconds",
                    "Time from the first request to its ACK or NAK.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                ]),
            )?,
        };
        for kind in ["disconnect", "coa"] {
            for result in RESULTS {
                m.requests.with_label_values(&[kind, result]);
            }
            m.retransmissions.with_label_values(&[kind]);
        }
        for t in Trigger::ALL {
            m.disconnected.with_label_values(&[t.as_str()]);
        }
        for r in ["unknown", "invalid"] {
            m.answers_refused.with_label_values(&[r]);
        }
        for r in ["unchanged", "changed", "rejected", "unavailable"] {
            m.reauthorizations.with_label_values(&[r]);
        }
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.naks.clone()))?;
        registry.register(Box::new(m.disconnected.clone()))?;
        registry.register(Box::new(m.retransmissions.clone()))?;
        registry.register(Box::new(m.answers_refused.clone()))?;
        registry.register(Box::new(m.reauthorizations.clone()))?;
        registry.register(Box::new(m.queued.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.unclaimed.clone()))?;
        registry.register(Box::new(m.answer_seconds.clone()))?;
        Ok(m)
    }
}
