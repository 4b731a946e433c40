//! Prometheus metrics: one registry holding every family the server exports,
//! and the HTTP endpoint that serves it.
//!
//! Labels stay bounded: listener, configured client name, packet code, drop
//! reason — never a user, a MAC address or a source address. This module
//! must not make decisions; it only counts what others decided.

mod accounting;
mod authz;
mod eap;

pub use accounting::AccountingMetrics;
pub use authz::AuthzMetrics;
pub use eap::EapMetrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
    #[error("metrics endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
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
    pub scrape_duration: Histogram,
    pub eap: EapMetrics,
    pub authz: AuthzMetrics,
    pub accounting: Arc<AccountingMetrics>,
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
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5,
            ]),
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
        let scrape_duration = Histogram::with_opts(HistogramOpts::new(
            "certgate_metrics_scrape_duration_seconds",
            "Time to render the metrics page.",
        ))?;
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
            Box::new(scrape_duration.clone()),
        ] {
            registry.register(c)?;
        }
        let eap = EapMetrics::register(&registry)?;
        let authz = AuthzMetrics::register(&registry)?;
        let accounting = Arc::new(AccountingMetrics::register(&registry)?);
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
            scrape_duration,
            eap,
            authz,
            accounting,
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

/// Binds the metrics endpoint; `serve` then answers on it.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Renders `/sessions` for a query string (accounting's live sessions).
pub type SessionsPage = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Serves `GET /metrics` (and `GET /sessions` when accounting is on) until
/// the task is dropped.
///
/// A hand-written HTTP/1.1 responder: the endpoint answers one GET with no
/// body and closes, which does not justify hyper's build cost on our 2-core
/// builders. Requests are capped at 8 KiB and 5 seconds.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, sessions: Option<SessionsPage>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                answer(stream, &metrics, sessions.as_ref()),
            )
            .await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    sessions: Option<&SessionsPage>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut words = head.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => {
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &metrics.render(),
            )
            .await
        }
        (Some("GET"), Some(path)) if path == "/sessions" || path.starts_with("/sessions?") => {
            match sessions {
                Some(page) => {
                    let query = path.split_once('?').map_or("", |(_, q)| q);
                    respond(&mut stream, "200 OK", "application/json", &page(query)).await
                }
                None => {
                    respond(
                        &mut stream,
                        "404 Not Found",
                        "text/plain",
                        "accounting is not configured\n",
                    )
                    .await
                }
            }
        }
        (Some("GET"), Some(_)) => {
            respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
