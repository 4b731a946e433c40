//! EAP over RADIUS for one Access-Request (RFC 3579): finds or starts the
//! conversation the request belongs to, runs it one step, and says what to
//! answer. Sans-I/O and synchronous; authorization, which may wait on a
//! directory, happens between `handle` returning `Handled::Authorize` and
//! `finish`.
//!
//! It must not encode RADIUS packets (see `eap::reply`) nor touch sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use super::conversation::{Conversation, Granted, Outcome, failure_packet};
use super::keys::Keys;
use super::packet::{EapCode, EapPacket, method};
use super::table::{CheckedOut, ConversationTable, Limits, State};
use super::tls_session::{Established, Failure, TlsSession};

/// Octets of EAP and EAP-TLS header around the TLS data of one fragment
/// (EAP header 4, Type 1, Flags 1, TLS Message Length 4).
const EAP_TLS_OVERHEAD: u32 = 10;
/// No NAS link is this small; below it Framed-MTU is taken as a mistake.
const MIN_FRAGMENT: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct EapSettings {
    pub fragment_size: usize,
    pub max_message: usize,
    /// The conversation table's bounds.
    pub table: Limits,
    pub replace_by_calling_station: bool,
}

/// The EAP-relevant parts of an Access-Request.
#[derive(Debug, Clone, Copy)]
pub struct EapRequest<'a> {
    /// The reassembled EAP packet.
    pub eap: &'a [u8],
    pub state: Option<&'a [u8]>,
    pub calling_station: Option<&'a str>,
    pub framed_mtu: Option<u32>,
    pub nas: &'a str,
}

/// What to answer.
#[derive(Debug)]
pub enum Reply {
    Challenge {
        eap: Vec<u8>,
        state: State,
    },
    Accept {
        eap: Vec<u8>,
        keys: Keys,
        granted: Granted,
        established: Box<Established>,
        round_trips: u32,
        duration: Duration,
    },
    Reject {
        eap: Vec<u8>,
        failure: Failure,
    },
    /// No answer at all.
    Discard(&'static str),
}

pub enum Handled<'t> {
    Done(Reply),
    /// The handshake completed: authorize `conversation.established`, then
    /// call `finish`.
    Authorize(CheckedOut<'t>),
}

/// Runs one EAP step for an Access-Request.
pub fn handle<'t>(
    table: &'t ConversationTable,
    tls: &Arc<ServerConfig>,
    settings: &EapSettings,
    req: &EapRequest<'_>,
    now: Instant,
) -> Handled<'t> {
    let eap = match EapPacket::parse(req.eap) {
        Ok(eap) => eap,
        Err(e) => {
            end_state(table, req.state, now);
            let id = req.eap.get(1).copied().unwrap_or(0);
            return reject(id, "malformed_eap", e.to_string());
        }
    };
    if eap.code != EapCode::Response {
        end_state(table, req.state, now);
        return reject(
            eap.identifier,
            "malformed_eap",
            format!("EAP {:?} from a peer", eap.code),
        );
    }
    if eap.method == Some(method::IDENTITY) {
        end_state(table, req.state, now);
        return start(table, tls, settings, req, &eap, now);
    }
    let Some(state) = req.state else {
        return reject(
            eap.identifier,
            "no_state",
            format!(
                "EAP-Response/{} without State",
                method::name(eap.method.unwrap_or(0))
            ),
        );
    };
    let Some(mut out) = table.take(state, now) else {
        return reject(eap.identifier, "unknown_state", "unknown or expired State");
    };
    let outcome = match out.conversation.as_mut() {
        Some(conv) => conv.on_response(&eap, now),
        None => return reject(eap.identifier, "internal", "empty checkout"),
    };
    settle(table, out, outcome, settings, now)
}

/// Continues after authorization.
pub fn finish<'t>(
    table: &'t ConversationTable,
    mut out: CheckedOut<'t>,
    result: Result<Granted, Failure>,
    settings: &EapSettings,
    now: Instant,
) -> Reply {
    let outcome = match out.conversation.as_mut() {
        Some(conv) => conv.authorized(result),
        None => return Reply::Discard("internal"),
    };
    match settle(table, out, outcome, settings, now) {
        Handled::Done(reply) => reply,
        Handled::Authorize(out) => {
            out.end();
            Reply::Reject {
                eap: failure_packet(0),
                failure: Failure::new("internal", "authorized twice"),
            }
        }
    }
}

fn start<'t>(
    table: &'t ConversationTable,
    tls: &Arc<ServerConfig>,
    settings: &EapSettings,
    req: &EapRequest<'_>,
    identity: &EapPacket<'_>,
    now: Instant,
) -> Handled<'t> {
    let fragment_size = match req.framed_mtu {
        Some(mtu) => settings
            .fragment_size
            .min(mtu.saturating_sub(EAP_TLS_OVERHEAD) as usize)
            .max(MIN_FRAGMENT),
        None => settings.fragment_size,
    };
    let session = match TlsSession::new(tls.clone(), settings.max_message, fragment_size) {
        Ok(s) => s,
        Err(f) => return reject(identity.identifier, f.reason, f.detail),
    };
    let (conv, request) = Conversation::start(
        identity,
        req.nas,
        req.calling_station.map(str::to_string),
        session,
        now,
    );
    match table.admit(conv, now) {
        Ok(out) => {
            let state = out.state;
            table.put_back(out, settings.replace_by_calling_station);
            Handled::Done(Reply::Challenge {
                eap: request,
                state,
            })
        }
        Err(refused) => reject(
            identity.identifier,
            refused.reason(),
            format!(
                "{} conversations running ({} from this NAS), none idle for {:?}",
                table.len(),
                table.nas_len(req.nas),
                settings.table.evictable_after
            ),
        ),
    }
}

fn settle<'t>(
    table: &'t ConversationTable,
    out: CheckedOut<'t>,
    outcome: Outcome,
    settings: &EapSettings,
    now: Instant,
) -> Handled<'t> {
    match outcome {
        Outcome::Challenge(eap) => {
            let state = out.state;
            table.put_back(out, settings.replace_by_calling_station);
            Handled::Done(Reply::Challenge { eap, state })
        }
        Outcome::Discard(reason) => {
            table.put_back(out, settings.replace_by_calling_station);
            Handled::Done(Reply::Discard(reason))
        }
        Outcome::Authorize => Handled::Authorize(out),
        Outcome::Accept(eap) => {
            let Some(conv) = out.into_inner() else {
                return Handled::Done(Reply::Discard("internal"));
            };
            match (conv.established, conv.granted) {
                (Some(established), Some(granted)) => Handled::Done(Reply::Accept {
                    eap,
                    keys: established.keys.clone(),
                    granted,
                    established,
                    round_trips: conv.round_trips,
                    duration: now.saturating_duration_since(conv.started),
                }),
                _ => reject(
                    eap.get(1).copied().unwrap_or(0),
                    "internal",
                    "success without authorization",
                ),
            }
        }
        Outcome::Reject(eap, failure) => {
            out.end();
            Handled::Done(Reply::Reject { eap, failure })
        }
    }
}

fn end_state(table: &ConversationTable, state: Option<&[u8]>, now: Instant) {
    if let Some(out) = state.and_then(|s| table.take(s, now)) {
        out.end();
    }
}

fn reject<'t>(id: u8, reason: &'static str, detail: impl Into<String>) -> Handled<'t> {
    Handled::Done(Reply::Reject {
        eap: failure_packet(id),
        failure: Failure::new(reason, detail),
    })
}
