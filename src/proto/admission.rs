//! Admission of one datagram: which client sent it, whether it is a
//! well-formed packet of a code this port serves, whether it is authentic,
//! and whether it is a retransmission.
//!
//! Sans-I/O: bytes, the source address and the current time in; a decision
//! out. Order matters: nothing that fails an authenticity check may touch
//! the duplicate cache (RFC 5080; otherwise a forged packet could poison
//! the answer to a real one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::ClientConfig;
use crate::proto::wire::crypto::{verify_message_authenticator, verify_request_authenticator};
use crate::proto::wire::{BuildError, Code, DecodeError, OwnedPacket, Packet};

use super::clients::ClientTable;
use super::dedup::{DedupCache, DedupKey, Lookup};

/// Which port or transport a packet arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Auth,
    Acct,
    /// RADIUS over TLS: Access, Accounting and Status-Server on one
    /// connection.
    Radsec,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Listener::Auth, Listener::Acct, Listener::Radsec];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Auth => "auth",
            Listener::Acct => "acct",
            Listener::Radsec => "radsec",
        }
    }
}

/// Why a datagram gets no answer. The names are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    UnknownClient,
    Malformed(DecodeError),
    UnsupportedCode,
    BadAuthenticator,
    MissingMessageAuthenticator,
    BadMessageAuthenticator,
    ProxyStateWithoutMessageAuthenticator,
    DuplicateInProgress,
    Overload,
    AccountingNotEnabled,
    /// An EAP response the conversation discards (RFC 3748 §4.1).
    EapDiscarded,
    /// The journal could not store the record: no acknowledgement.
    AccountingNotStored,
    /// The answer does not fit in a RADIUS packet (the request's
    /// Proxy-States, echoed, leave no room).
    Unanswerable(BuildError),
    /// A bug: logged with details where it happened.
    Internal,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownClient => "unknown_client",
            DropReason::Malformed(_) => "malformed",
            DropReason::UnsupportedCode => "unsupported_code",
            DropReason::BadAuthenticator => "bad_authenticator",
            DropReason::MissingMessageAuthenticator => "missing_message_authenticator",
            DropReason::BadMessageAuthenticator => "bad_message_authenticator",
            DropReason::ProxyStateWithoutMessageAuthenticator => {
                "proxy_state_without_message_authenticator"
            }
            DropReason::DuplicateInProgress => "duplicate_in_progress",
            DropReason::Overload => "overload",
            DropReason::AccountingNotEnabled => "accounting_not_enabled",
            DropReason::EapDiscarded => "eap_discarded",
            DropReason::AccountingNotStored => "accounting_not_stored",
            DropReason::Unanswerable(_) => "unanswerable",
            DropReason::Internal => "internal",
        }
    }

    /// Every label value, so the metric families can be pre-populated and
    /// dashboards see zeros rather than missing series.
    pub const ALL: [DropReason; 14] = [
        DropReason::UnknownClient,
        DropReason::Malformed(DecodeError::ShortDatagram(0)),
        DropReason::UnsupportedCode,
        DropReason::BadAuthenticator,
        DropReason::MissingMessageAuthenticator,
        DropReason::BadMessageAuthenticator,
        DropReason::ProxyStateWithoutMessageAuthenticator,
        DropReason::DuplicateInProgress,
        DropReason::Overload,
        DropReason::AccountingNotEnabled,
        DropReason::EapDiscarded,
        DropReason::AccountingNotStored,
        DropReason::Unanswerable(BuildError::PacketTooLong(0)),
        DropReason::Internal,
    ];
}

/// A request that passed admission and must be processed.
#[derive(Debug)]
pub struct Request {
    pub listener: Listener,
    pub client: Arc<ClientConfig>,
    pub source: SocketAddr,
    /// The packet, decoded once, up to its Length (padding removed).
    pub packet: OwnedPacket,
    /// None when the duplicate cache was full.
    pub dedup_key: Option<DedupKey>,
    pub received: Instant,
}

impl Request {
    /// The packet view, without decoding it again.
    pub fn packet(&self) -> Packet<'_> {
        self.packet.view()
    }

    pub fn code(&self) -> Code {
        self.packet().code()
    }

    pub fn identifier(&self) -> u8 {
        self.packet().identifier()
    }
}

#[derive(Debug)]
pub enum Admission {
    /// No answer. `client` and `code` are known when the datagram got that far.
    Drop {
        reason: DropReason,
        client: Option<Arc<ClientConfig>>,
        code: Option<u8>,
    },
    /// A retransmission of an answered request: send the cached reply.
    Resend {
        reply: Arc<[u8]>,
        client: Arc<ClientConfig>,
        code: u8,
    },
    Process(Request),
}

fn serves(listener: Listener, code: Code) -> bool {
    matches!(
        (listener, code),
        (_, Code::StatusServer)
            | (Listener::Auth | Listener::Radsec, Code::AccessRequest)
            | (Listener::Acct | Listener::Radsec, Code::AccountingRequest)
    )
}

/// Checks whether `packet` is authentic for `client`.
fn authenticate(packet: &Packet<'_>, client: &ClientConfig) -> Result<(), DropReason> {
    let has_ma = packet.has_message_authenticator();
    if has_ma && !verify_message_authenticator(packet, &client.secret) {
        return Err(DropReason::BadMessageAuthenticator);
    }
    match packet.code() {
        Code::StatusServer if !has_ma => Err(DropReason::MissingMessageAuthenticator),
        Code::AccessRequest if !has_ma => {
            // RFC 3579 §3.2: EAP without Message-Authenticator is always dropped.
            if client.require_message_authenticator || packet.has_eap_message() {
                Err(DropReason::MissingMessageAuthenticator)
            } else if client.limit_proxy_state && packet.has_proxy_state() {
                Err(DropReason::ProxyStateWithoutMessageAuthenticator)
            } else {
                Ok(())
            }
        }
        Code::AccountingRequest if !verify_request_authenticator(packet, &client.secret) => {
            Err(DropReason::BadAuthenticator)
        }
        _ => Ok(()),
    }
}

/// Decides what to do with one datagram, from whichever client its source
/// address belongs to.
pub fn admit(
    clients: &ClientTable,
    dedup: &DedupCache,
    listener: Listener,
    source: SocketAddr,
    datagram: &[u8],
    now: Instant,
) -> Admission {
    let Some(client) = clients.lookup(source.ip()) else {
        return Admission::Drop {
            reason: DropReason::UnknownClient,
            client: None,
            code: None,
        };
    };
    admit_from(client, dedup, listener, source, datagram, now)
}

/// Decides what to do with one packet from a known client (a RadSec
/// connection's, identified by its certificate).
pub fn admit_from(
    client: &Arc<ClientConfig>,
    dedup: &DedupCache,
    listener: Listener,
    source: SocketAddr,
    datagram: &[u8],
    now: Instant,
) -> Admission {
    let drop = |reason, code| Admission::Drop {
        reason,
        client: Some(client.clone()),
        code,
    };
    let packet = match Packet::decode(datagram) {
        Ok(p) => p,
        Err(e) => return drop(DropReason::Malformed(e), None),
    };
    let code = packet.code_byte();
    if !serves(listener, packet.code()) {
        return drop(DropReason::UnsupportedCode, Some(code));
    }
    if let Err(reason) = authenticate(&packet, client) {
        return drop(reason, Some(code));
    }
    let key = DedupKey {
        source,
        identifier: packet.identifier(),
        authenticator: *packet.authenticator(),
    };
    let dedup_key = match dedup.begin(key, now) {
        Lookup::New => Some(key),
        Lookup::Full => None,
        Lookup::InProgress => return drop(DropReason::DuplicateInProgress, Some(code)),
        Lookup::Cached(reply) => {
            return Admission::Resend {
                reply,
                client: client.clone(),
                code,
            };
        }
    };
    Admission::Process(Request {
        listener,
        client: client.clone(),
        source,
        packet: OwnedPacket::of(&packet),
        dedup_key,
        received: now,
    })
}

#[cfg(test)]
mod tests;
