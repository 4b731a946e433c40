//! Background EAP-TLS load for fault-injection tests: a few Rust
//! supplicants authenticating back to back, each conversation recorded
//! with when it started, how long it took and how it ended, so a test can
//! judge each phase of a fault by the conversations that began in it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certgate::bench::random_station;
use certgate::proto::wire::crypto::Secret;
use certgate::supplicant::{Outcome, Supplicant, Transport};

pub struct Sample {
    pub started: Instant,
    pub took: Duration,
    /// The outcome, or why there was none (no answer in time, a bad reply).
    pub result: Result<Outcome, String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    /// `concurrency` supplicants against `server`, each a clone of `sup`
    /// with its own station and socket, until `finish`.
    pub fn start(sup: &Supplicant, server: SocketAddr, concurrency: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (stop, samples, sup) = (stop.clone(), samples.clone(), sup.clone());
            tasks.spawn(async move {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let transport = Transport::udp(socket.into(), server);
                let secret = Secret::new(super::SECRET.as_bytes());
                while !stop.load(Ordering::Relaxed) {
                    let mut sup = sup.clone();
                    sup.calling_station = Some(random_station());
                    let started = Instant::now();
                    let result = sup
                        .authenticate(&transport, &secret)
                        .await
                        .map_err(|e| e.to_string());
                    let took = started.elapsed();
                    samples.lock().expect("samples").push(Sample {
                        started,
                        took,
                        result,
                    });
                }
            });
        }
        Load {
            stop,
            samples,
            tasks,
        }
    }

    /// Conversations finished so far.
    pub fn finished(&self) -> usize {
        self.samples.lock().expect("samples").len()
    }

    /// Whether a conversation that began after `since` ended in an outcome
    /// that satisfies `pred`.
    pub fn any_since(&self, since: Instant, pred: impl Fn(&Outcome) -> bool) -> bool {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .any(|x| x.started >= since && x.result.as_ref().is_ok_and(&pred))
    }

    /// Waits until `n` more conversations than now have finished; false
    /// after `timeout`.
    pub async fn wait_more(&self, n: usize, timeout: Duration) -> bool {
        let want = self.finished() + n;
        super::poll::until_async(timeout, || async {
            (self.finished() >= want).then_some(())
        })
        .await
        .is_some()
    }

    /// Stops the supplicants after their current conversation and returns
    /// every sample in the order they finished.
    pub async fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(r) = self.tasks.join_next().await {
            r.expect("load task");
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

/// The samples that started and finished inside `[from, to)`.
pub fn within(samples: &[Sample], from: Instant, to: Instant) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|x| x.started >= from && x.started + x.took < to)
        .collect()
}
