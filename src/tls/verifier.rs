//! The client-certificate verifier: webpki's chain, validity and CRL checks,
//! plus a stricter EKU rule. webpki accepts a certificate with no EKU
//! extension for any purpose; EAP-TLS deployments usually demand that a
//! client certificate say clientAuth explicitly, and rejecting it inside the
//! handshake lets the peer see a proper alert.
//!
//! It must not look at identities or authorization.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme,
    client::danger::HandshakeSignatureValid,
};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug)]
pub struct EapClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    require_client_auth_eku: bool,
}

impl EapClientVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>, require_client_auth_eku: bool) -> Self {
        EapClientVerifier {
            inner,
            require_client_auth_eku,
        }
    }
}

/// Whether the certificate has an EKU extension listing clientAuth.
fn has_client_auth_eku(der: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
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
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.require_client_auth_eku && !has_client_auth_eku(end_entity) {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        Ok(verified)
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
