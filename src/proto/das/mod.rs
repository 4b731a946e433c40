//! Dynamic authorization (RFC 5176): the engine's second role, as a client
//! of the NAS. When an operator asks, a certificate is revoked or the
//! directory changes its mind, the engine picks the live sessions concerned
//! (`target`), and sends each NAS a Disconnect-Request or CoA-Request
//! (`message`), retransmitted, rate-limited and matched to its ACK or NAK
//! (`sender`).
//!
//! Sans-I/O like the rest of the engine: requests go out as octets with a
//! route (a UDP address, or the RadSec connection of a NAS), answers come
//! in as octets, and the time comes in as an argument. It must not open
//! sockets or decide who is revoked (the engine's TLS context does).

pub mod message;
pub mod sender;
pub mod target;

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::wire::crypto::Secret;

/// Which request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Disconnect,
    Coa,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Disconnect => "disconnect",
            Kind::Coa => "coa",
        }
    }
}

/// What asked for a request: a metric label and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `certgate disconnect` through the admin socket.
    Operator,
    /// A CRL refresh or reload revoked the session's certificate or a CA
    /// of its chain.
    Revocation,
    /// Re-authorization found the identity disabled, unknown or with a
    /// changed policy result.
    Directory,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::Operator, Trigger::Revocation, Trigger::Directory];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Operator => "operator",
            Trigger::Revocation => "revocation",
            Trigger::Directory => "directory",
        }
    }
}

/// An attribute that identifies the session to the NAS (RFC 5176 §3).
/// NAS software matches on different ones: hostapd on all given at once,
/// strongSwan on User-Name only, Cisco on Acct-Session-Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identify {
    UserName,
    AcctSessionId,
    CallingStationId,
    NasIdentifier,
    NasIpAddress,
    FramedIpAddress,
}

impl Identify {
    pub const DEFAULT: [Identify; 4] = [
        Identify::UserName,
        Identify::AcctSessionId,
        Identify::CallingStationId,
        Identify::NasIdentifier,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user-name" => Identify::UserName,
            "acct-session-id" => Identify::AcctSessionId,
            "calling-station-id" => Identify::CallingStationId,
            "nas-identifier" => Identify::NasIdentifier,
            "nas-ip-address" => Identify::NasIpAddress,
            "framed-ip-address" => Identify::FramedIpAddress,
            _ => return None,
        })
    }
}

/// How one NAS client takes dynamic authorization requests.
#[derive(Debug, Clone, PartialEq)]
pub struct DasPeer {
    /// False: never send this NAS a request.
    pub enabled: bool,
    /// Where to send; None: the address the session's requests came from,
    /// at `port`. Unused for a RadSec NAS (its own connection carries them).
    pub address: Option<SocketAddr>,
    pub port: u16,
    /// None: the client's RADIUS secret.
    pub secret: Option<Secret>,
    /// The attributes that identify a session, each sent when known.
    pub identify: Vec<Identify>,
    /// Whether the NAS applies CoA-Request with new reply attributes;
    /// without it a changed policy result means Disconnect.
    pub coa: bool,
}

impl Default for DasPeer {
    fn default() -> Self {
        DasPeer {
            enabled: true,
            address: None,
            port: 3799,
            secret: None,
            identify: Identify::DEFAULT.to_vec(),
            coa: false,
        }
    }
}

/// `[das]` as checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DasSettings {
    /// Only log what would be sent.
    pub dry_run: bool,
    /// The first wait for an answer; each retransmission doubles it.
    pub timeout: Duration,
    /// Retransmissions after the first request (UDP only).
    pub retries: u32,
    /// Requests started per second, at most (a burst of as many).
    pub rate: u32,
    /// Disconnect sessions whose certificate a CRL refresh revokes.
    pub on_revocation: bool,
    /// Re-check live sessions against the directory this often; None: off.
    pub reauthorize: Option<Duration>,
    /// Directory re-checks started per second, at most.
    pub reauthorize_rate: u32,
}

impl Default for DasSettings {
    fn default() -> Self {
        DasSettings {
            dry_run: false,
            timeout: Duration::from_secs(2),
            retries: 2,
            rate: 50,
            on_revocation: true,
            reauthorize: None,
            reauthorize_rate: 10,
        }
    }
}

impl DasSettings {
    /// How long a request may wait for its answer in all: every attempt's
    /// wait, doubling (a RadSec request, sent once, waits as long).
    pub fn total_wait(&self) -> Duration {
        (0..=self.retries)
            .map(|i| self.timeout * 2u32.saturating_pow(i))
            .sum()
    }
}
