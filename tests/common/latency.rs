//! A TCP relay on 127.0.0.1 that adds a settable latency to every chunk in
//! both directions: a slow LDAP server, without touching slapd. Each chunk
//! is delivered at its arrival time plus the latency in force when it
//! arrived, so the relay adds delay, not a throughput limit.
//!
//! Test-only. Threads, not tokio: it must keep relaying while the test's
//! runtime is busy driving load.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

pub struct LatencyRelay {
    pub addr: SocketAddr,
    latency_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl LatencyRelay {
    pub fn start(upstream: SocketAddr) -> LatencyRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let latency_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (latency, stopping) = (latency_ms.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    match (from.try_clone(), to.try_clone()) {
                        (Ok(from), Ok(to)) => pump(from, to, latency.clone()),
                        _ => break,
                    }
                }
            }
        });
        LatencyRelay {
            addr,
            latency_ms,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for LatencyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads chunks from `from` and writes each to `to` once its delay has
/// passed; a closed side closes the other.
fn pump(mut from: TcpStream, mut to: TcpStream, latency_ms: Arc<AtomicU64>) {
    let (tx, rx) = channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let due = Instant::now() + Duration::from_millis(latency_ms.load(Ordering::Relaxed));
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
