//! The I/O shell around the engine: binds the UDP listeners and the HTTP
//! endpoint, drives `proto::Engine` (its actions: send, ask the directory,
//! write the journal), ticks it every second, reloads on SIGHUP and shuts
//! down gracefully on SIGINT or SIGTERM.
//!
//! An Access-Request's path: `udp::run` receives it and asks the engine to
//! admit it, a task asks the engine to process it, `drive` carries out what
//! the engine asks for (a directory look-up in `directory`, a journal write
//! in `journal`) and hands back the answers, and `udp` sends the reply.
//!
//! RadSec connections (`radsec`) feed the same engine: the stream is framed
//! into packets there, and replies go back on the connection they came on.
//!
//! Decides nothing: every protocol decision is the engine's.

mod accept;
pub mod admin;
pub mod das;
pub mod directory;
pub mod http;
pub mod journal;
mod ocsp;
mod radsec;
mod reload;
pub mod shipper;
pub mod time;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::proto::admission::Listener;
use crate::proto::tls::TlsError;
use crate::proto::wire::Code;
use crate::proto::{Action, Answer, Engine, Request, Work};
use directory::Directory;
use journal::Journal;
use time::now;

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
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

/// What every task shares: the engine and what it asks for.
pub struct Shell {
    pub engine: Arc<Engine>,
    /// The directory of the running configuration (None without
    /// EAP-TLS); a reload swaps in a fresh one (new LDAP connections).
    pub directory: ArcSwapOption<Box<dyn Directory>>,
    /// The accounting journal; None without `[accounting]`.
    pub journal: Option<Journal>,
    pub metrics: Arc<Metrics>,
    /// Requests being processed; bounded by `server.max_in_flight`.
    pub in_flight: Arc<Semaphore>,
    /// The open RadSec connections.
    pub radsec: Arc<radsec::Connections>,
    /// Dynamic authorization's task and its waiting commands.
    pub das: Arc<das::Das>,
    /// OCSP queries in flight.
    pub ocsp: Arc<ocsp::OcspClient>,
}

impl Shell {
    /// Opens the directory `config` names (connecting on first use).
    fn directory_for(config: &Config, metrics: &Metrics) -> Option<Arc<Box<dyn Directory>>> {
        config
            .eap
            .as_ref()
            .map(|eap| Arc::new(directory::open(&eap.authz.directory, &metrics.authz)))
    }

    /// Counts a reply sent on `listener` and the time since its request
    /// arrived.
    pub fn sent(&self, listener: Listener, code: Code, received: Instant) {
        let label = listener.as_str();
        let m = &self.metrics;
        m.responses.with_label_values(&[label, code.string()]).inc();
        m.latency
            .with_label_values(&[label])
            .observe(received.elapsed().as_secs_f64());
    }
}

/// Processes an admitted request to its final action (counted in
/// `certgate_in_flight_requests` meanwhile).
pub async fn answer(shell: &Shell, request: Request) -> Action {
    shell.metrics.in_flight.inc();
    let action = shell.engine.process(now(), request, &mut rand::rng());
    let action = drive(shell, action).await;
    shell.metrics.in_flight.dec();
    action
}

/// Carries out what the engine asks for until it has an answer to send (or
/// nothing): a directory look-up, within its deadline; a journal write,
/// until the record is on disk or the write failed.
pub async fn drive(shell: &Shell, mut action: Action) -> Action {
    loop {
        let Action::Ask { ticket, work } = action else {
            return action;
        };
        let answer = match work {
            Work::Lookup {
                identity,
                certificate,
                deadline,
            } => {
                let result = match shell.directory.load_full() {
                    Some(dir) => {
                        directory::lookup(
                            dir.as_ref().as_ref(),
                            &identity,
                            certificate.as_deref(),
                            deadline,
                        )
                        .await
                    }
                    None => Err(crate::proto::authz::DirectoryError::new(
                        "none",
                        "no directory configured",
                    )),
                };
                Answer::Lookup(result)
            }
            Work::Store { line } => {
                let result = match &shell.journal {
                    Some(j) => j.append(line).await.map_err(|e| e.kind()),
                    None => Err("not_enabled"),
                };
                Answer::Stored(result)
            }
            Work::Ocsp {
                key,
                url,
                get,
                request,
                deadline,
            } => Answer::Ocsp(
                shell
                    .ocsp
                    .fetch(&key, &url, get.as_deref(), request, deadline)
                    .await,
            ),
        };
        action = shell.engine.resume(now(), ticket, answer, &mut rand::rng());
    }
}

/// Runs until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let metrics = Metrics::new()?;
    let server = config.server.clone();
    let metrics_listen = config.metrics.listen;
    let http_settings = config.metrics.http.clone();

    let mut sockets = Vec::new();
    for (listener, addrs) in [
        (Listener::Auth, &server.auth_listen),
        (Listener::Acct, &server.acct_listen),
    ] {
        for &addr in addrs {
            let socket = udp::bind(addr, server.receive_buffer)?;
            let local = socket
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            tracing::info!(listener = listener.as_str(), address = %local, "listening");
            sockets.push((listener, Arc::new(socket)));
        }
    }
    let mut radsec_listeners = Vec::new();
    for &addr in config.radsec.iter().flat_map(|r| &r.listen) {
        let listener = radsec::bind(addr)?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!(listener = "radsec", address = %local, "listening");
        radsec_listeners.push(listener);
    }
    let admin_listener = match &config.admin.socket {
        Some(path) => {
            let l = admin::bind(&config.admin, path)?;
            tracing::info!(listener = "admin", path = %path.display(), "listening");
            Some((l, path.clone()))
        }
        None => None,
    };
    let das_sockets = if config.das.is_some() {
        das::bind()
    } else {
        Vec::new()
    };
    let config = Arc::new(config);
    let engine = Arc::new(Engine::new(config.clone(), metrics.clone(), now())?);
    let journal = config.accounting.as_ref().map(|a| {
        let replayed = journal::replay(&a.journal.dir, a.session_timeout, |r| engine.replay(r));
        let live = engine.replayed(now());
        tracing::info!(
            records = replayed,
            sessions = live,
            "live sessions rebuilt from the journal"
        );
        Journal::start(a.journal.clone(), metrics.accounting.clone())
    });
    let shell = Arc::new(Shell {
        directory: ArcSwapOption::new(Shell::directory_for(&config, &metrics)),
        engine: engine.clone(),
        journal,
        metrics: metrics.clone(),
        in_flight: Arc::new(Semaphore::new(server.max_in_flight)),
        radsec: radsec::Connections::new(metrics.radsec.clone()),
        das: Arc::new(das::Das::default()),
        ocsp: Arc::new(ocsp::OcspClient::default()),
    });

    let metrics_task = match metrics_listen {
        Some(addr) => {
            let err = |source| ServerError::Bind { addr, source };
            let l = http::bind(addr).await.map_err(err)?;
            let local = l.local_addr().map_err(err)?;
            tracing::info!(listener = "metrics", address = %local, "listening");
            let sessions: Option<http::SessionsPage> = config.accounting.as_ref().map(|_| {
                let engine = engine.clone();
                Arc::new(move |query: &crate::proto::accounting::sessions::Query| {
                    engine.sessions_json(query).unwrap_or_default()
                }) as http::SessionsPage
            });
            let endpoint = http::Endpoint {
                metrics: metrics.clone(),
                sessions,
                cluster: config.accounting.as_ref().and_then(|a| a.postgres.clone()),
                settings: http_settings,
            };
            Some(tokio::spawn(http::serve(l, Arc::new(endpoint))))
        }
        None => None,
    };

    tracing::info!(
        clients = config.clients.len(),
        radsec_clients = config.radsec.as_ref().map_or(0, |r| r.clients.len()),
        attributes = config.dictionary.attribute_count(),
        version = env!("CARGO_PKG_VERSION"),
        "certgate started"
    );
    reload::warn_about(&config);
    let config_accounting = config.accounting.clone();
    let crl_refresh = [
        config.eap.as_ref().map(|e| e.crl_refresh),
        config.radsec.as_ref().map(|r| r.crl_refresh),
    ]
    .into_iter()
    .flatten()
    .min();
    drop(config);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (listener, socket) in sockets {
        tasks.spawn(udp::run(socket, listener, shell.clone(), stop_rx.clone()));
    }
    for listener in radsec_listeners {
        let (shell, stop) = (shell.clone(), stop_rx.clone());
        tasks.spawn(radsec::run(listener, shell, stop, server.shutdown_timeout));
    }
    if let (Some(a), Some(j)) = (config_accounting.as_ref(), shell.journal.as_ref())
        && let Some(pg) = &a.postgres
    {
        tasks.spawn(shipper::run(
            pg.clone(),
            a.journal.dir.clone(),
            j.durable.clone(),
            metrics.ship.clone(),
            stop_rx.clone(),
        ));
    }
    // Its first poll also checks the replayed sessions against the CRLs.
    tasks.spawn(das::run(shell.clone(), das_sockets, stop_rx.clone()));
    if let Some((listener, path)) = admin_listener {
        tasks.spawn(admin::serve(listener, path, shell.clone(), stop_rx.clone()));
    }
    let ticker = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                engine.tick(now());
            }
        })
    };
    let crl_task = crl_refresh.map(|every| {
        let shell = shell.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                reload::refresh_crls(&shell);
            }
        })
    });

    // systemd (Type=notify): every listener is bound, the server serves.
    // Without NOTIFY_SOCKET this does nothing.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                reload::reload(&shell);
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break }
        }
    }

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // Stop receiving, then wait for every in-flight request to be answered.
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let all = u32::try_from(server.max_in_flight).unwrap_or(u32::MAX);
    match tokio::time::timeout(server.shutdown_timeout, shell.in_flight.acquire_many(all)).await {
        Ok(_) => tracing::info!("stopped: every in-flight request was answered"),
        Err(_) => tracing::warn!(
            in_flight = shell.metrics.in_flight.get(),
            "stopped: shutdown_timeout passed with requests still in flight"
        ),
    }
    ticker.abort();
    if let Some(t) = crl_task {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}
