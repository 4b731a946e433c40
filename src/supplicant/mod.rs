//! A RADIUS-speaking EAP-TLS test supplicant: plays NAS and peer at once,
//! runs whole conversations against a server, checks the MPPE keys in the
//! Access-Accept against its own MSK, and counts round trips. Used by the
//! integration tests and the load generator.
//!
//! `peer` is the sans-I/O EAP-TLS peer; `exchange` builds Access-Requests
//! and checks replies; `transport` carries them over UDP or RadSec; this
//! module drives a conversation.

pub mod exchange;
pub mod peer;
pub mod transport;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use thiserror::Error;

use crate::proto::wire::Code;
use crate::proto::wire::crypto::Secret;

pub use exchange::{Exchange, Reply};
pub use peer::{EapTlsPeer, PeerError, PeerStep};
pub use transport::{RadsecLink, Transport};

#[derive(Debug, Error)]
pub enum SupplicantError {
    #[error("{0}")]
    Setup(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("reply: {0}")]
    Reply(String),
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// Which TLS versions the supplicant offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Tls12,
    Tls13,
    Both,
}

/// Builds a rustls client configuration from PEM files. `resumption`
/// false makes every handshake a full one.
pub fn client_config(
    ca: &Path,
    certificate: &Path,
    key: &Path,
    versions: Versions,
    resumption: bool,
) -> Result<Arc<ClientConfig>, SupplicantError> {
    client_config_with(ca, certificate, key, versions, resumption, true)
}

/// `client_config`; `post_quantum = false` offers classic key exchange
/// only (X25519, P-256, P-384), as OpenSSL 3.0-based supplicants do, so a
/// server without the hybrid group is not sent a share it must refuse.
pub fn client_config_with(
    ca: &Path,
    certificate: &Path,
    key: &Path,
    versions: Versions,
    resumption: bool,
    post_quantum: bool,
) -> Result<Arc<ClientConfig>, SupplicantError> {
    let setup = |what: &Path, e: &dyn std::fmt::Display| {
        SupplicantError::Setup(format!("{}: {e}", what.display()))
    };
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| setup(ca, &e))? {
        roots
            .add(c.map_err(|e| setup(ca, &e))?)
            .map_err(|e| setup(ca, &e))?;
    }
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| setup(certificate, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(certificate, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| setup(key, &e))?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !post_quantum {
        provider
            .kx_groups
            .retain(|g| g.name() != rustls::NamedGroup::X25519MLKEM768);
    }
    let provider = Arc::new(provider);
    let v: &[&'static rustls::SupportedProtocolVersion] = match versions {
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(v)
        .map_err(|e| SupplicantError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| SupplicantError::Setup(e.to_string()))?;
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// One supplicant identity with its TLS configuration.
#[derive(Clone)]
pub struct Supplicant {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub identity: String,
    pub fragment_size: usize,
    pub calling_station: Option<String>,
    pub framed_mtu: Option<u32>,
    /// Sent in every request as a proxy would; see `Exchange::proxy_state`.
    pub proxy_state: Option<Vec<u8>>,
    /// Per-attempt reply timeout and attempts per request.
    pub timeout: Duration,
    pub attempts: u32,
    /// See `Exchange::message_authenticator_first` (default true).
    pub message_authenticator_first: bool,
}

/// How a conversation ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Code,
    pub round_trips: u32,
    /// Whether MS-MPPE-Recv/Send-Key equal MSK[0..32] / MSK[32..64].
    pub mppe_keys_match: bool,
    pub resumed: bool,
    pub version: Option<ProtocolVersion>,
    /// The Access-Accept or Access-Reject attributes, in order.
    pub attributes: Vec<(u8, Vec<u8>)>,
    /// The peer's own error, when it gave up (e.g. it refused our CA).
    pub peer_error: Option<PeerError>,
}

impl Supplicant {
    pub fn new(config: Arc<ClientConfig>, identity: &str) -> Self {
        Supplicant {
            config,
            server_name: ServerName::try_from("radius.example.org")
                .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())),
            identity: identity.to_string(),
            fragment_size: 1000,
            calling_station: Some("02-00-00-00-00-01".into()),
            framed_mtu: None,
            proxy_state: None,
            timeout: Duration::from_secs(2),
            attempts: 3,
            message_authenticator_first: true,
        }
    }

    /// A fresh peer and NAS-side exchange for one conversation.
    fn begin(&self, secret: &Secret) -> Result<(EapTlsPeer, Exchange), SupplicantError> {
        let peer = EapTlsPeer::new(
            self.config.clone(),
            self.server_name.clone(),
            &self.identity,
            self.fragment_size,
        )?;
        let mut ex = Exchange::new(secret.clone(), &self.identity);
        ex.message_authenticator_first = self.message_authenticator_first;
        ex.calling_station = self.calling_station.clone();
        ex.framed_mtu = self.framed_mtu;
        ex.proxy_state = self.proxy_state.clone();
        Ok((peer, ex))
    }

    /// Runs one whole conversation over `transport`.
    pub async fn authenticate(
        &self,
        transport: &Transport,
        secret: &Secret,
    ) -> Result<Outcome, SupplicantError> {
        let (mut peer, mut ex) = self.begin(secret)?;
        let mut eap = peer.identity_response(rand::random());
        loop {
            let reply = self.round_trip(transport, &eap, &mut ex).await?;
            match reply.code {
                Code::AccessChallenge => match peer.on_request(&reply.eap) {
                    Ok(PeerStep::Respond(next)) => eap = next,
                    Ok(PeerStep::Success) => {
                        return Err(SupplicantError::Reply("EAP-Success in a challenge".into()));
                    }
                    Err(e) => {
                        // Like a real supplicant: acknowledge the server's
                        // last message (often an alert) to hear its verdict.
                        let id = reply.eap.get(1).copied().unwrap_or(0);
                        let ack = crate::proto::eap::packet::build(
                            crate::proto::eap::EapCode::Response,
                            id,
                            Some(crate::proto::eap::packet::method::TLS),
                            &crate::proto::eap::tls_frag::ack(),
                        );
                        let last = self.round_trip(transport, &ack, &mut ex).await?;
                        return Ok(self.outcome(last.code, &ex, &peer, last, Some(e)));
                    }
                },
                Code::AccessAccept => {
                    let step = peer.on_request(&reply.eap);
                    let peer_error = step.err();
                    return Ok(self.outcome(Code::AccessAccept, &ex, &peer, reply, peer_error));
                }
                code => return Ok(self.outcome(code, &ex, &peer, reply, None)),
            }
        }
    }

    /// Starts a conversation and abandons it after `round_trips` requests
    /// (2: Identity, then the ClientHello, leaving the server holding a
    /// handshake in progress). Returns the code of the last reply.
    pub async fn abandon_after(
        &self,
        transport: &Transport,
        secret: &Secret,
        round_trips: u32,
    ) -> Result<Code, SupplicantError> {
        let (mut peer, mut ex) = self.begin(secret)?;
        let mut eap = peer.identity_response(rand::random());
        let mut code = Code::AccessRequest;
        for _ in 0..round_trips.max(1) {
            let reply = self.round_trip(transport, &eap, &mut ex).await?;
            code = reply.code;
            if code != Code::AccessChallenge {
                break;
            }
            match peer.on_request(&reply.eap)? {
                PeerStep::Respond(next) => eap = next,
                PeerStep::Success => break,
            }
        }
        Ok(code)
    }

    /// One Access-Request carrying `eap`, and its checked reply.
    async fn round_trip(
        &self,
        transport: &Transport,
        eap: &[u8],
        ex: &mut Exchange,
    ) -> Result<Reply, SupplicantError> {
        transport
            .round_trip(
                self.timeout,
                self.attempts,
                ex,
                |ex, id| ex.request_with_id(id, eap),
                |ex, bytes| ex.accept(bytes),
            )
            .await
    }

    fn outcome(
        &self,
        code: Code,
        ex: &Exchange,
        peer: &EapTlsPeer,
        reply: Reply,
        peer_error: Option<PeerError>,
    ) -> Outcome {
        let mppe_keys_match = match (peer.msk(), &reply.mppe_recv, &reply.mppe_send) {
            (Some(msk), Some(recv), Some(send)) => {
                recv.as_slice() == &msk[..32] && send.as_slice() == &msk[32..]
            }
            _ => false,
        };
        Outcome {
            code,
            round_trips: ex.round_trips(),
            mppe_keys_match,
            resumed: peer.resumed(),
            version: peer.protocol_version(),
            attributes: reply.attributes,
            peer_error,
        }
    }
}
