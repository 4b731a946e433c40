//! The EAP-TLS method engine (RFC 5216, RFC 9190): one rustls
//! `ServerConnection` driven from memory, fed with the peer's reassembled
//! EAP-TLS messages and answering with the fragments of its own flights.
//!
//! Sans-I/O and synchronous: Type-Data in, a `Step` out. It knows nothing of
//! RADIUS, EAP Identifiers, State or authorization; the conversation owns
//! those. Authorization sits between `Step::Authorize` and `authorized`, so
//! the final flight (and the TLS 1.3 commitment message) is only released
//! once the directory has answered.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig, ServerConnection};

use super::keys::{self, Keys};
use super::tls_frag::{self, Fragmenter, Incoming, Reassembler};

/// Why a conversation failed, as a metric label and a log detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// What the handshake established, handed to authorization.
#[derive(Debug, Clone)]
pub struct Established {
    pub version: ProtocolVersion,
    pub cipher_suite: String,
    pub resumed: bool,
    /// End-entity certificate first, then the intermediates the peer sent.
    pub peer_chain: Vec<CertificateDer<'static>>,
    pub keys: Keys,
}

/// What to do next with the conversation.
#[derive(Debug)]
pub enum Step {
    /// Send this Type-Data in the next EAP-Request/EAP-TLS.
    Send(Vec<u8>),
    /// The handshake completed: authorize, then call `authorized`.
    Authorize(Box<Established>),
    /// The peer acknowledged the final flight: EAP-Success with these keys.
    Success,
    /// EAP-Failure.
    Failure(Failure),
}

#[derive(Debug)]
enum Phase {
    Handshake,
    /// Handshake done; the final flight waits for authorization.
    Authorizing {
        flight: Vec<u8>,
    },
    /// The final flight is out; the peer's acknowledgement means success.
    Finishing,
    /// A TLS alert is out; whatever the peer answers, the end is failure.
    Failing(Failure),
    Done,
}

pub struct TlsSession {
    conn: ServerConnection,
    inbound: Reassembler,
    outbound: Option<Fragmenter>,
    fragment_size: usize,
    phase: Phase,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn is_ack(type_data: &[u8]) -> bool {
    type_data == tls_frag::ack()
}

impl TlsSession {
    /// `max_message` bounds one reassembled TLS message from the peer;
    /// `fragment_size` bounds the TLS octets per outgoing EAP-TLS packet.
    pub fn new(
        config: Arc<ServerConfig>,
        max_message: usize,
        fragment_size: usize,
    ) -> Result<Self, Failure> {
        let conn =
            ServerConnection::new(config).map_err(|e| Failure::new("tls_setup", e.to_string()))?;
        Ok(TlsSession {
            conn,
            inbound: Reassembler::new(max_message),
            outbound: None,
            fragment_size,
            phase: Phase::Handshake,
            client_random: None,
            server_random: None,
        })
    }

    /// Octets held for the peer's message being reassembled and for our
    /// flight (or the part of it still to send).
    pub fn buffered(&self) -> usize {
        let flight = match &self.phase {
            Phase::Authorizing { flight } => flight.capacity(),
            _ => 0,
        };
        self.inbound.buffered() + self.outbound.as_ref().map_or(0, Fragmenter::buffered) + flight
    }

    /// The failure whose TLS alert went to the peer, while its
    /// acknowledgement is awaited.
    pub fn alert_sent(&self) -> Option<&Failure> {
        match &self.phase {
            Phase::Failing(f) => Some(f),
            _ => None,
        }
    }

    /// Type-Data of the EAP-TLS Start request.
    pub fn start() -> Vec<u8> {
        tls_frag::start().to_vec()
    }

    /// Handles the Type-Data of one EAP-Response/EAP-TLS.
    pub fn on_response(&mut self, type_data: &[u8]) -> Step {
        if let Some(out) = &mut self.outbound
            && out.has_more()
        {
            if !is_ack(type_data) {
                return self.fail(Failure::new(
                    "unexpected_message",
                    "data instead of an acknowledgement of our fragment",
                ));
            }
            return match out.next_fragment() {
                Some(f) => Step::Send(f),
                None => self.fail(Failure::new("internal", "fragment vanished")),
            };
        }
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Handshake => {
                self.phase = Phase::Handshake;
                self.on_handshake_data(type_data)
            }
            Phase::Finishing if is_ack(type_data) => Step::Success,
            Phase::Finishing => {
                // Most likely an alert: the peer refused our final flight.
                let detail = match self.inbound.feed(type_data) {
                    Ok(Incoming::Complete(data)) => match self.feed_tls(&data) {
                        Err(e) => e.detail,
                        Ok(()) => "data instead of the final acknowledgement".into(),
                    },
                    _ => "data instead of the final acknowledgement".into(),
                };
                self.fail(Failure::new("peer_refused", detail))
            }
            Phase::Failing(f) => Step::Failure(f),
            Phase::Authorizing { .. } | Phase::Done => {
                self.fail(Failure::new("unexpected_message", "conversation is over"))
            }
        }
    }

    /// Releases the final flight after a positive authorization; on TLS 1.3
    /// appends the commitment message (one octet 0x00 of application data).
    pub fn authorized(&mut self) -> Step {
        let Phase::Authorizing { mut flight } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return self.fail(Failure::new("internal", "authorized out of turn"));
        };
        if self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3) {
            if let Err(e) = self.conn.writer().write_all(&[0]) {
                return self.fail(Failure::new("internal", e.to_string()));
            }
            if let Err(e) = self.drain_into(&mut flight) {
                return self.fail(e);
            }
        }
        if flight.is_empty() {
            // TLS 1.2 abbreviated handshake: the peer's Finished was last.
            self.phase = Phase::Done;
            return Step::Success;
        }
        self.phase = Phase::Finishing;
        self.send_flight(flight)
    }

    fn on_handshake_data(&mut self, type_data: &[u8]) -> Step {
        let data = match self.inbound.feed(type_data) {
            Ok(Incoming::Complete(data)) => data,
            Ok(Incoming::NeedMore) => return Step::Send(tls_frag::ack().to_vec()),
            Ok(Incoming::Ack) => {
                return self.fail(Failure::new(
                    "unexpected_message",
                    "acknowledgement when no fragment was outstanding",
                ));
            }
            Err(e) => return self.fail(Failure::new("malformed_eap_tls", e.to_string())),
        };
        if self.client_random.is_none() {
            self.client_random = keys::hello_random(&data, 1);
        }
        if let Err(failure) = self.feed_tls(&data) {
            // rustls queues the alert that explains the failure: deliver it
            // before EAP-Failure so the peer can log why.
            let mut alert = Vec::new();
            let _ = self.drain_into(&mut alert);
            if alert.is_empty() {
                return self.fail(failure);
            }
            self.phase = Phase::Failing(failure);
            return self.send_flight(alert);
        }
        let mut flight = Vec::new();
        if let Err(e) = self.drain_into(&mut flight) {
            return self.fail(e);
        }
        if self.server_random.is_none() {
            self.server_random = keys::hello_random(&flight, 2);
        }
        if self.conn.is_handshaking() {
            // Nothing to say yet (the peer split its flight): ask for more.
            return self.send_flight(flight);
        }
        let established = match self.established() {
            Ok(e) => e,
            Err(f) => return self.fail(f),
        };
        self.phase = Phase::Authorizing { flight };
        Step::Authorize(Box::new(established))
    }

    fn established(&mut self) -> Result<Established, Failure> {
        let randoms = self.client_random.zip(self.server_random);
        let keys = keys::derive(&self.conn, randoms)
            .map_err(|e| Failure::new("key_derivation", e.to_string()))?;
        let peer_chain = self
            .conn
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        if peer_chain.is_empty() {
            return Err(Failure::new("no_client_certificate", "peer sent none"));
        }
        Ok(Established {
            version: self
                .conn
                .protocol_version()
                .unwrap_or(ProtocolVersion::Unknown(0)),
            cipher_suite: self
                .conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
            peer_chain,
            keys,
        })
    }

    /// Feeds one complete TLS message to rustls.
    fn feed_tls(&mut self, mut data: &[u8]) -> Result<(), Failure> {
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(Failure::new("tls_handshake", e.to_string())),
            }
            self.conn.process_new_packets().map_err(tls_failure)?;
        }
        // Application data from the peer has no meaning in EAP-TLS; discard.
        let mut sink = [0u8; 256];
        while matches!(self.conn.reader().read(&mut sink), Ok(n) if n > 0) {}
        Ok(())
    }

    fn drain_into(&mut self, out: &mut Vec<u8>) -> Result<(), Failure> {
        while self.conn.wants_write() {
            self.conn
                .write_tls(out)
                .map_err(|e| Failure::new("internal", e.to_string()))?;
        }
        Ok(())
    }

    fn send_flight(&mut self, flight: Vec<u8>) -> Step {
        if flight.is_empty() {
            self.outbound = None;
            return Step::Send(tls_frag::ack().to_vec());
        }
        let mut out = Fragmenter::new(flight, self.fragment_size);
        let first = out.next_fragment();
        self.outbound = Some(out);
        match first {
            Some(f) => Step::Send(f),
            None => self.fail(Failure::new("internal", "empty flight")),
        }
    }

    fn fail(&mut self, failure: Failure) -> Step {
        self.phase = Phase::Done;
        self.outbound = None;
        Step::Failure(failure)
    }
}

/// Names a rustls error for metrics: certificate problems apart from the
/// rest, and the peer's own alerts apart from ours.
fn tls_failure(e: rustls::Error) -> Failure {
    use rustls::Error as E;
    let reason = match &e {
        E::InvalidCertificate(_) | E::NoCertificatesPresented => "certificate_rejected",
        E::AlertReceived(_) => "peer_alert",
        E::PeerIncompatible(_) => "peer_incompatible",
        _ => "tls_handshake",
    };
    Failure::new(reason, e.to_string())
}
