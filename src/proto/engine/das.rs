//! The engine's dynamic authorization (RFC 5176): it remembers every
//! Accept it sends (`accounting::auth`), picks the live sessions an
//! operator, a CRL or the directory concerns, routes each request to its
//! NAS (the UDP address of its DAS, or its RadSec connection), and counts
//! and logs how each ended. `das_poll` is the one place the shell collects
//! what to send and what finished.
//!
//! Part of the engine: the same sans-I/O rules (time in, octets out).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::{Answer, Engine, GRACE, Ticket, Work};
use crate::metrics::das::cause_label;
use crate::proto::accounting::auth::Authentication;
use crate::proto::authz::{Decision, Subject};
use crate::proto::clock::Now;
use crate::proto::das::message::cause_name;
use crate::proto::das::sender::{Job, OpId, Outcome, Route, Sender, Status, Unmatched};
use crate::proto::das::target::{Selector, Target};
use crate::proto::das::{DasPeer, DasSettings, Kind, Trigger};
use crate::proto::runtime::Runtime;
use crate::proto::wire::crypto::Secret;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DasError {
    #[error("dynamic authorization is off: set das.enabled = true")]
    NotEnabled,
}

/// The engine's dynamic authorization state.
pub(super) struct DasState {
    pub sender: Sender,
    /// Where the directory re-check goes on from.
    reauth_cursor: Option<(String, String)>,
    next_reauth: Option<Instant>,
    next_sweep: Option<Instant>,
    /// Directory re-checks waiting for their answer.
    reauths: std::collections::HashMap<Ticket, Reauth>,
}

struct Reauth {
    target: Target,
    subject: Subject,
    asked: Instant,
    deadline: Duration,
}

impl DasState {
    pub fn new(settings: Option<&DasSettings>) -> Self {
        DasState {
            sender: Sender::new(settings.cloned().unwrap_or_default()),
            reauth_cursor: None,
            next_reauth: None,
            next_sweep: None,
            reauths: Default::default(),
        }
    }
}

/// How one request ended, as the operator's command shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub nas: String,
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_station: Option<String>,
    pub kind: &'static str,
    /// ack, nak, timeout, dry_run, failed.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_cause: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub attempts: u32,
}

impl Report {
    fn of(o: &Outcome) -> Self {
        let t = &o.job.target;
        let (error_cause, detail) = match &o.status {
            Status::Nak(cause) => (*cause, cause.map(|c| cause_name(c).to_string())),
            Status::Failed(why) => (None, Some(why.clone())),
            _ => (None, None),
        };
        Report {
            nas: t.nas.clone(),
            route: o.job.route.to_string(),
            session_id: t.session_id.clone(),
            user: t.user.clone(),
            calling_station: t.calling_station.clone(),
            kind: o.job.kind.as_str(),
            result: o.status.label(),
            error_cause,
            detail,
            attempts: o.attempts,
        }
    }
}

/// What the shell does after `das_poll`.
#[derive(Debug, Default)]
pub struct DasOutput {
    /// Requests to send (retransmissions included).
    pub send: Vec<(Route, Arc<[u8]>)>,
    /// Directory look-ups to run and `resume` with.
    pub asks: Vec<(Ticket, Work)>,
    /// Operator operations that finished, with how each request ended.
    pub finished: Vec<(OpId, Vec<Report>)>,
}

/// How often every live session is checked against the CRLs again, so a
/// request that timed out is retried.
const REVOCATION_SWEEP: Duration = Duration::from_secs(60);

impl Engine {
    /// An Access-Accept went out: remember it until a session claims it.
    pub(in crate::proto) fn remember_authentication(&self, auth: Authentication) {
        let mut a = self.authentications.lock();
        a.insert(auth);
        self.metrics.das.unclaimed.set(a.len() as i64);
    }

    /// The record was stored with this authentication: it is claimed.
    pub(super) fn claimed(&self, auth: Option<&Authentication>) {
        if let Some(auth) = auth {
            let mut a = self.authentications.lock();
            if a.remove(&auth.token).is_some() {
                self.metrics.das.unclaimed.set(a.len() as i64);
            }
        }
    }

    /// What an accounting record without its session's authentication is
    /// tied to: the token it echoes, else the latest Accept for its NAS,
    /// station and user.
    pub(super) fn claim(
        &self,
        r: &crate::proto::accounting::record::Record,
    ) -> Option<Authentication> {
        let a = self.authentications.lock();
        if let Some(t) = &r.token
            && let Some(found) = a.get(t)
        {
            return Some(found.clone());
        }
        let station = r.calling_station.as_deref()?;
        a.by_station(&r.client, station, r.user.as_deref()).cloned()
    }

    /// Whether `das.enabled` is on in the running configuration.
    pub fn das_enabled(&self) -> bool {
        self.runtime.load().config.das.is_some()
    }

    /// The sessions (and unclaimed authentications) `selector` names, or
    /// all with None; at most `limit`. JSON for the admin socket.
    pub fn sessions_matching(
        &self,
        selector: Option<&Selector>,
        limit: usize,
    ) -> serde_json::Value {
        let keep = |t: &Target| selector.is_none_or(|s| s.matches(t));
        let (sessions, total) = match &self.ledger {
            Some(l) => l.sessions_matching(|s| keep(&s.target()), limit),
            None => (Vec::new(), 0),
        };
        let a = self.authentications.lock();
        let unclaimed: Vec<&Authentication> = a
            .iter()
            .filter(|x| keep(&Target::of_authentication(x)))
            .take(limit)
            .collect();
        serde_json::json!({
            "total": total,
            "sessions": sessions,
            "unclaimed_total": a.len(),
            "unclaimed": unclaimed,
        })
    }

    /// Every live session and unclaimed authentication `pick` wants.
    fn select(&self, mut pick: impl FnMut(&Target) -> bool) -> Vec<Target> {
        let mut targets = match &self.ledger {
            Some(l) => l.targets(|s| pick(&s.target())),
            None => Vec::new(),
        };
        let a = self.authentications.lock();
        targets.extend(a.iter().map(Target::of_authentication).filter(|t| pick(t)));
        targets
    }

    /// The operator's `certgate disconnect`: a Disconnect-Request for every
    /// session `selector` names. The operation's reports come out of
    /// `das_poll` once every request has ended.
    pub fn disconnect(&self, now: Now, selector: &Selector) -> Result<OpId, DasError> {
        self.clock.advance(now);
        let runtime = self.runtime.load_full();
        if runtime.config.das.is_none() {
            return Err(DasError::NotEnabled);
        }
        let targets = self.select(|t| selector.matches(t));
        tracing::info!(selector = %selector.describe(), sessions = targets.len(), "disconnect asked for by the operator");
        let mut das = self.das.lock();
        let op = das.sender.open(targets.len());
        for t in targets {
            self.request(
                &runtime,
                &mut das.sender,
                t,
                Kind::Disconnect,
                Trigger::Operator,
                Vec::new(),
                Some(op),
            );
        }
        Ok(op)
    }

    /// Queues one request for `target` (or ends it at once when it cannot
    /// be routed), and notes it on the session.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        runtime: &Runtime,
        sender: &mut Sender,
        target: Target,
        kind: Kind,
        trigger: Trigger,
        extra: Vec<(u8, Vec<u8>)>,
        op: Option<OpId>,
    ) {
        let routed = route(runtime, &target);
        if let (Some(l), Some(id)) = (&self.ledger, &target.session_id) {
            l.mark(&target.nas, id, "pending".into());
        }
        match routed {
            Ok((route, secret, peer)) => {
                let mut attributes = target.attributes(&peer.identify);
                attributes.extend(extra);
                sender.submit(Job {
                    kind,
                    trigger,
                    route,
                    secret,
                    attributes,
                    target,
                    op,
                });
            }
            Err(why) => sender.fail(
                Job {
                    kind,
                    trigger,
                    route: Route::Radsec(String::new()),
                    secret: Secret::new(b""),
                    attributes: Vec::new(),
                    target,
                    op,
                },
                why,
            ),
        }
    }

    /// After a reload or CRL refresh (and at start, after the journal's
    /// replay): a Disconnect-Request for every live session whose
    /// certificate, or a CA of its chain, the CRLs now revoke. Returns how
    /// many were asked for.
    pub fn check_revocations(&self, now: Now) -> usize {
        self.clock.advance(now);
        let runtime = self.runtime.load_full();
        let (Some(settings), Some(eap)) = (&runtime.config.das, &runtime.eap) else {
            return 0;
        };
        if !settings.on_revocation || eap.revoked.is_empty() {
            return 0;
        }
        let revoked = &eap.revoked;
        let hit = |a: &Authentication| {
            a.serials()
                .find(|(i, s)| revoked.contains(i, s))
                .map(|(i, s)| (i.to_string(), s.to_string()))
        };
        // A request in flight, acknowledged, or answered with a NAK is not
        // repeated; a timeout or failure is, at the next sweep.
        let open = |state: Option<&str>| !matches!(state, Some(s) if s == "pending" || s == "ack" || s.starts_with("nak"));
        let mut targets = match &self.ledger {
            Some(l) => l.targets(|s| {
                open(s.disconnect.as_deref()) && s.auth.as_deref().is_some_and(|a| hit(a).is_some())
            }),
            None => Vec::new(),
        };
        targets.extend(
            self.authentications
                .lock()
                .iter()
                .filter(|a| hit(a).is_some())
                .map(Target::of_authentication),
        );
        let mut das = self.das.lock();
        let n = targets.len();
        for t in targets {
            if let Some(a) = t.auth.as_deref()
                && let Some((issuer, serial)) = hit(a)
            {
                let own = serial == a.certificate.serial && issuer == a.certificate.issuer;
                tracing::warn!(
                    identity = %a.identity,
                    nas = %t.nas,
                    session = t.session_id.as_deref().unwrap_or("-"),
                    calling_station = t.calling_station.as_deref().unwrap_or("-"),
                    serial = %serial,
                    issuer = %issuer,
                    revoked = if own { "certificate" } else { "issuing CA" },
                    "certificate revoked: disconnecting the session"
                );
            }
            self.request(
                &runtime,
                &mut das.sender,
                t,
                Kind::Disconnect,
                Trigger::Revocation,
                Vec::new(),
                None,
            );
        }
        n
    }

    /// Everything dynamic authorization has for the shell now: requests to
    /// send, directory re-checks to run, and finished operations. Also
    /// starts the re-checks that are due and retries revocations that
    /// timed out. Call after each of the engine's DAS calls, and by
    /// `das_wakeup`.
    pub fn das_poll(&self, now: Now) -> DasOutput {
        self.clock.advance(now);
        let runtime = self.runtime.load_full();
        let mut out = DasOutput::default();
        let sweep = {
            let mut das = self.das.lock();
            if let Some(s) = &runtime.config.das
                && s != das.sender.settings()
            {
                das.sender.set_settings(s.clone());
            }
            let due =
                runtime.config.das.is_some() && das.next_sweep.is_none_or(|t| now.instant >= t);
            if due {
                das.next_sweep = Some(now.instant + REVOCATION_SWEEP);
            }
            due
        };
        if sweep {
            self.check_revocations(now);
            self.authentications.lock().expire(now.unix_secs());
        }
        if let Some(settings) = &runtime.config.das {
            self.reauthorize(now, &runtime, settings, &mut out);
        }
        let polled = {
            let mut das = self.das.lock();
            let unix = u32::try_from(now.unix_secs()).unwrap_or(u32::MAX);
            let polled = das.sender.poll(now.instant, unix);
            let (queued, in_flight) = das.sender.load();
            self.metrics.das.queued.set(queued as i64);
            self.metrics.das.in_flight.set(in_flight as i64);
            polled
        };
        out.send = polled.send;
        for o in &polled.done {
            self.ended(o);
        }
        out.finished = polled
            .finished
            .into_iter()
            .map(|(op, outcomes)| (op, outcomes.iter().map(Report::of).collect()))
            .collect();
        out
    }

    /// When `das_poll` next has work: a retransmission, a queued request,
    /// a re-check due. None: nothing until the next call in.
    pub fn das_wakeup(&self, now: Instant) -> Option<Instant> {
        let das = self.das.lock();
        [das.sender.next_wakeup(now), das.next_reauth, das.next_sweep]
            .into_iter()
            .flatten()
            .min()
    }

    /// An answer from `route` (a datagram to the DAS socket, or a
    /// Disconnect/CoA ACK or NAK on a RadSec connection). Its outcome
    /// comes out of the next `das_poll`.
    pub fn das_received(&self, now: Now, route: &Route, bytes: &[u8]) {
        self.clock.advance(now);
        let result = self.das.lock().sender.received(now.instant, route, bytes);
        if let Err(e) = result {
            let reason = match e {
                Unmatched::Unknown => "unknown",
                Unmatched::Invalid(_) => "invalid",
            };
            self.metrics
                .das
                .answers_refused
                .with_label_values(&[reason])
                .inc();
            match e {
                Unmatched::Unknown => {
                    tracing::debug!(%route, "DAS answer to no request in flight (late or repeated)")
                }
                Unmatched::Invalid(e) => tracing::warn!(%route, error = %e, "DAS answer refused"),
            }
        }
    }

    /// The shell could not send this request (no RadSec connection).
    pub fn das_undeliverable(&self, route: &Route, bytes: &[u8], why: &str) {
        self.das.lock().sender.undeliverable(route, bytes, why);
    }

    /// Counts, logs and notes on its session how a request ended.
    fn ended(&self, o: &Outcome) {
        let m = &self.metrics.das;
        let kind = o.job.kind.as_str();
        m.requests
            .with_label_values(&[kind, o.status.label()])
            .inc();
        if o.attempts > 1 {
            m.retransmissions
                .with_label_values(&[kind])
                .inc_by(u64::from(o.attempts - 1));
        }
        if let Some(e) = o.elapsed {
            m.answer_seconds.observe(e.as_secs_f64());
        }
        let t = &o.job.target;
        let trigger = o.job.trigger.as_str();
        let state = match &o.status {
            Status::Nak(Some(c)) => format!("nak {c}"),
            Status::Nak(None) => "nak".into(),
            s => s.label().into(),
        };
        let session = t.session_id.as_deref().unwrap_or("-");
        let user = t.user.as_deref().unwrap_or("-");
        match &o.status {
            Status::Ack => {
                if o.job.kind == Kind::Disconnect {
                    m.disconnected.with_label_values(&[trigger]).inc();
                    // An unclaimed authentication that is disconnected is over.
                    if let Some(a) = &t.auth
                        && t.session_id.is_none()
                    {
                        self.authentications.lock().remove(&a.token);
                    }
                }
                tracing::info!(nas = %t.nas, route = %o.job.route, session, user, kind, trigger, attempts = o.attempts, "NAS acknowledged");
            }
            Status::Nak(cause) => {
                m.naks.with_label_values(&[&cause_label(*cause)]).inc();
                tracing::warn!(nas = %t.nas, route = %o.job.route, session, user, kind, trigger, error_cause = cause.unwrap_or(0), cause = cause.map_or("none", cause_name), "NAS refused (NAK)");
            }
            Status::Timeout => {
                tracing::warn!(nas = %t.nas, route = %o.job.route, session, user, kind, trigger, attempts = o.attempts, "NAS did not answer")
            }
            Status::DryRun => {
                tracing::info!(nas = %t.nas, route = %o.job.route, session, user, kind, trigger, attributes = o.job.attributes.len(), "dry run: not sent")
            }
            Status::Failed(why) => {
                tracing::warn!(nas = %t.nas, session, user, kind, trigger, reason = %why, "request not sent")
            }
        }
        if let (Some(l), Some(id)) = (&self.ledger, &t.session_id) {
            l.mark(&t.nas, id, state);
        }
    }

    /// Starts the directory re-checks that are due (at most
    /// `reauthorize_rate` a second) and gives up on those past their
    /// deadline.
    fn reauthorize(
        &self,
        now: Now,
        runtime: &Runtime,
        settings: &DasSettings,
        out: &mut DasOutput,
    ) {
        let (Some(interval), Some(ledger), Some(eap)) =
            (settings.reauthorize, &self.ledger, &runtime.eap)
        else {
            return;
        };
        let deadline = eap.authz.settings().timeout;
        let mut das = self.das.lock();
        let overdue: Vec<Ticket> = das
            .reauths
            .iter()
            .filter(|(_, r)| now.instant.saturating_duration_since(r.asked) > r.deadline + GRACE)
            .map(|(t, _)| *t)
            .collect();
        for t in overdue {
            das.reauths.remove(&t);
            self.metrics
                .das
                .reauthorizations
                .with_label_values(&["unavailable"])
                .inc();
        }
        if das.next_reauth.is_some_and(|t| now.instant < t) {
            return;
        }
        das.next_reauth = Some(now.instant + Duration::from_secs(1));
        let mut cursor = das.reauth_cursor.take();
        let due = ledger.due_for_check(
            now.unix_secs(),
            interval.as_secs() as i64,
            settings.reauthorize_rate as usize,
            &mut cursor,
        );
        das.reauth_cursor = cursor;
        for target in due {
            let Some(a) = target.auth.as_deref() else {
                continue;
            };
            let subject = Subject {
                identity: a.identity.clone(),
                outer_identity: a.outer_identity.clone(),
                certificate: Arc::new(a.certificate.clone()),
                nas: a.nas.clone(),
                called_station: a.called_station.clone(),
                calling_station: a.calling_station.clone(),
                resumed: false,
            };
            let ticket = self
                .next_ticket
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.asks.push((
                ticket,
                Work::Lookup {
                    identity: a.identity.clone(),
                    certificate: Some(subject.certificate.clone()),
                    deadline,
                },
            ));
            das.reauths.insert(
                ticket,
                Reauth {
                    target,
                    subject,
                    asked: now.instant,
                    deadline,
                },
            );
        }
    }

    /// A directory answer for a re-check (None when the ticket is not one).
    /// Disabled or unknown now, or refused by the policy: Disconnect. A
    /// different reply: CoA with it where the NAS takes CoA, else
    /// Disconnect. The same reply, or no answer: nothing.
    pub(super) fn reauthorized(&self, now: Now, ticket: Ticket, answer: &Answer) -> Option<()> {
        let reauth = self.das.lock().reauths.remove(&ticket)?;
        let runtime = self.runtime.load_full();
        let count = |r: &str| {
            self.metrics
                .das
                .reauthorizations
                .with_label_values(&[r])
                .inc()
        };
        let (Answer::Lookup(Ok(lookup)), Some(eap)) = (answer, &runtime.eap) else {
            // The directory did not answer: nobody is disconnected for an
            // outage.
            count("unavailable");
            return Some(());
        };
        let Reauth {
            target, subject, ..
        } = reauth;
        let Some(a) = target.auth.as_deref() else {
            return Some(());
        };
        let (kind, extra) = match eap.authz.decide(&subject, Ok(lookup.clone())) {
            Decision::Reject { reason, detail } => {
                count("rejected");
                tracing::warn!(identity = %a.identity, nas = %target.nas, session = target.session_id.as_deref().unwrap_or("-"), reason, detail = %detail, "re-authorization refused: disconnecting the session");
                (Kind::Disconnect, Vec::new())
            }
            Decision::Accept { attributes, .. } => {
                if super::super::access::reply_digest(&attributes) == a.reply {
                    count("unchanged");
                    return Some(());
                }
                count("changed");
                let coa = route(&runtime, &target).is_ok_and(|(_, _, p)| p.coa);
                tracing::info!(identity = %a.identity, nas = %target.nas, session = target.session_id.as_deref().unwrap_or("-"), coa, "re-authorization changed the reply attributes");
                if coa {
                    (Kind::Coa, attributes)
                } else {
                    (Kind::Disconnect, Vec::new())
                }
            }
        };
        self.clock.advance(now);
        let mut das = self.das.lock();
        self.request(
            &runtime,
            &mut das.sender,
            target,
            kind,
            Trigger::Directory,
            extra,
            None,
        );
        Some(())
    }
}

/// Where a request for `target` goes, signed with which secret, and how
/// its NAS takes it: its RadSec connection for a RadSec client, else the
/// UDP client its requests came from (the client entry as configured now).
fn route(runtime: &Runtime, target: &Target) -> Result<(Route, Secret, DasPeer), String> {
    if let Some(radsec) = &runtime.radsec
        && let Some(client) = radsec.clients.named(&target.nas)
    {
        let peer = client.das.clone();
        if !peer.enabled {
            return Err(format!("das is disabled for client {}", client.name));
        }
        let secret = peer.secret.clone().unwrap_or_else(|| client.secret.clone());
        return Ok((Route::Radsec(client.name.clone()), secret, peer));
    }
    let Some(ip) = target.source else {
        return Err("no address known for the session's NAS".into());
    };
    let Some(client) = runtime.clients.lookup(ip) else {
        return Err(format!("{ip} is no longer a configured client"));
    };
    let peer = client.das.clone();
    if !peer.enabled {
        return Err(format!("das is disabled for client {}", client.name));
    }
    let to = peer.address.unwrap_or(SocketAddr::new(ip, peer.port));
    let secret = peer.secret.clone().unwrap_or_else(|| client.secret.clone());
    Ok((Route::Udp(to), secret, peer))
}
