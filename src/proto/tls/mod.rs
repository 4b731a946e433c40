//! TLS for EAP-TLS: turns loaded certificates, keys and CRLs into the
//! rustls server configuration (versions, client-certificate verifier,
//! resumption) and reads identities out of client certificates.
//!
//! No file or socket I/O (the configuration module reads the files) and no
//! connection driving (`eap::tls_session` does that).

pub mod chain_cache;
pub mod health;
pub mod identity;
pub mod revoked;
pub mod session_store;
pub mod ticketer;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use thiserror::Error;

pub use session_store::SessionStore;
pub use verifier::ChainError;

use crate::proto::clock::Clock;
use chain_cache::ChainCache;
use identity::CertIdentity;
use verifier::EapClientVerifier;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("no usable CA certificate")]
    NoRoots,
    #[error("CA certificate {index}: {message}")]
    Root { index: usize, message: String },
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("server certificate or key: {0}")]
    ServerCert(String),
    #[error("minimum version {0} is above maximum {1}")]
    Versions(&'static str, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// Certificates, key and CRLs as loaded from files.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Server certificate first, then its chain.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Vec<CertificateDer<'static>>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            crls: self.crls.clone(),
        }
    }
}

/// The TLS choices of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPolicy {
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Reject when a certificate's issuer has no CRL among those loaded.
    pub crl_missing_rejects: bool,
    /// Reject when a CRL's nextUpdate has passed.
    pub crl_expired_rejects: bool,
    /// The client certificate must carry EKU with clientAuth (not merely
    /// lack a contrary EKU, which is all webpki checks).
    pub require_client_auth_eku: bool,
    pub resumption: bool,
    pub session_lifetime: Duration,
    pub session_cache_entries: usize,
    /// Verified client chains remembered (`chain_cache`); 0 turns it off.
    pub verified_chain_cache: usize,
    /// Session tickets under keys the nodes of a deployment share, so a
    /// resumption works on any node; None: tickets stay on this node.
    pub tickets: Option<ticketer::TicketSecret>,
}

/// The configuration's defaults: a `[tls]` section that names only its
/// files gets exactly this (checked in the config tests). Benches, the
/// unit-test rig and the fuzzer start from it and change what they test.
impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            min_version: TlsVersion::V1_2,
            max_version: TlsVersion::V1_3,
            crl_missing_rejects: true,
            crl_expired_rejects: true,
            require_client_auth_eku: true,
            resumption: true,
            session_lifetime: Duration::from_secs(3600),
            session_cache_entries: 10_000,
            verified_chain_cache: 10_000,
            tickets: None,
        }
    }
}

/// A built TLS configuration; rebuilt on reload and CRL refresh while the
/// session store carries over. Its time is the engine's clock (the session
/// store's): certificate validity and ticket ages follow the time the
/// engine was given.
#[derive(Debug)]
pub struct TlsContext {
    pub server: Arc<ServerConfig>,
    verifier: Arc<EapClientVerifier>,
    clock: Arc<Clock>,
}

impl TlsContext {
    pub fn build(
        material: &TlsMaterial,
        policy: &TlsPolicy,
        sessions: &Arc<SessionStore>,
    ) -> Result<Self, TlsError> {
        if policy.min_version > policy.max_version {
            return Err(TlsError::Versions(
                policy.min_version.as_str(),
                policy.max_version.as_str(),
            ));
        }
        let provider = Arc::new(provider());
        let mut roots = RootCertStore::empty();
        for (index, root) in material.roots.iter().enumerate() {
            roots.add(root.clone()).map_err(|e| TlsError::Root {
                index,
                message: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let verifier = build_verifier(roots, material, policy, &provider)?;
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::V1_2, &rustls::version::TLS12),
            (TlsVersion::V1_3, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (policy.min_version..=policy.max_version).contains(v))
        .map(|(_, v)| v)
        .collect();
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::ServerCert(e.to_string()))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(material.chain.clone(), material.key.clone_key())
            .map_err(|e| TlsError::ServerCert(e.to_string()))?;
        // Our order, not the peer's: see `provider`.
        server.ignore_client_order = true;
        server.time_provider = sessions.clock().clone();
        if policy.resumption {
            server.session_storage = sessions.clone();
            if let Some(secret) = &policy.tickets {
                // TLS 1.3 tickets and TLS 1.2 tickets (when the peer asks
                // for them) become stateless: any node with the secret
                // opens them. TLS 1.2 session ids stay in the local store.
                server.ticketer = Arc::new(ticketer::SharedTicketer::new(
                    secret.clone(),
                    sessions.clock().clone(),
                ));
            }
            // One ticket is enough for EAP: every re-authentication uses one
            // and gets a fresh one, and each ticket costs EAP round-trip room.
            server.send_tls13_tickets = 1;
        } else {
            server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            server.send_tls13_tickets = 0;
        }
        Ok(TlsContext {
            server: Arc::new(server),
            verifier,
            clock: sessions.clock().clone(),
        })
    }

    /// The identity of a client chain the handshake accepted; `recheck`
    /// verifies it again first (a resumed session: CRLs may have changed
    /// since its full handshake).
    pub fn identity(
        &self,
        chain: &[CertificateDer<'static>],
        recheck: bool,
    ) -> Result<Arc<CertIdentity>, ChainError> {
        self.verifier
            .identity(chain, recheck, self.clock.unix_time())
    }
}

/// rustls's aws-lc-rs provider with the SHA-256 cipher suites first. Both
/// TLS versions hash every handshake message and derive every key (and the
/// EAP-TLS MSK) with the suite's hash; SHA-256 runs on the CPU's SHA
/// extensions where SHA-384 has none, and AES-128-GCM is the suite
/// Mozilla's TLS guidance lists first.
pub fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        let common = match suite {
            rustls::SupportedCipherSuite::Tls12(s) => &s.common,
            rustls::SupportedCipherSuite::Tls13(s) => &s.common,
        };
        common.hash_provider.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256
    });
    provider
}

/// The earliest nextUpdate among the CRLs, Unix seconds: past it, an
/// expired CRL must reject, so no cached verification may stand in.
fn crl_horizon(crls: &[CertificateRevocationListDer<'_>]) -> Option<u64> {
    use x509_parser::prelude::{CertificateRevocationList, FromDer};
    crls.iter()
        .filter_map(|der| {
            let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
            crl.next_update().map(|t| t.timestamp().max(0) as u64)
        })
        .min()
}

fn build_verifier(
    roots: RootCertStore,
    material: &TlsMaterial,
    policy: &TlsPolicy,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<EapClientVerifier>, TlsError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(material.crls.iter().cloned());
    if !policy.crl_missing_rejects || material.crls.is_empty() {
        builder = builder.allow_unknown_revocation_status();
    }
    if policy.crl_expired_rejects {
        builder = builder.enforce_revocation_expiration();
    }
    let inner = builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let horizon = if policy.crl_expired_rejects {
        crl_horizon(&material.crls)
    } else {
        None
    };
    let inner: Arc<dyn ClientCertVerifier> = inner;
    Ok(Arc::new(EapClientVerifier::new(
        inner,
        policy.require_client_auth_eku,
        ChainCache::new(policy.verified_chain_cache, horizon),
    )))
}
