//! A small certificate authority for labs, demos and tests (`certgate
//! pki`): a root CA, an intermediate CA made on first use, a server
//! certificate, client certificates, and CRLs for both CAs.
//!
//! Files in one directory: `ca.pem`/`ca.key`, `intermediate.pem`/`.key`,
//! `server.pem` (certificate then chain) / `server.key`, `crl.pem` (both
//! CAs' CRLs), `clients/NAME.pem`/`.key`, and `index.txt` (one line per
//! issued client: serial, issuer, revoked flag, name). Production
//! deployments use the organisation's CA instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0} already exists; remove it first or use another --dir")]
    Exists(PathBuf),
    #[error("no client named {0:?} in the index")]
    UnknownClient(String),
    #[error("{0:?} cannot be a file name")]
    BadName(String),
    #[error("index.txt line {0} is damaged")]
    Index(usize),
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    Rsa2048,
}

impl KeyType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ecdsa" | "ecdsa-p256" | "p256" => Some(KeyType::EcdsaP256),
            "rsa" | "rsa-2048" | "rsa2048" => Some(KeyType::Rsa2048),
            _ => None,
        }
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
    }
}

/// How to issue a client certificate; the defaults make a normal one.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub via_intermediate: bool,
    /// Put clientAuth in the EKU (false: serverAuth only).
    pub client_auth_eku: bool,
    /// Validity relative to now, in days (negative for the past).
    pub valid_from_days: i64,
    pub valid_until_days: i64,
    /// Add the name as SAN email and UPN (names with '@'), or as DNS SAN
    /// (host names such as `ap1.nas.example.org`), as well as CN.
    pub sans: bool,
    /// An OCSP responder URL for the AIA extension.
    pub ocsp_url: Option<String>,
    /// An OCSP responder's certificate: EKU OCSPSigning only.
    pub ocsp_signing: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            via_intermediate: false,
            client_auth_eku: true,
            valid_from_days: -1,
            valid_until_days: 365,
            sans: true,
            ocsp_url: None,
            ocsp_signing: false,
        }
    }
}

/// Paths of an issued client certificate.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// The certificate, followed by the intermediate when there is one.
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// An `eapol_test` (wpa_supplicant) configuration for EAP-TLS with one
/// client certificate; `extra` lines go into the network block (e.g.
/// `phase1="tls_disable_tlsv1_3=0"`). Used by `certgate demo` and the
/// tests.
pub fn eapol_test_conf(
    identity: &str,
    ca: &Path,
    certificate: &Path,
    key: &Path,
    extra: &str,
) -> String {
    format!(
        "network={{\n  key_mgmt=IEEE8021X\n  eap=TLS\n  identity=\"{identity}\"\n  ca_cert=\"{}\"\n  client_cert=\"{}\"\n  private_key=\"{}\"\n  eapol_flags=0\n{extra}\n}}\n",
        ca.display(),
        certificate.display(),
        key.display()
    )
}

pub struct Pki {
    dir: PathBuf,
    ca_name: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(io(path))
}

/// Writes a private key readable by its owner only (0600), whatever the
/// umask; an existing file is narrowed to 0600 before the key goes in.
fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(text.as_bytes()))
        .map_err(io(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Letters, digits, hyphens and dots, with a dot: a DNS host name.
fn is_host_name(name: &str) -> bool {
    name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// An Authority Information Access extension value naming one OCSP
/// responder (RFC 5280 §4.2.2.1).
fn aia_ocsp(url: &str) -> Result<Vec<u8>, PkiError> {
    use der::Encode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    let bad = |e: der::Error| PkiError::BadName(format!("{url}: {e}"));
    AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: der::oid::db::rfc5280::ID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(
            der::asn1::Ia5String::new(url).map_err(bad)?,
        ),
    }])
    .to_der()
    .map_err(bad)
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero octet to strip
    SerialNumber::from_slice(&bytes)
}

fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "certgate demo");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

impl Pki {
    pub fn open(dir: &Path) -> Self {
        Pki {
            dir: dir.to_path_buf(),
            ca_name: "certgate demo root CA".into(),
        }
    }

    /// The root CA's common name for `init` (tests make unrelated CAs).
    pub fn with_ca_name(mut self, name: &str) -> Self {
        self.ca_name = name.to_string();
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn exists(&self) -> bool {
        self.path("ca.pem").exists()
    }

    /// Creates the root CA, the server certificate and an empty CRL.
    /// The server's certificate chain, key and the CA as rustls material
    /// (no CRLs), for the sans-I/O engine in tests, benchmarks and fuzzing.
    pub fn server_material(&self) -> Result<crate::proto::tls::TlsMaterial, PkiError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pem = |path: PathBuf| {
            move |e: rustls::pki_types::pem::Error| PkiError::Pem {
                message: e.to_string(),
                path,
            }
        };
        let certs = |name: &str| {
            let path = self.path(name);
            CertificateDer::pem_file_iter(&path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(pem(path))
        };
        let key_path = self.path("server.key");
        Ok(crate::proto::tls::TlsMaterial {
            chain: certs("server.pem")?,
            key: PrivateKeyDer::from_pem_file(&key_path).map_err(pem(key_path))?,
            roots: certs("ca.pem")?,
            crls: Vec::new(),
        })
    }

    pub fn init(&self, server_name: &str, server_key: KeyType) -> Result<(), PkiError> {
        if self.exists() {
            return Err(PkiError::Exists(self.path("ca.pem")));
        }
        std::fs::create_dir_all(self.dir.join("clients")).map_err(io(&self.dir))?;
        let ca_key = KeyType::EcdsaP256.generate()?;
        let ca_params = ca_params(&self.ca_name, 1);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write(&self.path("ca.pem"), &ca_cert.pem())?;
        write_private(&self.path("ca.key"), &ca_key.serialize_pem())?;
        write(&self.path("index.txt"), "")?;
        self.issue_server(server_name, server_key)?;
        self.write_crls()
    }

    /// (Re)issues the server certificate, e.g. with another key type.
    pub fn issue_server(&self, server_name: &str, key_type: KeyType) -> Result<(), PkiError> {
        let issuer = self.issuer("ca")?;
        let key = key_type.generate()?;
        let mut p = CertificateParams::new(vec![server_name.to_string()])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, server_name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(825);
        p.serial_number = Some(random_serial());
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer)?;
        write(&self.path("server.pem"), &cert.pem())?;
        write_private(&self.path("server.key"), &key.serialize_pem())
    }

    fn issuer(&self, which: &str) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let cert = read(&self.path(&format!("{which}.pem")))?;
        let key = KeyPair::from_pem(&read(&self.path(&format!("{which}.key")))?)?;
        Ok(Issuer::from_ca_cert_pem(&cert, key)?)
    }

    fn ensure_intermediate(&self) -> Result<(), PkiError> {
        if self.path("intermediate.pem").exists() {
            return Ok(());
        }
        let root = self.issuer("ca")?;
        let key = KeyType::EcdsaP256.generate()?;
        let cert = ca_params("certgate demo intermediate CA", 0).signed_by(&key, &root)?;
        write(&self.path("intermediate.pem"), &cert.pem())?;
        write_private(&self.path("intermediate.key"), &key.serialize_pem())?;
        self.write_crls()
    }

    /// Issues a client certificate for `name` (an identity such as
    /// `alice@example.org`).
    pub fn issue_client(&self, name: &str, opts: &ClientOptions) -> Result<ClientFiles, PkiError> {
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(PkiError::BadName(name.to_string()));
        }
        if opts.via_intermediate {
            self.ensure_intermediate()?;
        }
        let which = if opts.via_intermediate {
            "intermediate"
        } else {
            "ca"
        };
        let issuer = self.issuer(which)?;
        let key = KeyType::EcdsaP256.generate()?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, name);
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "demo users");
        if opts.sans && name.contains('@') {
            p.subject_alt_names = vec![
                SanType::Rfc822Name(name.try_into()?),
                SanType::OtherName((vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3], name.into())),
            ];
        } else if opts.sans && is_host_name(name) {
            // A device (a NAS for RadSec, a machine for EAP-TLS): its
            // host name as DNS SAN, which RadSec client entries match.
            p.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
        }
        p.extended_key_usages = vec![if opts.ocsp_signing {
            ExtendedKeyUsagePurpose::OcspSigning
        } else if opts.client_auth_eku {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if let Some(url) = &opts.ocsp_url {
            p.custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                    aia_ocsp(url)?,
                ));
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(opts.valid_from_days);
        p.not_after = now + Duration::days(opts.valid_until_days);
        let serial = random_serial();
        p.serial_number = Some(serial.clone());
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer)?;
        let mut pem = cert.pem();
        if opts.via_intermediate {
            pem.push_str(&read(&self.path("intermediate.pem"))?);
        }
        let files = ClientFiles {
            certificate: self.dir.join("clients").join(format!("{name}.pem")),
            key: self.dir.join("clients").join(format!("{name}.key")),
        };
        std::fs::create_dir_all(self.dir.join("clients")).map_err(io(&self.dir))?;
        write(&files.certificate, &pem)?;
        write_private(&files.key, &key.serialize_pem())?;
        let index = self.path("index.txt");
        let mut text = read(&index).unwrap_or_default();
        let _ = writeln!(
            text,
            "{} {which} valid {name}",
            crate::proto::hex::encode(serial.as_ref())
        );
        write(&index, &text)?;
        Ok(files)
    }

    /// Revokes every certificate issued to `name` and rewrites the CRLs.
    pub fn revoke(&self, name: &str) -> Result<usize, PkiError> {
        let index = self.path("index.txt");
        let text = read(&index)?;
        let mut out = String::new();
        let mut revoked = 0;
        for line in text.lines() {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            if fields.len() == 4 && fields[3] == name && fields[2] == "valid" {
                let _ = writeln!(out, "{} {} revoked {}", fields[0], fields[1], fields[3]);
                revoked += 1;
            } else {
                let _ = writeln!(out, "{line}");
            }
        }
        if revoked == 0 {
            return Err(PkiError::UnknownClient(name.to_string()));
        }
        write(&index, &out)?;
        self.write_crls()?;
        Ok(revoked)
    }

    /// Writes `crl.pem`: the root's CRL, then the intermediate's if any,
    /// valid for 30 days.
    pub fn write_crls(&self) -> Result<(), PkiError> {
        let text = read(&self.path("index.txt")).unwrap_or_default();
        let mut revoked: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            let [serial, issuer, status, _] = fields[..] else {
                return Err(PkiError::Index(i + 1));
            };
            if status == "revoked" {
                let bytes = crate::proto::hex::decode(serial).ok_or(PkiError::Index(i + 1))?;
                revoked.push((issuer.to_string(), bytes));
            }
        }
        let now = OffsetDateTime::now_utc();
        let mut pem = String::new();
        for which in ["ca", "intermediate"] {
            if !self.path(&format!("{which}.pem")).exists() {
                continue;
            }
            let issuer = self.issuer(which)?;
            let params = CertificateRevocationListParams {
                this_update: now - Duration::minutes(5),
                next_update: now + Duration::days(30),
                crl_number: SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .iter()
                    .filter(|(i, _)| i == which)
                    .map(|(_, s)| RevokedCertParams {
                        serial_number: SerialNumber::from_slice(s),
                        revocation_time: now - Duration::minutes(1),
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            pem.push_str(&params.signed_by(&issuer)?.pem()?);
        }
        write(&self.path("crl.pem"), &pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Private keys are readable by their owner only; certificates and the
    /// CRL stay readable (supplicants and NAS tools load them).
    #[test]
    fn private_keys_are_written_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(dir.path());
        pki.init("radius.example.org", KeyType::EcdsaP256)
            .expect("init");
        let opts = ClientOptions {
            via_intermediate: true,
            ..ClientOptions::default()
        };
        let files = pki
            .issue_client("alice@example.org", &opts)
            .expect("client");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        for key in [
            pki.path("ca.key"),
            pki.path("server.key"),
            pki.path("intermediate.key"),
            files.key.clone(),
        ] {
            assert_eq!(mode(&key), 0o600, "{}", key.display());
        }
        assert_eq!(
            mode(&files.certificate) & 0o044,
            0o044,
            "certificates stay readable"
        );
        // Re-issuing over a key someone widened narrows it again.
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let again = pki
            .issue_client("alice@example.org", &opts)
            .expect("client");
        assert_eq!(mode(&again.key), 0o600);
    }
}
