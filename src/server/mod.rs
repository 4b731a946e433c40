//! The running server: binds the listeners and the metrics endpoint, runs
//! them on tokio, reloads on SIGHUP and shuts down gracefully on SIGINT or
//! SIGTERM.
//!
//! Wiring and lifecycle only; packet decisions live in `pipeline` (sans-I/O)
//! and `handler`.

pub mod accounting;
mod acct;
pub mod authz;
pub mod directory;
mod eap_auth;
pub mod http;
pub mod journal;
mod listener;
mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::proto::eap::table::{ConversationTable, Expiry, Limits};
use crate::proto::tls::{SessionStore, TlsContext, TlsError};
use crate::server::accounting::{Accounting, Query};
use crate::server::authz::Authz;

use crate::proto::admission::{DropReason, Listener};
use crate::proto::clients::ClientTable;
use crate::proto::dedup::DedupCache;
use crate::proto::droplog;

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
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
}

/// What a reload can replace while sockets stay open.
pub struct Runtime {
    pub config: Arc<Config>,
    pub clients: ClientTable,
    /// Built from `config.eap`; None when EAP-TLS is not configured.
    pub tls: Option<TlsContext>,
    /// Built from `config.eap.authz`: a reload gets a fresh cache and fresh
    /// LDAP connections.
    pub authz: Option<Arc<Authz>>,
}

impl Runtime {
    /// Builds the TLS configuration; the session store carries over so
    /// reloads keep resumption working.
    pub(crate) fn new(
        config: Arc<Config>,
        sessions: &Arc<SessionStore>,
        metrics: &Metrics,
    ) -> Result<Self, TlsError> {
        let clients = ClientTable::new(&config.clients);
        let tls = match &config.eap {
            Some(eap) => Some(TlsContext::build(&eap.material, &eap.tls_policy, sessions)?),
            None => None,
        };
        let authz = config
            .eap
            .as_ref()
            .map(|eap| Arc::new(Authz::new(eap.authz.clone(), metrics.authz.clone())));
        Ok(Runtime {
            config,
            clients,
            tls,
            authz,
        })
    }
}

/// State every listener task shares.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub dedup: DedupCache,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<Semaphore>,
    pub conversations: ConversationTable,
    pub sessions: Arc<SessionStore>,
    /// Accounting storage; fixed at start (the journal directory needs a
    /// restart to change).
    pub accounting: Option<Arc<Accounting>>,
    drop_log: droplog::DropLog,
}

/// Runs until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let metrics = Metrics::new()?;
    for why in Expiry::ALL {
        metrics.eap.expired.with_label_values(&[why.reason()]);
    }
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
    let accounting = config
        .accounting
        .clone()
        .map(|a| Arc::new(Accounting::start(a, metrics.accounting.clone())));
    let sessions_page: Option<http::SessionsPage> = accounting
        .clone()
        .map(|a| Arc::new(move |query: &Query| a.sessions_json(query)) as http::SessionsPage);
    let metrics_task = match metrics_listen {
        Some(addr) => {
            let err = |source| ServerError::Bind { addr, source };
            let l = http::bind(addr).await.map_err(err)?;
            let local = l.local_addr().map_err(err)?;
            tracing::info!(listener = "metrics", address = %local, "listening");
            let endpoint = http::Endpoint {
                metrics: metrics.clone(),
                sessions: sessions_page,
                settings: config.metrics.http.clone(),
            };
            Some(tokio::spawn(http::serve(l, Arc::new(endpoint))))
        }
        None => None,
    };

    tracing::info!(
        clients = config.clients.len(),
        attributes = config.dictionary.attribute_count(),
        version = env!("CARGO_PKG_VERSION"),
        "certgate started"
    );
    reload::warn_about(&config);
    let (eap_limits, sessions) = match &config.eap {
        Some(e) => (
            e.settings.table,
            SessionStore::new(
                e.tls_policy.session_cache_entries,
                e.tls_policy.session_lifetime,
            ),
        ),
        None => (
            Limits {
                cap: 1,
                per_nas: 1,
                ..Limits::default()
            },
            SessionStore::new(1, Duration::from_secs(1)),
        ),
    };
    let crl_refresh = config.eap.as_ref().map(|e| e.crl_refresh);
    let sessions = Arc::new(sessions);
    let runtime = Runtime::new(Arc::new(config), &sessions, &metrics)?;
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        conversations: ConversationTable::new(eap_limits),
        sessions,
        accounting: accounting.clone(),
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
                let now = Instant::now();
                let n = shared.dedup.sweep(now);
                shared.metrics.duplicate_cache_entries.set(n as i64);
                let expired = shared.conversations.sweep(now);
                let m = &shared.metrics.eap;
                for (why, conv) in &expired {
                    m.expired.with_label_values(&[why.reason()]).inc();
                    if let Some(failure) = conv.alert_sent() {
                        eap_auth::alert_unanswered(&shared, conv, failure);
                    }
                }
                drop(expired);
                for (eviction, n) in shared.conversations.take_evictions() {
                    m.evicted.with_label_values(&[eviction.reason()]).inc_by(n);
                }
                m.replaced.inc_by(shared.conversations.take_replaced());
                m.active.set(shared.conversations.len() as i64);
                m.tls_sessions.set(shared.sessions.sweep(now) as i64);
                if let Some(a) = &shared.accounting {
                    a.sweep();
                }
            }
        })
    };
    let crl_task = crl_refresh.map(|every| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                reload::refresh_crls(&shared);
            }
        })
    });

    let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload::reload(&shared),
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
    if let Some(t) = crl_task {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}
