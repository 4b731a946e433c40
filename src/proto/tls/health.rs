//! What an operator alerts on before it breaks: when the server's
//! certificates and the configured CAs expire, and when each CRL's
//! nextUpdate passes (after it, `crl_expired = "reject"` refuses every
//! client of that CA). Read from the material a configuration loaded; the
//! engine turns the deadlines into seconds-from-now gauges.
//!
//! Parsing only: it must not read files or clocks.

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

use super::TlsMaterial;

/// One deadline: what (`kind` certificate or crl), its role in the
/// configuration, who (subject or issuer), and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub kind: &'static str,
    pub role: &'static str,
    pub name: String,
    pub at: i64,
}

fn certificates(role: &'static str, certs: &[CertificateDer<'_>], out: &mut Vec<Deadline>) {
    for der in certs {
        if let Ok((_, c)) = X509Certificate::from_der(der) {
            out.push(Deadline {
                kind: "certificate",
                role,
                name: c.subject().to_string(),
                at: c.validity().not_after.timestamp(),
            });
        }
    }
}

fn crls(role: &'static str, crls: &[CertificateRevocationListDer<'_>], out: &mut Vec<Deadline>) {
    for der in crls {
        if let Ok((_, crl)) = CertificateRevocationList::from_der(der)
            && let Some(next) = crl.next_update()
        {
            out.push(Deadline {
                kind: "crl",
                role,
                name: crl.issuer().to_string(),
                at: next.timestamp(),
            });
        }
    }
}

/// The deadlines of one TLS material: the server certificate (the first
/// of its chain; the rest as intermediates), the CAs, the CRLs. `prefix`
/// tells EAP-TLS (`eap`) from RadSec (`radsec`).
pub fn deadlines(prefix: &'static str, m: &TlsMaterial, out: &mut Vec<Deadline>) {
    let (server, ca, crl) = match prefix {
        "radsec" => ("radsec_server", "radsec_ca", "radsec_crl"),
        _ => ("eap_server", "eap_ca", "eap_crl"),
    };
    certificates(server, &m.chain[..m.chain.len().min(1)], out);
    certificates(ca, &m.roots, out);
    crls(crl, &m.crls, out);
}
