//! RADIUS over UDP: binding the sockets and the receive loop of each
//! listener. Admission runs on the loop (`Engine::receive`, cheap); each
//! admitted request is processed on its own task, bounded by
//! `server.max_in_flight`, and its actions are carried out by `drive`.
//!
//! Moves bytes only: every decision is the engine's.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::time::now;
use super::{ServerError, Shell};
use crate::proto::admission::Listener;
use crate::proto::wire::MAX_LEN;
use crate::proto::{Action, Received};

/// Binds a UDP socket with the requested receive buffer. Linux caps the
/// buffer at net.core.rmem_max; a smaller result is logged, not fatal.
pub fn bind(addr: SocketAddr, receive_buffer: usize) -> Result<UdpSocket, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%addr, error = %e, "could not set the socket receive buffer");
    }
    // Linux reports double the size it grants (bookkeeping overhead).
    let granted = socket.recv_buffer_size().map(|n| n / 2).unwrap_or(0);
    if granted < receive_buffer {
        tracing::warn!(
            %addr,
            requested = receive_buffer,
            granted,
            "socket receive buffer is smaller than configured: raise net.core.rmem_max"
        );
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

/// Receives until shutdown.
pub async fn run(
    socket: Arc<UdpSocket>,
    listener: Listener,
    shell: Arc<Shell>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_LEN];
    let label = listener.as_str();
    loop {
        let (n, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux; keep serving.
                    tracing::debug!(listener = label, error = %e, "receive error");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let received = now();
        match shell.engine.receive(received, listener, source, &buf[..n]) {
            Received::Act(action) => {
                send(&socket, &shell, listener, action, received.instant).await
            }
            Received::Process(request) => match shell.in_flight.clone().try_acquire_owned() {
                Ok(permit) => {
                    let socket = socket.clone();
                    let shell = shell.clone();
                    tokio::spawn(async move {
                        let action = super::answer(&shell, request).await;
                        send(&socket, &shell, listener, action, received.instant).await;
                        drop(permit);
                    });
                }
                Err(_) => shell.engine.overloaded(received, request),
            },
        }
    }
}

/// Sends a reply, if the action is one, and counts it.
async fn send(
    socket: &UdpSocket,
    shell: &Shell,
    listener: Listener,
    action: Action,
    received: std::time::Instant,
) {
    let Action::Send { to, bytes, code } = action else {
        return;
    };
    match socket.send_to(&bytes, to).await {
        Ok(_) => shell.sent(listener, code, received),
        Err(e) => tracing::warn!(listener = listener.as_str(), to = %to, error = %e, "send failed"),
    }
}
