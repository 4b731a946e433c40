//! Access-Requests that carry EAP: runs the sans-I/O EAP service, performs
//! the asynchronous authorization step between the end of the TLS handshake
//! and the final flight, encodes the reply, and logs and counts the outcome.
//!
//! Glue only: protocol decisions are in `eap`, identity rules in
//! `tls::identity`, authorization in `authz`.

use std::time::Instant;

use crate::config::EapConfig;
use crate::proto::authz::{Decision, Subject};
use crate::proto::eap::conversation::{Conversation, Granted};
use crate::proto::eap::packet::reassemble;
use crate::proto::eap::reply::{ReplyContext, encode};
use crate::proto::eap::service::{self, EapRequest, Handled, Reply};
use crate::proto::eap::tls_session::{Established, Failure};
use crate::proto::tls::{ChainError, TlsContext};
use crate::proto::wire::attr::{
    CALLED_STATION_ID, CALLING_STATION_ID, CLASS, FRAMED_MTU, NAS_IDENTIFIER, STATE,
};
use crate::proto::wire::packet::value_u32;
use crate::proto::wire::{Packet, PacketBuilder};
use crate::server::authz::Authorizer;
use crate::server::authz::Authz;

use super::Shared;
use crate::proto::admission::{DropReason, Request};
use crate::proto::status::Response;

fn text(value: Option<&[u8]>) -> Option<&str> {
    value.and_then(|v| std::str::from_utf8(v).ok())
}

/// What the running configuration provides for EAP-TLS.
#[derive(Clone, Copy)]
pub struct Engines<'a> {
    pub eap: &'a EapConfig,
    pub tls: &'a TlsContext,
    pub authz: &'a Authz,
}

pub async fn respond(
    shared: &Shared,
    engines: Engines<'_>,
    request: &Request,
    packet: &Packet<'_>,
) -> Response {
    let Engines {
        eap: eap_config,
        tls,
        ..
    } = engines;
    let m = &shared.metrics.eap;
    let settings = &eap_config.settings;
    let eap = reassemble(packet).unwrap_or_default();
    let req = EapRequest {
        eap: &eap,
        state: packet.attribute(STATE),
        calling_station: text(packet.attribute(CALLING_STATION_ID)),
        called_station: text(packet.attribute(CALLED_STATION_ID)),
        nas_identifier: text(packet.attribute(NAS_IDENTIFIER)),
        framed_mtu: packet.attribute(FRAMED_MTU).and_then(value_u32),
        echo_len: PacketBuilder::echo_len(packet),
        nas: &request.client.name,
    };
    let table = &shared.conversations;
    let starts =
        eap.first() == Some(&2) && eap.get(4) == Some(&crate::proto::eap::packet::method::IDENTITY);
    let reply = match service::handle(table, &tls.server, settings, &req, Instant::now()) {
        Handled::Done(reply) => reply,
        Handled::Authorize(out) => {
            let result = match out.conversation.as_ref() {
                Some(conv) => match conv.established.as_deref() {
                    Some(est) => authorize(shared, engines, est, conv).await,
                    None => Err(Failure::new("internal", "no handshake result")),
                },
                None => Err(Failure::new("internal", "empty checkout")),
            };
            service::finish(table, out, result, settings, Instant::now())
        }
    };
    if starts && matches!(reply, Reply::Challenge { .. }) {
        m.started.inc();
    }
    if let (Reply::Accept { granted, .. }, Some(acct)) = (&reply, &shared.accounting) {
        for (_, class) in granted.attributes.iter().filter(|(k, _)| *k == CLASS) {
            acct.issued_class(class);
        }
    }
    m.active.set(table.len() as i64);
    observe(shared, request, &reply);

    let ctx = ReplyContext {
        request: packet,
        secret: &request.client.secret,
    };
    match encode(&reply, &ctx) {
        Ok(Some((code, bytes))) => Response::Reply {
            code,
            bytes,
            outcome: None,
        },
        Ok(None) => Response::Drop(DropReason::EapDiscarded),
        Err(e) => Response::Drop(DropReason::Unanswerable(e)),
    }
}

/// Certificate identity, binding to the outer identity, revocation re-check
/// for resumed sessions, then the directory. The policy sees the NAS and
/// stations the conversation started with.
async fn authorize(
    shared: &Shared,
    Engines {
        eap: eap_config,
        tls,
        authz,
    }: Engines<'_>,
    est: &Established,
    conv: &Conversation,
) -> Result<Granted, Failure> {
    let outer_identity = conv.outer_identity.as_str();
    // A resumed session's certificate comes from the session cache: CRLs
    // may have changed since the full handshake, so it is checked again.
    let certificate = tls
        .identity(&est.peer_chain, est.resumed)
        .map_err(|e| match e {
            ChainError::Identity(e) => Failure::new("certificate_identity", e.to_string()),
            e if est.resumed => Failure::new("certificate_rejected", format!("on resumption: {e}")),
            e => Failure::new("certificate_rejected", e.to_string()),
        })?;
    let (_, identity) = certificate
        .pick(&eap_config.identity_sources)
        .map_err(|e| Failure::new("certificate_identity", e.to_string()))?;
    let identity = identity.to_string();
    eap_config
        .binding
        .check(outer_identity, &identity)
        .map_err(|e| Failure::new("identity_mismatch", e))?;
    let subject = Subject {
        identity: identity.clone(),
        outer_identity: outer_identity.to_string(),
        certificate,
        nas: conv.origin.nas.to_string(),
        called_station: conv.called_station.clone(),
        calling_station: conv.origin.calling_station.clone(),
        resumed: est.resumed,
    };
    let backend = authz.name();
    let started = Instant::now();
    let decision = authz.authorize(&subject).await;
    let m = &shared.metrics.eap;
    m.authz_seconds
        .with_label_values(&[backend])
        .observe(started.elapsed().as_secs_f64());
    match decision {
        Decision::Accept { groups, attributes } => {
            m.authz_decisions
                .with_label_values(&[backend, "accept"])
                .inc();
            tracing::debug!(identity = %identity, groups = ?groups, "authorized");
            Ok(Granted {
                identity,
                attributes,
            })
        }
        Decision::Reject { reason, detail } => {
            m.authz_decisions
                .with_label_values(&[backend, "reject"])
                .inc();
            Err(Failure::new(reason, format!("{identity}: {detail}")))
        }
    }
}

/// A conversation whose peer was sent a TLS alert and went silent (the
/// strongSwan 5.9 client aborts on the alert without acknowledging it):
/// the table ended it after `eap.alert_timeout`. It failed as the alert
/// said; the NAS got no Access-Reject, since the peer never answered.
pub fn alert_unanswered(shared: &Shared, conv: &Conversation, failure: &Failure) {
    shared
        .metrics
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

fn observe(shared: &Shared, request: &Request, reply: &Reply) {
    let m = &shared.metrics.eap;
    let client = &request.client.name;
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
