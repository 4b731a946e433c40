//! OCSP (RFC 6960, RFC 5019) for client certificates: the request for a
//! certificate (its CertID under the issuing CA, a nonce when asked for),
//! the responder's URL (configured, else the certificate's AIA), and the
//! check of an answer — signed by the issuing CA or by a responder
//! certificate it issued for OCSP signing, about this certificate, fresh
//! within the clock-skew allowance, with our nonce — down to good, revoked
//! or unknown and how long that holds (`cache`).
//!
//! Sans-I/O: octets in, octets and verdicts out. Sending the request is the
//! shell's (`server::ocsp`); it must not open sockets or read clocks.

pub mod cache;

use std::time::Duration;

use der::asn1::{BitString, OctetString};
use der::oid::db::{rfc5280, rfc5912, rfc6960};
use der::{AnyRef, Decode, Encode, Header, Reader, SliceReader};
use rustls::pki_types::CertificateDer;
use sha1::{Digest, Sha1};
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, ExtendedKeyUsage};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OcspError {
    #[error("certificate has no OCSP responder (AIA) and ocsp.url is not set")]
    NoUrl,
    #[error("the issuing CA of the certificate is not among the chain and the configured CAs")]
    NoIssuer,
    #[error("cannot encode or parse: {0}")]
    Der(String),
    #[error("responder answered {0}")]
    Status(&'static str),
    #[error(
        "the response's signature verifies under neither the issuing CA nor a responder certificate it issued for OCSP signing"
    )]
    Signature,
    #[error("the response says nothing about this certificate")]
    NoMatch,
    #[error("the response is not fresh: {0}")]
    Stale(String),
    #[error("the response's nonce is not ours")]
    Nonce,
    /// The shell could not get an answer (refused, timed out, not HTTP 200…).
    #[error("responder unavailable: {0}")]
    Unavailable(String),
}

impl OcspError {
    /// A metric label: the query's result.
    pub fn label(&self) -> &'static str {
        match self {
            OcspError::Unavailable(_) => "unavailable",
            OcspError::NoUrl | OcspError::NoIssuer => "no_responder",
            _ => "invalid",
        }
    }
}

fn der_err(e: der::Error) -> OcspError {
    OcspError::Der(e.to_string())
}

/// What to do when no valid answer comes (responder down, hung, or
/// answering garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    Reject,
    /// Fall back to the configured CRLs (which the handshake checked).
    Crl,
    Accept,
}

impl OnUnavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Reject => "reject",
            OnUnavailable::Crl => "crl",
            OnUnavailable::Accept => "accept",
        }
    }
}

/// `[ocsp]` as checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OcspSettings {
    /// Ask this responder instead of the certificate's AIA.
    pub url: Option<String>,
    /// The hard deadline of one query: connect, send and answer.
    pub timeout: Duration,
    pub cache_entries: usize,
    /// The longest an answer is kept (also when it has no nextUpdate).
    pub max_age: Duration,
    pub on_unavailable: OnUnavailable,
    /// `unknown` rejects (true, the default) or passes.
    pub unknown_rejects: bool,
    pub nonce: bool,
    pub clock_skew: Duration,
    /// Also ask about each CA certificate the client sent (intermediates).
    pub check_chain: bool,
}

impl Default for OcspSettings {
    fn default() -> Self {
        OcspSettings {
            url: None,
            timeout: Duration::from_secs(2),
            cache_entries: 100_000,
            max_age: Duration::from_secs(3600),
            on_unavailable: OnUnavailable::Reject,
            unknown_rejects: true,
            nonce: false,
            clock_skew: Duration::from_secs(300),
            check_chain: false,
        }
    }
}

/// A certificate's status as a responder gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked,
    Unknown,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
        }
    }
}

/// A verified answer: the status, and until when (Unix seconds) it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub status: Status,
    pub until: i64,
}

/// One query: where, what, and what its answer is checked against.
#[derive(Debug, Clone)]
pub struct Query {
    /// The cache key: issuer key hash and serial, hex.
    pub key: String,
    pub url: String,
    /// The DER OCSPRequest.
    pub request: Vec<u8>,
    /// The subject of the certificate asked about, for logs and reasons.
    pub about: String,
    /// Whether it is a CA certificate of the chain (not the client's own).
    pub ca: bool,
    cert_id: CertId,
    nonce: Option<Vec<u8>>,
    /// The issuing CA's certificate, DER.
    issuer: Vec<u8>,
}

/// The certificate among `candidates` (DER) that issued `leaf`: its
/// subject is the leaf's issuer name.
pub fn issuer_of<'a>(
    leaf: &[u8],
    candidates: impl IntoIterator<Item = &'a [u8]>,
) -> Option<&'a [u8]> {
    let leaf = Certificate::from_der(leaf).ok()?;
    let want = leaf.tbs_certificate.issuer.to_der().ok()?;
    candidates.into_iter().find(|c| {
        Certificate::from_der(c)
            .ok()
            .and_then(|c| c.tbs_certificate.subject.to_der().ok())
            .is_some_and(|s| s == want)
    })
}

/// The OCSP responder URLs in a certificate's AIA, in order.
pub fn aia_urls(cert: &Certificate) -> Vec<String> {
    let Some(exts) = &cert.tbs_certificate.extensions else {
        return Vec::new();
    };
    exts.iter()
        .filter(|e| e.extn_id == rfc5280::ID_PE_AUTHORITY_INFO_ACCESS)
        .filter_map(|e| AuthorityInfoAccessSyntax::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|aia| aia.0)
        .filter(|ad| ad.access_method == rfc5280::ID_AD_OCSP)
        .filter_map(|ad| match ad.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with("http://"))
        .collect()
}

/// The request for `leaf` issued by `issuer` (both DER), to `url` or the
/// leaf's AIA responder, with `nonce` when given.
pub fn query(
    leaf: &[u8],
    issuer: &[u8],
    url: Option<&str>,
    nonce: Option<&[u8]>,
) -> Result<Query, OcspError> {
    let leaf_cert = Certificate::from_der(leaf).map_err(der_err)?;
    let issuer_cert = Certificate::from_der(issuer).map_err(der_err)?;
    let url = match url {
        Some(u) => u.to_string(),
        None => aia_urls(&leaf_cert)
            .into_iter()
            .next()
            .ok_or(OcspError::NoUrl)?,
    };
    let name = issuer_cert
        .tbs_certificate
        .subject
        .to_der()
        .map_err(der_err)?;
    let key = issuer_cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::ID_SHA_1,
            parameters: Some(der::Any::null()),
        },
        issuer_name_hash: OctetString::new(Sha1::digest(&name).to_vec()).map_err(der_err)?,
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).map_err(der_err)?,
        serial_number: leaf_cert.tbs_certificate.serial_number.clone(),
    };
    let request_extensions = match nonce {
        Some(n) => {
            let value = OctetString::new(n.to_vec())
                .map_err(der_err)?
                .to_der()
                .map_err(der_err)?;
            Some(vec![Extension {
                extn_id: rfc6960::ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(value).map_err(der_err)?,
            }])
        }
        None => None,
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(der_err)?;
    Ok(Query {
        key: format!(
            "{}:{}",
            crate::proto::hex::encode(cert_id.issuer_key_hash.as_bytes()),
            crate::proto::hex::encode(cert_id.serial_number.as_bytes())
        ),
        url,
        request,
        cert_id,
        nonce: nonce.map(<[u8]>::to_vec),
        issuer: issuer.to_vec(),
        about: leaf_cert.tbs_certificate.subject.to_string(),
        ca: false,
    })
}

/// The first element of a DER SEQUENCE, exactly as encoded: what a
/// signature covers.
fn first_element(der_bytes: &[u8]) -> Result<Vec<u8>, OcspError> {
    let mut r = SliceReader::new(der_bytes).map_err(der_err)?;
    let _outer = Header::decode(&mut r).map_err(der_err)?;
    let first: AnyRef<'_> = r.decode().map_err(der_err)?;
    first.to_der().map_err(der_err)
}

/// Whether `signature` over `message` verifies under the key of the
/// certificate `signer` (DER) with the algorithm `alg` (rustls's
/// aws-lc-rs verification algorithms: the ones the handshake uses).
fn verifies(
    signer: &[u8],
    alg: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &BitString,
) -> bool {
    let Some(signature) = signature.as_bytes() else {
        return false;
    };
    let Ok(alg_der) = alg.to_der() else {
        return false;
    };
    // webpki names algorithms by the AlgorithmIdentifier's contents.
    let Ok(mut r) = SliceReader::new(&alg_der) else {
        return false;
    };
    let Ok(header) = Header::decode(&mut r) else {
        return false;
    };
    let start = alg_der.len() - usize::try_from(header.length).unwrap_or(0);
    let inner = &alg_der[start..];
    let der = CertificateDer::from(signer);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == inner)
        .any(|a| cert.verify_signature(*a, message, signature).is_ok())
}

/// Whether `responder` (from the response) is a delegated responder of
/// `issuer`: issued and signed by it, valid now, with EKU OCSPSigning.
fn delegated(responder: &Certificate, issuer: &Certificate, issuer_der: &[u8], now: i64) -> bool {
    let tbs = &responder.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let validity = &tbs.validity;
    let (from, to) = (
        validity.not_before.to_unix_duration().as_secs() as i64,
        validity.not_after.to_unix_duration().as_secs() as i64,
    );
    if now < from || now > to {
        return false;
    }
    let ocsp_signing = tbs.extensions.iter().flatten().any(|e| {
        e.extn_id == rfc5280::ID_CE_EXT_KEY_USAGE
            && ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .is_ok_and(|eku| eku.0.contains(&rfc5280::ID_KP_OCSP_SIGNING))
    });
    let Ok(tbs_der) = tbs.to_der() else {
        return false;
    };
    ocsp_signing
        && verifies(
            issuer_der,
            &responder.signature_algorithm,
            &tbs_der,
            &responder.signature,
        )
}

fn unix(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    t.0.to_unix_duration().as_secs() as i64
}

/// Checks a responder's answer to `q` at `now` (Unix seconds).
pub fn check(
    response: &[u8],
    q: &Query,
    now: i64,
    settings: &OcspSettings,
) -> Result<Checked, OcspError> {
    let r = OcspResponse::from_der(response).map_err(der_err)?;
    match r.response_status {
        OcspResponseStatus::Successful => {}
        OcspResponseStatus::MalformedRequest => return Err(OcspError::Status("malformedRequest")),
        OcspResponseStatus::InternalError => return Err(OcspError::Status("internalError")),
        OcspResponseStatus::TryLater => return Err(OcspError::Status("tryLater")),
        OcspResponseStatus::SigRequired => return Err(OcspError::Status("sigRequired")),
        OcspResponseStatus::Unauthorized => return Err(OcspError::Status("unauthorized")),
    }
    let bytes = r
        .response_bytes
        .ok_or(OcspError::Status("successful without a response"))?;
    if bytes.response_type != rfc6960::ID_PKIX_OCSP_BASIC {
        return Err(OcspError::Status("a response type other than basic"));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der).map_err(der_err)?;
    let tbs = first_element(basic_der)?;
    let issuer = Certificate::from_der(&q.issuer).map_err(der_err)?;
    let signed = verifies(
        &q.issuer,
        &basic.signature_algorithm,
        &tbs,
        &basic.signature,
    ) || basic.certs.iter().flatten().any(|c| {
        delegated(c, &issuer, &q.issuer, now)
            && c.to_der()
                .is_ok_and(|d| verifies(&d, &basic.signature_algorithm, &tbs, &basic.signature))
    });
    if !signed {
        return Err(OcspError::Signature);
    }
    if let Some(ours) = &q.nonce {
        let theirs = basic.nonce().map(|n| n.0.as_bytes().to_vec());
        if theirs.as_deref() != Some(ours.as_slice()) {
            return Err(OcspError::Nonce);
        }
    }
    let id = &q.cert_id;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|s| {
            s.cert_id.issuer_key_hash == id.issuer_key_hash
                && s.cert_id.issuer_name_hash == id.issuer_name_hash
                && s.cert_id.serial_number == id.serial_number
        })
        .ok_or(OcspError::NoMatch)?;
    let skew = settings.clock_skew.as_secs() as i64;
    let this = unix(&single.this_update);
    if this > now + skew {
        return Err(OcspError::Stale(format!(
            "thisUpdate is {} s ahead",
            this - now
        )));
    }
    let max_until = now + settings.max_age.as_secs() as i64;
    let until = match &single.next_update {
        Some(next) => {
            let next = unix(next);
            if next < now - skew {
                return Err(OcspError::Stale(format!(
                    "nextUpdate passed {} s ago",
                    now - next
                )));
            }
            next.min(max_until)
        }
        None => max_until,
    };
    let status = match single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(_) => Status::Revoked,
        CertStatus::Unknown(_) => Status::Unknown,
    };
    Ok(Checked { status, until })
}

/// The base64 GET form of RFC 5019 §5: `url/BASE64` when that stays under
/// 255 octets, else None (POST).
pub fn get_url(q: &Query) -> Option<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&q.request);
    // The path segment is URL-encoded: '+', '/' and '=' are reserved.
    let encoded: String = form_urlencoded::byte_serialize(b64.as_bytes()).collect();
    let url = format!("{}/{}", q.url.trim_end_matches('/'), encoded);
    (url.len() < 255).then_some(url)
}
