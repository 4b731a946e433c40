//! The running server: binds the listeners and the metrics endpoint, runs
//! them on tokio, reloads on SIGHUP and shuts down gracefully on SIGINT or
//! SIGTERM.
//!
//! Wiring and lifecycle only; packet decisions live in `pipeline` (sans-I/O)
//! and `handler`.

pub mod clients;
pub mod dedup;
mod droplog;
pub mod handler;
mod listener;
pub mod pipeline;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::{self, Metrics, MetricsError};

use clients::ClientTable;
use dedup::DedupCache;
use pipeline::{DropReason, Listener};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("signal handling: {0}")]
    Signal(#[source] std::io::Error),
}

/// What a reload can replace while sockets stay open.
pub struct Runtime {
    pub config: Arc<Config>,
    pub clients: ClientTable,
}

impl Runtime {
    fn new(config: Config) -> Self {
        let clients = ClientTable::new(&config.clients);
        Runtime {
            config: Arc::new(config),
            clients,
        }
    }
}

/// State every listener task shares.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub dedup: DedupCache,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<Semaphore>,
    drop_log: droplog::DropLog,
}

/// Runs until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let metrics = Metrics::new()?;
    for listener in [Listener::Auth, Listener::Acct] {
        for reason in DropReason::ALL {
            metrics
                .dropped
                .with_label_values(&[listener.as_str(), reason.as_str()]);
        }
        metrics.duplicates.with_label_values(&[listener.as_str()]);
    }
    let server = config.server.clone();
    let metrics_listen = config.metrics.listen;

    let mut sockets = Vec::new();
    for (listener, addrs) in [
        (Listener::Auth, &server.auth_listen),
        (Listener::Acct, &server.acct_listen),
    ] {
        for &addr in addrs {
            let socket = listener::bind(addr, server.receive_buffer)?;
            let local = socket
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            tracing::info!(listener = listener.as_str(), address = %local, "listening");
            sockets.push((listener, Arc::new(socket)));
        }
    }
    let metrics_task = match metrics_listen {
        Some(addr) => {
            let l = metrics::bind(addr).await?;
            let local = l
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            tracing::info!(listener = "metrics", address = %local, "listening");
            Some(tokio::spawn(metrics::serve(l, metrics.clone())))
        }
        None => None,
    };

    tracing::info!(
        clients = config.clients.len(),
        attributes = config.dictionary.attribute_count(),
        version = env!("CARGO_PKG_VERSION"),
        "certgate started"
    );
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(Runtime::new(config)),
        dedup: DedupCache::new(
            server.duplicate_cache_lifetime,
            server.duplicate_cache_entries,
        ),
        metrics: metrics.clone(),
        in_flight: Arc::new(Semaphore::new(server.max_in_flight)),
        drop_log: droplog::DropLog::default(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (listener, socket) in sockets {
        tasks.spawn(listener::run(
            socket,
            listener,
            shared.clone(),
            stop_rx.clone(),
        ));
    }
    let sweeper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let n = shared.dedup.sweep(Instant::now());
                shared.metrics.duplicate_cache_entries.set(n as i64);
            }
        })
    };

    let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&shared),
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break }
        }
    }

    // Stop receiving, then wait for every in-flight request to be answered.
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let all = u32::try_from(server.max_in_flight).unwrap_or(u32::MAX);
    match tokio::time::timeout(server.shutdown_timeout, shared.in_flight.acquire_many(all)).await {
        Ok(_) => tracing::info!("stopped: every in-flight request was answered"),
        Err(_) => tracing::warn!(
            in_flight = shared.metrics.in_flight.get(),
            "stopped: shutdown_timeout passed with requests still in flight"
        ),
    }
    sweeper.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}

/// Re-reads the configuration file; a broken one leaves the running
/// configuration in place. Listener and metrics addresses need a restart.
fn reload(shared: &Shared) {
    let current = shared.runtime.load();
    let path: &Path = &current.config.path;
    match Config::load(path) {
        Ok(new) => {
            let old = &current.config;
            if new.server.auth_listen != old.server.auth_listen
                || new.server.acct_listen != old.server.acct_listen
                || new.metrics.listen != old.metrics.listen
            {
                tracing::warn!("listen addresses changed: they take effect at the next restart");
            }
            let clients = new.clients.len();
            shared.runtime.store(Arc::new(Runtime::new(new)));
            shared.metrics.reloads.with_label_values(&["ok"]).inc();
            tracing::info!(clients, "configuration reloaded");
        }
        Err(e) => {
            shared.metrics.reloads.with_label_values(&["failed"]).inc();
            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
        }
    }
}
