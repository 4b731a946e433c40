//! Dynamic authorization's I/O: the UDP sockets requests to NAS devices go
//! out of and their answers come back on, RadSec connections for NAS that
//! use RadSec (reverse CoA), the directory re-checks the engine asks for,
//! and the hand-over of finished operations to the admin socket's waiting
//! commands. One task runs it, woken by answers, by the engine's next
//! deadline (`Engine::das_wakeup`) and by `Das::wake`.
//!
//! Moves bytes only: what to send, to whom and when is the engine's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, oneshot, watch};

use super::Shell;
use super::time::now;
use crate::proto::Action;
use crate::proto::das::sender::{OpId, Route};
use crate::proto::das::target::Selector;
use crate::proto::engine::{DasError, Report};
use crate::proto::wire::MAX_LEN;

/// What other tasks share with the DAS task.
#[derive(Default)]
pub struct Das {
    notify: Notify,
    /// Operator commands waiting for their operation's reports.
    waiters: Mutex<HashMap<OpId, oneshot::Sender<Vec<Report>>>>,
}

impl Das {
    /// Something for the engine's `das_poll`: run it soon.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Asks the engine to disconnect what `selector` names, and waits for
    /// every request's end.
    pub async fn disconnect(
        &self,
        shell: &Shell,
        selector: &Selector,
    ) -> Result<Vec<Report>, DasError> {
        let (tx, rx) = oneshot::channel();
        {
            // Held across the operation's start so the DAS task cannot
            // finish it before its waiter is in place.
            let mut waiters = self.waiters.lock();
            let op = shell.engine.disconnect(now(), selector)?;
            waiters.insert(op, tx);
        }
        self.wake();
        Ok(rx.await.unwrap_or_default())
    }
}

/// Binds the sockets requests leave from: any IPv4 address, and IPv6 when
/// the host has it. The kernel picks the source address by route.
pub fn bind() -> Vec<Arc<UdpSocket>> {
    let mut sockets = Vec::new();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            continue;
        };
        match std::net::UdpSocket::bind(addr)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .and_then(UdpSocket::from_std)
        {
            Ok(s) => sockets.push(Arc::new(s)),
            Err(e) => tracing::debug!(%addr, error = %e, "no DAS socket for this address family"),
        }
    }
    sockets
}

async fn recv(
    socket: Option<&Arc<UdpSocket>>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Runs until shutdown.
pub async fn run(shell: Arc<Shell>, sockets: Vec<Arc<UdpSocket>>, mut stop: watch::Receiver<bool>) {
    let das = shell.das.clone();
    let v4 = sockets
        .iter()
        .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4()));
    let v6 = sockets
        .iter()
        .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv6()));
    let mut buf4 = vec![0u8; MAX_LEN];
    let mut buf6 = vec![0u8; MAX_LEN];
    loop {
        let out = shell.engine.das_poll(now());
        let mut again = false;
        for (route, bytes) in out.send {
            let sent = match &route {
                Route::Udp(to) => {
                    let socket = if to.is_ipv4() { v4 } else { v6 };
                    match socket {
                        Some(s) => s
                            .send_to(&bytes, to)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        None => Err("no socket for this address family".into()),
                    }
                }
                Route::Radsec(client) => {
                    if shell.radsec.send_to(client, bytes.clone()) {
                        Ok(())
                    } else {
                        Err("no RadSec connection from this NAS".into())
                    }
                }
            };
            if let Err(why) = sent {
                // UDP send errors (no route, …) end the request at once
                // rather than waiting out its retransmissions.
                shell.engine.das_undeliverable(&route, &bytes, &why);
                again = true;
            }
        }
        for (ticket, work) in out.asks {
            let shell = shell.clone();
            tokio::spawn(async move {
                super::drive(&shell, Action::Ask { ticket, work }).await;
                shell.das.wake();
            });
        }
        if !out.finished.is_empty() {
            let mut waiters = das.waiters.lock();
            for (op, reports) in out.finished {
                if let Some(tx) = waiters.remove(&op) {
                    let _ = tx.send(reports);
                }
            }
        }
        if again {
            continue;
        }
        let next = shell
            .engine
            .das_wakeup(std::time::Instant::now())
            .map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(std::time::Instant::now())
            })
            .min(Duration::from_secs(1));
        tokio::select! {
            r = recv(v4, &mut buf4) => if let Ok((n, from)) = r {
                shell.engine.das_received(now(), &Route::Udp(from), &buf4[..n]);
            },
            r = recv(v6, &mut buf6) => if let Ok((n, from)) = r {
                shell.engine.das_received(now(), &Route::Udp(from), &buf6[..n]);
            },
            _ = das.notify.notified() => {}
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return,
        }
    }
}
