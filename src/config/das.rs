//! The `[das]` section (dynamic authorization: when and how fast the server
//! sends Disconnect and CoA requests), the `das = { … }` table of each
//! client (how that NAS takes them), and `[admin]` (the local socket the
//! `certgate sessions` and `certgate disconnect` commands reach the running
//! server through).
//!
//! Part of the configuration module: reads secret files, opens nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::accounting::file_group;
use super::{Problems, parse_duration, read_secret, resolve};
use crate::proto::das::{DasPeer, DasSettings, Identify};
use crate::proto::wire::crypto::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDas {
    enabled: bool,
    dry_run: bool,
    timeout: String,
    retries: u32,
    rate: u32,
    on_revocation: bool,
    reauthorize_interval: String,
    reauthorize_rate: u32,
}

impl Default for RawDas {
    fn default() -> Self {
        let d = DasSettings::default();
        RawDas {
            enabled: false,
            dry_run: d.dry_run,
            timeout: "2s".into(),
            retries: d.retries,
            rate: d.rate,
            on_revocation: d.on_revocation,
            reauthorize_interval: String::new(),
            reauthorize_rate: d.reauthorize_rate,
        }
    }
}

/// `das = { … }` in a `[[clients]]` or `[[radsec.clients]]` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientDas {
    enabled: Option<bool>,
    address: Option<String>,
    port: Option<u16>,
    secret: Option<String>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    identify: Option<Vec<String>>,
    coa: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    socket: String,
    mode: String,
    group: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            socket: String::new(),
            mode: "0600".into(),
            group: String::new(),
        }
    }
}

/// `[admin]` as checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminConfig {
    /// The Unix socket; None: no admin socket.
    pub socket: Option<PathBuf>,
    /// Its file mode (0600: the server's user only; 0660 with `group`).
    pub mode: u32,
    pub group: Option<u32>,
}

pub(super) fn validate(p: &mut Problems, raw: &RawDas) -> Option<DasSettings> {
    if !raw.enabled {
        return None;
    }
    let timeout = parse_duration(p, "das.timeout", &raw.timeout);
    if raw.retries > 10 {
        p.add("das.retries", format!("{} is above 10", raw.retries));
    }
    if !(1..=100_000).contains(&raw.rate) {
        p.add("das.rate", format!("{} is not 1..100000", raw.rate));
    }
    if !(1..=100_000).contains(&raw.reauthorize_rate) {
        p.add(
            "das.reauthorize_rate",
            format!("{} is not 1..100000", raw.reauthorize_rate),
        );
    }
    let reauthorize = (!raw.reauthorize_interval.is_empty())
        .then(|| parse_duration(p, "das.reauthorize_interval", &raw.reauthorize_interval));
    Some(DasSettings {
        dry_run: raw.dry_run,
        timeout,
        retries: raw.retries.min(10),
        rate: raw.rate.max(1),
        on_revocation: raw.on_revocation,
        reauthorize,
        reauthorize_rate: raw.reauthorize_rate.max(1),
    })
}

/// A client's `das` table; `key` names it (`clients[2].das`).
pub(super) fn peer(
    p: &mut Problems,
    base: &Path,
    key: &str,
    raw: Option<&RawClientDas>,
) -> DasPeer {
    let d = DasPeer::default();
    let Some(raw) = raw else { return d };
    let address = raw
        .address
        .as_deref()
        .and_then(|a| match a.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.add(
                    &format!("{key}.address"),
                    format!("{a:?} is not an address:port (the NAS's DAS port, usually 3799)"),
                );
                None
            }
        });
    let secret = match (&raw.secret, &raw.secret_file, &raw.secret_env) {
        (None, None, None) => None,
        given => {
            read_secret(p, base, &format!("{key}.secret"), given).map(|s| Secret::new(s.as_bytes()))
        }
    };
    let identify = match &raw.identify {
        None => d.identify,
        Some(list) => {
            let mut out = Vec::new();
            for (i, name) in list.iter().enumerate() {
                match Identify::parse(name) {
                    Some(x) => out.push(x),
                    None => p.add(
                        &format!("{key}.identify[{i}]"),
                        format!("{name:?} is not user-name, acct-session-id, calling-station-id, nas-identifier, nas-ip-address or framed-ip-address"),
                    ),
                }
            }
            if list.is_empty() {
                p.add(
                    &format!("{key}.identify"),
                    "is empty: the NAS could not tell which session",
                );
            }
            out
        }
    };
    DasPeer {
        enabled: raw.enabled.unwrap_or(true),
        address,
        port: raw.port.unwrap_or(d.port),
        secret,
        identify,
        coa: raw.coa.unwrap_or(false),
    }
}

pub(super) fn admin(p: &mut Problems, base: &Path, raw: &RawAdmin) -> AdminConfig {
    let mode = match u32::from_str_radix(raw.mode.trim_start_matches("0o"), 8) {
        Ok(m) if m & 0o007 == 0 && m & 0o600 == 0o600 && m <= 0o770 => m,
        _ => {
            p.add(
                "admin.mode",
                format!(
                    "{:?} is not an octal mode like \"0600\" or \"0660\" (owner read-write, nothing for others)",
                    raw.mode
                ),
            );
            0o600
        }
    };
    let group = file_group(p, "admin.group", &raw.group);
    AdminConfig {
        socket: (!raw.socket.is_empty()).then(|| resolve(base, &raw.socket)),
        mode,
        group,
    }
}
