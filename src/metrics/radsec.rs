//! Metric families of RADIUS over TLS. Labels are bounded: configured
//! client names, fixed result and reason words.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct RadsecMetrics {
    pub connections: IntGaugeVec,
    pub handshakes: IntCounterVec,
    pub closed: IntCounterVec,
}

/// `certgate_radsec_handshakes_total`'s reasons: `ok`, then why a
/// connection was refused before it carried a packet.
pub const HANDSHAKE_REASONS: [&str; 6] = [
    "ok",
    "timeout",
    "tls",
    "unknown_client",
    "connection_limit",
    "client_limit",
];

/// `certgate_radsec_closed_total`'s reasons.
pub const CLOSE_REASONS: [&str; 9] = [
    "peer",
    "idle",
    "framing",
    "malformed",
    "authentication",
    "stalled",
    "reload",
    "shutdown",
    "error",
];

impl RadsecMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = RadsecMetrics {
            connections: IntGaugeVec::new(
                Opts::new(
                    "certgate_radsec_connections",
                    "RadSec connections open, by client.",
                ),
                &["client"],
            )?,
            handshakes: IntCounterVec::new(
                Opts::new(
                    "certgate_radsec_handshakes_total",
                    "RadSec connections by how their start ended: ok, or refused (timeout, tls, unknown_client, connection_limit, client_limit).",
                ),
                &["result", "reason"],
            )?,
            closed: IntCounterVec::new(
                Opts::new(
                    "certgate_radsec_closed_total",
                    "RadSec connections closed after their handshake, by reason (peer, idle, framing, malformed, authentication, stalled, reload, shutdown, error).",
                ),
                &["reason"],
            )?,
        };
        for reason in HANDSHAKE_REASONS {
            let result = if reason == "ok" { "ok" } else { "refused" };
            m.handshakes.with_label_values(&[result, reason]);
        }
        for reason in CLOSE_REASONS {
            m.closed.with_label_values(&[reason]);
        }
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.handshakes.clone()))?;
        registry.register(Box::new(m.closed.clone()))?;
        Ok(m)
    }
}
