//! Requests to NAS devices in flight: the queue (started at most `rate` a
//! second), Identifiers per destination, retransmission with doubling
//! waits over UDP (a single wait over RadSec: TCP retransmits), the match
//! of an answer to its request, and the outcome of each: ACK, NAK with its
//! Error-Cause, timeout, dry run, or failure to send. Outcomes of an
//! operator's operation are gathered until the last is in.
//!
//! Sans-I/O: `poll(now)` says what to send and what finished; `received`
//! takes an answer's octets. It must not choose targets or count metrics.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::{self, AnswerError, Verdict};
use super::target::Target;
use super::{DasSettings, Kind, Trigger};
use crate::proto::wire::crypto::Secret;

/// Names an operator's request until all its outcomes are in.
pub type OpId = u64;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    Udp(SocketAddr),
    /// Down the RadSec connection of this client (reverse CoA).
    Radsec(String),
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Udp(a) => write!(f, "{a}"),
            Route::Radsec(c) => write!(f, "radsec:{c}"),
        }
    }
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: Kind,
    pub trigger: Trigger,
    pub route: Route,
    pub secret: Secret,
    /// Identifying attributes, then (CoA) the new reply attributes.
    pub attributes: Vec<(u8, Vec<u8>)>,
    pub target: Target,
    pub op: Option<OpId>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ack,
    Nak(Option<u32>),
    /// No valid answer after every attempt.
    Timeout,
    /// `das.dry_run`: logged, not sent.
    DryRun,
    /// Could not be sent (no route, an attribute too long).
    Failed(String),
}

impl Status {
    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ack => "ack",
            Status::Nak(_) => "nak",
            Status::Timeout => "timeout",
            Status::DryRun => "dry_run",
            Status::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub job: Job,
    pub status: Status,
    /// Requests sent (1 + retransmissions).
    pub attempts: u32,
    /// From the first request to its answer (ACK or NAK only).
    pub elapsed: Option<Duration>,
}

struct Pending {
    job: Job,
    bytes: Arc<[u8]>,
    authenticator: [u8; 16],
    attempts: u32,
    wait: Duration,
    next: Instant,
    first: Instant,
}

/// An operation's progress.
struct Operation {
    remaining: usize,
    outcomes: Vec<Outcome>,
}

/// What `poll` hands the shell.
#[derive(Debug, Default)]
pub struct Polled {
    pub send: Vec<(Route, Arc<[u8]>)>,
    /// Every request that ended since the last poll.
    pub done: Vec<Outcome>,
    /// Operations whose last request ended, with all their outcomes.
    pub finished: Vec<(OpId, Vec<Outcome>)>,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// No request in flight to that route with that Identifier (late, or
    /// never asked).
    Unknown,
    Invalid(AnswerError),
}

pub struct Sender {
    settings: DasSettings,
    queue: VecDeque<Job>,
    pending: HashMap<(Route, u8), Pending>,
    next_id: HashMap<Route, u8>,
    tokens: f64,
    refilled: Option<Instant>,
    ops: HashMap<OpId, Operation>,
    next_op: OpId,
    out: Polled,
}

impl Sender {
    pub fn new(settings: DasSettings) -> Self {
        Sender {
            tokens: f64::from(settings.rate.max(1)),
            settings,
            queue: VecDeque::new(),
            pending: HashMap::new(),
            next_id: HashMap::new(),
            refilled: None,
            ops: HashMap::new(),
            next_op: 1,
            out: Polled::default(),
        }
    }

    /// A reload's settings apply to requests started from now on.
    pub fn set_settings(&mut self, settings: DasSettings) {
        self.settings = settings;
    }

    pub fn settings(&self) -> &DasSettings {
        &self.settings
    }

    /// Requests waiting for their turn and waiting for an answer.
    pub fn load(&self) -> (usize, usize) {
        (self.queue.len(), self.pending.len())
    }

    /// Opens an operation of `count` requests (submitted next with its
    /// id). With none, it finishes at the next poll, empty.
    pub fn open(&mut self, count: usize) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        if count == 0 {
            self.out.finished.push((op, Vec::new()));
        } else {
            self.ops.insert(
                op,
                Operation {
                    remaining: count,
                    outcomes: Vec::with_capacity(count),
                },
            );
        }
        op
    }

    pub fn submit(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    /// A request that cannot be made (no route to its NAS): it ends now.
    pub fn fail(&mut self, job: Job, why: String) {
        self.end(job, Status::Failed(why), 0, None);
    }

    fn end(&mut self, job: Job, status: Status, attempts: u32, elapsed: Option<Duration>) {
        let outcome = Outcome {
            job,
            status,
            attempts,
            elapsed,
        };
        if let Some(op) = outcome.job.op
            && let Some(o) = self.ops.get_mut(&op)
        {
            o.outcomes.push(outcome.clone());
            o.remaining -= 1;
            if o.remaining == 0
                && let Some(o) = self.ops.remove(&op)
            {
                self.out.finished.push((op, o.outcomes));
            }
        }
        self.out.done.push(outcome);
    }

    /// A free Identifier for `route`, if any of the 256 is.
    fn allocate(&mut self, route: &Route) -> Option<u8> {
        let next = self.next_id.entry(route.clone()).or_insert(0);
        for _ in 0..=255u16 {
            let id = *next;
            *next = next.wrapping_add(1);
            if !self.pending.contains_key(&(route.clone(), id)) {
                return Some(id);
            }
        }
        None
    }

    /// What to send now (new requests as the rate allows, retransmissions
    /// due) and what ended. `unix` is the Event-Timestamp of new requests.
    pub fn poll(&mut self, now: Instant, unix: u32) -> Polled {
        let rate = f64::from(self.settings.rate.max(1));
        if let Some(then) = self.refilled {
            let earned = now.saturating_duration_since(then).as_secs_f64() * rate;
            self.tokens = (self.tokens + earned).min(rate);
        }
        self.refilled = Some(now);

        let due: Vec<(Route, u8)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(mut p) = self.pending.remove(&key) else {
                continue;
            };
            let udp = matches!(p.job.route, Route::Udp(_));
            if udp && p.attempts <= self.settings.retries {
                p.attempts += 1;
                p.wait *= 2;
                p.next = now + p.wait;
                self.out.send.push((key.0.clone(), p.bytes.clone()));
                self.pending.insert(key, p);
            } else {
                self.end(p.job, Status::Timeout, p.attempts, None);
            }
        }

        let mut deferred = Vec::new();
        while self.tokens >= 1.0 {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            if self.settings.dry_run {
                self.end(job, Status::DryRun, 0, None);
                continue;
            }
            let Some(id) = self.allocate(&job.route) else {
                deferred.push(job);
                continue;
            };
            match message::encode(job.kind, id, &job.attributes, unix, &job.secret) {
                Ok(encoded) => {
                    self.tokens -= 1.0;
                    let bytes: Arc<[u8]> = encoded.bytes.into();
                    let wait = match job.route {
                        Route::Udp(_) => self.settings.timeout,
                        Route::Radsec(_) => self.settings.total_wait(),
                    };
                    self.out.send.push((job.route.clone(), bytes.clone()));
                    self.pending.insert(
                        (job.route.clone(), id),
                        Pending {
                            job,
                            bytes,
                            authenticator: encoded.authenticator,
                            attempts: 1,
                            wait,
                            next: now + wait,
                            first: now,
                        },
                    );
                }
                Err(e) => self.end(job, Status::Failed(e.to_string()), 0, None),
            }
        }
        // Destinations with all 256 Identifiers in flight wait their turn.
        for job in deferred.into_iter().rev() {
            self.queue.push_front(job);
        }
        std::mem::take(&mut self.out)
    }

    /// An answer that came from `route`; its outcome comes out of the next
    /// `poll`.
    pub fn received(&mut self, now: Instant, route: &Route, bytes: &[u8]) -> Result<(), Unmatched> {
        let Some((kind, id)) = message::peek(bytes) else {
            return Err(Unmatched::Invalid(AnswerError::Malformed(
                "not a Disconnect or CoA answer".into(),
            )));
        };
        let key = (route.clone(), id);
        let Some(p) = self.pending.get(&key) else {
            return Err(Unmatched::Unknown);
        };
        if p.job.kind != kind {
            return Err(Unmatched::Unknown);
        }
        // A forged or corrupt answer leaves the request waiting for the
        // real one.
        let verdict = message::check(bytes, kind, &p.authenticator, &p.job.secret)
            .map_err(Unmatched::Invalid)?;
        if let Some(p) = self.pending.remove(&key) {
            let status = match verdict {
                Verdict::Ack => Status::Ack,
                Verdict::Nak(cause) => Status::Nak(cause),
            };
            let elapsed = now.saturating_duration_since(p.first);
            self.end(p.job, status, p.attempts, Some(elapsed));
        }
        Ok(())
    }

    /// The shell could not send a request (a RadSec NAS with no
    /// connection): it ends now.
    pub fn undeliverable(&mut self, route: &Route, bytes: &[u8], why: &str) {
        let Some(&id) = bytes.get(1) else { return };
        if let Some(p) = self.pending.remove(&(route.clone(), id)) {
            self.end(p.job, Status::Failed(why.to_string()), p.attempts, None);
        }
    }

    /// When `poll` next has something to do: a retransmission or timeout,
    /// or a queued request's turn.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let retransmit = self.pending.values().map(|p| p.next).min();
        let queued = (!self.queue.is_empty()).then(|| {
            let rate = f64::from(self.settings.rate.max(1));
            let missing = (1.0 - self.tokens).max(0.0);
            now + Duration::from_secs_f64(missing / rate)
        });
        let pending_out =
            (!self.out.done.is_empty() || !self.out.finished.is_empty()).then_some(now);
        [retransmit, queued, pending_out]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::accounting::auth::sample;
    use crate::proto::wire::{Code, PacketBuilder};

    fn job(route: Route, op: Option<OpId>) -> Job {
        Job {
            kind: Kind::Disconnect,
            trigger: Trigger::Operator,
            route,
            secret: Secret::new(b"s"),
            attributes: vec![(1, b"alice".to_vec())],
            target: Target::of_authentication(&sample("1", "ap", "00:01", 1)),
            op,
        }
    }

    fn udp() -> Route {
        Route::Udp("127.0.0.1:3799".parse().expect("addr"))
    }

    fn answer(request: &[u8], code: Code, secret: &[u8]) -> Vec<u8> {
        let mut sent = [0; 16];
        sent.copy_from_slice(&request[4..20]);
        PacketBuilder::new(code, request[1], true).finish_response(&sent, &Secret::new(secret))
    }

    fn settings() -> DasSettings {
        DasSettings {
            timeout: Duration::from_secs(1),
            retries: 2,
            rate: 2,
            ..DasSettings::default()
        }
    }

    #[test]
    fn retransmits_with_doubling_waits_then_times_out() {
        let t0 = crate::server::time::now().instant;
        let mut s = Sender::new(settings());
        let op = s.open(1);
        s.submit(job(udp(), Some(op)));
        let p = s.poll(t0, 1);
        assert_eq!(p.send.len(), 1);
        let first = p.send[0].1.clone();
        assert_eq!(s.next_wakeup(t0), Some(t0 + Duration::from_secs(1)));
        assert!(s.poll(t0 + Duration::from_millis(999), 1).send.is_empty());
        let p = s.poll(t0 + Duration::from_secs(1), 2);
        assert_eq!(p.send.len(), 1);
        assert_eq!(p.send[0].1, first, "a retransmission is the same octets");
        assert_eq!(s.next_wakeup(t0), Some(t0 + Duration::from_secs(3)));
        assert_eq!(s.poll(t0 + Duration::from_secs(3), 3).send.len(), 1);
        let p = s.poll(t0 + Duration::from_secs(7), 4);
        assert!(p.send.is_empty());
        assert_eq!(p.done.len(), 1);
        assert_eq!(p.done[0].status, Status::Timeout);
        assert_eq!(p.done[0].attempts, 3);
        assert_eq!(p.finished.len(), 1);
        assert_eq!(s.load(), (0, 0));
    }

    #[test]
    fn answers_end_requests_and_forgeries_do_not() {
        let t0 = crate::server::time::now().instant;
        let mut s = Sender::new(settings());
        let op = s.open(2);
        s.submit(job(udp(), Some(op)));
        s.submit(job(udp(), Some(op)));
        let p = s.poll(t0, 1);
        assert_eq!(p.send.len(), 2);
        let (a, b) = (p.send[0].1.clone(), p.send[1].1.clone());
        assert_ne!(a[1], b[1], "distinct Identifiers to one destination");
        let forged = answer(&a, Code::DisconnectACK, b"wrong");
        assert!(matches!(
            s.received(t0, &udp(), &forged),
            Err(Unmatched::Invalid(_))
        ));
        let other = Route::Udp("127.0.0.2:3799".parse().expect("addr"));
        let ack = answer(&a, Code::DisconnectACK, b"s");
        assert_eq!(s.received(t0, &other, &ack), Err(Unmatched::Unknown));
        assert_eq!(s.received(t0, &udp(), &ack), Ok(()));
        assert_eq!(
            s.received(t0, &udp(), &ack),
            Err(Unmatched::Unknown),
            "answered once"
        );
        let p = s.poll(t0, 1);
        assert_eq!(p.done.len(), 1);
        assert_eq!(p.done[0].status, Status::Ack);
        assert!(p.finished.is_empty(), "one of two still waiting");
        let mut nak = PacketBuilder::new(Code::DisconnectNAK, b[1], true);
        nak.push_u32(message::ERROR_CAUSE, 503).expect("push");
        let mut sent = [0; 16];
        sent.copy_from_slice(&b[4..20]);
        let nak = nak.finish_response(&sent, &Secret::new(b"s"));
        assert_eq!(s.received(t0, &udp(), &nak), Ok(()));
        let p = s.poll(t0, 1);
        assert_eq!(p.finished.len(), 1);
        let statuses: Vec<Status> = p.finished[0].1.iter().map(|o| o.status.clone()).collect();
        assert_eq!(statuses, vec![Status::Ack, Status::Nak(Some(503))]);
    }

    #[test]
    fn the_rate_limit_queues_and_radsec_waits_once() {
        let t0 = crate::server::time::now().instant;
        let mut s = Sender::new(settings());
        for _ in 0..5 {
            s.submit(job(Route::Radsec("ap".into()), None));
        }
        assert_eq!(s.poll(t0, 1).send.len(), 2, "a burst of `rate`");
        assert_eq!(s.load(), (3, 2));
        let wake = s.next_wakeup(t0).expect("queued");
        assert!(wake <= t0 + Duration::from_millis(500));
        assert_eq!(s.poll(t0 + Duration::from_millis(500), 1).send.len(), 1);
        // RadSec: no retransmission; one wait of every attempt's worth.
        let p = s.poll(t0 + Duration::from_secs(6), 1);
        assert!(p.send.iter().all(|(r, _)| *r == Route::Radsec("ap".into())));
        assert_eq!(p.send.len(), 2, "the last two queued, none resent");
        let p = s.poll(t0 + Duration::from_secs(8), 1);
        assert_eq!(p.done.len(), 3, "the first three waited 7 s");
        assert!(
            p.done
                .iter()
                .all(|o| o.status == Status::Timeout && o.attempts == 1)
        );
    }

    #[test]
    fn dry_run_sends_nothing_and_empty_operations_finish() {
        let t0 = crate::server::time::now().instant;
        let mut s = Sender::new(DasSettings {
            dry_run: true,
            ..settings()
        });
        let op = s.open(1);
        s.submit(job(udp(), Some(op)));
        let empty = s.open(0);
        let p = s.poll(t0, 1);
        assert!(p.send.is_empty());
        assert_eq!(p.done[0].status, Status::DryRun);
        let ops: Vec<OpId> = p.finished.iter().map(|(o, _)| *o).collect();
        assert_eq!(ops, vec![empty, op]);
    }

    #[test]
    fn undeliverable_requests_fail_at_once() {
        let t0 = crate::server::time::now().instant;
        let mut s = Sender::new(settings());
        s.submit(job(Route::Radsec("ap".into()), None));
        let p = s.poll(t0, 1);
        let (route, bytes) = &p.send[0];
        s.undeliverable(route, bytes, "no RadSec connection");
        let p = s.poll(t0, 1);
        assert_eq!(
            p.done[0].status,
            Status::Failed("no RadSec connection".into())
        );
    }
}
