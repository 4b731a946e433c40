//! Metric families of the PostgreSQL shipper. No labels but fixed words:
//! one shipper per node, and the node is the Prometheus target.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct ShipMetrics {
    pub shipped: IntCounter,
    pub lag_records: IntGauge,
    pub lag_seconds: IntGauge,
    pub connected: IntGauge,
    pub errors: IntCounterVec,
    pub batch_seconds: Histogram,
    pub files_deleted: IntCounter,
}

impl ShipMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = ShipMetrics {
            shipped: IntCounter::new(
                "certgate_ship_records_total",
                "Journal records shipped into PostgreSQL (committed with the shipping position).",
            )?,
            lag_records: IntGauge::new(
                "certgate_ship_lag_records",
                "Records on disk in the journal and not yet in PostgreSQL.",
            )?,
            lag_seconds: IntGauge::new(
                "certgate_ship_lag_seconds",
                "Age of the oldest record not yet in PostgreSQL; 0 when caught up.",
            )?,
            connected: IntGauge::new(
                "certgate_ship_connected",
                "1 while the shipper holds a PostgreSQL connection.",
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "certgate_ship_errors_total",
                    "Shipping failures by kind: connect, schema, query, journal.",
                ),
                &["kind"],
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "certgate_ship_batch_seconds",
                    "Time to write one batch into PostgreSQL, commit included.",
                )
                .buckets(crate::metrics::seconds()),
            )?,
            files_deleted: IntCounter::new(
                "certgate_ship_journal_files_deleted_total",
                "Journal files deleted once shipped and past accounting.postgres.retention.",
            )?,
        };
        for k in ["connect", "schema", "query", "journal"] {
            m.errors.with_label_values(&[k]);
        }
        registry.register(Box::new(m.shipped.clone()))?;
        registry.register(Box::new(m.lag_records.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.connected.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.files_deleted.clone()))?;
        Ok(m)
    }
}
