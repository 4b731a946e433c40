//! TLS for EAP-TLS: turns loaded certificates, keys and CRLs into the
//! rustls server configuration (versions, client-certificate verifier,
//! resumption) and reads identities out of client certificates.
//!
//! No file or socket I/O (the configuration module reads the files) and no
//! connection driving (`eap::tls_session` does that).

pub mod identity;
pub mod session_store;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use thiserror::Error;

pub use session_store::SessionStore;

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
}

/// A built TLS configuration; rebuilt on reload and CRL refresh while the
/// session store carries over.
#[derive(Debug)]
pub struct TlsContext {
    pub server: Arc<ServerConfig>,
    pub verifier: Arc<dyn ClientCertVerifier>,
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
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
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
        if policy.resumption {
            server.session_storage = sessions.clone();
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
        })
    }

    /// Checks a certificate chain again (CRLs may have changed since a
    /// resumed session's full handshake).
    pub fn recheck(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err("no certificate".into());
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn build_verifier(
    roots: RootCertStore,
    material: &TlsMaterial,
    policy: &TlsPolicy,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
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
    Ok(Arc::new(verifier::EapClientVerifier::new(
        inner,
        policy.require_client_auth_eku,
    )))
}
