//! The UDP side: binding sockets, the receive loop of each listener, and
//! the task that processes one admitted request and sends its reply.
//!
//! All decisions come from `pipeline` and `handler`; this file only moves
//! bytes, counts them and logs them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::proto::wire::{Code, MAX_LEN};

use super::{ServerError, Shared};
use super::{acct, eap_auth};
use crate::proto::admission::{self as pipeline, Admission, DropReason, Listener, Request};
use crate::proto::droplog::Permit;
use crate::proto::status::{self as handler, Response};

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

fn code_label(code: u8) -> &'static str {
    match Code::from(code) {
        Code::Invalid => "unknown",
        c => c.string(),
    }
}

fn log_drop(
    shared: &Shared,
    listener: Listener,
    source: SocketAddr,
    client: Option<&str>,
    reason: DropReason,
) {
    if let Permit::Log { suppressed } = shared.drop_log.permit(Instant::now()) {
        if suppressed > 0 {
            tracing::warn!(suppressed, "drop log lines suppressed in the last second");
        }
        let detail = match reason {
            DropReason::Malformed(e) => Some(e.to_string()),
            DropReason::Unanswerable(e) => Some(e.to_string()),
            _ => None,
        };
        match detail {
            Some(detail) => tracing::warn!(
                listener = listener.as_str(),
                %source,
                client = client.unwrap_or("-"),
                reason = reason.as_str(),
                detail,
                "dropped"
            ),
            None => tracing::warn!(
                listener = listener.as_str(),
                %source,
                client = client.unwrap_or("-"),
                reason = reason.as_str(),
                "dropped"
            ),
        }
    }
}

/// Receives until shutdown; each admitted request is processed on its own task.
pub async fn run(
    socket: Arc<UdpSocket>,
    listener: Listener,
    shared: Arc<Shared>,
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
        let now = Instant::now();
        let runtime = shared.runtime.load();
        let m = &shared.metrics;
        match pipeline::admit(
            &runtime.clients,
            &shared.dedup,
            listener,
            source,
            &buf[..n],
            now,
        ) {
            Admission::Drop {
                reason,
                client,
                code,
            } => {
                if let (Some(c), Some(code)) = (&client, code) {
                    m.requests
                        .with_label_values(&[label, &c.name, code_label(code)])
                        .inc();
                }
                m.dropped.with_label_values(&[label, reason.as_str()]).inc();
                log_drop(
                    &shared,
                    listener,
                    source,
                    client.as_deref().map(|c| c.name.as_str()),
                    reason,
                );
            }
            Admission::Resend {
                reply,
                client,
                code,
            } => {
                m.requests
                    .with_label_values(&[label, &client.name, code_label(code)])
                    .inc();
                m.duplicates.with_label_values(&[label]).inc();
                if socket.send_to(&reply, source).await.is_ok() {
                    m.responses
                        .with_label_values(&[label, code_label(reply[0])])
                        .inc();
                }
                tracing::debug!(listener = label, client = %client.name, id = reply[1], "duplicate answered from cache");
            }
            Admission::Process(request) => {
                m.requests
                    .with_label_values(&[label, &request.client.name, code_label(request.bytes[0])])
                    .inc();
                match shared.in_flight.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let socket = socket.clone();
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            process(&socket, &shared, request).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        if let Some(key) = &request.dedup_key {
                            shared.dedup.abandon(key);
                        }
                        m.dropped
                            .with_label_values(&[label, DropReason::Overload.as_str()])
                            .inc();
                        log_drop(
                            &shared,
                            listener,
                            source,
                            Some(&request.client.name),
                            DropReason::Overload,
                        );
                    }
                }
            }
        }
    }
}

/// Chooses who answers: EAP-TLS, accounting storage, or the plain handler.
/// The packet is decoded once here for whichever needs its attributes.
async fn dispatch(shared: &Shared, request: &Request) -> Response {
    let packet = match request.packet() {
        Ok(p) => p,
        Err(e) => return Response::Drop(DropReason::Malformed(e)),
    };
    let runtime = shared.runtime.load();
    match (
        packet.code(),
        &runtime.config.eap,
        &runtime.tls,
        &runtime.authz,
        &shared.accounting,
    ) {
        (Code::AccessRequest, Some(eap), Some(tls), Some(authz), _) if packet.has_eap_message() => {
            let engines = eap_auth::Engines { eap, tls, authz };
            eap_auth::respond(shared, engines, request, &packet).await
        }
        (Code::AccountingRequest, _, _, _, Some(acct)) => {
            acct::respond(acct, &runtime.config.dictionary, request, &packet).await
        }
        _ => handler::respond(request, &packet),
    }
}

/// Handles one request and sends the reply; the reply goes into the
/// duplicate cache before it is sent, so a retransmission racing the send
/// is answered from the cache.
async fn process(socket: &UdpSocket, shared: &Shared, request: Request) {
    let m = &shared.metrics;
    let label = request.listener.as_str();
    m.in_flight.inc();
    match dispatch(shared, &request).await {
        Response::Reply {
            code,
            bytes,
            outcome,
        } => {
            let reply: Arc<[u8]> = bytes.into();
            if let Some(key) = request.dedup_key {
                shared.dedup.complete(key, reply.clone(), Instant::now());
            }
            match socket.send_to(&reply, request.source).await {
                Ok(_) => {
                    m.responses.with_label_values(&[label, code.string()]).inc();
                    m.latency
                        .with_label_values(&[label])
                        .observe(request.received.elapsed().as_secs_f64());
                }
                Err(e) => {
                    tracing::warn!(listener = label, source = %request.source, error = %e, "send failed")
                }
            }
            if request.code() == Code::StatusServer {
                tracing::debug!(listener = label, client = %request.client.name, id = request.identifier(), "status answered");
            } else if let Some(outcome) = outcome {
                tracing::info!(
                    listener = label,
                    client = %request.client.name,
                    id = request.identifier(),
                    request = request.code().string(),
                    reply = code.string(),
                    outcome,
                    "decision"
                );
            } else if code == Code::AccessChallenge {
                tracing::debug!(listener = label, client = %request.client.name, id = request.identifier(), "challenge");
            }
        }
        Response::Drop(reason) => {
            if let Some(key) = &request.dedup_key {
                shared.dedup.abandon(key);
            }
            m.dropped.with_label_values(&[label, reason.as_str()]).inc();
            log_drop(
                shared,
                request.listener,
                request.source,
                Some(&request.client.name),
                reason,
            );
        }
    }
    m.in_flight.dec();
}
