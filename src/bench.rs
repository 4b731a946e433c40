//! The load generator's engine (`certgate-bench`): runs many concurrent
//! EAP-TLS conversations, accounting or Status-Server probes against a
//! server over UDP or RadSec (every worker sharing a few TLS connections,
//! as a NAS or proxy multiplexes them), bounded by count and/or duration, and reports throughput, latency
//! percentiles, round trips, failures by reason, and CPU time per
//! operation of the generator and (given its pid) of the server.
//!
//! Measurement only: it must not be used as a NAS in production.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::UdpSocket;

use crate::proto::wire::Code;
use crate::proto::wire::crypto::Secret;
use crate::supplicant::{RadsecLink, Supplicant, SupplicantError, Transport};

/// CPU time (user + system) of a process from /proc, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// A KiB figure of a process's /proc status (`VmHWM:`, `VmRSS:`, …).
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Peak resident set size of a process from /proc, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmHWM:")
}

/// The process's resident set now, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmRSS:")
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux architecture we run on.
    100.0
}

#[derive(Debug, Default)]
pub struct Report {
    pub completed: u64,
    pub failed: BTreeMap<String, u64>,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub round_trips: u64,
    pub resumed: u64,
    pub generator_cpu: f64,
    pub server_cpu: Option<f64>,
    pub server_peak_rss_kib: Option<u64>,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.latencies.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }

    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let per_op = |cpu: f64| cpu * 1000.0 / (self.completed.max(1) as f64);
        serde_json::json!({
            "completed": self.completed,
            "failed": self.failed,
            "seconds": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput(),
            "latency_ms": {
                "p50": ms(self.percentile(0.5)),
                "p90": ms(self.percentile(0.9)),
                "p99": ms(self.percentile(0.99)),
                "max": ms(self.percentile(1.0)),
            },
            "round_trips_per_op": self.round_trips as f64 / self.completed.max(1) as f64,
            "resumed": self.resumed,
            "generator_cpu_ms_per_op": per_op(self.generator_cpu),
            "server_cpu_ms_per_op": self.server_cpu.map(per_op),
            "server_peak_rss_kib": self.server_peak_rss_kib,
        })
    }

    pub fn table(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let per_op = |cpu: f64| cpu * 1000.0 / (self.completed.max(1) as f64);
        let mut s = format!(
            "completed        {}\nfailed           {:?}\nseconds          {:.2}\nthroughput       {:.1}/s\n\
             latency ms       p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             round trips/op   {:.2}\nresumed          {}\ngenerator CPU    {:.3} ms/op\n",
            self.completed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.99)),
            ms(self.percentile(1.0)),
            self.round_trips as f64 / self.completed.max(1) as f64,
            self.resumed,
            per_op(self.generator_cpu),
        );
        if let Some(cpu) = self.server_cpu {
            s.push_str(&format!("server CPU       {:.3} ms/op\n", per_op(cpu)));
        }
        if let Some(rss) = self.server_peak_rss_kib {
            s.push_str(&format!(
                "server peak RSS  {:.1} MiB\n",
                rss as f64 / 1024.0
            ));
        }
        s
    }
}

/// What to run and for how long.
#[derive(Clone)]
pub struct Load {
    pub target: SocketAddr,
    pub secret: Secret,
    pub concurrency: usize,
    /// Stop after this many operations (all workers together)...
    pub count: Option<u64>,
    /// ...or after this long, whichever comes first.
    pub duration: Option<Duration>,
    pub server_pid: Option<u32>,
    pub via: Via,
}

/// How the generator reaches the server.
#[derive(Clone)]
pub enum Via {
    /// A UDP socket per worker.
    Udp,
    /// `connections` RadSec connections, the workers spread over them.
    Radsec {
        /// The NAS certificate and the CAs the server's is checked with.
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        connections: usize,
    },
}

impl Via {
    /// A transport per worker: its own UDP socket, or a share of the
    /// RadSec connections.
    async fn transports(
        &self,
        target: SocketAddr,
        workers: usize,
    ) -> Result<Vec<Arc<Transport>>, SupplicantError> {
        match self {
            Via::Udp => {
                let mut all = Vec::with_capacity(workers);
                for _ in 0..workers {
                    let socket = Arc::new(UdpSocket::bind(("127.0.0.1", 0)).await?);
                    all.push(Arc::new(Transport::udp(socket, target)));
                }
                Ok(all)
            }
            Via::Radsec {
                config,
                server_name,
                connections,
            } => {
                let mut links = Vec::new();
                for _ in 0..(*connections).clamp(1, workers) {
                    let link =
                        RadsecLink::connect(target, config.clone(), server_name.clone()).await?;
                    links.push(Arc::new(Transport::Radsec(link)));
                }
                Ok((0..workers)
                    .map(|i| links[i % links.len()].clone())
                    .collect())
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    started: AtomicU64,
}

/// A station per conversation: one shared Calling-Station-Id would make
/// each new conversation replace the others.
pub fn random_station() -> String {
    let mac: [u8; 6] = rand::random();
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Full or resumed EAP-TLS conversations, one per operation.
pub async fn eap_tls(load: &Load, supplicant: Supplicant) -> Result<Report, SupplicantError> {
    run(load, move |transport, load| {
        let mut sup = supplicant.clone();
        sup.calling_station = Some(random_station());
        async move {
            let started = Instant::now();
            match sup.authenticate(&transport, &load.secret).await {
                Ok(o) if o.code == Code::AccessAccept && o.mppe_keys_match => Op::Ok {
                    latency: started.elapsed(),
                    round_trips: o.round_trips,
                    resumed: o.resumed,
                },
                Ok(o) if o.code == Code::AccessAccept => Op::Failed("mppe_keys_mismatch".into()),
                Ok(o) => Op::Failed(format!("{:?}", o.code)),
                Err(e) => Op::Failed(match e {
                    crate::supplicant::SupplicantError::Timeout(_) => "timeout".into(),
                    other => other.to_string(),
                }),
            }
        }
    })
    .await
}

/// Conversations opened and abandoned after `round_trips` requests (2:
/// the server is left holding a TLS handshake that answered a
/// ClientHello), for the server's memory per conversation in flight. Each
/// held conversation counts as completed; refusals (the table is full)
/// show up under failed.
pub async fn half_open(
    load: &Load,
    supplicant: Supplicant,
    round_trips: u32,
) -> Result<Report, SupplicantError> {
    run(load, move |transport, load| {
        let mut sup = supplicant.clone();
        sup.calling_station = Some(random_station());
        async move {
            let started = Instant::now();
            match sup
                .abandon_after(&transport, &load.secret, round_trips)
                .await
            {
                Ok(Code::AccessChallenge) => Op::Ok {
                    latency: started.elapsed(),
                    round_trips,
                    resumed: false,
                },
                Ok(code) => Op::Failed(format!("{code:?}")),
                Err(e) => Op::Failed(e.to_string()),
            }
        }
    })
    .await
}

/// Opens `count` RadSec connections (`load.concurrency` at a time), each
/// proven by one Status-Server exchange, and holds them until `held`
/// returns: the server's memory per idle connection is what `held`
/// measures. Each connection open counts as one completed operation.
pub async fn hold_connections<F: FnOnce(u64)>(
    load: &Load,
    count: u64,
    held: F,
) -> Result<Report, SupplicantError> {
    let Via::Radsec {
        config,
        server_name,
        ..
    } = &load.via
    else {
        return Err(SupplicantError::Setup(
            "holding connections needs RadSec (--radsec-cert, --radsec-key, --radsec-ca)".into(),
        ));
    };
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(load.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = slots.clone().acquire_owned().await;
        let (config, server_name, load) = (config.clone(), server_name.clone(), load.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let link = RadsecLink::connect(load.target, config, server_name).await?;
            let transport = Transport::Radsec(link);
            let build = |ra: &mut [u8; 16], id: u8| status_server(ra, id, &load.secret);
            match request_reply(&transport, &load, build).await {
                Op::Ok { .. } => Ok((transport, t.elapsed())),
                Op::Failed(e) => Err(SupplicantError::Reply(e)),
            }
        });
    }
    let mut report = Report::default();
    let mut open = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((transport, latency))) => {
                open.push(transport);
                report.completed += 1;
                report.latencies.push(latency);
                report.round_trips += 1;
            }
            Ok(Err(e)) => *report.failed.entry(e.to_string()).or_default() += 1,
            Err(e) => *report.failed.entry(e.to_string()).or_default() += 1,
        }
    }
    report.elapsed = started.elapsed();
    held(report.completed);
    drop(open);
    Ok(report)
}

pub enum Op {
    Ok {
        latency: Duration,
        round_trips: u32,
        resumed: bool,
    },
    Failed(String),
}

async fn run<F, Fut>(load: &Load, op: F) -> Result<Report, SupplicantError>
where
    F: Fn(Arc<Transport>, Arc<Load>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Op> + Send,
{
    let shared = Arc::new(Shared::default());
    let load = Arc::new(load.clone());
    let op = Arc::new(op);
    let me = std::process::id();
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let server0 = load.server_pid.and_then(cpu_seconds);
    let start = Instant::now();
    let deadline = load.duration.map(|d| start + d);
    let mut tasks = tokio::task::JoinSet::new();
    let workers = load.concurrency.max(1);
    for transport in load.via.transports(load.target, workers).await? {
        let (shared, load, op) = (shared.clone(), load.clone(), op.clone());
        tasks.spawn(async move {
            let mut part = Report::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = shared.started.fetch_add(1, Ordering::Relaxed);
                if load.count.is_some_and(|c| n >= c) {
                    break;
                }
                match op(transport.clone(), load.clone()).await {
                    Op::Ok {
                        latency,
                        round_trips,
                        resumed,
                    } => {
                        part.completed += 1;
                        part.latencies.push(latency);
                        part.round_trips += u64::from(round_trips);
                        part.resumed += u64::from(resumed);
                    }
                    Op::Failed(reason) => *part.failed.entry(reason).or_default() += 1,
                }
            }
            part
        });
    }
    let mut report = Report::default();
    while let Some(part) = tasks.join_next().await {
        let Ok(part) = part else { continue };
        report.completed += part.completed;
        report.latencies.extend(part.latencies);
        report.round_trips += part.round_trips;
        report.resumed += part.resumed;
        for (k, v) in part.failed {
            *report.failed.entry(k).or_default() += v;
        }
    }
    report.elapsed = start.elapsed();
    report.generator_cpu = cpu_seconds(me).unwrap_or(0.0) - cpu0;
    if let (Some(pid), Some(before)) = (load.server_pid, server0) {
        report.server_cpu = cpu_seconds(pid).map(|after| after - before);
        report.server_peak_rss_kib = peak_rss_kib(pid);
    }
    Ok(report)
}

/// One Accounting-Request round trip per operation: a Start, Interim-Update
/// and Stop mix over unique session ids.
pub async fn acct(load: &Load) -> Result<Report, SupplicantError> {
    let counter = Arc::new(AtomicU64::new(0));
    run(load, move |transport, load| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        async move {
            let status = [1u32, 3, 2][(n % 3) as usize];
            let session = format!("bench-{}-{}", std::process::id(), n / 3);
            let build = |ra: &mut [u8; 16], id: u8| {
                let mut b =
                    crate::proto::wire::PacketBuilder::new(Code::AccountingRequest, id, false);
                // Short attributes: cannot overflow a packet.
                let _ = b
                    .push_u32(40, status)
                    .and_then(|b| b.push(44, session.as_bytes()))
                    .and_then(|b| b.push(1, b"bench@example.org"))
                    .and_then(|b| b.push(4, &[127, 0, 0, 1]))
                    .and_then(|b| b.push_u32(42, (n as u32).wrapping_mul(1000)))
                    .and_then(|b| b.push_u32(43, (n as u32).wrapping_mul(3000)))
                    .and_then(|b| b.push_u32(46, 60));
                let request = b.finish_accounting_request(&load.secret);
                ra.copy_from_slice(&request[4..20]);
                request
            };
            request_reply(&transport, &load, build).await
        }
    })
    .await
}

/// One Status-Server (RFC 5997, with Message-Authenticator) per operation,
/// to the port given as target.
pub async fn status(load: &Load) -> Result<Report, SupplicantError> {
    run(load, move |transport, load| async move {
        let build = |ra: &mut [u8; 16], id: u8| status_server(ra, id, &load.secret);
        request_reply(&transport, &load, build).await
    })
    .await
}

/// A Status-Server with Message-Authenticator and a fresh Request
/// Authenticator, noted in `ra`.
fn status_server(ra: &mut [u8; 16], id: u8, secret: &Secret) -> Vec<u8> {
    *ra = rand::random();
    crate::proto::wire::PacketBuilder::new(Code::StatusServer, id, true)
        .finish_access_request(ra, secret)
}

/// Sends the request `build` makes (it notes its Request Authenticator),
/// up to three times 2 s apart over UDP, and waits for the reply with its
/// Identifier and a valid Response Authenticator.
async fn request_reply(
    transport: &Transport,
    load: &Load,
    build: impl FnOnce(&mut [u8; 16], u8) -> Vec<u8>,
) -> Op {
    let started = Instant::now();
    let mut sent = ([0u8; 16], 0u8);
    let result = transport
        .round_trip(
            Duration::from_secs(2),
            3,
            &mut sent,
            |(ra, id), chosen| {
                *id = chosen;
                build(ra, chosen)
            },
            |(ra, id), bytes| {
                let reply = crate::proto::wire::Packet::decode(bytes)
                    .map_err(|_| "malformed reply".to_string())?;
                if reply.identifier() != *id {
                    // A late answer to an earlier request on this socket.
                    return Ok(None);
                }
                if !crate::proto::wire::crypto::verify_response_authenticator(
                    &reply,
                    ra,
                    &load.secret,
                ) {
                    return Err("bad response authenticator".to_string());
                }
                Ok(Some(()))
            },
        )
        .await;
    match result {
        Ok(()) => Op::Ok {
            latency: started.elapsed(),
            round_trips: 1,
            resumed: false,
        },
        Err(SupplicantError::Timeout(_)) => Op::Failed("timeout".into()),
        Err(SupplicantError::Reply(e)) => Op::Failed(e),
        Err(e) => Op::Failed(e.to_string()),
    }
}
