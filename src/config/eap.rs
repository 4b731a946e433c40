//! The `[eap]` and `[tls]` sections: EAP-TLS settings and the certificate
//! files (read and checked here); `[authz]` is checked by `authz` and
//! carried here, since authorization runs only after EAP-TLS.
//!
//! Part of the configuration module: the only place that reads these files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Deserialize;

use super::authz::{self, RawAuthz};
use super::{Problems, either, parse_duration, resolve, share};
use crate::proto::clock::Clock;
use crate::proto::dictionary::Dictionary;
use crate::proto::eap::service::{EapSettings, max_fragment_size};
use crate::proto::eap::table::Limits;
use crate::proto::tls::identity::{Binding, IdentitySource};
use crate::proto::tls::ticketer::TicketSecret;
use crate::proto::tls::{SessionStore, TlsContext, TlsMaterial, TlsPolicy, TlsVersion};
use crate::server::directory::AuthzSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEap {
    fragment_size: u64,
    max_message: u64,
    idle_timeout: String,
    max_conversations: u64,
    max_conversations_per_nas: Option<u64>,
    evictable_after: String,
    replace_by_calling_station: bool,
    max_rounds: u64,
    max_duration: String,
    alert_timeout: String,
    memory_budget: u64,
    identity_binding: String,
    identity_sources: Vec<String>,
}

impl Default for RawEap {
    fn default() -> Self {
        RawEap {
            fragment_size: 1000,
            max_message: 32768,
            idle_timeout: "30s".into(),
            max_conversations: 100_000,
            max_conversations_per_nas: None,
            evictable_after: "1s".into(),
            replace_by_calling_station: true,
            max_rounds: 100,
            max_duration: "60s".into(),
            alert_timeout: "3s".into(),
            memory_budget: 256 << 20,
            identity_binding: "realm".into(),
            identity_sources: vec!["upn".into(), "email".into(), "cn".into()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub(super) certificate: String,
    pub(super) private_key: String,
    ca: Vec<String>,
    crls: Vec<String>,
    crl_missing: String,
    crl_expired: String,
    crl_refresh: String,
    require_client_auth_eku: bool,
    min_version: String,
    max_version: String,
    resumption: bool,
    session_lifetime: String,
    session_cache_entries: u64,
    verified_chain_cache: u64,
    ticket_secret_file: Option<String>,
    ticket_secret_env: Option<String>,
    ticket_rotation: String,
}

impl Default for RawTls {
    fn default() -> Self {
        RawTls {
            certificate: String::new(),
            private_key: String::new(),
            ca: Vec::new(),
            crls: Vec::new(),
            crl_missing: "reject".into(),
            crl_expired: "reject".into(),
            crl_refresh: "5m".into(),
            require_client_auth_eku: true,
            min_version: "1.2".into(),
            max_version: "1.3".into(),
            resumption: true,
            session_lifetime: "1h".into(),
            session_cache_entries: 10_000,
            verified_chain_cache: 10_000,
            ticket_secret_file: None,
            ticket_secret_env: None,
            ticket_rotation: "12h".into(),
        }
    }
}

/// EAP-TLS as configured: present only when `[tls]` names a certificate.
#[derive(Debug, Clone)]
pub struct EapConfig {
    pub settings: EapSettings,
    pub binding: Binding,
    pub identity_sources: Vec<IdentitySource>,
    pub tls_policy: TlsPolicy,
    pub material: TlsMaterial,
    pub crl_files: Vec<PathBuf>,
    pub crl_refresh: Duration,
    pub authz: AuthzSettings,
}

/// `tls.ticket_secret_file` / `_env`: the secret the nodes of a
/// deployment share for session tickets (at least 32 octets), and how
/// often its keys rotate. Never inline: it would sit in a config file.
fn ticket_secret(p: &mut Problems, base: &Path, tls: &RawTls) -> Option<TicketSecret> {
    if tls.ticket_secret_file.is_none() && tls.ticket_secret_env.is_none() {
        return None;
    }
    let secret = super::read_secret(
        p,
        base,
        "tls.ticket_secret",
        (&None, &tls.ticket_secret_file, &tls.ticket_secret_env),
    )?;
    if secret.len() < 32 {
        p.add(
            "tls.ticket_secret",
            format!(
                "is {} characters; use at least 32 (e.g. `openssl rand -hex 32`)",
                secret.len()
            ),
        );
    }
    let rotation = parse_duration(p, "tls.ticket_rotation", &tls.ticket_rotation);
    if rotation < Duration::from_secs(60) {
        p.add("tls.ticket_rotation", "is shorter than 1m");
    }
    if !tls.resumption {
        p.add(
            "tls.ticket_secret_file",
            "given, but tls.resumption is false",
        );
    }
    Some(TicketSecret::new(secret.as_bytes(), rotation.as_secs()))
}

pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The server's certificate chain and key from `section.certificate` and
/// `section.private_key` (`[tls]` and `[radsec]` both have them); None
/// where a problem was added.
pub(super) fn read_server_identity(
    p: &mut Problems,
    base: &Path,
    section: &str,
    certificate: &str,
    key: &str,
) -> (
    Option<Vec<CertificateDer<'static>>>,
    Option<PrivateKeyDer<'static>>,
) {
    let chain = read_certs(&resolve(base, certificate))
        .map_err(|e| p.add(&format!("{section}.certificate"), e))
        .ok();
    let key = if key.is_empty() {
        p.add(&format!("{section}.private_key"), "missing");
        None
    } else {
        let path = resolve(base, key);
        PrivateKeyDer::from_pem_file(&path)
            .map_err(|e| {
                p.add(
                    &format!("{section}.private_key"),
                    format!("{}: {e}", path.display()),
                )
            })
            .ok()
    };
    (chain, key)
}

/// The CAs that issue one kind of client certificate and their CRLs, as
/// `[tls]` (EAP clients) and `[radsec]` (NAS) both configure them.
pub(super) struct Trust {
    pub roots: Vec<CertificateDer<'static>>,
    pub crl_files: Vec<PathBuf>,
    /// None when a CRL file could not be read (a problem was added).
    pub crls: Option<Vec<CertificateRevocationListDer<'static>>>,
}

/// Reads `section.ca` and `section.crls`; `issued` names what the CAs
/// issue, for the messages. No CRL at all is valid, with a warning.
pub(super) fn read_trust(
    p: &mut Problems,
    base: &Path,
    section: &str,
    ca: &[String],
    crls: &[String],
    issued: &str,
) -> Trust {
    if ca.is_empty() {
        p.add(
            &format!("{section}.ca"),
            format!("missing: give the CA bundle(s) that issue {issued}"),
        );
    }
    let mut roots = Vec::new();
    for (i, f) in ca.iter().enumerate() {
        match read_certs(&resolve(base, f)) {
            Ok(c) => roots.extend(c),
            Err(e) => p.add(&format!("{section}.ca[{i}]"), e),
        }
    }
    let crl_files: Vec<PathBuf> = crls.iter().map(|f| resolve(base, f)).collect();
    if crl_files.is_empty() {
        p.warn(format!(
            "{section}.crls: none configured: revocation of {issued} is NOT checked \
             (a revoked certificate is accepted)"
        ));
    }
    let crls = load_crls(&crl_files)
        .map_err(|e| p.add(&format!("{section}.crls"), e))
        .ok();
    Trust {
        roots,
        crl_files,
        crls,
    }
}

/// Reads CRL files (PEM or DER); used at load and by the periodic refresh.
pub fn load_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.starts_with(b"-----") {
            let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if crls.is_empty() {
                return Err(format!("{}: no PEM X509 CRL in it", path.display()));
            }
            out.extend(crls);
        } else {
            out.push(CertificateRevocationListDer::from(bytes));
        }
    }
    Ok(out)
}

pub(super) fn version(p: &mut Problems, key: &str, s: &str) -> TlsVersion {
    match s {
        "1.2" => TlsVersion::V1_2,
        "1.3" => TlsVersion::V1_3,
        other => {
            p.add(key, format!("{other:?} is not \"1.2\" or \"1.3\""));
            TlsVersion::V1_2
        }
    }
}

pub(super) fn validate(
    p: &mut Problems,
    base: &Path,
    dict: Option<&Dictionary>,
    eap: &RawEap,
    tls: &RawTls,
    authz: &RawAuthz,
) -> Option<EapConfig> {
    if tls.certificate.is_empty() {
        return None;
    }
    let most = max_fragment_size();
    if !(64..=most as u64).contains(&eap.fragment_size) {
        p.add(
            "eap.fragment_size",
            format!(
                "{} is not 64..{most} (the most TLS data one 4096-octet Access-Challenge \
                 carries beside Message-Authenticator and State)",
                eap.fragment_size
            ),
        );
    }
    if !(10..=1000).contains(&eap.max_rounds) {
        p.add(
            "eap.max_rounds",
            format!("{} is not 10..1000", eap.max_rounds),
        );
    }
    let max_duration = parse_duration(p, "eap.max_duration", &eap.max_duration);
    let alert_timeout = parse_duration(p, "eap.alert_timeout", &eap.alert_timeout);
    if eap.memory_budget < eap.max_message {
        p.add(
            "eap.memory_budget",
            format!(
                "{} is below eap.max_message ({}): not even one conversation could reassemble a message",
                eap.memory_budget, eap.max_message
            ),
        );
    }
    if eap.max_message < 16384 {
        p.add(
            "eap.max_message",
            format!("{} is below 16384 octets", eap.max_message),
        );
    }
    if eap.max_conversations == 0 {
        p.add("eap.max_conversations", "must be at least 1");
    }
    let idle_timeout = parse_duration(p, "eap.idle_timeout", &eap.idle_timeout);
    let evictable_after = parse_duration(p, "eap.evictable_after", &eap.evictable_after);
    if idle_timeout > max_duration {
        p.add(
            "eap.idle_timeout",
            format!("{idle_timeout:?} is longer than eap.max_duration ({max_duration:?})"),
        );
    }
    if evictable_after > idle_timeout {
        p.add(
            "eap.evictable_after",
            format!("{evictable_after:?} is longer than eap.idle_timeout ({idle_timeout:?})"),
        );
    }
    // Half the table by default: one flooding NAS leaves the other half to
    // the rest even before eviction starts.
    let per_nas = share(
        p,
        "eap.max_conversations_per_nas",
        eap.max_conversations_per_nas,
        "eap.max_conversations",
        eap.max_conversations,
    );
    let binding = Binding::parse(&eap.identity_binding).unwrap_or_else(|| {
        p.add(
            "eap.identity_binding",
            format!(
                "{:?} is not \"exact\", \"realm\" or \"any\"",
                eap.identity_binding
            ),
        );
        Binding::Exact
    });
    let mut identity_sources = Vec::new();
    for (i, s) in eap.identity_sources.iter().enumerate() {
        match IdentitySource::parse(s) {
            Some(src) => identity_sources.push(src),
            None => p.add(
                &format!("eap.identity_sources[{i}]"),
                format!("{s:?} is not upn, email, cn, dns, uri, uri:PREFIX or dirname"),
            ),
        }
    }
    if eap.identity_sources.is_empty() {
        p.add("eap.identity_sources", "is empty");
    }

    let tls_policy = TlsPolicy {
        min_version: version(p, "tls.min_version", &tls.min_version),
        max_version: version(p, "tls.max_version", &tls.max_version),
        crl_missing_rejects: either(p, "tls.crl_missing", &tls.crl_missing, "allow", "reject"),
        crl_expired_rejects: either(p, "tls.crl_expired", &tls.crl_expired, "allow", "reject"),
        require_client_auth_eku: tls.require_client_auth_eku,
        resumption: tls.resumption,
        session_lifetime: parse_duration(p, "tls.session_lifetime", &tls.session_lifetime),
        session_cache_entries: usize::try_from(tls.session_cache_entries).unwrap_or(usize::MAX),
        verified_chain_cache: usize::try_from(tls.verified_chain_cache).unwrap_or(usize::MAX),
        tickets: ticket_secret(p, base, tls),
    };
    let crl_refresh = parse_duration(p, "tls.crl_refresh", &tls.crl_refresh);
    let (chain, key) = read_server_identity(p, base, "tls", &tls.certificate, &tls.private_key);
    let trust = read_trust(p, base, "tls", &tls.ca, &tls.crls, "client certificates");
    let (roots, crl_files, crls) = (trust.roots, trust.crl_files, trust.crls);

    let authz = authz::validate(p, base, dict, authz);

    let (chain, key, crls, authz) = (chain?, key?, crls?, authz?);
    let material = TlsMaterial {
        chain,
        key,
        roots,
        crls,
    };
    // Build once now so a mismatched key or unusable CA fails start-up and
    // check-config, not the first authentication.
    let clock = Arc::new(Clock::new(crate::server::time::now()));
    let probe = SessionStore::new(1, Duration::from_secs(1), clock);
    if let Err(e) = TlsContext::build(&material, &tls_policy, &Arc::new(probe)) {
        p.add("tls", e);
        return None;
    }
    Some(EapConfig {
        settings: EapSettings {
            fragment_size: eap.fragment_size as usize,
            max_message: usize::try_from(eap.max_message).unwrap_or(usize::MAX),
            table: Limits {
                cap: usize::try_from(eap.max_conversations).unwrap_or(usize::MAX),
                per_nas: usize::try_from(per_nas).unwrap_or(usize::MAX),
                idle_timeout,
                evictable_after,
                max_duration,
                alert_timeout,
                memory_budget: usize::try_from(eap.memory_budget).unwrap_or(usize::MAX),
            },
            replace_by_calling_station: eap.replace_by_calling_station,
            max_rounds: u32::try_from(eap.max_rounds).unwrap_or(u32::MAX),
        },
        binding,
        identity_sources,
        tls_policy,
        material,
        crl_files,
        crl_refresh,
        authz,
    })
}
