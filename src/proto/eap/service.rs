//! EAP over RADIUS for one Access-Request (RFC 3579): finds or starts the
//! conversation the request belongs to, runs it one step, and says what to
//! answer. Sans-I/O and synchronous; authorization, which may wait on a
//! directory, happens between `handle` returning `Handled::Authorize` and
//! `finish`.
//!
//! It must not encode RADIUS packets (see `eap::reply`) nor touch sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{CryptoRng, RngExt};
use rustls::ServerConfig;

use super::conversation::{Claimed, Conversation, Granted, Origin, Outcome, failure_packet};
use super::keys::Keys;
use super::packet::{EapCode, EapPacket, method};
use super::table::{CheckedOut, ConversationTable, Expiry, Limits, Missing, State};
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
    /// Round trips after which a conversation fails.
    pub max_rounds: u32,
}

/// The most TLS octets per EAP-TLS fragment that fit one Access-Challenge:
/// 4096 octets less the header (20), Message-Authenticator (18) and State
/// (18), with the EAP packet (fragment plus 10 octets of EAP and EAP-TLS
/// header) split into EAP-Message attributes of 253 octets, 2 more each.
pub fn max_fragment_size() -> usize {
    let room = crate::proto::wire::MAX_LEN - crate::proto::wire::HEADER_LEN - 18 - 18;
    let mut eap = room;
    while eap + 2 * eap.div_ceil(253) > room {
        eap -= 1;
    }
    eap - EAP_TLS_OVERHEAD as usize
}

/// The configuration's defaults (`[eap]` left empty; checked in the config
/// tests).
impl Default for EapSettings {
    fn default() -> Self {
        EapSettings {
            fragment_size: 1000,
            max_message: 32768,
            table: Limits::default(),
            replace_by_calling_station: true,
            max_rounds: 100,
        }
    }
}

/// The EAP-relevant parts of an Access-Request.
#[derive(Debug, Clone, Copy, Default)]
pub struct EapRequest<'a> {
    /// The reassembled EAP packet.
    pub eap: &'a [u8],
    pub state: Option<&'a [u8]>,
    pub calling_station: Option<&'a str>,
    pub called_station: Option<&'a str>,
    pub nas_identifier: Option<&'a str>,
    pub framed_mtu: Option<u32>,
    /// Octets of the Proxy-State attributes the reply must echo: the
    /// conversation's fragments leave room for them.
    pub echo_len: usize,
    /// The NAS client entry's name.
    pub nas: &'a str,
}

impl<'a> EapRequest<'a> {
    /// Who the request says it comes from.
    pub fn claimed(&self) -> Claimed<'a> {
        Claimed {
            nas: self.nas,
            nas_identifier: self.nas_identifier,
            calling_station: self.calling_station,
        }
    }
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

pub enum Handled {
    Done(Reply),
    /// The handshake completed: authorize `conversation.established`, then
    /// call `finish`.
    Authorize(CheckedOut),
}

/// Runs one EAP step for an Access-Request; `rng` makes the State of a
/// new conversation.
pub fn handle(
    table: &Arc<ConversationTable>,
    tls: &Arc<ServerConfig>,
    settings: &EapSettings,
    req: &EapRequest<'_>,
    now: Instant,
    rng: &mut dyn CryptoRng,
) -> Handled {
    let eap = match EapPacket::parse(req.eap) {
        Ok(eap) => eap,
        Err(e) => {
            end_state(table, req, now);
            let id = req.eap.get(1).copied().unwrap_or(0);
            return reject(id, "malformed_eap", e.to_string());
        }
    };
    if eap.code != EapCode::Response {
        end_state(table, req, now);
        return reject(
            eap.identifier,
            "malformed_eap",
            format!("EAP {:?} from a peer", eap.code),
        );
    }
    if eap.method == Some(method::IDENTITY) {
        end_state(table, req, now);
        return start(table, tls, settings, req, &eap, now, rng.random());
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
    let mut out = match table.take(state, &req.claimed(), now) {
        Ok(out) => out,
        Err(missing) => {
            let (reason, detail) = match missing {
                Missing::Unknown => ("unknown_state", "unknown State".to_string()),
                Missing::Expired(Expiry::TooLong) => (
                    "max_duration",
                    format!(
                        "conversation ran longer than {:?}",
                        settings.table.max_duration
                    ),
                ),
                Missing::Expired(e) => ("unknown_state", format!("expired ({})", e.reason())),
                // Answered exactly like an unknown State: the other NAS
                // learns nothing, and the owner's conversation goes on.
                Missing::Foreign(owner) => (
                    "foreign_state",
                    format!("State of a conversation of NAS {owner:?}"),
                ),
            };
            return reject(eap.identifier, reason, detail);
        }
    };
    let outcome = match out.conversation.as_mut() {
        Some(conv) => conv.on_response(&eap, now),
        None => return reject(eap.identifier, "internal", "empty checkout"),
    };
    settle(table, out, outcome, settings, now)
}

/// Continues after authorization.
pub fn finish(
    table: &ConversationTable,
    mut out: CheckedOut,
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

fn start(
    table: &Arc<ConversationTable>,
    tls: &Arc<ServerConfig>,
    settings: &EapSettings,
    req: &EapRequest<'_>,
    identity: &EapPacket<'_>,
    now: Instant,
    state: State,
) -> Handled {
    let fitting = settings
        .fragment_size
        .min(max_fragment_size().saturating_sub(req.echo_len));
    let fragment_size = match req.framed_mtu {
        Some(mtu) => fitting.min(mtu.saturating_sub(EAP_TLS_OVERHEAD) as usize),
        None => fitting,
    }
    .max(MIN_FRAGMENT);
    let session = match TlsSession::new(tls.clone(), settings.max_message, fragment_size) {
        Ok(s) => s,
        Err(f) => return reject(identity.identifier, f.reason, f.detail),
    };
    let (conv, request) = Conversation::start(
        identity,
        Origin::new(&req.claimed()),
        req.called_station.map(str::to_string),
        session,
        settings.max_rounds,
        now,
    );
    match table.admit(conv, state, now) {
        Ok(out) => {
            let state = out.state;
            table.put_back(out, settings.replace_by_calling_station, now);
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

fn settle(
    table: &ConversationTable,
    out: CheckedOut,
    outcome: Outcome,
    settings: &EapSettings,
    now: Instant,
) -> Handled {
    match outcome {
        Outcome::Challenge(eap) => {
            let mut out = out;
            if let Err(refused) = table.charge(&mut out, now) {
                out.end();
                // The Request would have carried the Response's Identifier
                // plus one; EAP-Failure carries the Response's.
                return reject(
                    eap.get(1).copied().unwrap_or(0).wrapping_sub(1),
                    refused.reason(),
                    format!(
                        "conversations buffer {} octets, eap.memory_budget is {}",
                        table.buffered(),
                        settings.table.memory_budget
                    ),
                );
            }
            let state = out.state;
            table.put_back(out, settings.replace_by_calling_station, now);
            Handled::Done(Reply::Challenge { eap, state })
        }
        Outcome::Discard(reason) => {
            table.put_back(out, settings.replace_by_calling_station, now);
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

/// Ends the conversation a request's State names, if the request may.
fn end_state(table: &Arc<ConversationTable>, req: &EapRequest<'_>, now: Instant) {
    if let Some(Ok(out)) = req.state.map(|s| table.take(s, &req.claimed(), now)) {
        out.end();
    }
}

fn reject(id: u8, reason: &'static str, detail: impl Into<String>) -> Handled {
    Handled::Done(Reply::Reject {
        eap: failure_packet(id),
        failure: Failure::new(reason, detail),
    })
}
