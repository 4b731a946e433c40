//! The client-certificate verifier: webpki's chain, validity and CRL checks,
//! plus a stricter EKU rule, with verified chains remembered
//! (`chain_cache`). webpki accepts a certificate with no EKU extension for
//! any purpose; EAP-TLS deployments usually demand that a client
//! certificate say clientAuth explicitly, and rejecting it inside the
//! handshake lets the peer see a proper alert.
//!
//! It must not look at identities or authorization beyond reading them out
//! of the certificate for the cache.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme,
    client::danger::HandshakeSignatureValid,
};
use thiserror::Error;
use x509_parser::oid_registry::OID_X509_EXT_EXTENDED_KEY_USAGE;
use x509_parser::prelude::{ExtendedKeyUsage, FromDer, X509Certificate};

use super::chain_cache::{self, ChainCache, Verified};
use super::identity::{self, CertIdentity, IdentityError};

#[derive(Debug, Error)]
pub enum ChainError {
    #[error("no certificate")]
    Empty,
    #[error("{0}")]
    Rejected(Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

#[derive(Debug)]
pub struct EapClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    require_client_auth_eku: bool,
    cache: ChainCache,
}

/// Whether the certificate has an EKU extension listing clientAuth.
fn has_client_auth_eku(cert: &X509Certificate<'_>) -> bool {
    identity::extension(cert, &OID_X509_EXT_EXTENDED_KEY_USAGE)
        .and_then(|v| ExtendedKeyUsage::from_der(v).ok())
        .is_some_and(|(_, eku)| eku.client_auth)
}

fn unix(t: x509_parser::time::ASN1Time) -> u64 {
    t.timestamp().max(0) as u64
}

impl EapClientVerifier {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        require_client_auth_eku: bool,
        cache: ChainCache,
    ) -> Self {
        EapClientVerifier {
            inner,
            require_client_auth_eku,
            cache,
        }
    }

    /// The full check: webpki, then EKU. Returns what the cache keeps, or
    /// None when the chain is good but cannot be cached (an intermediate
    /// webpki took and x509-parser does not).
    fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(Arc<CertIdentity>, Option<Verified>), Error> {
        let der = CertificateDer::from(end_entity);
        self.inner.verify_client_cert(&der, intermediates, now)?;
        let cert = identity::parse(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.require_client_auth_eku && !has_client_auth_eku(&cert) {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        let identity = Arc::new(CertIdentity::from_cert(&cert, end_entity));
        let mut from = unix(cert.validity().not_before);
        let mut until = unix(cert.validity().not_after);
        for der in intermediates {
            let Ok(c) = identity::parse(der) else {
                return Ok((identity, None));
            };
            from = from.max(unix(c.validity().not_before));
            until = until.min(unix(c.validity().not_after));
        }
        let verified = Verified::new(identity.clone(), from, until);
        Ok((identity, Some(verified)))
    }

    fn verify_cached(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<CertIdentity>, Error> {
        let key = chain_cache::key(end_entity, intermediates);
        let secs = now.as_secs();
        if let Some(hit) = self.cache.get(&key, secs) {
            return Ok(hit.identity);
        }
        let (identity, verified) = self.verify(end_entity, intermediates, now)?;
        if let Some(v) = verified {
            self.cache.insert(key, v, secs);
        }
        Ok(identity)
    }

    /// The identity of a chain the handshake has verified. With `recheck`
    /// (a resumed session: CRLs may have changed since its full handshake)
    /// the chain is verified again, which the cache answers when this
    /// context verified it before.
    pub fn identity(
        &self,
        chain: &[CertificateDer<'_>],
        recheck: bool,
        now: UnixTime,
    ) -> Result<Arc<CertIdentity>, ChainError> {
        let (end_entity, intermediates) = chain.split_first().ok_or(ChainError::Empty)?;
        if recheck || self.cache.enabled() {
            // Without recheck this is a cache hit: the handshake just
            // verified the chain through `verify_client_cert`.
            return self
                .verify_cached(end_entity, intermediates, now)
                .map_err(ChainError::Rejected);
        }
        Ok(Arc::new(CertIdentity::from_der(end_entity)?))
    }
}

impl ClientCertVerifier for EapClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify_cached(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
