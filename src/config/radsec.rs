//! The `[radsec]` section and `server.radsec_listen`: RADIUS over TLS
//! (RFC 6614) — the server's certificate (`[tls]`'s unless its own), the
//! CAs that issue NAS certificates (apart from the EAP client CAs), their
//! CRLs, the bounds on connections, and `[[radsec.clients]]`, each
//! recognised by its certificate's names and optionally its source network.
//!
//! Part of the configuration module: reads these files, opens nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::eap::{read_server_identity, read_trust, version};
use super::{ClientConfig, Problems, either, parse_duration, parse_network, read_secret, share};
use crate::proto::radsec::RadsecClient;
use crate::proto::tls::{TlsMaterial, TlsPolicy};
use crate::proto::wire::crypto::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRadsec {
    certificate: String,
    private_key: String,
    ca: Vec<String>,
    crls: Vec<String>,
    crl_missing: String,
    crl_expired: String,
    crl_refresh: String,
    min_version: String,
    max_version: String,
    handshake_timeout: String,
    idle_timeout: String,
    max_connections: u64,
    max_connections_per_client: Option<u64>,
    max_in_flight: u64,
    clients: Vec<RawRadsecClient>,
}

impl Default for RawRadsec {
    fn default() -> Self {
        RawRadsec {
            certificate: String::new(),
            private_key: String::new(),
            ca: Vec::new(),
            crls: Vec::new(),
            crl_missing: "reject".into(),
            crl_expired: "reject".into(),
            crl_refresh: "5m".into(),
            min_version: "1.2".into(),
            max_version: "1.3".into(),
            handshake_timeout: "10s".into(),
            idle_timeout: "120s".into(),
            max_connections: 10_000,
            max_connections_per_client: None,
            max_in_flight: 256,
            clients: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRadsecClient {
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    address: Option<String>,
    secret: Option<String>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    #[serde(default = "super::yes")]
    require_message_authenticator: bool,
    #[serde(default = "super::yes")]
    limit_proxy_state: bool,
    das: Option<super::das::RawClientDas>,
}

/// RADIUS over TLS as configured: present only when
/// `server.radsec_listen` names an address.
#[derive(Debug, Clone)]
pub struct RadsecConfig {
    pub listen: Vec<std::net::SocketAddr>,
    /// The server's chain and key; `roots` are the NAS CAs.
    pub material: TlsMaterial,
    pub tls_policy: TlsPolicy,
    pub crl_files: Vec<PathBuf>,
    /// How often the CRL files are re-read.
    pub crl_refresh: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Requests processed at once per connection.
    pub max_in_flight: usize,
    pub clients: Vec<RadsecClient>,
}

/// RFC 6614 §2.3: the shared secret inside RadSec packets, unless both
/// sides configure another.
pub const DEFAULT_SECRET: &str = "radsec";

/// `tls_certificate` and `tls_key` are `[tls]`'s, used when `[radsec]`
/// names no certificate of its own; `names` holds the UDP clients' names,
/// which RadSec clients must not repeat.
#[allow(clippy::too_many_arguments)]
pub(super) fn validate(
    p: &mut Problems,
    base: &Path,
    listen: Vec<std::net::SocketAddr>,
    raw: &RawRadsec,
    tls_certificate: &str,
    tls_key: &str,
    names: &[String],
) -> Option<RadsecConfig> {
    if listen.is_empty() {
        if !raw.clients.is_empty() {
            p.add(
                "radsec.clients",
                "given, but server.radsec_listen is empty: nothing would listen for them",
            );
        }
        return None;
    }
    let (certificate, key) = if raw.certificate.is_empty() {
        (tls_certificate, tls_key)
    } else {
        (raw.certificate.as_str(), raw.private_key.as_str())
    };
    let (chain, key) = if certificate.is_empty() {
        p.add(
            "radsec.certificate",
            "missing: give the server certificate here or in [tls]",
        );
        (None, None)
    } else {
        read_server_identity(p, base, "radsec", certificate, key)
    };
    let trust = read_trust(p, base, "radsec", &raw.ca, &raw.crls, "NAS certificates");
    let (roots, crl_files, crls) = (trust.roots, trust.crl_files, trust.crls);
    let tls_policy = TlsPolicy {
        min_version: version(p, "radsec.min_version", &raw.min_version),
        max_version: version(p, "radsec.max_version", &raw.max_version),
        crl_missing_rejects: either(p, "radsec.crl_missing", &raw.crl_missing, "allow", "reject"),
        crl_expired_rejects: either(p, "radsec.crl_expired", &raw.crl_expired, "allow", "reject"),
        // webpki still refuses a NAS certificate whose EKU lacks
        // clientAuth; one without any EKU is accepted, as NAS vendors'
        // device certificates often have none.
        require_client_auth_eku: false,
        resumption: true,
        session_lifetime: Duration::from_secs(3600),
        session_cache_entries: 10_000,
        verified_chain_cache: 0,
        tickets: None,
    };
    let crl_refresh = parse_duration(p, "radsec.crl_refresh", &raw.crl_refresh);
    let handshake_timeout = parse_duration(p, "radsec.handshake_timeout", &raw.handshake_timeout);
    let idle_timeout = parse_duration(p, "radsec.idle_timeout", &raw.idle_timeout);
    if raw.max_connections == 0 {
        p.add("radsec.max_connections", "must be at least 1");
    }
    // Half by default: one client entry (often a whole fleet of access
    // points behind one organisation CA) leaves the other half to the rest.
    let per_client = share(
        p,
        "radsec.max_connections_per_client",
        raw.max_connections_per_client,
        "radsec.max_connections",
        raw.max_connections,
    );
    if !(1..=256).contains(&raw.max_in_flight) {
        p.add(
            "radsec.max_in_flight",
            format!(
                "{} is not 1..256 (the RADIUS Identifier has 256 values)",
                raw.max_in_flight
            ),
        );
    }
    if raw.clients.is_empty() {
        p.add(
            "radsec.clients",
            "missing: give at least one [[radsec.clients]] with the names its certificates carry",
        );
    }
    let mut clients: Vec<RadsecClient> = Vec::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let key = |field: &str| format!("radsec.clients[{i}].{field}");
        let name = match &c.name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ => {
                p.add(&key("name"), "missing");
                format!("radsec.clients[{i}]")
            }
        };
        if names.contains(&name) || clients.iter().any(|o| o.client.name == name) {
            p.add(&key("name"), format!("{name:?} is used by another client"));
        }
        if c.names.is_empty() || c.names.iter().any(|n| n.trim().is_empty()) {
            p.add(
                &key("names"),
                "missing: the certificate names (DNS or URI SAN, or CN; globs) this client's NAS present",
            );
        }
        let network = c.address.as_deref().and_then(|a| {
            let n = parse_network(a);
            if n.is_none() {
                p.add(
                    &key("address"),
                    format!("{a:?} is not an IP address or CIDR"),
                );
            }
            n
        });
        let secret = match (&c.secret, &c.secret_file, &c.secret_env) {
            (None, None, None) => Some(DEFAULT_SECRET.to_string()),
            given => read_secret(p, base, &key("secret"), given),
        };
        if secret.as_deref() == Some("") {
            p.add(&key("secret"), "is empty");
        }
        if let Some(secret) = secret {
            clients.push(RadsecClient {
                client: ClientConfig {
                    name,
                    secret: Secret::new(secret.as_bytes()),
                    require_message_authenticator: c.require_message_authenticator,
                    limit_proxy_state: c.limit_proxy_state,
                    das: super::das::peer(p, base, &key("das"), c.das.as_ref()),
                },
                names: c.names.clone(),
                network,
            });
        }
    }
    let (chain, key, crls) = (chain?, key?, crls?);
    Some(RadsecConfig {
        listen,
        material: TlsMaterial {
            chain,
            key,
            roots,
            crls,
        },
        tls_policy,
        crl_files,
        crl_refresh,
        handshake_timeout,
        idle_timeout,
        max_connections: usize::try_from(raw.max_connections).unwrap_or(usize::MAX),
        max_connections_per_client: usize::try_from(per_client).unwrap_or(usize::MAX),
        max_in_flight: usize::try_from(raw.max_in_flight).unwrap_or(256),
        clients,
    })
}
