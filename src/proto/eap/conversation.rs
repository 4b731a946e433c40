//! One EAP conversation (RFC 3748 §4): Identifier sequencing, the choice of
//! EAP-TLS, Nak handling, and what the conversation remembers between
//! round trips (outer identity, station, authorization result).
//!
//! Sans-I/O: EAP packets and the current time in, EAP packets out. It must
//! not know RADIUS attributes or State values; `table` and `service` do.

use std::sync::Arc;
use std::time::Instant;

use super::packet::{self, EapCode, EapPacket, method};
use super::tls_session::{Established, Failure, Step, TlsSession};

/// What the NAS should get back.
#[derive(Debug)]
pub enum Outcome {
    /// An EAP-Request inside an Access-Challenge.
    Challenge(Vec<u8>),
    /// The handshake is done; authorize `Conversation::established` and
    /// call `authorized`.
    Authorize,
    /// EAP-Success inside an Access-Accept.
    Accept(Vec<u8>),
    /// EAP-Failure inside an Access-Reject.
    Reject(Vec<u8>, Failure),
    /// Silently discard (RFC 3748 §4.1: a Response that does not match the
    /// outstanding Request); the conversation continues.
    Discard(&'static str),
}

/// What authorization decided, kept for the final Access-Accept.
#[derive(Debug, Clone, Default)]
pub struct Granted {
    pub identity: String,
    /// Encoded reply attributes: (type, value), vendor ones as type 26.
    pub attributes: Vec<(u8, Vec<u8>)>,
    /// What the engine records about the Accept (when it tracks sessions):
    /// its Class token is among `attributes`.
    pub auth: Option<Box<crate::proto::accounting::auth::Authentication>>,
}

/// Who a conversation belongs to: the NAS client entry that started it
/// and, when that NAS sent them, its NAS-Identifier and the station's
/// Calling-Station-Id. Only a request from the same origin may continue
/// it: State alone would let another configured NAS that sees the traffic
/// take over the conversation and receive its keys under its own secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client entry's name. Shared with the table's per-NAS
    /// bookkeeping, which names it on every put-back.
    pub nas: Arc<str>,
    pub nas_identifier: Option<String>,
    pub calling_station: Option<String>,
}

/// The origin a request claims, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claimed<'a> {
    pub nas: &'a str,
    pub nas_identifier: Option<&'a str>,
    pub calling_station: Option<&'a str>,
}

impl Origin {
    pub fn new(claimed: &Claimed<'_>) -> Self {
        Origin {
            nas: Arc::from(claimed.nas),
            nas_identifier: claimed.nas_identifier.map(str::to_string),
            calling_station: claimed.calling_station.map(str::to_string),
        }
    }

    /// Whether a request claiming `c` may continue the conversation: the
    /// same client entry, and each identifier the conversation started
    /// with present and equal (ASCII case aside: MAC notations vary in
    /// case, never within one NAS's conversation, but no NAS should be
    /// refused over it).
    pub fn admits(&self, c: &Claimed<'_>) -> bool {
        let same = |mine: &Option<String>, theirs: Option<&str>| match mine {
            None => true,
            Some(m) => theirs.is_some_and(|t| m.eq_ignore_ascii_case(t)),
        };
        *self.nas == *c.nas
            && same(&self.nas_identifier, c.nas_identifier)
            && same(&self.calling_station, c.calling_station)
    }
}

#[derive(Debug)]
pub struct Conversation {
    pub origin: Origin,
    pub outer_identity: String,
    /// Called-Station-Id of the request that started it: the policy's
    /// `ssid` and `called_station` match on what the conversation began
    /// with, not on what a later request says.
    pub called_station: Option<String>,
    pub started: Instant,
    pub last_seen: Instant,
    pub round_trips: u32,
    pub established: Option<Box<Established>>,
    pub granted: Option<Granted>,
    /// Octets the table last charged this conversation for.
    pub charged: usize,
    /// Round trips after which the conversation fails.
    max_rounds: u32,
    /// Identifier of the outstanding EAP-Request.
    id: u8,
    /// Boxed: a rustls connection is large, and conversations move between
    /// the table and the request working on them.
    tls: Box<TlsSession>,
}

impl Conversation {
    /// Starts EAP-TLS in answer to an EAP-Response/Identity; returns the
    /// conversation and the EAP-Request/EAP-TLS Start.
    pub fn start(
        identity: &EapPacket<'_>,
        origin: Origin,
        called_station: Option<String>,
        tls: TlsSession,
        max_rounds: u32,
        now: Instant,
    ) -> (Self, Vec<u8>) {
        let id = identity.identifier.wrapping_add(1);
        let conv = Conversation {
            origin,
            outer_identity: String::from_utf8_lossy(identity.data).into_owned(),
            called_station,
            started: now,
            last_seen: now,
            round_trips: 1,
            established: None,
            granted: None,
            charged: 0,
            max_rounds,
            id,
            tls: Box::new(tls),
        };
        let start = packet::build(
            EapCode::Request,
            id,
            Some(method::TLS),
            &TlsSession::start(),
        );
        (conv, start)
    }

    /// Handles the peer's next EAP-Response.
    pub fn on_response(&mut self, eap: &EapPacket<'_>, now: Instant) -> Outcome {
        if eap.identifier != self.id {
            return Outcome::Discard("wrong_eap_identifier");
        }
        self.last_seen = now;
        self.round_trips += 1;
        if self.round_trips > self.max_rounds {
            // hostapd stops at 50 (100 with long chains): a conversation
            // that needs more is broken or hostile, whatever its fragments
            // say.
            return self.reject(
                eap.identifier,
                Failure::new(
                    "max_rounds",
                    format!("more than {} round trips", self.max_rounds),
                ),
            );
        }
        match eap.method {
            Some(method::TLS) => {
                let step = self.tls.on_response(eap.data);
                self.step(step, eap.identifier)
            }
            Some(method::NAK) => {
                let wanted: Vec<&str> = eap.data.iter().map(|&t| method::name(t)).collect();
                self.reject(
                    eap.identifier,
                    Failure::new(
                        "nak",
                        format!("peer refused EAP-TLS and asked for {}", wanted.join(", ")),
                    ),
                )
            }
            Some(other) => self.reject(
                eap.identifier,
                Failure::new(
                    "unexpected_method",
                    format!("response of method {} to EAP-TLS", method::name(other)),
                ),
            ),
            None => self.reject(
                eap.identifier,
                Failure::new("malformed_eap", "not a Response"),
            ),
        }
    }

    /// Octets the conversation buffers: the peer's message being
    /// reassembled and our flight waiting to go out.
    pub fn buffered(&self) -> usize {
        self.tls.buffered()
    }

    /// The failure whose TLS alert went to the peer, if one did (the
    /// conversation can only fail from here).
    pub fn alert_sent(&self) -> Option<&Failure> {
        self.tls.alert_sent()
    }

    /// Resumes after authorization: `Ok` releases the final flight, `Err`
    /// ends the conversation with the given reason.
    pub fn authorized(&mut self, result: Result<Granted, Failure>) -> Outcome {
        let response_id = self.id;
        match result {
            Ok(granted) => {
                self.granted = Some(granted);
                let step = self.tls.authorized();
                self.step(step, response_id)
            }
            Err(failure) => self.reject(response_id, failure),
        }
    }

    fn step(&mut self, step: Step, response_id: u8) -> Outcome {
        match step {
            Step::Send(data) => {
                self.id = response_id.wrapping_add(1);
                Outcome::Challenge(packet::build(
                    EapCode::Request,
                    self.id,
                    Some(method::TLS),
                    &data,
                ))
            }
            Step::Authorize(established) => {
                self.established = Some(established);
                Outcome::Authorize
            }
            Step::Success => {
                Outcome::Accept(packet::build(EapCode::Success, response_id, None, &[]))
            }
            Step::Failure(failure) => self.reject(response_id, failure),
        }
    }

    fn reject(&mut self, response_id: u8, failure: Failure) -> Outcome {
        Outcome::Reject(failure_packet(response_id), failure)
    }
}

/// EAP-Failure carrying the Identifier of the Response it answers.
pub fn failure_packet(response_id: u8) -> Vec<u8> {
    packet::build(EapCode::Failure, response_id, None, &[])
}
