//! The serial numbers the loaded CRLs revoke, by issuer: what tells the
//! engine that a live session's certificate (or a CA of its chain) was
//! revoked after it authenticated. The handshake's verifier checks new
//! authentications; this looks back at the ones already let in.
//!
//! Built from CRLs already read and verified by the configuration and the
//! TLS layer; it must not read files.

use std::collections::HashSet;

use rustls::pki_types::CertificateRevocationListDer;
use x509_parser::prelude::{CertificateRevocationList, FromDer};

/// (issuer as x509-parser prints it, serial in lower-case hex): the same
/// forms `CertIdentity` records.
#[derive(Debug, Default, Clone)]
pub struct Revoked {
    serials: HashSet<(String, String)>,
}

impl Revoked {
    pub fn from_crls(crls: &[CertificateRevocationListDer<'_>]) -> Self {
        let mut serials = HashSet::new();
        for der in crls {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
                continue;
            };
            let issuer = crl.issuer().to_string();
            for r in crl.iter_revoked_certificates() {
                serials.insert((issuer.clone(), crate::proto::hex::encode(r.raw_serial())));
            }
        }
        Revoked { serials }
    }

    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    pub fn len(&self) -> usize {
        self.serials.len()
    }

    pub fn contains(&self, issuer: &str, serial: &str) -> bool {
        // No allocation on the common path: most sessions are not revoked
        // and the set is usually small.
        !self.serials.is_empty()
            && self
                .serials
                .contains(&(issuer.to_string(), serial.to_string()))
    }
}
