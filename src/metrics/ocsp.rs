//! Metric families of OCSP for client certificates. Labels are fixed
//! words: a query's result, a fallback's action.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct OcspMetrics {
    pub queries: IntCounterVec,
    pub seconds: Histogram,
    pub cache_hits: IntCounter,
    pub cache_entries: IntGauge,
    pub fallbacks: IntCounterVec,
}

/// `certgate_ocsp_queries_total`'s results.
pub const RESULTS: [&str; 6] = [
    "good",
    "revoked",
    "unknown",
    "unavailable",
    "invalid",
    "no_responder",
];

impl OcspMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = OcspMetrics {
            queries: IntCounterVec::new(
                Opts::new(
                    "certgate_ocsp_queries_total",
                    "OCSP queries to responders by result: good, revoked, unknown, unavailable (refused, timed out, HTTP error), invalid (unverifiable answer), no_responder.",
                ),
                &["result"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_ocsp_query_seconds",
                    "Time an authentication waited for its OCSP responder (cache hits not included).",
                )
                .buckets(crate::metrics::seconds()),
            )?,
            cache_hits: IntCounter::new(
                "certgate_ocsp_cache_hits_total",
                "Authentications answered from the OCSP cache.",
            )?,
            cache_entries: IntGauge::new("certgate_ocsp_cache_entries", "Verified OCSP answers kept.")?,
            fallbacks: IntCounterVec::new(
                Opts::new(
                    "certgate_ocsp_unavailable_total",
                    "Authentications without a valid OCSP answer, by what ocsp.on_unavailable did: reject, crl, accept.",
                ),
                &["action"],
            )?,
        };
        for r in RESULTS {
            m.queries.with_label_values(&[r]);
        }
        for a in ["reject", "crl", "accept"] {
            m.fallbacks.with_label_values(&[a]);
        }
        registry.register(Box::new(m.queries.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.cache_hits.clone()))?;
        registry.register(Box::new(m.cache_entries.clone()))?;
        registry.register(Box::new(m.fallbacks.clone()))?;
        Ok(m)
    }
}
