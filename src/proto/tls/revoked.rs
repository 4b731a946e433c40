//! The serial numbers the loaded CRLs revoke, by issuer: what tells the
//! engine that a live session's certificate (or a CA of its chain) was
//! revoked after it authenticated. The handshake's verifier checks new
//! authentications; this looks back at the ones already let in.
//!
//! Built from CRLs already read and verified by the configuration and the
//! TLS layer; it must not read files.

use std::collections::{HashMap, HashSet};

use rustls::pki_types::CertificateRevocationListDer;
use x509_parser::prelude::{CertificateRevocationList, FromDer};

/// Issuer (as x509-parser prints it) → serials (lower-case hex): the same
/// forms `CertIdentity` records. Looked up by `&str`, without allocating:
/// every live session is checked after each refresh.
#[derive(Debug, Default, Clone)]
pub struct Revoked {
    by_issuer: HashMap<String, HashSet<String>>,
}

impl Revoked {
    pub fn from_crls(crls: &[CertificateRevocationListDer<'_>]) -> Self {
        let mut by_issuer: HashMap<String, HashSet<String>> = HashMap::new();
        for der in crls {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
                continue;
            };
            let serials = by_issuer.entry(crl.issuer().to_string()).or_default();
            for r in crl.iter_revoked_certificates() {
                serials.insert(crate::proto::hex::encode(r.raw_serial()));
            }
        }
        by_issuer.retain(|_, s| !s.is_empty());
        Revoked { by_issuer }
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    pub fn contains(&self, issuer: &str, serial: &str) -> bool {
        self.by_issuer
            .get(issuer)
            .is_some_and(|serials| serials.contains(serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{ClientOptions, KeyType, Pki};
    use crate::proto::tls::identity::CertIdentity;
    use rustls::pki_types::pem::PemObject;

    /// The CRL's entries match the issuer and serial a certificate's
    /// identity records, and nothing else.
    #[test]
    fn crl_entries_match_certificate_identities() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(dir.path());
        pki.init("radius.example.org", KeyType::EcdsaP256)
            .expect("init");
        for name in ["a@x", "b@x"] {
            pki.issue_client(name, &ClientOptions::default())
                .expect("issue");
        }
        pki.revoke("a@x").expect("revoke");
        let crls = crate::config::load_crls(&[pki.path("crl.pem")]).expect("crl");
        let revoked = Revoked::from_crls(&crls);
        let id = |name: &str| {
            let path = dir.path().join(format!("clients/{name}.pem"));
            let der = rustls::pki_types::CertificateDer::from_pem_file(&path).expect("der");
            CertIdentity::from_der(&der).expect("identity")
        };
        let (a, b) = (id("a@x"), id("b@x"));
        assert!(revoked.contains(&a.issuer, &a.serial));
        assert!(!revoked.contains(&b.issuer, &b.serial));
        assert!(!revoked.contains("CN=someone else", &a.serial));
        assert!(Revoked::from_crls(&[]).is_empty());
    }
}
