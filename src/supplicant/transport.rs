//! How the test NAS reaches a server: a UDP socket (a request resent on
//! timeout), or one RadSec connection (RFC 6614) shared by many
//! conversations at once, as a real NAS or proxy shares it: each request
//! takes a free Identifier on the connection, and a reader task hands each
//! reply to the request with its Identifier.
//!
//! Test and load-generator code: it trusts its own configuration, but
//! never what the server sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::SupplicantError;
use crate::proto::radsec::frame;
use crate::proto::wire::MAX_LEN;

/// A path to a RADIUS server.
pub enum Transport {
    Udp {
        socket: Arc<UdpSocket>,
        server: SocketAddr,
        next_id: AtomicU8,
    },
    Radsec(Arc<RadsecLink>),
}

impl Transport {
    pub fn udp(socket: Arc<UdpSocket>, server: SocketAddr) -> Self {
        Transport::Udp {
            socket,
            server,
            next_id: AtomicU8::new(rand::random()),
        }
    }

    /// Sends the request `build` makes for a free Identifier and returns
    /// what `accept` makes of the first reply it takes (it returns None
    /// for a reply to another request). Over UDP the request is resent
    /// every `timeout`, `attempts` times; over TCP it is sent once and
    /// waited for as long.
    /// `state` is what both need (an `Exchange`).
    pub async fn round_trip<S: Send, T>(
        &self,
        timeout: Duration,
        attempts: u32,
        state: &mut S,
        build: impl FnOnce(&mut S, u8) -> Vec<u8>,
        mut accept: impl FnMut(&mut S, &[u8]) -> Result<Option<T>, String>,
    ) -> Result<T, SupplicantError> {
        let attempts = attempts.max(1);
        match self {
            Transport::Udp {
                socket,
                server,
                next_id,
            } => {
                let request = build(state, next_id.fetch_add(1, Ordering::Relaxed));
                let mut buf = vec![0u8; MAX_LEN];
                for _ in 0..attempts {
                    socket.send_to(&request, server).await?;
                    let deadline = tokio::time::Instant::now() + timeout;
                    while let Ok(got) =
                        tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
                    {
                        let (n, _) = got?;
                        // Stray or stale datagrams (other identifiers) are skipped.
                        if let Some(reply) =
                            accept(state, &buf[..n]).map_err(SupplicantError::Reply)?
                        {
                            return Ok(reply);
                        }
                    }
                }
                Err(SupplicantError::Timeout(timeout * attempts))
            }
            Transport::Radsec(link) => {
                let wait = timeout * attempts;
                let reply = link.exchange(|id| build(state, id), wait).await?;
                accept(state, &reply)
                    .map_err(SupplicantError::Reply)?
                    .ok_or_else(|| SupplicantError::Reply("reply does not match".into()))
            }
        }
    }
}

/// One RadSec connection, shared.
pub struct RadsecLink {
    writer: tokio::sync::Mutex<WriteHalf<TlsStream<TcpStream>>>,
    /// Identifier → the request waiting for its reply.
    waiting: Arc<Mutex<HashMap<u8, oneshot::Sender<Vec<u8>>>>>,
    /// Free Identifiers, and a permit per free one.
    free: Mutex<Vec<u8>>,
    slots: Semaphore,
    /// Set by the reader when the server closed the connection.
    closed: Arc<AtomicBool>,
    /// The reader task, stopped when the link is dropped (it holds the
    /// read half, which keeps the connection open).
    reader: tokio::task::AbortHandle,
}

impl RadsecLink {
    /// Connects and completes the TLS handshake (the server must present
    /// a certificate for `server_name` from `config`'s roots; `config`
    /// carries the NAS certificate).
    pub async fn connect(
        server: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<Arc<Self>, SupplicantError> {
        let tcp = TcpStream::connect(server).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(config).connect(server_name, tcp).await?;
        let (reader, writer) = tokio::io::split(tls);
        let waiting: Arc<Mutex<HashMap<u8, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader =
            tokio::spawn(read_replies(reader, waiting.clone(), closed.clone())).abort_handle();
        Ok(Arc::new(RadsecLink {
            writer: tokio::sync::Mutex::new(writer),
            waiting,
            free: Mutex::new((0..=255).collect()),
            slots: Semaphore::new(256),
            closed,
            reader,
        }))
    }

    /// Sends the request `build` makes for a free Identifier and waits up
    /// to `wait` for the reply with that Identifier.
    pub async fn exchange(
        &self,
        build: impl FnOnce(u8) -> Vec<u8>,
        wait: Duration,
    ) -> Result<Vec<u8>, SupplicantError> {
        let closed = || SupplicantError::Reply("connection closed".into());
        let _slot = self.slots.acquire().await.map_err(|_| closed())?;
        let id = self.free.lock().pop().ok_or_else(closed)?;
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        let result = async {
            if self.is_closed() {
                return Err(closed());
            }
            let request = build(id);
            {
                let mut w = self.writer.lock().await;
                w.write_all(&request).await?;
                w.flush().await?;
            }
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(closed()),
                Err(_) => Err(SupplicantError::Timeout(wait)),
            }
        }
        .await;
        self.waiting.lock().remove(&id);
        self.free.lock().push(id);
        result
    }

    /// Whether the server has closed the connection.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for RadsecLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads replies until the connection ends, handing each to the request
/// with its Identifier; replies nobody waits for are dropped.
async fn read_replies(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    waiting: Arc<Mutex<HashMap<u8, oneshot::Sender<Vec<u8>>>>>,
    closed: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; MAX_LEN];
    let mut filled = 0;
    loop {
        while let Ok(Some(len)) = frame(&buf[..filled], MAX_LEN) {
            if let Some(tx) = waiting.lock().remove(&buf[1]) {
                let _ = tx.send(buf[..len].to_vec());
            }
            buf.copy_within(len..filled, 0);
            filled -= len;
        }
        if frame(&buf[..filled], MAX_LEN).is_err() {
            break;
        }
        match reader.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    // Every waiting request learns the connection is gone.
    closed.store(true, Ordering::Release);
    waiting.lock().clear();
}
