//! The `[authz]` section: which directory (`file` or `ldap` with its
//! `[authz.ldap]` settings), the cache, the failure policy, and the ordered
//! `[[authz.rule]]` list compiled against the dictionaries.
//!
//! Part of the configuration module: reads the users file and the LDAP CA
//! and password files; opens no connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::{Problems, either, parse_duration, read_secret, resolve};
use crate::proto::authz::cache::CacheSettings;
use crate::proto::authz::decide::{DecisionSettings, OnError};
use crate::proto::authz::policy::{Policy, RawRule};
use crate::proto::dictionary::Dictionary;
use crate::server::directory::file::{FileDirectory, RawUsers};
use crate::server::directory::ldap::filter::{
    CERTIFICATE_PLACEHOLDERS, FilterTemplate, PLACEHOLDERS,
};
use crate::server::directory::ldap::{GroupSource, IN_CHAIN_OID, LdapSettings, Nesting};
use crate::server::directory::{AuthzSettings, DirectoryKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuthz {
    directory: String,
    users: String,
    unknown_identity: String,
    default: String,
    on_directory_error: String,
    fallback_groups: Vec<String>,
    timeout: String,
    cache_entries: u64,
    cache_ttl: String,
    negative_cache_ttl: String,
    ldap: Option<RawLdap>,
    rule: Vec<RawRule>,
}

impl Default for RawAuthz {
    fn default() -> Self {
        RawAuthz {
            directory: "file".into(),
            users: "users.toml".into(),
            unknown_identity: "reject".into(),
            default: "reject".into(),
            on_directory_error: "reject".into(),
            fallback_groups: Vec::new(),
            timeout: "5s".into(),
            cache_entries: 10_000,
            cache_ttl: "60s".into(),
            negative_cache_ttl: "10s".into(),
            ldap: None,
            rule: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLdap {
    urls: Vec<String>,
    starttls: bool,
    allow_cleartext: bool,
    ca: String,
    bind_dn: String,
    bind_password: Option<String>,
    bind_password_file: Option<String>,
    bind_password_env: Option<String>,
    base: String,
    user_filter: String,
    groups: String,
    member_attribute: String,
    group_base: String,
    groups_under_base: bool,
    group_filter: String,
    group_name_attribute: String,
    nested: String,
    nested_depth: u32,
    disabled_filter: String,
    attributes: Vec<String>,
    certificate_binding: String,
    connect_timeout: String,
    operation_timeout: String,
    connections: u64,
    backoff_max: String,
}

impl Default for RawLdap {
    fn default() -> Self {
        RawLdap {
            urls: Vec::new(),
            starttls: false,
            allow_cleartext: false,
            ca: String::new(),
            bind_dn: String::new(),
            bind_password: None,
            bind_password_file: None,
            bind_password_env: None,
            base: String::new(),
            user_filter: "(|(userPrincipalName={identity})(mail={identity}))".into(),
            groups: "search".into(),
            member_attribute: "memberOf".into(),
            group_base: String::new(),
            groups_under_base: false,
            group_filter: String::new(),
            group_name_attribute: "cn".into(),
            nested: "none".into(),
            nested_depth: 3,
            disabled_filter: String::new(),
            attributes: Vec::new(),
            certificate_binding: String::new(),
            connect_timeout: "2s".into(),
            operation_timeout: "2s".into(),
            connections: 2,
            backoff_max: "30s".into(),
        }
    }
}

pub(super) fn validate(
    p: &mut Problems,
    base: &Path,
    dict: Option<&Dictionary>,
    raw: &RawAuthz,
) -> Option<AuthzSettings> {
    let unknown_to_policy = either(
        p,
        "authz.unknown_identity",
        &raw.unknown_identity,
        "reject",
        "policy",
    );
    let default_accept = either(p, "authz.default", &raw.default, "reject", "accept");
    let on_error = if either(
        p,
        "authz.on_directory_error",
        &raw.on_directory_error,
        "reject",
        "accept",
    ) {
        OnError::Accept {
            groups: raw.fallback_groups.clone(),
        }
    } else {
        if !raw.fallback_groups.is_empty() {
            p.add(
                "authz.fallback_groups",
                "only used with on_directory_error = \"accept\"",
            );
        }
        OnError::Reject
    };
    let timeout = parse_duration(p, "authz.timeout", &raw.timeout);
    let mut cache = CacheSettings {
        capacity: usize::try_from(raw.cache_entries).unwrap_or(usize::MAX),
        positive_ttl: ttl(p, "authz.cache_ttl", &raw.cache_ttl),
        negative_ttl: ttl(p, "authz.negative_cache_ttl", &raw.negative_cache_ttl),
    };
    let directory = match (raw.directory.as_str(), &raw.ldap) {
        ("file", None) => {
            // Answering from memory: a cache would only hold a copy.
            cache.capacity = 0;
            load_users(p, base, &raw.users).map(|d| DirectoryKind::File(Arc::new(d)))
        }
        ("file", Some(_)) => {
            p.add(
                "authz.ldap",
                "given, but authz.directory is \"file\": set directory = \"ldap\"",
            );
            None
        }
        ("ldap", Some(l)) => ldap(p, base, l, timeout).map(|l| DirectoryKind::Ldap(Arc::new(l))),
        ("ldap", None) => {
            p.add(
                "authz.ldap",
                "missing: directory = \"ldap\" needs [authz.ldap]",
            );
            None
        }
        (other, _) => {
            p.add(
                "authz.directory",
                format!("{other:?} is not \"file\" or \"ldap\""),
            );
            None
        }
    };
    let policy = match Policy::compile(&raw.rule, default_accept, dict?) {
        Ok(policy) => Some(policy),
        Err(problems) => {
            for problem in problems {
                // Already "authz.rule[i] (name).key: problem".
                p.errors.push(problem);
            }
            None
        }
    };
    let directory = directory?;
    // Strong mapping (LDAP only): the attribute that must bind the
    // certificate to the entry, and whether the look-up depends on the
    // certificate at all.
    let (binding, per_certificate) = match (&raw.ldap, &directory) {
        (Some(l), DirectoryKind::Ldap(settings)) => (
            (!l.certificate_binding.is_empty()).then(|| l.certificate_binding.to_ascii_lowercase()),
            settings.user_filter.uses_any(&CERTIFICATE_PLACEHOLDERS),
        ),
        _ => (None, false),
    };
    let name = match &directory {
        DirectoryKind::File(_) => "file",
        DirectoryKind::Ldap(_) => "ldap",
    };
    Some(AuthzSettings {
        directory,
        decision: DecisionSettings {
            policy: Arc::new(policy?),
            cache,
            timeout,
            on_error,
            unknown_to_policy,
            directory: name,
            binding: binding.clone(),
            cache_by_certificate: binding.is_some() || per_certificate,
        },
    })
}

/// A TTL where "0s" turns that half of the cache off.
fn ttl(p: &mut Problems, key: &str, text: &str) -> Duration {
    if text.trim() == "0" || text.trim() == "0s" {
        Duration::ZERO
    } else {
        parse_duration(p, key, text)
    }
}

fn load_users(p: &mut Problems, base: &Path, file: &str) -> Option<FileDirectory> {
    let path = resolve(base, file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| p.add("authz.users", format!("{}: {e}", path.display())))
        .ok()?;
    let raw: RawUsers = toml::from_str(&text)
        .map_err(|e| p.add("authz.users", format!("{}: {e}", path.display())))
        .ok()?;
    Some(FileDirectory::new(raw))
}

fn filter(p: &mut Problems, key: &str, text: &str, allowed: &[&str]) -> Option<FilterTemplate> {
    FilterTemplate::parse(text, allowed)
        .map_err(|e| p.add(key, e))
        .ok()
}

fn ldap(p: &mut Problems, base: &Path, l: &RawLdap, overall: Duration) -> Option<LdapSettings> {
    if l.urls.is_empty() {
        p.add(
            "authz.ldap.urls",
            "missing: give at least one ldap:// or ldaps:// URL",
        );
    }
    for (i, u) in l.urls.iter().enumerate() {
        let scheme = u.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("ldap") => {}
            Some("ldaps") if l.starttls => p.add(
                &format!("authz.ldap.urls[{i}]"),
                format!("{u:?}: starttls applies to ldap:// URLs, not ldaps://"),
            ),
            Some("ldaps") => {}
            _ => p.add(
                &format!("authz.ldap.urls[{i}]"),
                format!("{u:?} is not an ldap:// or ldaps:// URL"),
            ),
        }
    }
    if l.base.trim().is_empty() {
        p.add(
            "authz.ldap.base",
            "missing: the search base, e.g. \"dc=example,dc=org\"",
        );
    }
    let user_placeholders: Vec<&str> = PLACEHOLDERS[..3]
        .iter()
        .chain(CERTIFICATE_PLACEHOLDERS.iter())
        .copied()
        .collect();
    let user_filter = filter(
        p,
        "authz.ldap.user_filter",
        &l.user_filter,
        &user_placeholders,
    );
    if let Some(f) = &user_filter
        && !f.has_placeholders()
    {
        p.add(
            "authz.ldap.user_filter",
            "uses no placeholder ({identity}, {user}, {realm}, or a certificate fact): it would find the same entry for everyone",
        );
    }
    let nesting = match l.nested.as_str() {
        "none" => Nesting::None,
        "recursive" if (1..=10).contains(&l.nested_depth) => Nesting::Recursive(l.nested_depth),
        "recursive" => {
            p.add(
                "authz.ldap.nested_depth",
                format!("{} is not 1..10", l.nested_depth),
            );
            Nesting::None
        }
        "in_chain" => Nesting::InChain,
        other => {
            p.add(
                "authz.ldap.nested",
                format!("{other:?} is not \"none\", \"recursive\" or \"in_chain\""),
            );
            Nesting::None
        }
    };
    let groups = match l.groups.as_str() {
        "attribute" => {
            if nesting == Nesting::InChain {
                p.add(
                    "authz.ldap.nested",
                    "\"in_chain\" needs groups = \"search\" (it is a group search filter)",
                );
            }
            if !l.group_filter.is_empty() {
                p.add(
                    "authz.ldap.group_filter",
                    "only used with groups = \"search\"",
                );
            }
            Some(GroupSource::Attribute(l.member_attribute.clone()))
        }
        "search" => {
            let text = match (l.group_filter.as_str(), nesting) {
                ("", Nesting::InChain) => format!("(member:{IN_CHAIN_OID}:={{dn}})"),
                ("", _) => {
                    "(&(|(objectClass=groupOfNames)(objectClass=group))(member={dn}))".into()
                }
                (t, _) => t.to_string(),
            };
            if nesting == Nesting::InChain && !text.contains(IN_CHAIN_OID) {
                p.add(
                    "authz.ldap.group_filter",
                    format!("nested = \"in_chain\" needs the matching rule {IN_CHAIN_OID} in it"),
                );
            }
            let f = filter(p, "authz.ldap.group_filter", &text, &PLACEHOLDERS);
            if f.is_some() && !text.contains("{dn}") {
                p.add("authz.ldap.group_filter", "must use {dn} (the member's DN)");
            }
            let group_base = if l.group_base.is_empty() {
                l.base.clone()
            } else {
                l.group_base.clone()
            };
            f.map(|filter| GroupSource::Search {
                base: group_base,
                filter,
            })
        }
        other => {
            p.add(
                "authz.ldap.groups",
                format!("{other:?} is not \"attribute\" or \"search\""),
            );
            None
        }
    };
    let disabled_filter = if l.disabled_filter.is_empty() {
        None
    } else {
        filter(
            p,
            "authz.ldap.disabled_filter",
            &l.disabled_filter,
            &user_placeholders,
        )
    };
    let connect_timeout = parse_duration(p, "authz.ldap.connect_timeout", &l.connect_timeout);
    let operation_timeout = parse_duration(p, "authz.ldap.operation_timeout", &l.operation_timeout);
    if operation_timeout > overall {
        p.add(
            "authz.ldap.operation_timeout",
            "is longer than authz.timeout, which bounds the whole look-up",
        );
    }
    let backoff_max = parse_duration(p, "authz.ldap.backoff_max", &l.backoff_max);
    if !(1..=64).contains(&l.connections) {
        p.add(
            "authz.ldap.connections",
            format!("{} is not 1..64", l.connections),
        );
    }
    let bind_password = if l.bind_dn.is_empty() {
        if l.bind_password.is_some()
            || l.bind_password_file.is_some()
            || l.bind_password_env.is_some()
        {
            p.add(
                "authz.ldap.bind_dn",
                "missing, but a bind password is given",
            );
        }
        Some(String::new())
    } else {
        read_secret(
            p,
            base,
            "authz.ldap.bind_password",
            (
                &l.bind_password,
                &l.bind_password_file,
                &l.bind_password_env,
            ),
        )
    };
    // A bind password over ldap:// without StartTLS crosses the network in
    // clear text: an error unless the operator says so explicitly (then a
    // warning at every start).
    let has_password = bind_password.as_deref().is_some_and(|p| !p.is_empty());
    for (i, u) in l.urls.iter().enumerate() {
        let plain = u.split_once("://").is_some_and(|(s, _)| s == "ldap");
        if plain && !l.starttls && has_password {
            if l.allow_cleartext {
                p.warn(format!(
                    "authz.ldap.urls[{i}]: {u:?} without starttls sends the bind password in clear text (allow_cleartext = true)"
                ));
            } else {
                p.add(
                    &format!("authz.ldap.urls[{i}]"),
                    format!(
                        "{u:?} without starttls would send the bind password in clear text: \
                         use ldaps://, set starttls = true, or set allow_cleartext = true"
                    ),
                );
            }
        }
    }
    let tls_config = if l.ca.is_empty() {
        None
    } else {
        let path = resolve(base, &l.ca);
        let roots = CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| p.add("authz.ldap.ca", format!("{}: {e}", path.display())))
            .ok();
        roots.and_then(|roots| {
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(roots);
            if added == 0 {
                p.add(
                    "authz.ldap.ca",
                    format!("{}: no usable CA certificate", path.display()),
                );
                return None;
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(store).with_no_client_auth()))
                .map_err(|e| p.add("authz.ldap.ca", e))
                .ok()
        })
    };
    if !l.ca.is_empty() && tls_config.is_none() {
        return None;
    }
    let group_base = if l.group_base.is_empty() {
        &l.base
    } else {
        &l.group_base
    };
    Some(LdapSettings {
        urls: l.urls.clone(),
        starttls: l.starttls,
        tls_config,
        bind_dn: l.bind_dn.clone(),
        bind_password: bind_password?,
        base: l.base.clone(),
        user_filter: user_filter?,
        groups: groups?,
        group_scope: l.groups_under_base.then(|| group_base.clone()),
        group_name_attribute: l.group_name_attribute.clone(),
        nesting,
        disabled_filter,
        // The binding attribute is read with the entry.
        attributes: l
            .attributes
            .iter()
            .chain((!l.certificate_binding.is_empty()).then_some(&l.certificate_binding))
            .cloned()
            .collect(),
        connect_timeout,
        operation_timeout,
        connections: usize::try_from(l.connections).unwrap_or(1).clamp(1, 64),
        backoff_max,
    })
}
