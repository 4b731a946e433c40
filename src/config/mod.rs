//! Configuration: a TOML file plus `CERTGATE_…` environment overrides, read
//! through the `config` crate into serde structs, then validated into typed
//! values. Every problem is reported as `key: problem`, all at once.
//!
//! This is the only module that reads configuration files, secret files,
//! dictionary files or environment variables; the rest receives `Config`.
//! Relative paths are taken relative to the configuration file's folder.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;

use crate::proto::das::{DasPeer, DasSettings};
use crate::proto::dictionary::Dictionary;
use crate::proto::ocsp::OcspSettings;
use crate::proto::wire::crypto::Secret;
use crate::server::http::{BearerToken, HttpSettings};

mod accounting;
mod authz;
mod das;
mod eap;
mod ocsp;
mod radsec;

pub use accounting::{AccountingConfig, PostgresConfig};
pub use das::AdminConfig;
pub use eap::{EapConfig, load_crls};
pub use radsec::RadsecConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: invalid configuration:\n  {}", .problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

// ---- what the file holds -------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    eap: eap::RawEap,
    #[serde(default)]
    tls: eap::RawTls,
    #[serde(default)]
    authz: authz::RawAuthz,
    #[serde(default)]
    accounting: accounting::RawAccounting,
    #[serde(default)]
    radsec: radsec::RawRadsec,
    #[serde(default)]
    das: das::RawDas,
    #[serde(default)]
    admin: das::RawAdmin,
    #[serde(default)]
    ocsp: ocsp::RawOcsp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    auth_listen: Vec<String>,
    acct_listen: Vec<String>,
    radsec_listen: Vec<String>,
    receive_buffer: u64,
    max_in_flight: u64,
    duplicate_cache_lifetime: String,
    duplicate_cache_entries: u64,
    dictionary: String,
    shutdown_timeout: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            auth_listen: vec!["127.0.0.1:1812".into()],
            acct_listen: vec!["127.0.0.1:1813".into()],
            radsec_listen: Vec::new(),
            receive_buffer: 1 << 20,
            max_in_flight: 4096,
            duplicate_cache_lifetime: "5s".into(),
            duplicate_cache_entries: 1_000_000,
            dictionary: "../dictionaries/dictionary".into(),
            shutdown_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: String,
    sessions: bool,
    token_file: Option<String>,
    token_env: Option<String>,
    hosts: Vec<String>,
    max_connections: u64,
    read_timeout: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: "127.0.0.1:9812".into(),
            sessions: false,
            token_file: None,
            token_env: None,
            hosts: Vec::new(),
            max_connections: 64,
            read_timeout: "5s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<String>,
    address: Option<String>,
    secret: Option<String>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    #[serde(default = "yes")]
    require_message_authenticator: bool,
    #[serde(default = "yes")]
    limit_proxy_state: bool,
    das: Option<das::RawClientDas>,
}

fn yes() -> bool {
    true
}

// ---- what the server uses --------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for reloads and messages.
    pub path: PathBuf,
    /// Overrides given at start-up, applied again on reload.
    pub overrides: Vec<(String, config::Value)>,
    pub server: ServerConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub clients: Vec<UdpClient>,
    pub dictionary: Arc<Dictionary>,
    /// EAP-TLS; None when `[tls]` names no certificate.
    pub eap: Option<Arc<EapConfig>>,
    /// Accounting; None when `[accounting]` names no journal directory.
    pub accounting: Option<AccountingConfig>,
    /// RADIUS over TLS; None when `server.radsec_listen` is empty.
    pub radsec: Option<Arc<RadsecConfig>>,
    /// Dynamic authorization; None when `das.enabled` is false.
    pub das: Option<DasSettings>,
    pub admin: AdminConfig,
    /// OCSP for client certificates; None when `ocsp.enabled` is false.
    pub ocsp: Option<OcspSettings>,
    /// Valid but weaker than it looks ("key: what"): logged at every start
    /// and reload, printed by check-config.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub auth_listen: Vec<SocketAddr>,
    pub acct_listen: Vec<SocketAddr>,
    pub receive_buffer: usize,
    pub max_in_flight: usize,
    pub duplicate_cache_lifetime: Duration,
    pub duplicate_cache_entries: usize,
    pub dictionary: PathBuf,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// None when the endpoint is switched off (`listen = ""`).
    pub listen: Option<SocketAddr>,
    pub http: HttpSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// A RADIUS client (a NAS, or a fleet of them behind one entry): its name
/// in logs, metrics and policy, its shared secret and what it must send.
/// How it is recognised depends on the transport: by source address over
/// UDP (`UdpClient`), by certificate over RadSec (`RadsecClient`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub name: String,
    pub secret: Secret,
    pub require_message_authenticator: bool,
    pub limit_proxy_state: bool,
    /// How it takes Disconnect and CoA requests.
    pub das: DasPeer,
}

/// A client that sends RADIUS over UDP from `network`.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpClient {
    pub network: IpNet,
    pub client: ClientConfig,
}

/// Collects problems so one run reports all of them, and warnings: a
/// configuration that is valid but weaker than it looks.
#[derive(Default)]
struct Problems {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Problems {
    fn add(&mut self, key: &str, problem: impl std::fmt::Display) {
        self.errors.push(format!("{key}: {problem}"));
    }

    /// A warning, already "key: what".
    fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }
}

/// One holder's share of a bound (`key`, of `total` at `total_key`): as
/// given, else half; it must be 1..=total.
fn share(p: &mut Problems, key: &str, given: Option<u64>, total_key: &str, total: u64) -> u64 {
    let share = given.unwrap_or(total.div_ceil(2));
    if share == 0 || share > total {
        p.add(key, format!("{share} is not 1..={total} ({total_key})"));
    }
    share
}

fn parse_duration(p: &mut Problems, key: &str, text: &str) -> Duration {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            p.add(key, format!("{text:?} must be longer than zero"));
            Duration::from_secs(1)
        }
        Err(e) => {
            p.add(
                key,
                format!("{text:?} is not a duration like \"5s\" or \"1m30s\" ({e})"),
            );
            Duration::from_secs(1)
        }
    }
}

fn parse_listen(p: &mut Problems, key: &str, list: &[String]) -> Vec<SocketAddr> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.add(
                    &format!("{key}[{i}]"),
                    format!("{s:?} is not an address:port (use [::1]:1812 for IPv6)"),
                );
                None
            }
        })
        .collect()
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// A key that takes one of two words; true for `yes`. A bad word is a
/// problem (start-up stops), so the value returned for it does not matter.
fn either(p: &mut Problems, key: &str, value: &str, no: &str, yes: &str) -> bool {
    if value != no && value != yes {
        p.add(key, format!("{value:?} is not \"{no}\" or \"{yes}\""));
    }
    value == yes
}

/// A secret given inline, in a file (trailing newline removed) or in an
/// environment variable: exactly one of the three. `key` names the inline
/// key; the others are `key_file` and `key_env`.
fn read_secret(
    p: &mut Problems,
    base: &Path,
    key: &str,
    (inline, file, env): (&Option<String>, &Option<String>, &Option<String>),
) -> Option<String> {
    match (inline, file, env) {
        (Some(s), None, None) => Some(s.clone()),
        (None, Some(f), None) => {
            let file = resolve(base, f);
            match std::fs::read_to_string(&file) {
                Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    p.add(&format!("{key}_file"), format!("{}: {e}", file.display()));
                    None
                }
            }
        }
        (None, None, Some(var)) => match std::env::var(var) {
            Ok(s) => Some(s),
            Err(_) => {
                p.add(
                    &format!("{key}_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }
        },
        (None, None, None) => {
            let k = key.rsplit('.').next().unwrap_or(key);
            p.add(key, format!("missing: give {k}, {k}_file or {k}_env"));
            None
        }
        _ => {
            let k = key.rsplit('.').next().unwrap_or(key);
            p.add(key, format!("give only one of {k}, {k}_file and {k}_env"));
            None
        }
    }
}

/// The HTTP endpoint's settings. `/sessions` lists who is on the network:
/// it is served only when asked for, and then only behind a bearer token
/// read from a file or the environment (never inline, where it would sit
/// in a file that is often world-readable).
fn http_settings(p: &mut Problems, base: &Path, m: &RawMetrics) -> HttpSettings {
    let token = match (m.sessions, &m.token_file, &m.token_env) {
        (false, None, None) => None,
        (false, _, _) => {
            p.add(
                "metrics.token_file",
                "a token is given, but metrics.sessions is false",
            );
            None
        }
        (true, None, None) => {
            p.add(
                "metrics.sessions",
                "needs a bearer token: give metrics.token_file or metrics.token_env",
            );
            None
        }
        (true, file, env) => read_secret(p, base, "metrics.token", (&None, file, env)),
    };
    if let Some(t) = &token
        && t.len() < 16
    {
        p.add(
            "metrics.token",
            format!(
                "is {} characters; use at least 16 (e.g. `openssl rand -hex 16`)",
                t.len()
            ),
        );
    }
    let mut hosts = Vec::new();
    for (i, h) in m.hosts.iter().enumerate() {
        let valid = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            hosts.push(h.to_ascii_lowercase());
        } else {
            p.add(
                &format!("metrics.hosts[{i}]"),
                format!("{h:?} is not a host name (no port, no scheme)"),
            );
        }
    }
    if !(1..=10_000).contains(&m.max_connections) {
        p.add(
            "metrics.max_connections",
            format!("{} is not 1..10000", m.max_connections),
        );
    }
    HttpSettings {
        sessions_token: token.as_deref().map(BearerToken::new),
        hosts,
        max_connections: usize::try_from(m.max_connections)
            .unwrap_or(64)
            .clamp(1, 10_000),
        read_timeout: parse_duration(p, "metrics.read_timeout", &m.read_timeout),
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The `config` crate reads every key it collects, from the file and from
/// `CERTGATE_*` variables, as a path expression: `"a.b"` becomes a table and
/// `"a[2000000000]"` an array it allocates to that index, which aborts the
/// process (found by the config_file fuzzer). certgate's keys are plain
/// words, so any key holding `.`, `[` or `]` is refused here, before the
/// crate sees it, and named.
fn plain_keys(p: &mut Problems, text: &str, env_names: impl Iterator<Item = String>) {
    fn walk(p: &mut Problems, prefix: &str, value: &toml::Value) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if k.contains(['.', '[', ']']) {
                        p.add(&key, "'.', '[' and ']' cannot be part of a key name");
                    } else {
                        walk(p, &key, v);
                    }
                }
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(p, &format!("{prefix}[{i}]"), v);
                }
            }
            _ => {}
        }
    }
    // A file that is not TOML is left to the loader, which reports where.
    if let Ok(table) = text.parse::<toml::Table>() {
        walk(p, "", &toml::Value::Table(table));
    }
    for name in env_names {
        if name.starts_with("CERTGATE_") && name.contains(['.', '[', ']']) {
            p.add(&name, "'.', '[' and ']' cannot be part of a variable name");
        }
    }
}

impl Config {
    /// Reads, overrides from the environment, validates, and loads the
    /// dictionaries and secrets the file names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_overrides(path, &[])
    }

    /// `load`, with `(key, value)` pairs set last, above the file and the
    /// environment (`certgate demo` points the TLS paths at its PKI).
    pub fn load_with_overrides(
        path: &Path,
        overrides: &[(String, config::Value)],
    ) -> Result<Config, ConfigError> {
        let read_err = |message: String| ConfigError::Read {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        let mut p = Problems::default();
        plain_keys(
            &mut p,
            &text,
            std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()),
        );
        if !p.errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: p.errors,
            });
        }
        let env = config::Environment::with_prefix("CERTGATE")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.auth_listen")
            .with_list_parse_key("server.acct_listen")
            .with_list_parse_key("server.radsec_listen");
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(env);
        for (key, value) in overrides {
            builder = builder
                .set_override(key.as_str(), value.clone())
                .map_err(|e| read_err(e.to_string()))?;
        }
        let raw: RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| read_err(e.to_string()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config = Self::validate(raw, path, &base)?;
        config.overrides = overrides.to_vec();
        Ok(config)
    }

    fn validate(raw: RawConfig, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let s = &raw.server;
        let auth_listen = parse_listen(&mut p, "server.auth_listen", &s.auth_listen);
        let acct_listen = parse_listen(&mut p, "server.acct_listen", &s.acct_listen);
        let radsec_listen = parse_listen(&mut p, "server.radsec_listen", &s.radsec_listen);
        if s.auth_listen.is_empty() && s.acct_listen.is_empty() && s.radsec_listen.is_empty() {
            p.add(
                "server.auth_listen",
                "no listener at all: give auth_listen, acct_listen or radsec_listen",
            );
        }
        if s.receive_buffer < 65536 {
            p.add(
                "server.receive_buffer",
                format!("{} is below 65536 octets", s.receive_buffer),
            );
        }
        if s.max_in_flight == 0 {
            p.add("server.max_in_flight", "must be at least 1");
        }
        let duplicate_cache_lifetime = parse_duration(
            &mut p,
            "server.duplicate_cache_lifetime",
            &s.duplicate_cache_lifetime,
        );
        let shutdown_timeout =
            parse_duration(&mut p, "server.shutdown_timeout", &s.shutdown_timeout);
        let dictionary_path = resolve(base, &s.dictionary);
        let dictionary = match Dictionary::load(&dictionary_path, &|p| std::fs::read_to_string(p)) {
            Ok(d) => Some(d),
            Err(e) => {
                p.add("server.dictionary", e);
                None
            }
        };

        let metrics_listen = if raw.metrics.listen.is_empty() {
            None
        } else {
            match raw.metrics.listen.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    p.add(
                        "metrics.listen",
                        format!("{:?} is not an address:port", raw.metrics.listen),
                    );
                    None
                }
            }
        };
        let http = http_settings(&mut p, base, &raw.metrics);
        let format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                p.add(
                    "log.format",
                    format!("{other:?} is not \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        };
        // tracing-subscriber 0.3.23 panics on some non-ASCII filters (it
        // slices inside a character; found by the config_file fuzzer), and
        // targets, levels and field names are ASCII anyway.
        if !raw.log.level.is_ascii() {
            p.add(
                "log.level",
                format!("{:?} has characters other than ASCII", raw.log.level),
            );
        } else if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            p.add(
                "log.level",
                format!("{:?} is not a level or filter like \"info\"", raw.log.level),
            );
        }

        let mut clients: Vec<UdpClient> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, c) in raw.clients.iter().enumerate() {
            let key = |field: &str| format!("clients[{i}].{field}");
            let name = match &c.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => {
                    p.add(&key("name"), "missing");
                    format!("clients[{i}]")
                }
            };
            let network = match c.address.as_deref() {
                None => {
                    p.add(&key("address"), "missing");
                    None
                }
                Some(a) => {
                    let n = parse_network(a);
                    if n.is_none() {
                        p.add(
                            &key("address"),
                            format!("{a:?} is not an IP address or CIDR"),
                        );
                    }
                    n
                }
            };
            let secret = read_secret(
                &mut p,
                base,
                &key("secret"),
                (&c.secret, &c.secret_file, &c.secret_env),
            );
            if secret.as_deref() == Some("") {
                p.add(&key("secret"), "is empty");
            }
            if names.contains(&name) {
                p.add(&key("name"), format!("{name:?} is used by another client"));
            }
            names.push(name.clone());
            if let Some(net) = network
                && let Some(o) = clients.iter().find(|o| o.network == net)
            {
                p.add(
                    &key("address"),
                    format!("{net} is already the address of client {:?}", o.client.name),
                );
            }
            if let (Some(network), Some(secret)) = (network, secret) {
                clients.push(UdpClient {
                    network,
                    client: ClientConfig {
                        name,
                        secret: Secret::new(secret.as_bytes()),
                        require_message_authenticator: c.require_message_authenticator,
                        limit_proxy_state: c.limit_proxy_state,
                        das: das::peer(&mut p, base, &key("das"), c.das.as_ref()),
                    },
                });
            }
        }

        let eap = eap::validate(
            &mut p,
            base,
            dictionary.as_ref(),
            &raw.eap,
            &raw.tls,
            &raw.authz,
        );

        let accounting = accounting::validate(&mut p, base, &raw.accounting);
        let das_settings = das::validate(&mut p, &raw.das);
        let admin = das::admin(&mut p, base, &raw.admin);
        let ocsp_settings = ocsp::validate(&mut p, &raw.ocsp);
        let radsec = radsec::validate(
            &mut p,
            base,
            radsec_listen,
            &raw.radsec,
            &raw.tls.certificate,
            &raw.tls.private_key,
            &names,
        );

        match (p.errors.is_empty(), dictionary) {
            (true, Some(dictionary)) => Ok(Config {
                path: path.to_path_buf(),
                overrides: Vec::new(),
                server: ServerConfig {
                    auth_listen,
                    acct_listen,
                    receive_buffer: usize::try_from(s.receive_buffer).unwrap_or(usize::MAX),
                    max_in_flight: usize::try_from(s.max_in_flight).unwrap_or(usize::MAX),
                    duplicate_cache_lifetime,
                    duplicate_cache_entries: usize::try_from(s.duplicate_cache_entries)
                        .unwrap_or(usize::MAX),
                    dictionary: dictionary_path,
                    shutdown_timeout,
                },
                metrics: MetricsConfig {
                    listen: metrics_listen,
                    http,
                },
                log: LogConfig {
                    format,
                    level: raw.log.level.clone(),
                },
                clients,
                dictionary: Arc::new(dictionary),
                eap: eap.map(Arc::new),
                accounting,
                radsec: radsec.map(Arc::new),
                das: das_settings,
                admin,
                ocsp: ocsp_settings,
                warnings: p.warnings,
            }),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: p.errors,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certgate.toml");
        let dict = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        let text = format!(
            "[server]\ndictionary = {:?}\n{text}",
            dict.display().to_string()
        );
        std::fs::write(&path, text).expect("write");
        std::fs::write(dir.path().join("secret.txt"), "from-file\n").expect("write");
        Config::load(&path)
    }

    #[test]
    fn das_admin_and_client_das_tables() {
        let c = load(
            "[[clients]]\nname = \"ap\"\naddress = \"10.0.0.0/8\"\nsecret = \"s\"\n\
             das = { port = 1700, secret_file = \"secret.txt\", identify = [\"user-name\"], coa = true }\n\
             [das]\nenabled = true\nreauthorize_interval = \"10m\"\n[admin]\nsocket = \"run/a.sock\"\nmode = \"0660\"\n",
        )
        .expect("valid");
        let das = c.das.expect("das on");
        assert_eq!(das.reauthorize, Some(Duration::from_secs(600)));
        assert_eq!(das.timeout, Duration::from_secs(2));
        let peer = &c.clients[0].client.das;
        assert_eq!(peer.port, 1700);
        assert_eq!(peer.secret, Some(Secret::new(b"from-file")));
        assert_eq!(peer.identify, vec![crate::proto::das::Identify::UserName]);
        assert!(peer.coa && peer.enabled);
        assert_eq!(c.admin.mode, 0o660);
        assert!(c.admin.socket.is_some_and(|p| p.ends_with("run/a.sock")));
        let off = load("").expect("valid");
        assert!(off.das.is_none() && off.admin.socket.is_none());

        let Err(ConfigError::Invalid { problems, .. }) = load(
            "[[clients]]\nname = \"ap\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n\
             das = { address = \"nowhere\", identify = [\"mac\"] }\n\
             [das]\nenabled = true\nrate = 0\n[admin]\nmode = \"0666\"\n",
        ) else {
            panic!("invalid");
        };
        let text = problems.join("\n");
        for key in [
            "clients[0].das.address",
            "clients[0].das.identify[0]",
            "das.rate",
            "admin.mode",
        ] {
            assert!(text.contains(key), "{key} not named in {text}");
        }
    }

    #[test]
    fn defaults_and_clients() {
        let c = load(
            "[[clients]]\nname = \"lo\"\naddress = \"127.0.0.0/8\"\nsecret = \"s\"\n\
             [[clients]]\nname = \"v6\"\naddress = \"::1\"\nsecret_file = \"secret.txt\"\nrequire_message_authenticator = false\n",
        )
        .expect("valid");
        assert_eq!(
            c.server.auth_listen,
            vec!["127.0.0.1:1812".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(c.server.duplicate_cache_lifetime, Duration::from_secs(5));
        assert_eq!(c.server.receive_buffer, 1 << 20);
        assert_eq!(c.clients.len(), 2);
        assert_eq!(c.clients[1].client.secret, Secret::new(b"from-file"));
        assert_eq!(c.clients[1].network.prefix_len(), 128);
        assert!(!c.clients[1].client.require_message_authenticator);
        assert!(c.clients[0].client.limit_proxy_state);
    }

    /// Regression: fuzz/artifacts/config_file/crash-6554c21a… aborted the
    /// process (an array of 2 000 000 036 values). Now a named problem.
    #[test]
    fn keys_the_config_crate_would_read_as_paths_are_refused() {
        for (text, key) in [
            (
                "'wcs[0000000002000000036]'='[ '",
                "server.wcs[0000000002000000036]",
            ),
            ("\"receive.buffer\" = 1", "server.receive.buffer"),
            ("[[clients]]\nname = \"a\"\n\"x]\" = 1", "clients[0].x]"),
        ] {
            let err = load(text).expect_err("refused").to_string();
            assert!(
                err.contains(&format!(
                    "{key}: '.', '[' and ']' cannot be part of a key name"
                )),
                "{err}"
            );
        }
        // The environment feeds the same path parser; checked on given
        // names, since setting real variables would reach every test.
        let mut p = Problems::default();
        let names = ["CERTGATE_LOG__LEVEL", "CERTGATE_A[2000000000]", "HOME[1]"];
        plain_keys(&mut p, "", names.into_iter().map(String::from));
        assert_eq!(
            p.errors,
            vec!["CERTGATE_A[2000000000]: '.', '[' and ']' cannot be part of a variable name"]
        );
    }

    /// Regression: fuzz/artifacts/config_file/crash-e9bf65c6… panicked
    /// inside tracing-subscriber's filter parser.
    #[test]
    fn a_non_ascii_log_filter_is_refused_not_parsed() {
        let err = load("[log]\nlevel = \"info, email\u{5ac}[AN)ewcn~(o\"")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("log.level: "), "{err}");
        assert!(err.contains("characters other than ASCII"), "{err}");
    }

    #[test]
    fn every_problem_names_its_key() {
        let err = load(
            "auth_listen = [\"nope\"]\nduplicate_cache_lifetime = \"soon\"\n\
             [log]\nformat = \"xml\"\n\
             [[clients]]\nname = \"a\"\naddress = \"foo\"\nsecret = \"s\"\n\
             [[clients]]\nname = \"a\"\naddress = \"10.0.0.0/8\"\n\
             [[clients]]\nname = \"c\"\naddress = \"10.0.0.1/8\"\nsecret = \"x\"\nsecret_env = \"Y\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "server.auth_listen[0]: \"nope\" is not an address:port",
            "server.duplicate_cache_lifetime: \"soon\" is not a duration",
            "log.format: \"xml\"",
            "clients[0].address: \"foo\" is not an IP address or CIDR",
            "clients[1].secret: missing",
            "clients[1].name: \"a\" is used by another client",
            "clients[2].secret: give only one",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn eap_tls_and_accounting_problems_name_their_keys() {
        let err = load(
            "[tls]\ncertificate = \"nope.pem\"\nmin_version = \"1.4\"\ncrl_missing = \"maybe\"\n\
             [eap]\nidentity_binding = \"loose\"\nidentity_sources = [\"upn\", \"x\"]\nfragment_size = 10\n\
             max_conversations = 10\nmax_conversations_per_nas = 11\nidle_timeout = \"2s\"\nevictable_after = \"3s\"\n\
             [authz]\nusers = \"none.toml\"\n\
             [accounting]\njournal_dir = \"j\"\nrotate_size = 10\nsession_timeout = \"later\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "tls.certificate: ",
            "nope.pem",
            "tls.private_key: missing",
            "tls.ca: missing",
            "tls.min_version: \"1.4\"",
            "tls.crl_missing: \"maybe\"",
            "eap.identity_binding: \"loose\"",
            "eap.identity_sources[1]: \"x\"",
            "eap.fragment_size: 10",
            "eap.max_conversations_per_nas: 11 is not 1..=10",
            "eap.evictable_after: 3s is longer than eap.idle_timeout (2s)",
            "authz.users: ",
            "accounting.rotate_size: 10",
            "accounting.session_timeout: \"later\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn authz_problems_name_their_keys_and_rules() {
        let err = load(
            "[tls]\ncertificate = \"nope.pem\"\n\
             [authz]\ndirectory = \"ldap\"\nunknown_identity = \"maybe\"\ntimeout = \"1s\"\nfallback_groups = [\"x\"]\n\
             [authz.ldap]\nurls = [\"http://ldap\", \"ldaps://ok\"]\nuser_filter = \"(uid=alice)\"\n\
             group_filter = \"(member={who})\"\nnested = \"deep\"\nbind_dn = \"cn=svc\"\noperation_timeout = \"3s\"\n\
             [[authz.rule]]\nname = \"staff\"\nreply = [\"Aruba-Role = x\"]\n\
             [[authz.rule]]\nname = \"vpn\"\nvlan = 0\naction = \"allow\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "authz.unknown_identity: \"maybe\"",
            "authz.fallback_groups: only used with on_directory_error",
            "authz.ldap.urls[0]: \"http://ldap\" is not an ldap://",
            "authz.ldap.base: missing",
            "authz.ldap.user_filter: uses no placeholder ({identity}",
            "authz.ldap.group_filter: \"(member={who})\": unknown placeholder {who}",
            "authz.ldap.nested: \"deep\"",
            "authz.ldap.bind_password: missing: give bind_password, bind_password_file or bind_password_env",
            "authz.ldap.operation_timeout: is longer than authz.timeout",
            "authz.rule[0] (staff).reply[0]: unknown attribute \"Aruba-Role\"",
            "authz.rule[1] (vpn).action: \"allow\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        assert!(!err.contains("urls[1]"), "{err}");
    }

    /// An EAP-TLS configuration with `cert`'s certificate and CA, `key`'s
    /// private key and an empty users file in `dir`.
    fn eap_toml(dir: &std::path::Path, cert: &crate::pki::Pki, key: &crate::pki::Pki) -> String {
        std::fs::write(dir.join("users.toml"), "").expect("users");
        let q = |p: std::path::PathBuf| format!("{:?}", p.display().to_string());
        format!(
            "[tls]\ncertificate = {}\nprivate_key = {}\nca = [{}]\n[authz]\nusers = {}\n",
            q(cert.path("server.pem")),
            q(key.path("server.key")),
            q(cert.path("ca.pem")),
            q(dir.join("users.toml")),
        )
    }

    #[test]
    fn a_server_key_that_does_not_match_its_certificate_is_refused() {
        use crate::pki::{KeyType, Pki};
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (
            Pki::open(&dir.path().join("a")),
            Pki::open(&dir.path().join("b")),
        );
        a.init("a.example", KeyType::EcdsaP256).expect("pki a");
        b.init("b.example", KeyType::EcdsaP256).expect("pki b");
        let err = load(&eap_toml(dir.path(), &a, &b))
            .expect_err("mismatched key")
            .to_string();
        assert!(err.contains("tls: server certificate or key"), "{err}");
    }

    #[test]
    fn radsec_defaults_and_problems_name_their_keys() {
        use crate::pki::{KeyType, Pki};
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(dir.path());
        pki.init("radius.example.org", KeyType::EcdsaP256)
            .expect("pki");
        let ca = format!("{:?}", pki.path("ca.pem").display().to_string());
        let text = format!(
            "radsec_listen = [\"127.0.0.1:2083\"]\n{}[radsec]\nca = [{ca}]\n\
             [[radsec.clients]]\nname = \"meraki\"\nnames = [\"*.meraki.example\"]\naddress = \"192.0.2.0/24\"\n",
            eap_toml(dir.path(), &pki, &pki)
        );
        let c = load(&text).expect("valid");
        let r = c.radsec.expect("radsec on");
        assert_eq!(r.listen, vec!["127.0.0.1:2083".parse().expect("addr")]);
        assert_eq!(
            r.clients[0].client.secret,
            Secret::new(b"radsec"),
            "RFC 6614 §2.3"
        );
        assert!(r.clients[0].client.require_message_authenticator);
        assert_eq!(
            r.clients[0].network,
            Some("192.0.2.0/24".parse().expect("net"))
        );
        assert_eq!(
            (
                r.max_connections,
                r.max_connections_per_client,
                r.max_in_flight
            ),
            (10_000, 5_000, 256)
        );
        assert_eq!(r.handshake_timeout, Duration::from_secs(10));
        assert_eq!(
            r.material.chain,
            c.eap.expect("eap").material.chain,
            "[tls]'s certificate"
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("radsec.crls: none configured")),
            "{:?}",
            c.warnings
        );

        let err = load(
            "radsec_listen = [\"127.0.0.1:2083\"]\n[[clients]]\nname = \"ap\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n\
             [radsec]\nmax_connections = 4\nmax_connections_per_client = 5\nmax_in_flight = 0\nidle_timeout = \"soon\"\n\
             [[radsec.clients]]\nname = \"ap\"\naddress = \"not-a-net\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "radsec.certificate: missing",
            "radsec.ca: missing",
            "radsec.max_connections_per_client: 5 is not 1..=4",
            "radsec.max_in_flight: 0",
            "radsec.idle_timeout: \"soon\"",
            "radsec.clients[0].name: \"ap\" is used by another client",
            "radsec.clients[0].names: missing",
            "radsec.clients[0].address: \"not-a-net\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err = load("[[radsec.clients]]\nname = \"x\"\nnames = [\"x\"]\n")
            .expect_err("clients without a listener")
            .to_string();
        assert!(
            err.contains("radsec.clients: given, but server.radsec_listen is empty"),
            "{err}"
        );
    }

    /// `TlsPolicy::default()` and `EapSettings::default()` stand for the
    /// configuration's defaults in benches, tests and the fuzzer.
    #[test]
    fn tls_and_table_defaults_are_the_configuration_defaults() {
        use crate::pki::{KeyType, Pki};
        use crate::proto::eap::service::EapSettings;
        use crate::proto::tls::TlsPolicy;
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(dir.path());
        pki.init("a.example", KeyType::EcdsaP256).expect("pki");
        let c = load(&eap_toml(dir.path(), &pki, &pki)).expect("valid");
        let eap = c.eap.expect("eap");
        assert_eq!(eap.tls_policy, TlsPolicy::default());
        assert_eq!(eap.settings, EapSettings::default());
    }

    #[test]
    fn sessions_need_a_token_from_a_file_or_the_environment() {
        let err = load("[metrics]\nsessions = true\n")
            .expect_err("no token")
            .to_string();
        assert!(
            err.contains("metrics.sessions: needs a bearer token"),
            "{err}"
        );
        let err = load("[metrics]\ntoken_file = \"secret.txt\"\n")
            .expect_err("token without sessions")
            .to_string();
        assert!(
            err.contains("metrics.token_file: a token is given"),
            "{err}"
        );
        // secret.txt holds "from-file": too short to be a bearer token.
        let err = load("[metrics]\nsessions = true\ntoken_file = \"secret.txt\"\n")
            .expect_err("short token")
            .to_string();
        assert!(err.contains("metrics.token: is 9 characters"), "{err}");
        let err = load("[metrics]\nhosts = [\"http://x\", \"a:1\"]\nmax_connections = 0\n")
            .expect_err("bad hosts")
            .to_string();
        for needle in [
            "metrics.hosts[0]: \"http://x\" is not a host name",
            "metrics.hosts[1]",
            "metrics.max_connections: 0",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let c = load("[metrics]\nhosts = [\"Radius1.Example.org\"]\n").expect("valid");
        assert_eq!(c.metrics.http.hosts, ["radius1.example.org"]);
        assert_eq!(c.metrics.http.sessions_token, None, "off by default");
    }

    #[test]
    fn eap_limits_and_warnings() {
        use crate::pki::{KeyType, Pki};
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(dir.path());
        pki.init("a.example", KeyType::EcdsaP256).expect("pki");
        let base = eap_toml(dir.path(), &pki, &pki);
        // 3998 octets of TLS is the most one 4096-octet Access-Challenge
        // carries with Message-Authenticator and State.
        let with = |eap: &str| format!("[eap]\n{eap}\n{base}");
        assert!(load(&with("fragment_size = 3998")).is_ok());
        let err = load(&with(
            "fragment_size = 3999\nmax_rounds = 5\nmemory_budget = 1000\nidle_timeout = \"2m\"",
        ))
        .expect_err("too large")
        .to_string();
        for needle in [
            "eap.fragment_size: 3999 is not 64..3998",
            "eap.max_rounds: 5 is not 10..1000",
            "eap.memory_budget: 1000 is below eap.max_message",
            "eap.idle_timeout: 120s is longer than eap.max_duration (60s)",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        // No CRLs: valid, but said loudly.
        let c = load(&base).expect("valid");
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("tls.crls: none configured")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn unknown_keys_and_bad_dictionary_are_refused() {
        let err = load("colour = \"blue\"\n")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(dir.path().join("dict"), "ATTRIBUTE X\n").expect("write");
        std::fs::write(&path, "[server]\ndictionary = \"dict\"\n").expect("write");
        let err = Config::load(&path).expect_err("bad dictionary").to_string();
        assert!(
            err.contains("server.dictionary:") && err.contains("dict:1:"),
            "{err}"
        );
    }
}
