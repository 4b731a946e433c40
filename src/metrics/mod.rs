//! Prometheus metrics: one registry holding every family the server exports
//! (`server::http` serves it).
//!
//! Labels stay bounded: listener, configured client name, packet code, drop
//! reason — never a user, a MAC address or a source address. This module
//! must not make decisions; it only counts what others decided.

mod accounting;
mod authz;
pub mod das;
mod eap;
pub mod ocsp;
pub mod radsec;
pub mod ship;

pub use accounting::AccountingMetrics;
pub use authz::AuthzMetrics;
pub use das::DasMetrics;
pub use eap::EapMetrics;
pub use ocsp::OcspMetrics;
pub use radsec::RadsecMetrics;

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// Buckets for the time one operation takes, 50 µs to 5 s: request
/// latency, directory look-ups and LDAP operations, journal syncs.
pub fn seconds() -> Vec<f64> {
    vec![
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5, 5.0,
    ]
}

/// Every metric family, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub responses: IntCounterVec,
    pub dropped: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub latency: HistogramVec,
    pub in_flight: IntGauge,
    pub reloads: IntCounterVec,
    pub duplicate_cache_entries: IntGauge,
    pub build_info: IntGaugeVec,
    pub expiry: IntGaugeVec,
    pub scrape_duration: Histogram,
    pub http_requests: IntCounterVec,
    pub http_refused: IntCounter,
    pub eap: EapMetrics,
    pub authz: AuthzMetrics,
    pub accounting: Arc<AccountingMetrics>,
    pub radsec: RadsecMetrics,
    pub das: DasMetrics,
    pub ocsp: OcspMetrics,
    pub ship: ship::ShipMetrics,
}

impl Metrics {
    pub fn new() -> Result<Arc<Metrics>, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "certgate_requests_total",
                "RADIUS requests received from known clients, by listener, client and code.",
            ),
            &["listener", "client", "code"],
        )?;
        let responses = IntCounterVec::new(
            Opts::new(
                "certgate_responses_total",
                "RADIUS responses sent, by listener and code (cached duplicates included).",
            ),
            &["listener", "code"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "certgate_dropped_total",
                "Datagrams dropped without an answer, by listener and reason.",
            ),
            &["listener", "reason"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "certgate_duplicates_total",
                "Retransmitted requests answered from the duplicate cache (RFC 5080), by listener.",
            ),
            &["listener"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "certgate_request_duration_seconds",
                "Time from receiving a request to sending its response, by listener.",
            )
            .buckets(seconds()),
            &["listener"],
        )?;
        let in_flight = IntGauge::new(
            "certgate_in_flight_requests",
            "Requests being processed now.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "certgate_config_reloads_total",
                "Configuration reloads (SIGHUP), by result.",
            ),
            &["result"],
        )?;
        let duplicate_cache_entries = IntGauge::new(
            "certgate_duplicate_cache_entries",
            "Entries in the duplicate-detection cache.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "certgate_build_info",
                "Always 1; labels say which build is running.",
            ),
            &["version"],
        )?;
        let expiry = IntGaugeVec::new(
            Opts::new(
                "certgate_tls_expiry_seconds",
                "Seconds until a configured certificate expires (kind=certificate) or a loaded CRL's nextUpdate passes (kind=crl); negative once past. role: eap_server, eap_ca, eap_crl, radsec_server, radsec_ca, radsec_crl.",
            ),
            &["kind", "role", "name"],
        )?;
        let scrape_duration = Histogram::with_opts(HistogramOpts::new(
            "certgate_metrics_scrape_duration_seconds",
            "Time to render the metrics page.",
        ))?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "certgate_http_requests_total",
                "Requests to the HTTP endpoint, by path (metrics, sessions, other) and status code.",
            ),
            &["path", "status"],
        )?;
        let http_refused = IntCounter::new(
            "certgate_http_connections_refused_total",
            "HTTP connections closed at once because metrics.max_connections were open.",
        )?;
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(responses.clone()),
            Box::new(dropped.clone()),
            Box::new(duplicates.clone()),
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(reloads.clone()),
            Box::new(duplicate_cache_entries.clone()),
            Box::new(build_info.clone()),
            Box::new(expiry.clone()),
            Box::new(scrape_duration.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_refused.clone()),
        ] {
            registry.register(c)?;
        }
        let eap = EapMetrics::register(&registry)?;
        let authz = AuthzMetrics::register(&registry)?;
        let accounting = Arc::new(AccountingMetrics::register(&registry)?);
        let radsec = RadsecMetrics::register(&registry)?;
        let das = DasMetrics::register(&registry)?;
        let ocsp = OcspMetrics::register(&registry)?;
        let ship = ship::ShipMetrics::register(&registry)?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Arc::new(Metrics {
            registry,
            requests,
            responses,
            dropped,
            duplicates,
            latency,
            in_flight,
            reloads,
            duplicate_cache_entries,
            build_info,
            expiry,
            scrape_duration,
            http_requests,
            http_refused,
            eap,
            authz,
            accounting,
            radsec,
            das,
            ocsp,
            ship,
        }))
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let timer = self.scrape_duration.start_timer();
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        timer.observe_duration();
        String::from_utf8(buf).unwrap_or_default()
    }
}
