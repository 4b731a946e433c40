//! RADIUS over TLS (RFC 6614, RFC 6613, RFC 7930): the TCP listener, the
//! TLS handshake (tokio-rustls over the engine's rustls configuration with
//! the NAS CAs), and each connection's loop: bytes read are framed by
//! `proto::radsec::frame`, every packet goes to the engine like a datagram
//! (`Engine::receive_stream`), admitted requests are processed on their
//! own tasks, and their replies are written back in whatever order they
//! finish.
//!
//! Bounds, all from `[radsec]`: connections in total (handshakes included)
//! and per client, the handshake's duration, idleness, requests in flight
//! per connection (past it the connection is not read: TCP pushes back on
//! the NAS), and a read buffer of one largest packet. A connection that
//! breaks a rule is closed alone; the counters say why.
//!
//! Moves bytes and enforces resource bounds only: who a NAS is and what a
//! packet means are the engine's decisions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::accept::Acceptor;
use super::time::now;
use super::{ServerError, Shell};
use crate::config::{ClientConfig, RadsecConfig};
use crate::metrics::radsec::RadsecMetrics;
use crate::proto::admission::Listener;
use crate::proto::radsec::frame;
use crate::proto::wire::{Code, MAX_LEN};
use crate::proto::{Action, Received};

/// Replies written together at most (each at most 4096 octets: the batch
/// stays within a few TLS records).
const WRITE_BATCH: usize = 16;

/// Requests to a NAS waiting to be written on its connection.
const OUTBOUND_QUEUE: usize = 256;

/// How long a closing connection waits for its TLS close_notify to leave.
const CLOSE_NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds a RadSec listener (IPv6 sockets take IPv6 only, as for UDP).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// The open connections: their count (for `radsec.max_connections`), per
/// client (for `radsec.max_connections_per_client` and the connections
/// gauge), and a way to close those of clients a reload removed.
pub struct Connections {
    open: AtomicUsize,
    registry: Mutex<Registry>,
    metrics: RadsecMetrics,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Connection id → its client's name, its close signal, and where
    /// requests to its NAS (reverse CoA) are handed to it.
    by_id: HashMap<u64, Entry>,
    per_client: HashMap<Arc<str>, usize>,
}

/// A registered connection: its client's name, its close signal, and its
/// queue of requests to the NAS.
type Entry = (Arc<str>, Arc<Notify>, mpsc::Sender<Arc<[u8]>>);

/// A connection counted against `max_connections`, from accept to close.
struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection registered under its client, from the end of its
/// handshake to its close.
struct Registered {
    id: u64,
    client: Arc<str>,
    close: Arc<Notify>,
    connections: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut r = self.connections.registry.lock();
        r.by_id.remove(&self.id);
        if let Some(n) = r.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                r.per_client.remove(&self.client);
            }
        }
        self.connections
            .metrics
            .connections
            .with_label_values(&[&self.client])
            .dec();
    }
}

impl Connections {
    pub fn new(metrics: RadsecMetrics) -> Arc<Self> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            registry: Mutex::new(Registry::default()),
            metrics,
        })
    }

    /// A slot for one more connection, unless `max` are open.
    fn reserve(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Registers a connection of `client`, unless it has `max` open; with
    /// the receiver of the requests to write to its NAS.
    fn register(
        self: &Arc<Self>,
        client: &str,
        max: usize,
    ) -> Option<(Registered, mpsc::Receiver<Arc<[u8]>>)> {
        let mut r = self.registry.lock();
        let client: Arc<str> = client.into();
        let n = r.per_client.entry(client.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        r.next_id += 1;
        let id = r.next_id;
        let close = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        r.by_id.insert(id, (client.clone(), close.clone(), tx));
        self.metrics.connections.with_label_values(&[&client]).inc();
        Some((
            Registered {
                id,
                client,
                close,
                connections: self.clone(),
            },
            rx,
        ))
    }

    /// Hands a request for the NAS to the newest connection of `client`;
    /// false when it has none (or its queue is full).
    pub fn send_to(&self, client: &str, bytes: Arc<[u8]>) -> bool {
        let r = self.registry.lock();
        r.by_id
            .iter()
            .filter(|(_, (c, _, _))| &**c == client)
            .max_by_key(|(id, _)| **id)
            .is_some_and(|(_, (_, _, tx))| tx.try_send(bytes).is_ok())
    }

    /// Asks every connection of a client `keep` refuses to close (after a
    /// reload removed the client); returns how many were asked.
    pub fn close_removed(&self, keep: impl Fn(&str) -> bool) -> usize {
        let r = self.registry.lock();
        let mut closed = 0;
        for (client, close, _) in r.by_id.values() {
            if !keep(client) {
                close.notify_one();
                closed += 1;
            }
        }
        closed
    }
}

/// Accepts RadSec connections until shutdown, then waits for every
/// connection to finish its in-flight requests and close.
pub async fn run(
    listener: TcpListener,
    shell: Arc<Shell>,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) {
    let mut accept = Acceptor::new(listener, "radsec");
    let mut connections = JoinSet::new();
    let handshakes = &shell.metrics.radsec.handshakes;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept.next() => accepted,
            Some(_) = connections.join_next() => continue,
            _ = stop.changed() => break,
        };
        let Some((tls, settings)) = shell.engine.radsec_settings() else {
            // A reload removed [radsec]: the port stays bound (listeners
            // change at restart) but takes no one.
            drop(stream);
            continue;
        };
        let Some(slot) = shell.radsec.reserve(settings.max_connections) else {
            handshakes
                .with_label_values(&["refused", "connection_limit"])
                .inc();
            tracing::warn!(%peer, max = settings.max_connections, "radsec connection refused: radsec.max_connections are open");
            drop(stream);
            continue;
        };
        let connection = Connection {
            shell: shell.clone(),
            peer,
            settings,
            stop: stop.clone(),
            shutdown_timeout,
        };
        connections.spawn(connection.run(stream, tls, slot));
    }
    while connections.join_next().await.is_some() {}
}

/// One connection's context.
struct Connection {
    shell: Arc<Shell>,
    peer: SocketAddr,
    /// `[radsec]` as it was when the connection was accepted.
    settings: Arc<RadsecConfig>,
    stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
}

/// A reply on its way from a request's task to the connection.
struct Reply {
    bytes: Arc<[u8]>,
    code: Code,
    received: Instant,
    /// The connection's in-flight slot, held until the reply is written.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Arc<rustls::ServerConfig>, _slot: Slot) {
        let handshakes = self.shell.metrics.radsec.handshakes.clone();
        let refused = |reason: &str| handshakes.with_label_values(&["refused", reason]).inc();
        // Replies are small and answer a waiting NAS: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let handshake = tokio::time::timeout(
            self.settings.handshake_timeout,
            TlsAcceptor::from(tls).accept(stream),
        );
        let mut tls = tokio::select! {
            r = handshake => match r {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    refused("tls");
                    tracing::warn!(peer = %self.peer, error = %e, "radsec handshake failed");
                    return;
                }
                Err(_) => {
                    refused("timeout");
                    tracing::warn!(peer = %self.peer, timeout_ms = self.settings.handshake_timeout.as_millis() as u64, "radsec handshake timed out");
                    return;
                }
            },
            _ = self.stop.changed() => return,
        };
        let (chain, resumed, version) = {
            let conn = tls.get_ref().1;
            (
                conn.peer_certificates()
                    .map(<[_]>::to_vec)
                    .unwrap_or_default(),
                conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                conn.protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
            )
        };
        let client = match self
            .shell
            .engine
            .radsec_client(now(), self.peer, &chain, resumed)
        {
            Ok(client) => client,
            Err(_) => {
                close_notify(&mut tls).await;
                return;
            }
        };
        let per_client = self.settings.max_connections_per_client;
        let Some((registered, outbound)) = self.shell.radsec.register(&client.name, per_client)
        else {
            refused("client_limit");
            tracing::warn!(peer = %self.peer, client = %client.name, max = per_client, "radsec connection refused: radsec.max_connections_per_client are open");
            close_notify(&mut tls).await;
            return;
        };
        handshakes.with_label_values(&["ok", "ok"]).inc();
        tracing::info!(peer = %self.peer, client = %client.name, version, resumed, "radsec connection open");
        let reason = self.serve(&mut tls, &client, &registered, outbound).await;
        self.shell
            .metrics
            .radsec
            .closed
            .with_label_values(&[reason])
            .inc();
        tracing::info!(peer = %self.peer, client = %client.name, reason, "radsec connection closed");
        drop(registered);
    }

    /// Reads, frames and answers until the connection must close; returns
    /// why. In-flight answers are written first when the close is orderly
    /// (shutdown, reload, idle) and a TLS close_notify follows.
    async fn serve(
        &mut self,
        tls: &mut TlsStream<TcpStream>,
        client: &Arc<ClientConfig>,
        registered: &Registered,
        mut outbound: mpsc::Receiver<Arc<[u8]>>,
    ) -> &'static str {
        let max_in_flight = self.settings.max_in_flight;
        let idle_timeout = self.settings.idle_timeout;
        let permits = Arc::new(Semaphore::new(max_in_flight));
        // Each reply holds a permit: the channel never holds more than
        // max_in_flight replies.
        let (tx, mut rx) = mpsc::channel::<Reply>(max_in_flight);
        // One largest packet: `frame` refuses a Length past MAX_LEN, so a
        // full buffer always holds a whole packet.
        let mut buf = vec![0u8; MAX_LEN];
        let mut filled = 0;
        let mut last_active = tokio::time::Instant::now();
        let reason = 'conn: loop {
            // Hand every whole packet there is room for to the engine.
            let mut blocked = false;
            loop {
                let len = match frame(&buf[..filled], MAX_LEN) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, client = %client.name, error = %e, "radsec framing error: closing the connection");
                        break 'conn "framing";
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    blocked = true;
                    break;
                };
                last_active = tokio::time::Instant::now();
                if let Err(reason) = self.packet(tls, client, &buf[..len], permit, &tx).await {
                    break 'conn reason;
                }
                buf.copy_within(len..filled, 0);
                filled -= len;
            }
            let idle = permits.available_permits() == max_in_flight;
            tokio::select! {
                biased;
                _ = self.stop.changed() => break 'conn "shutdown",
                _ = registered.close.notified() => break 'conn "reload",
                Some(request) = outbound.recv() => {
                    if let Err(reason) = self.write_bytes(tls, &request).await {
                        break 'conn reason;
                    }
                }
                Some(reply) = rx.recv() => {
                    last_active = tokio::time::Instant::now();
                    // Every reply ready goes out in one TLS record and one
                    // write: under load, one syscall for many replies.
                    let mut batch = vec![reply];
                    while batch.len() < WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    if let Err(reason) = self.write(tls, batch).await {
                        break 'conn reason;
                    }
                }
                r = tls.read(&mut buf[filled..]), if !blocked && filled < buf.len() => match r {
                    Ok(0) => break 'conn "peer",
                    Ok(n) => filled += n,
                    // Closed without close_notify, as many NAS do.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break 'conn "peer",
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, client = %client.name, error = %e, "radsec read failed");
                        break 'conn "error";
                    }
                },
                _ = tokio::time::sleep_until(last_active + idle_timeout), if idle => break 'conn "idle",
            }
        };
        if matches!(reason, "shutdown" | "reload" | "idle") {
            drop(tx);
            let drain = async {
                while let Some(reply) = rx.recv().await {
                    if self.write(tls, vec![reply]).await.is_err() {
                        return;
                    }
                }
                close_notify(tls).await;
            };
            let _ = tokio::time::timeout(self.shutdown_timeout, drain).await;
        }
        reason
    }

    /// One framed packet: answered at once (a duplicate's cached reply),
    /// dropped, closing the connection, or processed on a task of its own
    /// whose reply comes back through `tx`.
    async fn packet(
        &self,
        tls: &mut TlsStream<TcpStream>,
        client: &Arc<ClientConfig>,
        packet: &[u8],
        permit: OwnedSemaphorePermit,
        tx: &mpsc::Sender<Reply>,
    ) -> Result<(), &'static str> {
        let received = now();
        let engine = &self.shell.engine;
        // A NAS's answer to a Disconnect or CoA request sent down this
        // connection (reverse CoA) is not a request.
        if crate::proto::das::message::peek(packet).is_some() {
            let route = crate::proto::das::sender::Route::Radsec(client.name.clone());
            engine.das_received(received, &route, packet);
            self.shell.das.wake();
            return Ok(());
        }
        match engine.receive_stream(received, client, self.peer, packet) {
            Received::Act(Action::Send { bytes, code, .. }) => {
                let reply = Reply {
                    bytes,
                    code,
                    received: received.instant,
                    _permit: permit,
                };
                self.write(tls, vec![reply]).await
            }
            Received::Act(Action::Close { reason }) => Err(reason),
            Received::Act(_) => Ok(()),
            Received::Process(request) => {
                let Ok(global) = self.shell.in_flight.clone().try_acquire_owned() else {
                    engine.overloaded(received, request);
                    return Ok(());
                };
                let shell = self.shell.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Action::Send { bytes, code, .. } = super::answer(&shell, request).await {
                        let reply = Reply {
                            bytes,
                            code,
                            received: received.instant,
                            _permit: permit,
                        };
                        // The connection may be gone; the reply with it.
                        let _ = tx.send(reply).await;
                    }
                    drop(global);
                });
                Ok(())
            }
        }
    }

    /// Writes a request to the NAS, bounded like replies.
    async fn write_bytes(
        &self,
        tls: &mut TlsStream<TcpStream>,
        bytes: &[u8],
    ) -> Result<(), &'static str> {
        let write = async {
            tls.write_all(bytes).await?;
            tls.flush().await
        };
        match tokio::time::timeout(self.settings.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "radsec write failed");
                Err("error")
            }
            Err(_) => Err("stalled"),
        }
    }

    /// Writes replies; a peer that does not take them within the idle
    /// timeout is stalled, and the connection closes.
    async fn write(
        &self,
        tls: &mut TlsStream<TcpStream>,
        replies: Vec<Reply>,
    ) -> Result<(), &'static str> {
        let write = async {
            if let [one] = replies.as_slice() {
                tls.write_all(&one.bytes).await?;
            } else {
                let joined: Vec<u8> = replies
                    .iter()
                    .flat_map(|r| r.bytes.iter().copied())
                    .collect();
                tls.write_all(&joined).await?;
            }
            tls.flush().await
        };
        match tokio::time::timeout(self.settings.idle_timeout, write).await {
            Ok(Ok(())) => {
                for reply in &replies {
                    self.shell
                        .sent(Listener::Radsec, reply.code, reply.received);
                }
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "radsec write failed");
                Err("error")
            }
            Err(_) => {
                tracing::warn!(peer = %self.peer, "radsec peer stopped reading: closing the connection");
                Err("stalled")
            }
        }
    }
}

/// Sends TLS close_notify and closes, within a short time.
async fn close_notify(tls: &mut TlsStream<TcpStream>) {
    let _ = tokio::time::timeout(CLOSE_NOTIFY_TIMEOUT, tls.shutdown()).await;
}
