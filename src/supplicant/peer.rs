//! The peer side of EAP-TLS: a rustls `ClientConnection` driven from
//! memory, answering EAP-Requests with EAP-Responses, and deriving the MSK
//! the server should have sent as MPPE keys.
//!
//! Sans-I/O, for tests and the load generator. It must not be used to
//! authenticate real networks: it trusts whatever `ClientConfig` it gets.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};
use thiserror::Error;

use crate::proto::eap::packet::{self, EapCode, EapPacket, method};
use crate::proto::eap::tls_frag::{self, FLAG_S, Fragmenter, Incoming, Reassembler};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeerError {
    #[error("malformed EAP from the server: {0}")]
    Eap(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("server sent {0}")]
    Unexpected(String),
    #[error("EAP-Failure")]
    Failure,
}

/// What the peer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerStep {
    /// Send this EAP-Response.
    Respond(Vec<u8>),
    /// EAP-Success arrived.
    Success,
}

pub struct EapTlsPeer {
    identity: String,
    conn: ClientConnection,
    inbound: Reassembler,
    outbound: Option<Fragmenter>,
    fragment_size: usize,
}

impl EapTlsPeer {
    pub fn new(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        identity: &str,
        fragment_size: usize,
    ) -> Result<Self, PeerError> {
        Ok(EapTlsPeer {
            identity: identity.to_string(),
            conn: ClientConnection::new(config, server_name)
                .map_err(|e| PeerError::Tls(e.to_string()))?,
            inbound: Reassembler::new(1 << 20),
            outbound: None,
            fragment_size,
        })
    }

    /// The EAP-Response/Identity that opens the conversation (an NAS would
    /// first send EAP-Request/Identity; over RADIUS the peer starts).
    pub fn identity_response(&self, id: u8) -> Vec<u8> {
        packet::build(
            EapCode::Response,
            id,
            Some(method::IDENTITY),
            self.identity.as_bytes(),
        )
    }

    /// Answers one EAP packet from the server.
    pub fn on_request(&mut self, eap: &[u8]) -> Result<PeerStep, PeerError> {
        let p = EapPacket::parse(eap).map_err(|e| PeerError::Eap(e.to_string()))?;
        match (p.code, p.method) {
            (EapCode::Success, _) => Ok(PeerStep::Success),
            (EapCode::Failure, _) => Err(PeerError::Failure),
            (EapCode::Request, Some(method::IDENTITY)) => {
                Ok(PeerStep::Respond(self.identity_response(p.identifier)))
            }
            (EapCode::Request, Some(method::TLS)) => {
                let data = self.on_tls(p.data)?;
                Ok(PeerStep::Respond(packet::build(
                    EapCode::Response,
                    p.identifier,
                    Some(method::TLS),
                    &data,
                )))
            }
            (code, m) => Err(PeerError::Unexpected(format!("{code:?} method {m:?}"))),
        }
    }

    fn on_tls(&mut self, data: &[u8]) -> Result<Vec<u8>, PeerError> {
        if data.first().is_some_and(|f| f & FLAG_S != 0) {
            return self.flight();
        }
        if let Some(out) = &mut self.outbound
            && out.has_more()
        {
            if data != tls_frag::ack() {
                return Err(PeerError::Unexpected("data instead of an ack".into()));
            }
            return out
                .next_fragment()
                .ok_or_else(|| PeerError::Unexpected("no fragment".into()));
        }
        match self
            .inbound
            .feed(data)
            .map_err(|e| PeerError::Eap(e.to_string()))?
        {
            Incoming::NeedMore => Ok(tls_frag::ack().to_vec()),
            Incoming::Ack => Err(PeerError::Unexpected("an ack from the server".into())),
            Incoming::Complete(mut tls) => {
                let mut slice = tls.as_mut_slice() as &[u8];
                while !slice.is_empty() {
                    match self.conn.read_tls(&mut slice) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(PeerError::Tls(e.to_string())),
                    }
                    if let Err(e) = self.conn.process_new_packets() {
                        // Send our alert, like a real supplicant would, but
                        // report the failure.
                        return Err(PeerError::Tls(e.to_string()));
                    }
                }
                let mut sink = [0u8; 64];
                while matches!(std::io::Read::read(&mut self.conn.reader(), &mut sink), Ok(n) if n > 0)
                {
                }
                self.flight()
            }
        }
    }

    /// Our pending TLS output as the first fragment, or an ack if none.
    fn flight(&mut self) -> Result<Vec<u8>, PeerError> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn
                .write_tls(&mut out)
                .map_err(|e| PeerError::Tls(e.to_string()))?;
        }
        if out.is_empty() {
            return Ok(tls_frag::ack().to_vec());
        }
        let mut f = Fragmenter::new(out, self.fragment_size);
        let first = f
            .next_fragment()
            .unwrap_or_else(|| tls_frag::ack().to_vec());
        self.outbound = Some(f);
        Ok(first)
    }

    /// The MSK, once the handshake is done.
    pub fn msk(&self) -> Option<[u8; 64]> {
        let mut material = [0u8; 128];
        match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_2 => self
                .conn
                .export_keying_material(&mut material, b"client EAP encryption", None)
                .ok()?,
            ProtocolVersion::TLSv1_3 => self
                .conn
                .export_keying_material(
                    &mut material,
                    b"EXPORTER_EAP_TLS_Key_Material",
                    Some(&[13]),
                )
                .ok()?,
            _ => return None,
        };
        let mut msk = [0u8; 64];
        msk.copy_from_slice(&material[..64]);
        Some(msk)
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The server's end-entity certificate, once received.
    pub fn server_certificate(&self) -> Option<&[u8]> {
        self.conn.peer_certificates()?.first().map(|c| c.as_ref())
    }

    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }
}
