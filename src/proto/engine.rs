//! The engine's one API, the way every transport drives it:
//!
//! 1. `receive(now, listener, from, datagram)`: admission — which client,
//!    well-formed, authentic, a retransmission? Cheap, on the receive loop:
//!    it answers a duplicate from the cache or drops, else hands back a
//!    `Request` to process.
//! 2. `process(now, request, rng)`: the work — Status-Server, EAP-TLS,
//!    accounting. Returns one `Action`: send these octets, nothing, or
//!    `Ask` the outside world (a directory look-up, a journal write) with a
//!    ticket.
//! 3. `resume(now, ticket, answer, rng)`: the outside world's answer, and
//!    the next `Action`.
//! 4. `tick(now)`: about once a second — expiries, sweeps, gauges.
//!
//! Everything that decides happens behind these calls; the shell moves
//! bytes, runs the asked-for work and sends. Time and randomness come in
//! as arguments (`Now`, `rng`); the engine reads no clock, file or socket.
//! Counting and logging of decisions happen here too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rand::CryptoRng;

use super::accounting::auth::Authentications;
use super::accounting::ledger::{Ledger, LedgerSettings, Prepared};
use super::accounting::record::Record;
use super::accounting::sessions::Query;
use super::admission::{self, Admission, DropReason, Listener, Request};
use super::authz::{DirectoryError, Lookup, Subject};
use super::clock::{Clock, Now};
use super::dedup::{DedupCache, DedupKey};
use super::droplog::{DropLog, Permit};
use super::eap::conversation::Conversation;
use super::eap::table::{CheckedOut, ConversationTable, Expiry, Limits};
use super::runtime::{Runtime, SessionStores};
use super::status::{self, Response};
use super::tls::{SessionStore, TlsError};
use super::wire::crypto::Secret;
use super::wire::{Code, PacketBuilder, ReplyTo};
use crate::config::{ClientConfig, Config, RadsecConfig};
use crate::metrics::Metrics;

/// Names a piece of asked-for work until its answer comes back.
pub type Ticket = u64;

/// What `receive` found.
#[derive(Debug)]
pub enum Received {
    /// Done with it already: a duplicate to answer from the cache, or a drop.
    Act(Action),
    /// Admitted: call `process` (on any thread) or `overloaded`.
    Process(Request),
}

/// What the shell does next.
#[derive(Debug)]
pub enum Action {
    /// Send `bytes` to `to`. The reply is already in the duplicate cache.
    Send {
        to: SocketAddr,
        bytes: Arc<[u8]>,
        code: Code,
    },
    /// Nothing to send; the engine counted and logged why.
    Nothing,
    /// Close the connection the packet came on (RadSec only): the packet
    /// was malformed or failed authentication (`reason`: `malformed`,
    /// `authentication`), counted and logged.
    Close { reason: &'static str },
    /// Do `work`, then call `resume` with this ticket and the answer.
    Ask { ticket: Ticket, work: Work },
}

/// Work for the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Look `identity` up in the directory (with its certificate's facts
    /// for strong mapping); give up after `deadline`.
    Lookup {
        identity: String,
        certificate: Option<Arc<crate::proto::tls::identity::CertIdentity>>,
        deadline: Duration,
    },
    /// Store this journal line (JSON, no newline) durably.
    Store { line: Vec<u8> },
    /// Ask an OCSP responder: POST `request` to `url` (or GET `get` when
    /// given), within `deadline` in all. Queries with the same `key` may
    /// share one exchange: they carry the same octets.
    Ocsp {
        key: String,
        url: String,
        get: Option<String>,
        request: Vec<u8>,
        deadline: Duration,
    },
}

/// The outside world's answer to `Work`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Lookup(Result<Lookup, DirectoryError>),
    /// Ok once the line is on disk; Err names why not (a metric label).
    Stored(Result<(), &'static str>),
    /// The responder's answer (an HTTP 200 body), or why there is none.
    Ocsp(Result<Vec<u8>, String>),
}

/// Where a request came from and what its reply needs: kept while the
/// request waits for the outside world, instead of the request.
#[derive(Debug)]
pub(super) struct Origin {
    pub listener: Listener,
    pub client: Arc<ClientConfig>,
    pub source: SocketAddr,
    pub dedup_key: Option<DedupKey>,
    pub reply_to: ReplyTo,
    pub code: Code,
}

impl Origin {
    fn of(request: &Request) -> Self {
        Origin {
            listener: request.listener,
            client: request.client.clone(),
            source: request.source,
            dedup_key: request.dedup_key,
            reply_to: ReplyTo::of(&request.packet()),
            code: request.code(),
        }
    }

    pub fn secret(&self) -> &Secret {
        &self.client.secret
    }
}

/// A request waiting for an answer.
pub(super) struct Parked {
    pub origin: Origin,
    pub asked: Instant,
    pub waiting: Waiting,
}

pub(super) enum Waiting {
    /// The handshake is done; the directory's answer decides.
    Authorize {
        runtime: Arc<Runtime>,
        out: Box<CheckedOut>,
        subject: Box<Subject>,
        key_name_requested: bool,
        deadline: Duration,
    },
    /// The record is being written.
    Store { prepared: Box<Prepared> },
    /// The handshake is done; the OCSP responder's answer decides whether
    /// authorization goes on.
    Ocsp {
        runtime: Arc<Runtime>,
        out: Box<CheckedOut>,
        subject: Box<Subject>,
        key_name_requested: bool,
        query: Box<crate::proto::ocsp::Query>,
        /// Queries to ask after this one (`ocsp.check_chain`).
        rest: Vec<crate::proto::ocsp::Query>,
        deadline: Duration,
    },
}

/// A late directory answer gets this long past its deadline before the
/// conversation it was for is given up.
const GRACE: Duration = Duration::from_secs(1);

pub struct Engine {
    runtime: ArcSwap<Runtime>,
    dedup: DedupCache,
    pub(super) conversations: Arc<ConversationTable>,
    parked: Mutex<HashMap<Ticket, Parked>>,
    next_ticket: AtomicU64,
    pub(super) ledger: Option<Ledger>,
    sessions: SessionStores,
    clock: Arc<Clock>,
    pub(super) metrics: Arc<Metrics>,
    drop_log: DropLog,
    /// Access-Accepts no accounting session has claimed yet.
    authentications: Mutex<Authentications>,
    /// Verified OCSP answers, and the nonce of each query in flight (by
    /// cache key: queries for one certificate share it, and their octets).
    pub(super) ocsp_cache: crate::proto::ocsp::cache::OcspCache,
    pub(super) ocsp_nonces: Mutex<HashMap<String, Vec<u8>>>,
    /// The expiry gauge series set at the last tick.
    deadlines_shown: Mutex<Vec<[String; 3]>>,
    das: Mutex<das::DasState>,
}

impl Engine {
    /// The engine for `config`, starting at `now`.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, now: Now) -> Result<Self, TlsError> {
        let clock = Arc::new(Clock::new(now));
        let (limits, sessions) = match &config.eap {
            Some(e) => (
                e.settings.table,
                SessionStore::new(
                    e.tls_policy.session_cache_entries,
                    e.tls_policy.session_lifetime,
                    clock.clone(),
                ),
            ),
            None => (
                Limits {
                    cap: 1,
                    per_nas: 1,
                    ..Limits::default()
                },
                SessionStore::new(1, Duration::from_secs(1), clock.clone()),
            ),
        };
        let sessions = SessionStores {
            eap: Arc::new(sessions),
            // RadSec peers reconnect rarely: a small store, an hour each.
            radsec: Arc::new(SessionStore::new(
                1000,
                Duration::from_secs(3600),
                clock.clone(),
            )),
        };
        let ledger = config.accounting.as_ref().map(|a| {
            Ledger::new(
                LedgerSettings {
                    session_timeout: a.session_timeout,
                    duplicate_window: a.duplicate_window,
                    max_sessions: a.max_sessions,
                },
                metrics.accounting.clone(),
            )
        });
        for listener in Listener::ALL {
            for reason in DropReason::ALL {
                metrics
                    .dropped
                    .with_label_values(&[listener.as_str(), reason.as_str()]);
            }
            metrics.duplicates.with_label_values(&[listener.as_str()]);
        }
        for why in Expiry::ALL {
            metrics.eap.expired.with_label_values(&[why.reason()]);
        }
        let server = &config.server;
        let dedup = DedupCache::new(
            server.duplicate_cache_lifetime,
            server.duplicate_cache_entries,
        );
        // Unclaimed Accepts live as long as a silent session would, and are
        // bounded like sessions.
        let authentications = match &config.accounting {
            Some(a) => Authentications::new(a.max_sessions, a.session_timeout.as_secs() as i64),
            None => Authentications::new(100_000, 7200),
        };
        let das = das::DasState::new(config.das.as_ref());
        let ocsp_entries = config.ocsp.as_ref().map_or(1, |o| o.cache_entries);
        let runtime = Runtime::new(config, &sessions, &metrics)?;
        Ok(Engine {
            authentications: Mutex::new(authentications),
            ocsp_cache: crate::proto::ocsp::cache::OcspCache::new(ocsp_entries),
            ocsp_nonces: Mutex::new(HashMap::new()),
            deadlines_shown: Mutex::new(Vec::new()),
            das: Mutex::new(das),
            runtime: ArcSwap::from_pointee(runtime),
            dedup,
            conversations: Arc::new(ConversationTable::new(limits)),
            parked: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
            ledger,
            sessions,
            clock,
            metrics,
            drop_log: DropLog::new(now.instant),
        })
    }

    /// The running configuration; a reload swaps in one from
    /// `build_runtime`.
    pub fn runtime(&self) -> &ArcSwap<Runtime> {
        &self.runtime
    }

    /// A runtime for `config` sharing this engine's TLS session store.
    pub fn build_runtime(&self, config: Arc<Config>) -> Result<Runtime, TlsError> {
        Runtime::new(config, &self.sessions, &self.metrics)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Step 1: admission.
    pub fn receive(
        &self,
        now: Now,
        listener: Listener,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Received {
        self.clock.advance(now);
        let runtime = self.runtime.load();
        let admission = admission::admit(
            &runtime.clients,
            &self.dedup,
            listener,
            from,
            datagram,
            now.instant,
        );
        // Over UDP a dropped datagram is only dropped: the NAS retransmits.
        self.admitted(now, listener, from, admission, |_| Action::Nothing)
    }

    /// What `receive` and `receive_stream` do with admission's verdict:
    /// count the request, log and count a drop (`on_drop` says what the
    /// transport does about it), resend a cached reply, or hand the
    /// request over for processing.
    fn admitted(
        &self,
        now: Now,
        listener: Listener,
        from: SocketAddr,
        admission: Admission,
        on_drop: impl FnOnce(DropReason) -> Action,
    ) -> Received {
        let label = listener.as_str();
        let m = &self.metrics;
        let count = |client: &ClientConfig, code: u8| {
            m.requests
                .with_label_values(&[label, &client.name, code_label(code)])
                .inc();
        };
        match admission {
            Admission::Drop {
                reason,
                client,
                code,
            } => {
                if let (Some(c), Some(code)) = (&client, code) {
                    count(c, code);
                }
                self.dropped(now, listener, from, client.as_deref(), reason);
                Received::Act(on_drop(reason))
            }
            Admission::Resend {
                reply,
                client,
                code,
            } => {
                count(&client, code);
                m.duplicates.with_label_values(&[label]).inc();
                tracing::debug!(listener = label, client = %client.name, id = reply[1], "duplicate answered from cache");
                Received::Act(Action::Send {
                    to: from,
                    code: Code::from(reply[0]),
                    bytes: reply,
                })
            }
            Admission::Process(request) => {
                count(&request.client, request.packet().code_byte());
                Received::Process(request)
            }
        }
    }

    /// RadSec: what a new connection is accepted with (the TLS settings,
    /// NAS CAs and CRLs of the running configuration) and its bounds; None
    /// when RadSec is not configured any more.
    pub fn radsec_settings(&self) -> Option<(Arc<rustls::ServerConfig>, Arc<RadsecConfig>)> {
        let runtime = self.runtime.load();
        let radsec = runtime.radsec.as_ref()?;
        Some((radsec.tls.server.clone(), radsec.config.clone()))
    }

    /// RadSec: whether the running configuration still has a client of
    /// this name (a reload closes the connections of clients removed).
    pub fn radsec_has_client(&self, name: &str) -> bool {
        let runtime = self.runtime.load();
        runtime.radsec.as_ref().is_some_and(|r| r.clients.has(name))
    }

    /// RadSec: a TLS connection from `peer` finished its handshake with
    /// this chain (verified by the handshake against the NAS CAs). Returns
    /// the client whose certificate names and network it matches, or why it
    /// is refused (counted, and logged with the certificate's subject); the
    /// shell counts the accepted ones once its connection limits pass. A
    /// resumed session's chain is verified again: CRLs may have changed.
    pub fn radsec_client(
        &self,
        now: Now,
        peer: SocketAddr,
        chain: &[rustls::pki_types::CertificateDer<'static>],
        resumed: bool,
    ) -> Result<Arc<ClientConfig>, &'static str> {
        self.clock.advance(now);
        let runtime = self.runtime.load();
        let handshakes = &self.metrics.radsec.handshakes;
        let refuse = |reason: &'static str, subject: &str, detail: String| {
            handshakes.with_label_values(&["refused", reason]).inc();
            tracing::warn!(%peer, subject, reason, detail, "radsec connection refused");
            Err(reason)
        };
        let Some(radsec) = &runtime.radsec else {
            return refuse("tls", "-", "RadSec is not configured".into());
        };
        let cert = match radsec.tls.identity(chain, resumed) {
            Ok(cert) => cert,
            Err(e) => return refuse("tls", "-", e.to_string()),
        };
        match radsec.clients.find(&cert, peer.ip()) {
            Some(client) => {
                tracing::debug!(%peer, client = %client.name, subject = %cert.subject, "radsec client recognised");
                Ok(client.clone())
            }
            None => refuse(
                "unknown_client",
                &cert.subject,
                format!(
                    "no [[radsec.clients]] entry matches its names (DNS {:?}, URI {:?}, CN {:?}) from {}",
                    cert.dns,
                    cert.uris,
                    cert.cns,
                    peer.ip()
                ),
            ),
        }
    }

    /// RadSec: one packet, framed out of the connection's stream, from a
    /// connection of `client`. As `receive`; but a packet that is not well
    /// formed or fails authentication closes the connection
    /// (draft-ietf-radext-radiusdtls-bis: a stream cannot tell a forgery
    /// from a peer gone wrong).
    pub fn receive_stream(
        &self,
        now: Now,
        client: &Arc<ClientConfig>,
        peer: SocketAddr,
        packet: &[u8],
    ) -> Received {
        self.clock.advance(now);
        let admission = admission::admit_from(
            client,
            &self.dedup,
            Listener::Radsec,
            peer,
            packet,
            now.instant,
        );
        self.admitted(
            now,
            Listener::Radsec,
            peer,
            admission,
            |reason| match reason {
                DropReason::Malformed(_) => Action::Close {
                    reason: "malformed",
                },
                DropReason::BadAuthenticator
                | DropReason::BadMessageAuthenticator
                | DropReason::MissingMessageAuthenticator
                | DropReason::ProxyStateWithoutMessageAuthenticator => Action::Close {
                    reason: "authentication",
                },
                _ => Action::Nothing,
            },
        )
    }

    /// An admitted request the shell has no room to process: dropped as
    /// `overload`; the NAS retransmits.
    pub fn overloaded(&self, now: Now, request: Request) {
        if let Some(key) = &request.dedup_key {
            self.dedup.abandon(key);
        }
        self.dropped(
            now,
            request.listener,
            request.source,
            Some(&request.client),
            DropReason::Overload,
        );
    }

    /// Step 2: the work.
    pub fn process(&self, now: Now, request: Request, rng: &mut dyn CryptoRng) -> Action {
        self.clock.advance(now);
        let runtime = self.runtime.load_full();
        let packet = request.packet();
        let origin = Origin::of(&request);
        let response = match (request.listener, packet.code()) {
            (listener, Code::StatusServer) => status::status(
                &origin.reply_to,
                origin.secret(),
                listener == Listener::Acct,
            ),
            (Listener::Auth | Listener::Radsec, Code::AccessRequest)
                if packet.has_eap_message() && runtime.eap.is_some() =>
            {
                return self.access(now, &runtime, origin, &packet, rng);
            }
            (Listener::Auth | Listener::Radsec, Code::AccessRequest) => {
                status::no_method(&origin.reply_to, origin.secret())
            }
            (Listener::Acct | Listener::Radsec, Code::AccountingRequest) => {
                return self.account(now, &runtime, origin, &packet);
            }
            _ => Response::Drop(DropReason::UnsupportedCode),
        };
        self.finish(now, origin, response)
    }

    /// Step 3: the answer to asked-for work.
    pub fn resume(
        &self,
        now: Now,
        ticket: Ticket,
        answer: Answer,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        self.clock.advance(now);
        let Some(parked) = self.parked.lock().remove(&ticket) else {
            if self.reauthorized(now, ticket, &answer).is_some() {
                return Action::Nothing;
            }
            // Given up at its deadline (see `tick`); the answer is late.
            tracing::debug!(ticket, "an answer came after its request was given up");
            return Action::Nothing;
        };
        let Parked {
            origin,
            asked,
            waiting,
        } = parked;
        match (waiting, answer) {
            (
                Waiting::Authorize {
                    runtime,
                    out,
                    subject,
                    key_name_requested,
                    ..
                },
                Answer::Lookup(result),
            ) => self.decided(
                now,
                &runtime,
                origin,
                *out,
                &subject,
                result,
                now.instant.saturating_duration_since(asked),
                key_name_requested,
                rng,
            ),
            (Waiting::Store { prepared }, Answer::Stored(result)) => {
                self.stored(now, origin, &prepared, result)
            }
            (
                Waiting::Ocsp {
                    runtime,
                    out,
                    subject,
                    key_name_requested,
                    query,
                    rest,
                    ..
                },
                Answer::Ocsp(result),
            ) => self.ocsp_answered(
                now,
                &runtime,
                origin,
                *out,
                *subject,
                &query,
                rest,
                result,
                now.instant.saturating_duration_since(asked),
                key_name_requested,
                rng,
            ),
            (_, answer) => {
                tracing::error!(ticket, ?answer, "an answer to other work than was asked");
                self.finish(now, origin, Response::Drop(DropReason::Internal))
            }
        }
    }

    /// Step 4: about once a second.
    pub fn tick(&self, now: Now) {
        self.clock.advance(now);
        let m = &self.metrics;
        m.duplicate_cache_entries
            .set(self.dedup.sweep(now.instant) as i64);
        let expired = self.conversations.sweep(now.instant);
        for (why, conv) in &expired {
            m.eap.expired.with_label_values(&[why.reason()]).inc();
            if let Some(failure) = conv.alert_sent() {
                self.alert_unanswered(conv, failure);
            }
        }
        drop(expired);
        for (eviction, n) in self.conversations.take_evictions() {
            m.eap
                .evicted
                .with_label_values(&[eviction.reason()])
                .inc_by(n);
        }
        m.eap.replaced.inc_by(self.conversations.take_replaced());
        m.eap.active.set(self.conversations.len() as i64);
        m.eap
            .tls_sessions
            .set(self.sessions.eap.sweep(now.instant) as i64);
        self.sessions.radsec.sweep(now.instant);
        if let Some(ledger) = &self.ledger {
            ledger.sweep(now.unix_secs());
        }
        m.ocsp
            .cache_entries
            .set(self.ocsp_cache.sweep(now.unix_secs()) as i64);
        self.publish_deadlines(now);
        // A directory look-up whose answer never came: the shell enforces
        // the deadline, so this is a safety net, not a path.
        let overdue: Vec<Parked> = {
            let mut parked = self.parked.lock();
            let late: Vec<Ticket> = parked
                .iter()
                .filter(|(_, p)| match &p.waiting {
                    Waiting::Authorize { deadline, .. } | Waiting::Ocsp { deadline, .. } => {
                        now.instant.saturating_duration_since(p.asked) > *deadline + GRACE
                    }
                    Waiting::Store { .. } => false,
                })
                .map(|(t, _)| *t)
                .collect();
            late.iter().filter_map(|t| parked.remove(t)).collect()
        };
        for p in overdue {
            if let Waiting::Ocsp { query, .. } = &p.waiting {
                // Its answer will find no one waiting: the nonce goes now.
                self.ocsp_nonces.lock().remove(&query.key);
            }
            tracing::warn!(client = %p.origin.client.name, "no directory or OCSP answer past the deadline; conversation ended");
            self.finish(now, p.origin, Response::Drop(DropReason::EapDiscarded));
        }
    }

    /// Sets the expiry gauges from the running configuration's deadlines;
    /// series of certificates and CRLs a reload removed are dropped.
    fn publish_deadlines(&self, now: Now) {
        let runtime = self.runtime.load();
        let gauge = &self.metrics.expiry;
        let mut shown = self.deadlines_shown.lock();
        let current: Vec<[String; 3]> = runtime
            .deadlines
            .iter()
            .map(|d| [d.kind.to_string(), d.role.to_string(), d.name.clone()])
            .collect();
        for old in shown.iter().filter(|l| !current.contains(l)) {
            let _ = gauge.remove_label_values(&[&old[0], &old[1], &old[2]]);
        }
        for (d, labels) in runtime.deadlines.iter().zip(&current) {
            gauge
                .with_label_values(&[&labels[0], &labels[1], &labels[2]])
                .set(d.at - now.unix_secs());
        }
        *shown = current;
    }

    /// A journal record read back at start: rebuilds live sessions.
    pub fn replay(&self, record: &Record) {
        if let Some(ledger) = &self.ledger {
            ledger.replay(record);
        }
    }

    /// After the replay; returns the live sessions.
    pub fn replayed(&self, now: Now) -> usize {
        self.ledger
            .as_ref()
            .map_or(0, |l| l.replayed(now.unix_secs()))
    }

    /// A page of live sessions as JSON; None without accounting.
    pub fn sessions_json(&self, query: &Query) -> Option<String> {
        self.ledger.as_ref().map(|l| l.sessions_json(query))
    }

    /// Conversations in progress and requests waiting for an answer.
    pub fn in_progress(&self) -> (usize, usize) {
        (self.conversations.len(), self.parked.lock().len())
    }

    /// Keeps a request until `resume`; the ticket names it.
    pub(super) fn park(&self, parked: Parked) -> Ticket {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.parked.lock().insert(ticket, parked);
        ticket
    }

    /// Turns a response into the action: cached and sent, or dropped.
    pub(super) fn finish(&self, now: Now, origin: Origin, response: Response) -> Action {
        match response {
            Response::Reply {
                code,
                bytes,
                outcome,
            } => {
                let bytes: Arc<[u8]> = bytes.into();
                if let Some(key) = origin.dedup_key {
                    self.dedup.complete(key, bytes.clone(), now.instant);
                }
                let label = origin.listener.as_str();
                let id = origin.reply_to.identifier;
                if origin.code == Code::StatusServer {
                    tracing::debug!(listener = label, client = %origin.client.name, id, "status answered");
                } else if let Some(outcome) = outcome {
                    tracing::info!(
                        listener = label,
                        client = %origin.client.name,
                        id,
                        request = origin.code.string(),
                        reply = code.string(),
                        outcome,
                        "decision"
                    );
                } else if code == Code::AccessChallenge {
                    tracing::debug!(listener = label, client = %origin.client.name, id, "challenge");
                }
                Action::Send {
                    to: origin.source,
                    bytes,
                    code,
                }
            }
            Response::Drop(reason) => {
                if let Some(key) = &origin.dedup_key {
                    self.dedup.abandon(key);
                }
                self.dropped(
                    now,
                    origin.listener,
                    origin.source,
                    Some(&origin.client),
                    reason,
                );
                Action::Nothing
            }
        }
    }

    /// Counts a drop and logs it, at most 20 lines a second.
    fn dropped(
        &self,
        now: Now,
        listener: Listener,
        source: SocketAddr,
        client: Option<&ClientConfig>,
        reason: DropReason,
    ) {
        self.metrics
            .dropped
            .with_label_values(&[listener.as_str(), reason.as_str()])
            .inc();
        let Permit::Log { suppressed } = self.drop_log.permit(now.instant) else {
            return;
        };
        if suppressed > 0 {
            tracing::warn!(suppressed, "drop log lines suppressed in the last second");
        }
        let client = client.map_or("-", |c| c.name.as_str());
        let detail = match reason {
            DropReason::Malformed(e) => Some(e.to_string()),
            DropReason::Unanswerable(e) => Some(e.to_string()),
            _ => None,
        };
        match detail {
            Some(detail) => tracing::warn!(
                listener = listener.as_str(),
                %source,
                client,
                reason = reason.as_str(),
                detail,
                "dropped"
            ),
            None => tracing::warn!(
                listener = listener.as_str(),
                %source,
                client,
                reason = reason.as_str(),
                "dropped"
            ),
        }
    }

    /// An Accounting-Request: decoded into a record, stored by the shell,
    /// then acknowledged (RFC 2866 §2: no storage, no response).
    fn account(
        &self,
        now: Now,
        runtime: &Runtime,
        origin: Origin,
        packet: &super::wire::Packet<'_>,
    ) -> Action {
        let Some(ledger) = &self.ledger else {
            return self.finish(
                now,
                origin,
                Response::Drop(DropReason::AccountingNotEnabled),
            );
        };
        match ledger.prepare(
            packet,
            &origin.client.name,
            origin.source.ip(),
            &runtime.config.dictionary,
            now.unix_ms,
            &|r| self.claim(r),
        ) {
            Ok((prepared, line)) => {
                let ticket = self.park(Parked {
                    origin,
                    asked: now.instant,
                    waiting: Waiting::Store {
                        prepared: Box::new(prepared),
                    },
                });
                Action::Ask {
                    ticket,
                    work: Work::Store { line },
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "accounting record does not encode");
                self.finish(now, origin, Response::Drop(DropReason::AccountingNotStored))
            }
        }
    }

    fn stored(
        &self,
        now: Now,
        origin: Origin,
        prepared: &Prepared,
        result: Result<(), &'static str>,
    ) -> Action {
        let (Some(ledger), Ok(())) = (&self.ledger, result) else {
            return self.finish(now, origin, Response::Drop(DropReason::AccountingNotStored));
        };
        ledger.stored(prepared);
        let r = &prepared.record;
        self.claimed(r.auth.as_deref());
        tracing::debug!(
            client = %origin.client.name,
            status = r.status.map_or("none", |s| s.label()),
            session = r.session_id.as_deref().unwrap_or(""),
            probable_duplicate = r.probable_duplicate,
            "accounting stored"
        );
        // No Message-Authenticator: RFC 2866 does not define one here, and
        // FreeRADIUS-based NAS code verifies an Accounting-Response's over a
        // zeroed authenticator while RFC 3579 replies use the request's, so
        // adding one only risks a refused acknowledgement. The Response
        // Authenticator authenticates the reply.
        let response = match PacketBuilder::reply(&origin.reply_to, Code::AccountingResponse, false)
        {
            Ok(b) => Response::Reply {
                code: Code::AccountingResponse,
                bytes: b.finish_reply(&origin.reply_to, origin.secret()),
                outcome: None,
            },
            Err(e) => Response::Drop(DropReason::Unanswerable(e)),
        };
        self.finish(now, origin, response)
    }

    /// A conversation whose peer was sent a TLS alert and went silent (the
    /// strongSwan 5.9 client aborts on the alert without acknowledging
    /// it): the table ended it after `eap.alert_timeout`. It failed as the
    /// alert said; the NAS got no Access-Reject, since the peer never
    /// answered.
    fn alert_unanswered(&self, conv: &Conversation, failure: &super::eap::tls_session::Failure) {
        self.metrics
            .eap
            .failed
            .with_label_values(&[failure.reason])
            .inc();
        tracing::info!(
            client = %conv.origin.nas,
            calling_station = conv.origin.calling_station.as_deref().unwrap_or("-"),
            outer_identity = %conv.outer_identity,
            reason = failure.reason,
            detail = %failure.detail,
            "access rejected: the peer did not acknowledge the TLS alert; conversation ended"
        );
    }
}

/// A packet code as a metric label.
pub fn code_label(code: u8) -> &'static str {
    match Code::from(code) {
        Code::Invalid => "unknown",
        c => c.string(),
    }
}

mod das;
#[cfg(test)]
mod tests;

pub use das::{DasError, DasOutput, Report};
