//! Who a client certificate names (RFC 5280 §4.1.2.6, §4.2.1.6): subject
//! CN and OUs, SAN email, UPN (otherName 1.3.6.1.4.1.311.20.2.3), DNS and
//! URI, plus serial, issuer and SHA-256 fingerprint for logs and policy;
//! and the choice of one authenticated identity by a configured order.
//!
//! Parsing only: the chain was already verified by the TLS layer. It must
//! not decide authorization.

use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_parser::der_parser::asn1_rs::Any;
use x509_parser::der_parser::oid;
use x509_parser::nom::Parser;
use x509_parser::oid_registry::{OID_X509_EXT_SUBJECT_ALT_NAME, Oid};
use x509_parser::prelude::{
    FromDer, GeneralName, SubjectAlternativeName, X509Certificate, X509CertificateParser,
};

/// Microsoft's User Principal Name otherName.
const OID_UPN: Oid<'static> = oid!(1.3.6.1.4.1.311.20.2.3);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    #[error("certificate does not parse: {0}")]
    Parse(String),
    #[error("certificate has none of the identity sources {0}")]
    NoIdentity(String),
    #[error(
        "certificate has {count} different {from} values ({values}): it must name one identity"
    )]
    Ambiguous {
        from: &'static str,
        count: usize,
        values: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    Upn,
    Email,
    Cn,
    Dns,
    Uri,
    /// URI SANs that start with this prefix (ASCII case aside), the
    /// identity being the rest: `uri:IntuneDeviceId://` gives an Intune
    /// device certificate's device id.
    UriPrefix(String),
    /// DirName SANs, as distinguished names.
    Dirname,
}

impl IdentitySource {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "upn" => IdentitySource::Upn,
            "email" => IdentitySource::Email,
            "cn" => IdentitySource::Cn,
            "dns" => IdentitySource::Dns,
            "uri" => IdentitySource::Uri,
            "dirname" => IdentitySource::Dirname,
            _ => match s.strip_prefix("uri:") {
                Some(prefix) if !prefix.is_empty() => IdentitySource::UriPrefix(prefix.to_string()),
                _ => return None,
            },
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            IdentitySource::Upn => "upn",
            IdentitySource::Email => "email",
            IdentitySource::Cn => "cn",
            IdentitySource::Dns => "dns",
            IdentitySource::Uri | IdentitySource::UriPrefix(_) => "uri",
            IdentitySource::Dirname => "dirname",
        }
    }
}

/// The fields of a client certificate that policy and logs use (and the
/// session records keep: `accounting::auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CertIdentity {
    pub subject: String,
    /// Every subject CN, in order (normally one).
    pub cns: Vec<String>,
    pub ous: Vec<String>,
    pub emails: Vec<String>,
    pub upns: Vec<String>,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    /// Hex, colon-free, lower case.
    pub serial: String,
    pub issuer: String,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
    /// SHA-1 of the DER certificate, hex (the thumbprint Windows shows).
    pub sha1: String,
    /// DirName SANs, as distinguished names.
    pub dirnames: Vec<String>,
    /// The issuer as Active Directory writes it in altSecurityIdentities:
    /// its RDNs in certificate order, joined by ",".
    pub issuer_ad: String,
}

/// The UTF8String inside a UPN otherName's `[0] EXPLICIT` value.
fn upn_value(explicit: &[u8]) -> Option<String> {
    let (_, tagged) = Any::from_der(explicit).ok()?;
    let (_, inner) = Any::from_der(tagged.data).ok()?;
    std::str::from_utf8(inner.data).ok().map(str::to_string)
}

/// Parses a certificate without decoding every extension: only the ones
/// certgate reads (SAN here, EKU in the verifier) are decoded, on demand.
pub fn parse(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map(|(_, cert)| cert)
        .map_err(|e| IdentityError::Parse(e.to_string()))
}

/// The raw value of the extension `oid`, if present.
pub fn extension<'a>(cert: &'a X509Certificate<'_>, oid: &Oid<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find(|e| &e.oid == oid)
        .map(|e| e.value)
}

impl CertIdentity {
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        Ok(Self::from_cert(&parse(der)?, der))
    }

    /// `der` is the certificate `cert` was parsed from.
    pub fn from_cert(cert: &X509Certificate<'_>, der: &[u8]) -> Self {
        let subject = cert.subject();
        let mut id = CertIdentity {
            subject: subject.to_string(),
            cns: subject
                .iter_common_name()
                .filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect(),
            ous: subject
                .iter_organizational_unit()
                .filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect(),
            serial: crate::proto::hex::encode(cert.raw_serial()),
            issuer: cert.issuer().to_string(),
            sha256: crate::proto::hex::encode(&Sha256::digest(der)),
            sha1: crate::proto::hex::encode(&sha1::Sha1::digest(der)),
            issuer_ad: cert
                .issuer()
                .iter()
                .map(|rdn| {
                    rdn.iter()
                        .map(|atv| {
                            let name = x509_parser::objects::oid2abbrev(
                                atv.attr_type(),
                                x509_parser::objects::oid_registry(),
                            )
                            .map_or_else(|_| atv.attr_type().to_id_string(), str::to_string);
                            format!("{name}={}", atv.as_str().unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                        .join("+")
                })
                .collect::<Vec<_>>()
                .join(","),
            ..CertIdentity::default()
        };
        let san = extension(cert, &OID_X509_EXT_SUBJECT_ALT_NAME)
            .and_then(|v| SubjectAlternativeName::from_der(v).ok());
        if let Some((_, san)) = san {
            for name in &san.general_names {
                match name {
                    GeneralName::RFC822Name(s) => id.emails.push((*s).to_string()),
                    GeneralName::DNSName(s) => id.dns.push((*s).to_string()),
                    GeneralName::URI(s) => id.uris.push((*s).to_string()),
                    GeneralName::DirectoryName(n) => id.dirnames.push(n.to_string()),
                    GeneralName::OtherName(oid, value) if *oid == OID_UPN => {
                        if let Some(upn) = upn_value(value) {
                            id.upns.push(upn);
                        }
                    }
                    _ => {}
                }
            }
        }
        id
    }

    /// The strong mapping KB5014754 calls X509IssuerSerialNumber:
    /// `X509:<I>issuer<SR>serial`, the serial's octets in reverse order
    /// (as Active Directory stores it), upper-case hex.
    pub fn issuer_serial_ad(&self) -> String {
        let bytes = crate::proto::hex::decode(&self.serial).unwrap_or_default();
        let reversed: Vec<u8> = bytes.into_iter().rev().collect();
        format!(
            "X509:<I>{}<SR>{}",
            self.issuer_ad,
            crate::proto::hex::encode(&reversed).to_ascii_uppercase()
        )
    }

    /// The strong mappings of KB5014754 that name this certificate:
    /// issuer and serial, and the SHA-1 thumbprint (X509SHA1PublicKey).
    pub fn strong_mappings(&self) -> [String; 2] {
        [
            self.issuer_serial_ad(),
            format!("X509:<SHA1-PUKEY>{}", self.sha1.to_ascii_uppercase()),
        ]
    }

    /// Certificate facts for directory filter templates (first values of
    /// multi-valued ones; empty when absent).
    pub fn facts(&self) -> [(&'static str, String); 7] {
        let first = |v: &[String]| v.first().cloned().unwrap_or_default();
        [
            ("serial", self.serial.clone()),
            ("issuer", self.issuer.clone()),
            ("issuer_serial_ad", self.issuer_serial_ad()),
            ("sha1", self.sha1.clone()),
            ("sha256", self.sha256.clone()),
            ("san_uri", first(&self.uris)),
            ("san_dns", first(&self.dns)),
        ]
    }

    /// The subject's first CN.
    pub fn cn(&self) -> Option<&str> {
        self.cns.first().map(String::as_str)
    }

    /// The values of one identity source (for a URI prefix, what follows
    /// the prefix).
    pub fn values(&self, source: &IdentitySource) -> Vec<&str> {
        fn all(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        match source {
            IdentitySource::Upn => all(&self.upns),
            IdentitySource::Email => all(&self.emails),
            IdentitySource::Cn => all(&self.cns),
            IdentitySource::Dns => all(&self.dns),
            IdentitySource::Uri => all(&self.uris),
            IdentitySource::Dirname => all(&self.dirnames),
            IdentitySource::UriPrefix(prefix) => self
                .uris
                .iter()
                .filter(|u| {
                    u.len() >= prefix.len()
                        && u.is_char_boundary(prefix.len())
                        && u[..prefix.len()].eq_ignore_ascii_case(prefix)
                })
                .map(|u| &u[prefix.len()..])
                .collect(),
        }
    }

    /// The identity from the first source in `order` that has one, with
    /// where it came from. A source with several different values (two
    /// UPNs, two emails) names no single identity: that is an error, not
    /// a guess at the first.
    pub fn pick<'a>(
        &'a self,
        order: &'a [IdentitySource],
    ) -> Result<(&'a IdentitySource, &'a str), IdentityError> {
        for source in order {
            let values: Vec<&str> = self
                .values(source)
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect();
            let Some(first) = values.first() else {
                continue;
            };
            let different = values
                .iter()
                .filter(|v| !v.eq_ignore_ascii_case(first))
                .count();
            if different > 0 {
                return Err(IdentityError::Ambiguous {
                    from: source.as_str(),
                    count: different + 1,
                    values: values
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            return Ok((source, first));
        }
        let names: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
        Err(IdentityError::NoIdentity(names.join(", ")))
    }
}

/// How the outer EAP identity must relate to the certificate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The outer identity equals the certificate identity (ignoring case).
    Exact,
    /// Only the realms (after '@') must agree; an outer identity without a
    /// realm is accepted.
    Realm,
    /// Anything goes: anonymous outer identities (RFC 9190 §2.1.7).
    Any,
}

impl Binding {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "exact" => Binding::Exact,
            "realm" => Binding::Realm,
            "any" => Binding::Any,
            _ => return None,
        })
    }

    /// Checks the binding; Err says why it fails.
    pub fn check(self, outer: &str, identity: &str) -> Result<(), String> {
        let realm = |s: &str| s.rsplit_once('@').map(|(_, r)| r.to_ascii_lowercase());
        match self {
            Binding::Any => Ok(()),
            Binding::Exact if outer.eq_ignore_ascii_case(identity) => Ok(()),
            Binding::Exact => Err(format!(
                "outer identity {outer:?} is not the certificate identity {identity:?}"
            )),
            Binding::Realm => match realm(outer) {
                None => Ok(()),
                Some(r) if Some(&r) == realm(identity).as_ref() => Ok(()),
                Some(r) => Err(format!(
                    "outer realm {r:?} is not the realm of certificate identity {identity:?}"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(sans: Vec<SanType>, cn: &str) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "Staff");
        p.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        p.self_signed(&key).expect("cert").der().to_vec()
    }

    /// Intune puts the device id in a URI SAN; AD's strong mapping names
    /// issuer and serial with the serial's octets reversed.
    #[test]
    fn uri_prefixes_dirnames_and_strong_mappings() {
        let der = cert(
            vec![
                SanType::URI("IntuneDeviceId://5f2b-77".try_into().expect("ia5")),
                SanType::URI("urn:other".try_into().expect("ia5")),
            ],
            "laptop",
        );
        let id = CertIdentity::from_der(&der).expect("parses");
        let intune = [IdentitySource::parse("uri:intunedeviceid://").expect("source")];
        assert_eq!(id.pick(&intune).map(|(_, v)| v), Ok("5f2b-77"));
        let none = [IdentitySource::parse("uri:MS-Organization-Access://").expect("source")];
        assert!(id.pick(&none).is_err());
        // rcgen writes no DirName SAN; the source reads the parsed list.
        let with_dirname = CertIdentity {
            dirnames: vec!["CN=device 7".into()],
            ..CertIdentity::default()
        };
        assert_eq!(
            with_dirname
                .pick(&[IdentitySource::Dirname])
                .map(|(_, v)| v),
            Ok("CN=device 7")
        );
        assert_eq!(IdentitySource::parse("uri:"), None);
        let fake = CertIdentity {
            serial: "2b0000000000000012".into(),
            issuer_ad: "DC=com,DC=contoso,CN=CONTOSO-DC-CA".into(),
            sha1: "ab01".into(),
            ..CertIdentity::default()
        };
        assert_eq!(
            fake.strong_mappings(),
            [
                "X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>12000000000000002B".to_string(),
                "X509:<SHA1-PUKEY>AB01".to_string()
            ]
        );
        assert_eq!(id.sha1.len(), 40);
        assert_eq!(
            id.issuer_ad, "CN=laptop,OU=Staff",
            "self-signed: its own subject"
        );
    }

    #[test]
    fn reads_every_source_and_picks_by_order() {
        let der = cert(
            vec![
                SanType::Rfc822Name("alice@example.org".try_into().expect("ia5")),
                SanType::OtherName((
                    vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
                    "alice.upn@corp.example".into(),
                )),
                SanType::DnsName("laptop.example.org".try_into().expect("ia5")),
                SanType::URI("urn:device:42".try_into().expect("ia5")),
            ],
            "Alice",
        );
        let id = CertIdentity::from_der(&der).expect("parses");
        assert_eq!(id.upns, ["alice.upn@corp.example"]);
        assert_eq!(id.emails, ["alice@example.org"]);
        assert_eq!(id.dns, ["laptop.example.org"]);
        assert_eq!(id.uris, ["urn:device:42"]);
        assert_eq!(id.cn(), Some("Alice"));
        assert_eq!(id.ous, ["Staff"]);
        assert_eq!(id.sha256.len(), 64);
        use IdentitySource::*;
        assert_eq!(
            id.pick(&[Upn, Email, Cn]),
            Ok((&Upn, "alice.upn@corp.example"))
        );
        assert_eq!(id.pick(&[Email, Cn]), Ok((&Email, "alice@example.org")));
        let bare = CertIdentity::from_der(&cert(vec![], "bob")).expect("parses");
        assert_eq!(bare.pick(&[Upn, Email, Cn]), Ok((&Cn, "bob")));
        assert!(bare.pick(&[Upn, Email]).is_err());
        assert!(CertIdentity::from_der(b"junk").is_err());
    }

    /// A certificate with two UPNs (or two emails) names two identities:
    /// rejected with a reason rather than authorized as the first.
    #[test]
    fn several_values_of_the_chosen_source_are_refused() {
        use IdentitySource::*;
        let upn = |v: &str| SanType::OtherName((vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3], v.into()));
        let email = |v: &str| SanType::Rfc822Name(v.try_into().expect("ia5"));
        let two_upns = CertIdentity::from_der(&cert(
            vec![upn("alice@corp.example"), upn("admin@corp.example")],
            "Alice",
        ))
        .expect("parses");
        let err = two_upns.pick(&[Upn, Email, Cn]).expect_err("ambiguous");
        assert!(
            matches!(
                err,
                IdentityError::Ambiguous {
                    from: "upn",
                    count: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("admin@corp.example"), "{err}");
        // Another source first is fine: only the chosen one must be single.
        assert_eq!(two_upns.pick(&[Cn]), Ok((&Cn, "Alice")));
        let two_emails = CertIdentity::from_der(&cert(
            vec![email("a@example.org"), email("b@example.org")],
            "x",
        ))
        .expect("parses");
        assert!(matches!(
            two_emails.pick(&[Email]),
            Err(IdentityError::Ambiguous { from: "email", .. })
        ));
        // The same value twice (in another case) is one identity.
        let same = CertIdentity::from_der(&cert(
            vec![email("a@example.org"), email("A@example.org")],
            "x",
        ))
        .expect("parses");
        assert_eq!(same.pick(&[Email]), Ok((&Email, "a@example.org")));
    }

    #[test]
    fn bindings() {
        let id = "alice@example.org";
        assert!(Binding::Exact.check("Alice@Example.org", id).is_ok());
        assert!(Binding::Exact.check("bob@example.org", id).is_err());
        assert!(Binding::Realm.check("@example.org", id).is_ok());
        assert!(Binding::Realm.check("anonymous", id).is_ok());
        assert!(Binding::Realm.check("anon@evil.example", id).is_err());
        assert!(Binding::Any.check("whoever@wherever", id).is_ok());
    }
}
