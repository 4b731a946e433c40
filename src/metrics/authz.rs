//! Metric families of the directory, its cache and the policy. Labels are
//! bounded: LDAP servers and rule names come from the configuration, error
//! kinds and outcomes are fixed words.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct AuthzMetrics {
    pub ldap_seconds: HistogramVec,
    pub ldap_errors: IntCounterVec,
    pub ldap_failovers: IntCounter,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub cache_evictions: IntCounter,
    pub cache_entries: IntGauge,
    pub directory_errors: IntCounterVec,
    pub policy_decisions: IntCounterVec,
}

impl AuthzMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = AuthzMetrics {
            ldap_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "certgate_ldap_operation_duration_seconds",
                    "LDAP operations (connect, bind, search), by server and operation, failed ones included.",
                )
                .buckets(super::seconds()),
                &["server", "operation"],
            )?,
            ldap_errors: IntCounterVec::new(
                Opts::new(
                    "certgate_ldap_errors_total",
                    "LDAP errors, by server and kind (connect, bind, timeout, connection, result, protocol).",
                ),
                &["server", "kind"],
            )?,
            ldap_failovers: IntCounter::new(
                "certgate_ldap_failovers_total",
                "Look-ups moved to the next LDAP server because one failed or is backing off.",
            )?,
            cache_hits: IntCounter::new(
                "certgate_authz_cache_hits_total",
                "Directory look-ups answered from the cache.",
            )?,
            cache_misses: IntCounter::new(
                "certgate_authz_cache_misses_total",
                "Directory look-ups the cache could not answer.",
            )?,
            cache_evictions: IntCounter::new(
                "certgate_authz_cache_evictions_total",
                "Cache entries removed to make room (expired ones first).",
            )?,
            cache_entries: IntGauge::new(
                "certgate_authz_cache_entries",
                "Directory answers held in the cache.",
            )?,
            directory_errors: IntCounterVec::new(
                Opts::new(
                    "certgate_authz_directory_errors_total",
                    "Look-ups the directory could not answer (the failure policy decided), by directory and kind.",
                ),
                &["directory", "kind"],
            )?,
            policy_decisions: IntCounterVec::new(
                Opts::new(
                    "certgate_authz_policy_decisions_total",
                    "Policy decisions, by rule (\"default\" when none matched) and outcome.",
                ),
                &["rule", "outcome"],
            )?,
        };
        for c in [
            Box::new(m.ldap_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.ldap_errors.clone()),
            Box::new(m.ldap_failovers.clone()),
            Box::new(m.cache_hits.clone()),
            Box::new(m.cache_misses.clone()),
            Box::new(m.cache_evictions.clone()),
            Box::new(m.cache_entries.clone()),
            Box::new(m.directory_errors.clone()),
            Box::new(m.policy_decisions.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}
