//! Accepting TCP connections (the metrics endpoint, RadSec) without
//! spinning: an accept error is almost always EMFILE/ENFILE under a
//! connection flood, and accepting again at once would burn a core until a
//! descriptor frees up, so it backs off (10 ms doubling to 1 s) and logs.
//!
//! Only accepts: what a connection may do is the caller's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP listener that backs off on accept errors.
pub struct Acceptor {
    listener: TcpListener,
    /// Names the listener in the log line.
    label: &'static str,
    backoff: Duration,
}

impl Acceptor {
    pub fn new(listener: TcpListener, label: &'static str) -> Self {
        Acceptor {
            listener,
            label,
            backoff: Duration::ZERO,
        }
    }

    /// The next connection; waits out accept errors.
    pub async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = Duration::ZERO;
                    return accepted;
                }
                Err(e) => {
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tracing::warn!(
                        listener = self.label,
                        error = %e,
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "accept failed"
                    );
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}
