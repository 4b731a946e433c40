//! Access-Requests that carry EAP, inside the engine: one EAP step
//! (`eap::service`), and when the handshake completes, the certificate
//! identity, its binding to the outer identity, the revocation re-check of
//! a resumed session, then authorization — from the cache at once, or by
//! asking the shell for a directory look-up and resuming with its answer —
//! and the final flight. Counts and logs each outcome.
//!
//! Part of the engine: the same calls, the same sans-I/O rules.

use std::sync::Arc;
use std::time::Duration;

use rand::{CryptoRng, RngExt};

use super::accounting::auth::{Authentication, TOKEN_PREFIX};
use super::admission::{DropReason, Listener};
use super::authz::{Decision, DirectoryError, Lookup, Subject};
use super::clock::Now;
use super::eap::conversation::Granted;
use super::eap::packet::{method, reassemble};
use super::eap::reply::{ReplyContext, encode};
use super::eap::service::{self, EapRequest, Handled, Reply};
use super::eap::table::CheckedOut;
use super::eap::tls_session::Failure;
use super::engine::{Action, Engine, Origin, Parked, Waiting, Work};
use super::ocsp::{self, Checked, OcspError, OcspSettings, OnUnavailable, Query, Status};
use super::runtime::{EapRuntime, Runtime};
use super::status::Response;
use super::tls::ChainError;
use super::wire::Packet;
use super::wire::attr::{
    CALLED_STATION_ID, CALLING_STATION_ID, CLASS, EAP_KEY_NAME, FRAMED_MTU, NAS_IDENTIFIER, STATE,
};
use super::wire::packet::value_u32;

/// What the engine records about an Accept: who, with which certificate
/// (and the CAs it came with), where, granted what, and a fresh token.
#[allow(clippy::too_many_arguments)]
fn authentication(
    now: Now,
    origin: &Origin,
    out: &CheckedOut,
    subject: &Subject,
    rule: String,
    groups: Vec<String>,
    attributes: &[(u8, Vec<u8>)],
    rng: &mut dyn CryptoRng,
) -> Authentication {
    let conv = out.conversation.as_ref();
    let chain = conv
        .and_then(|c| c.established.as_deref())
        .map(|est| {
            est.peer_chain
                .iter()
                .skip(1)
                .filter_map(|der| {
                    let cert = crate::proto::tls::identity::parse(der).ok()?;
                    Some((
                        cert.issuer().to_string(),
                        crate::proto::hex::encode(cert.raw_serial()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Authentication {
        token: crate::proto::hex::encode(&rng.random::<u64>().to_be_bytes()),
        identity: subject.identity.clone(),
        outer_identity: subject.outer_identity.clone(),
        at: now.unix_secs(),
        nas: origin.client.name.clone(),
        source: origin.source.ip().to_canonical().to_string(),
        radsec: origin.listener == Listener::Radsec,
        nas_identifier: conv.and_then(|c| c.origin.nas_identifier.clone()),
        calling_station: subject.calling_station.clone(),
        called_station: subject.called_station.clone(),
        certificate: (*subject.certificate).clone(),
        chain,
        groups,
        rule,
        reply: reply_digest(attributes),
    }
}

/// A digest of reply attributes (before the token is added): equal
/// results give equal digests, in any process.
pub(super) fn reply_digest(attributes: &[(u8, Vec<u8>)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (kind, value) in attributes {
        h.update([*kind, value.len() as u8]);
        h.update(value);
    }
    crate::proto::hex::encode(&h.finalize()[..8])
}

/// Where OCSP leaves an authentication.
enum OcspStart {
    /// Good (or allowed on): on to the directory.
    Go,
    Stop(Failure),
    /// Ask about these in turn (not cached).
    Ask(Vec<Query>),
}

fn text(value: Option<&[u8]>) -> Option<&str> {
    value.and_then(|v| std::str::from_utf8(v).ok())
}

impl Engine {
    /// One EAP step of an Access-Request.
    pub(super) fn access(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        packet: &Packet<'_>,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let Some(eap_runtime) = &runtime.eap else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        let eap = reassemble(packet).unwrap_or_default();
        let req = EapRequest {
            eap: &eap,
            state: packet.attribute(STATE),
            calling_station: text(packet.attribute(CALLING_STATION_ID)),
            called_station: text(packet.attribute(CALLED_STATION_ID)),
            nas_identifier: text(packet.attribute(NAS_IDENTIFIER)),
            framed_mtu: packet.attribute(FRAMED_MTU).and_then(value_u32),
            echo_len: origin.reply_to.echo_len(),
            nas: &origin.client.name,
        };
        let key_name_requested = packet.attribute(EAP_KEY_NAME).is_some();
        let starts = eap.first() == Some(&2) && eap.get(4) == Some(&method::IDENTITY);
        let settings = &eap_runtime.config.settings;
        let reply = match service::handle(
            &self.conversations,
            &eap_runtime.tls.server,
            settings,
            &req,
            now.instant,
            rng,
        ) {
            Handled::Done(reply) => reply,
            Handled::Authorize(out) => {
                return self.authorize(now, runtime, origin, out, key_name_requested, rng);
            }
        };
        if starts && matches!(reply, Reply::Challenge { .. }) {
            self.metrics.eap.started.inc();
        }
        self.eap_answer(now, origin, reply, key_name_requested, rng)
    }

    /// The handshake completed: who the certificate names, then the
    /// directory (cached, or asked for) and the policy.
    fn authorize(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        out: CheckedOut,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let Some(eap) = &runtime.eap else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        let subject = match subject(eap, &out) {
            Ok(s) => s,
            Err(failure) => {
                return self.conclude(now, eap, origin, out, Err(failure), key_name_requested, rng);
            }
        };
        if let Some(settings) = &runtime.config.ocsp {
            match self.ocsp_start(now, eap, &out, settings, rng) {
                OcspStart::Go => {}
                OcspStart::Stop(failure) => {
                    return self.conclude(
                        now,
                        eap,
                        origin,
                        out,
                        Err(failure),
                        key_name_requested,
                        rng,
                    );
                }
                OcspStart::Ask(queries) => {
                    return self.ocsp_ask(
                        now,
                        runtime,
                        origin,
                        out,
                        subject,
                        key_name_requested,
                        queries,
                    );
                }
            }
        }
        self.look_up(now, runtime, origin, out, subject, key_name_requested, rng)
    }

    /// The directory: from the cache at once, or asked for.
    #[allow(clippy::too_many_arguments)]
    fn look_up(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        out: CheckedOut,
        subject: Subject,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let Some(eap) = &runtime.eap else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        let authz = &eap.authz;
        if let Some(hit) = authz.cached(&subject, now.instant) {
            return self.decided(
                now,
                runtime,
                origin,
                out,
                &subject,
                Ok(hit),
                Duration::ZERO,
                key_name_requested,
                rng,
            );
        }
        let deadline = authz.settings().timeout;
        let identity = subject.identity.clone();
        let certificate = Some(subject.certificate.clone());
        let ticket = self.park(Parked {
            origin,
            asked: now.instant,
            waiting: Waiting::Authorize {
                runtime: runtime.clone(),
                out: Box::new(out),
                subject: Box::new(subject),
                key_name_requested,
                deadline,
            },
        });
        Action::Ask {
            ticket,
            work: Work::Lookup {
                identity,
                certificate,
                deadline,
            },
        }
    }

    /// OCSP for the client certificate: from the cache, or a query to ask
    /// the responder (queries for one certificate in flight share a nonce,
    /// so the shell can share their exchange).
    fn ocsp_start(
        &self,
        now: Now,
        eap: &EapRuntime,
        out: &CheckedOut,
        settings: &OcspSettings,
        rng: &mut dyn CryptoRng,
    ) -> OcspStart {
        let Some(chain) = out
            .conversation
            .as_ref()
            .and_then(|c| c.established.as_deref())
            .map(|e| &e.peer_chain)
        else {
            return OcspStart::Stop(Failure::new("internal", "no handshake result"));
        };
        if chain.is_empty() {
            return OcspStart::Stop(Failure::new("internal", "no client certificate"));
        }
        // The client's certificate, then (check_chain) each CA certificate
        // it sent, each with the certificate that issued it.
        let asked = if settings.check_chain { chain.len() } else { 1 };
        let mut misses = Vec::new();
        for (i, cert) in chain.iter().enumerate().take(asked) {
            let candidates = chain[i + 1..]
                .iter()
                .chain(&eap.config.material.roots)
                .map(|c| c.as_ref());
            let query = match ocsp::issuer_of(cert, candidates) {
                None => Err(OcspError::NoIssuer),
                Some(issuer) => {
                    ocsp::query(cert, issuer, settings.url.as_deref(), None).and_then(|q| {
                        if !settings.nonce {
                            return Ok(q);
                        }
                        let nonce = self
                            .ocsp_nonces
                            .lock()
                            .entry(q.key.clone())
                            .or_insert_with(|| rng.random::<[u8; 16]>().to_vec())
                            .clone();
                        ocsp::query(cert, issuer, settings.url.as_deref(), Some(&nonce))
                    })
                }
            }
            .map(|mut q| {
                q.ca = i > 0;
                q
            });
            let verdict = match query {
                Ok(q) => match self.ocsp_cache.get(&q.key, now.unix_secs()) {
                    Some(hit) => {
                        self.metrics.ocsp.cache_hits.inc();
                        self.ocsp_verdict(settings, &q, Ok(hit))
                    }
                    None => {
                        misses.push(q);
                        continue;
                    }
                },
                Err(e) => {
                    self.metrics
                        .ocsp
                        .queries
                        .with_label_values(&[e.label()])
                        .inc();
                    let about = if i == 0 {
                        "the client certificate"
                    } else {
                        "a CA certificate of the chain"
                    };
                    tracing::warn!(about, error = %e, "no OCSP query possible");
                    self.ocsp_verdict_error(settings, e)
                }
            };
            if let OcspStart::Stop(failure) = verdict {
                return OcspStart::Stop(failure);
            }
        }
        if misses.is_empty() {
            OcspStart::Go
        } else {
            OcspStart::Ask(misses)
        }
    }

    /// Asks the responder about the first of `queries`; the rest wait in
    /// the parked request and are asked in turn.
    #[allow(clippy::too_many_arguments)]
    fn ocsp_ask(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        out: CheckedOut,
        subject: Subject,
        key_name_requested: bool,
        mut queries: Vec<Query>,
    ) -> Action {
        let Some(settings) = &runtime.config.ocsp else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        if queries.is_empty() {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        }
        let query = Box::new(queries.remove(0));
        let work = Work::Ocsp {
            key: query.key.clone(),
            url: query.url.clone(),
            get: ocsp::get_url(&query),
            request: query.request.clone(),
            deadline: settings.timeout,
        };
        let ticket = self.park(Parked {
            origin,
            asked: now.instant,
            waiting: Waiting::Ocsp {
                runtime: runtime.clone(),
                out: Box::new(out),
                subject: Box::new(subject),
                key_name_requested,
                query,
                rest: queries,
                deadline: settings.timeout,
            },
        });
        Action::Ask { ticket, work }
    }

    /// What an OCSP result about `q` means for the authentication.
    fn ocsp_verdict(
        &self,
        settings: &OcspSettings,
        q: &Query,
        result: Result<Checked, OcspError>,
    ) -> OcspStart {
        let (revoked, unknown) = if q.ca {
            ("issuer_revoked", "issuer_unknown")
        } else {
            ("certificate_revoked", "certificate_unknown")
        };
        match result {
            Ok(Checked {
                status: Status::Good,
                ..
            }) => OcspStart::Go,
            Ok(Checked {
                status: Status::Revoked,
                ..
            }) => OcspStart::Stop(Failure::new(
                revoked,
                format!("OCSP: {} is revoked", q.about),
            )),
            Ok(Checked {
                status: Status::Unknown,
                ..
            }) if settings.unknown_rejects => OcspStart::Stop(Failure::new(
                unknown,
                format!("OCSP: the responder does not know {}", q.about),
            )),
            Ok(_) => OcspStart::Go,
            Err(e) => self.ocsp_verdict_error(settings, e),
        }
    }

    /// No valid answer: `ocsp.on_unavailable` decides.
    fn ocsp_verdict_error(&self, settings: &OcspSettings, e: OcspError) -> OcspStart {
        let action = settings.on_unavailable;
        self.metrics
            .ocsp
            .fallbacks
            .with_label_values(&[action.as_str()])
            .inc();
        match action {
            OnUnavailable::Reject => {
                OcspStart::Stop(Failure::new("ocsp_unavailable", e.to_string()))
            }
            OnUnavailable::Crl | OnUnavailable::Accept => {
                tracing::warn!(error = %e, on_unavailable = action.as_str(), "no valid OCSP answer; authentication goes on");
                OcspStart::Go
            }
        }
    }

    /// The responder answered (or the shell gave up): checked, cached,
    /// then authorization goes on or the conversation fails.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ocsp_answered(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        out: CheckedOut,
        subject: Subject,
        query: &Query,
        rest: Vec<Query>,
        answer: Result<Vec<u8>, String>,
        waited: Duration,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let (Some(eap), Some(settings)) = (&runtime.eap, &runtime.config.ocsp) else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        self.ocsp_nonces.lock().remove(&query.key);
        let m = &self.metrics.ocsp;
        m.seconds.observe(waited.as_secs_f64());
        let result = answer
            .map_err(OcspError::Unavailable)
            .and_then(|bytes| ocsp::check(&bytes, query, now.unix_secs(), settings));
        match &result {
            Ok(c) => {
                m.queries.with_label_values(&[c.status.label()]).inc();
                self.ocsp_cache.put(&query.key, *c);
            }
            Err(e) => {
                m.queries.with_label_values(&[e.label()]).inc();
                tracing::warn!(url = %query.url, identity = %subject.identity, error = %e, "OCSP query failed");
            }
        }
        match self.ocsp_verdict(settings, query, result) {
            OcspStart::Stop(failure) => {
                self.conclude(now, eap, origin, out, Err(failure), key_name_requested, rng)
            }
            _ if !rest.is_empty() => {
                self.ocsp_ask(now, runtime, origin, out, subject, key_name_requested, rest)
            }
            _ => self.look_up(now, runtime, origin, out, subject, key_name_requested, rng),
        }
    }

    /// The directory answered (or the cache did): the policy decides and
    /// the conversation ends or sends its final flight.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decided(
        &self,
        now: Now,
        runtime: &Arc<Runtime>,
        origin: Origin,
        out: CheckedOut,
        subject: &Subject,
        answer: Result<Lookup, DirectoryError>,
        waited: Duration,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let Some(eap) = &runtime.eap else {
            return self.finish(now, origin, Response::Drop(DropReason::Internal));
        };
        let authz = &eap.authz;
        if let Ok(lookup) = &answer {
            authz.remember(subject, lookup, now.instant);
        }
        let backend = authz.settings().directory;
        let m = &self.metrics.eap;
        m.authz_seconds
            .with_label_values(&[backend])
            .observe(waited.as_secs_f64());
        let result = match authz.decide(subject, answer) {
            Decision::Accept {
                rule,
                groups,
                mut attributes,
            } => {
                m.authz_decisions
                    .with_label_values(&[backend, "accept"])
                    .inc();
                tracing::debug!(identity = %subject.identity, groups = ?groups, "authorized");
                // Sessions are tied to their Accept when something uses it:
                // accounting sessions or dynamic authorization.
                let auth = (self.ledger.is_some() || runtime.config.das.is_some()).then(|| {
                    let auth =
                        authentication(now, &origin, &out, subject, rule, groups, &attributes, rng);
                    // After the configured Class values: a NAS that echoes
                    // only the first still echoes the operator's.
                    attributes.push((CLASS, format!("{TOKEN_PREFIX}{}", auth.token).into_bytes()));
                    Box::new(auth)
                });
                Ok(Granted {
                    identity: subject.identity.clone(),
                    attributes,
                    auth,
                })
            }
            Decision::Reject { reason, detail } => {
                m.authz_decisions
                    .with_label_values(&[backend, "reject"])
                    .inc();
                Err(Failure::new(
                    reason,
                    format!("{}: {detail}", subject.identity),
                ))
            }
        };
        self.conclude(now, eap, origin, out, result, key_name_requested, rng)
    }

    /// Ends the authorization step: the final flight, or EAP-Failure.
    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &self,
        now: Now,
        eap: &EapRuntime,
        origin: Origin,
        out: CheckedOut,
        result: Result<Granted, Failure>,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        let settings = &eap.config.settings;
        let reply = service::finish(&self.conversations, out, result, settings, now.instant);
        self.eap_answer(now, origin, reply, key_name_requested, rng)
    }

    /// Counts and logs an EAP outcome, and encodes its RADIUS answer.
    fn eap_answer(
        &self,
        now: Now,
        origin: Origin,
        reply: Reply,
        key_name_requested: bool,
        rng: &mut dyn CryptoRng,
    ) -> Action {
        self.observe(&origin, &reply);
        if let Reply::Accept { granted, .. } = &reply {
            if let Some(ledger) = &self.ledger {
                for (_, class) in granted.attributes.iter().filter(|(k, _)| *k == CLASS) {
                    ledger.issued_class(class);
                }
            }
            if let Some(auth) = &granted.auth {
                self.remember_authentication((**auth).clone());
            }
        }
        self.metrics.eap.active.set(self.conversations.len() as i64);
        let ctx = ReplyContext {
            to: &origin.reply_to,
            secret: origin.secret(),
            key_name_requested,
        };
        let response = match encode(&reply, &ctx, rng) {
            Ok(Some((code, bytes))) => Response::Reply {
                code,
                bytes,
                outcome: None,
            },
            Ok(None) => Response::Drop(DropReason::EapDiscarded),
            Err(e) => Response::Drop(DropReason::Unanswerable(e)),
        };
        self.finish(now, origin, response)
    }

    fn observe(&self, origin: &Origin, reply: &Reply) {
        let m = &self.metrics.eap;
        let client = &origin.client.name;
        match reply {
            Reply::Challenge { .. } => {}
            Reply::Discard(reason) => {
                m.discarded.with_label_values(&[reason]).inc();
                tracing::debug!(client = %client, reason, "EAP response discarded");
            }
            Reply::Accept {
                granted,
                established,
                round_trips,
                duration,
                ..
            } => {
                let version = match established.version {
                    rustls::ProtocolVersion::TLSv1_2 => "1.2",
                    rustls::ProtocolVersion::TLSv1_3 => "1.3",
                    _ => "other",
                };
                m.succeeded
                    .with_label_values(&[
                        version,
                        &established.cipher_suite,
                        if established.resumed { "true" } else { "false" },
                    ])
                    .inc();
                m.handshake_seconds.observe(duration.as_secs_f64());
                m.round_trips.observe(f64::from(*round_trips));
                tracing::info!(
                    client = %client,
                    identity = %granted.identity,
                    tls_version = version,
                    cipher_suite = %established.cipher_suite,
                    resumed = established.resumed,
                    round_trips,
                    duration_ms = duration.as_millis() as u64,
                    attributes = granted.attributes.len(),
                    "access accepted"
                );
            }
            Reply::Reject { failure, .. } => {
                m.failed.with_label_values(&[failure.reason]).inc();
                tracing::info!(
                    client = %client,
                    reason = failure.reason,
                    detail = %failure.detail,
                    "access rejected"
                );
            }
        }
    }
}

/// The certificate identity (verified again for a resumed session: CRLs
/// may have changed since its full handshake), its binding to the outer
/// identity, and what the policy matches on: the NAS and stations the
/// conversation started with.
fn subject(eap: &EapRuntime, out: &CheckedOut) -> Result<Subject, Failure> {
    let Some(conv) = out.conversation.as_ref() else {
        return Err(Failure::new("internal", "no conversation to authorize"));
    };
    let tls = &eap.tls;
    let Some(est) = conv.established.as_deref() else {
        return Err(Failure::new("internal", "no handshake result"));
    };
    let certificate = tls
        .identity(&est.peer_chain, est.resumed)
        .map_err(|e| match e {
            ChainError::Identity(e) => Failure::new("certificate_identity", e.to_string()),
            e if est.resumed => Failure::new("certificate_rejected", format!("on resumption: {e}")),
            e => Failure::new("certificate_rejected", e.to_string()),
        })?;
    let (_, identity) = certificate
        .pick(&eap.config.identity_sources)
        .map_err(|e| Failure::new("certificate_identity", e.to_string()))?;
    let identity = identity.to_string();
    eap.config
        .binding
        .check(&conv.outer_identity, &identity)
        .map_err(|e| Failure::new("identity_mismatch", e))?;
    Ok(Subject {
        identity,
        outer_identity: conv.outer_identity.clone(),
        certificate,
        nas: conv.origin.nas.to_string(),
        called_station: conv.called_station.clone(),
        calling_station: conv.origin.calling_station.clone(),
        resumed: est.resumed,
    })
}
