//! The LDAP directory: finds the certificate identity with a filter
//! template, reads its groups (a membership attribute such as `memberOf`,
//! or a group search; nested groups by recursion or AD's in-chain rule),
//! checks an "account disabled" filter, and returns the attributes reply
//! templates use. Servers are tried in order (`pool`).
//!
//! I/O edge. It must not decide access: the policy does, from the entry.

pub mod dn;
pub mod filter;
pub mod pool;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{Ldap, Scope, SearchEntry};

use super::{Directory, LookupFuture};
use crate::metrics::AuthzMetrics;
use crate::proto::authz::{DirectoryError, Entry, Group, Lookup};
use crate::proto::tls::identity::CertIdentity;
use dn::{first_rdn_value, is_under};
use filter::FilterTemplate;
use pool::{Pool, Server, classify, is_transport};

/// AD's LDAP_MATCHING_RULE_IN_CHAIN: the server walks nested groups.
pub const IN_CHAIN_OID: &str = "1.2.840.113556.1.4.1941";

/// An upper bound on groups per identity, whatever the directory holds.
const MAX_GROUPS: usize = 1000;

/// Member DNs per OR-joined group search.
const GROUP_BATCH: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    /// DNs in an attribute of the user entry (`memberOf`).
    Attribute(String),
    /// Entries under `base` matching `filter` (which uses `{dn}`).
    Search {
        base: String,
        filter: FilterTemplate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    None,
    /// Follow groups of groups up to this many levels above direct ones.
    Recursive(u32),
    /// The group filter uses the in-chain matching rule: one search.
    InChain,
}

/// `[authz.ldap]` as checked by the configuration.
#[derive(Debug)]
pub struct LdapSettings {
    pub urls: Vec<String>,
    pub starttls: bool,
    /// Trust for ldaps:// and StartTLS; None uses the system store.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    pub bind_dn: String,
    pub bind_password: String,
    pub base: String,
    pub user_filter: FilterTemplate,
    pub groups: GroupSource,
    /// Only groups whose DN lies under this base count (and only through
    /// them does nesting go); None accepts any DN the directory names.
    pub group_scope: Option<String>,
    pub group_name_attribute: String,
    pub nesting: Nesting,
    pub disabled_filter: Option<FilterTemplate>,
    /// Attributes read for `{attr:NAME}` templates.
    pub attributes: Vec<String>,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    pub connections: usize,
    pub backoff_max: Duration,
}

pub struct LdapDirectory {
    settings: Arc<LdapSettings>,
    pool: Pool,
    metrics: AuthzMetrics,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("servers", &self.pool.servers)
            .finish()
    }
}

impl LdapDirectory {
    pub fn new(settings: Arc<LdapSettings>, metrics: AuthzMetrics) -> Self {
        for url in &settings.urls {
            for kind in ["connect", "bind", "timeout", "connection", "result"] {
                metrics.ldap_errors.with_label_values(&[url, kind]);
            }
        }
        LdapDirectory {
            pool: Pool::new(settings.clone()),
            settings,
            metrics,
        }
    }

    /// Servers in order, skipping those backing off; each transport
    /// failure moves to the next one.
    async fn find(
        &self,
        identity: &str,
        certificate: Option<&CertIdentity>,
    ) -> Result<Lookup, DirectoryError> {
        let mut last: Option<DirectoryError> = None;
        let mut tried = 0;
        for server in &self.pool.servers {
            if let Some(until) = self.pool.backing_off(server, Instant::now()) {
                last.get_or_insert_with(|| {
                    DirectoryError::new(
                        "backoff",
                        format!(
                            "{} failed recently; next try in {} ms",
                            server.url,
                            until.saturating_duration_since(Instant::now()).as_millis()
                        ),
                    )
                });
                continue;
            }
            if tried > 0 || last.is_some() {
                self.metrics.ldap_failovers.inc();
            }
            tried += 1;
            let result = match self.pool.checkout(server, &self.metrics).await {
                Ok(mut c) => {
                    let r = self.query(server, &mut c.ldap, identity, certificate).await;
                    if let Err(e) = &r
                        && is_transport(e.kind)
                    {
                        self.pool.retire(server, &c).await;
                    }
                    r
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(lookup) => return Ok(lookup),
                Err(e) => {
                    self.metrics
                        .ldap_errors
                        .with_label_values(&[&server.url, e.kind])
                        .inc();
                    if !is_transport(e.kind) {
                        return Err(e);
                    }
                    tracing::warn!(server = %server.url, error = %e, "LDAP server failed; backing off");
                    self.pool.failed(server, Instant::now());
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| DirectoryError::new("connect", "no LDAP server configured")))
    }

    async fn search(
        &self,
        server: &Server,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let started = Instant::now();
        let result = ldap
            .with_timeout(self.settings.operation_timeout)
            .search(base, scope, filter, attrs)
            .await
            .and_then(|r| r.success());
        self.metrics
            .ldap_seconds
            .with_label_values(&[&server.url, "search"])
            .observe(started.elapsed().as_secs_f64());
        let (entries, _) = result.map_err(|e| {
            DirectoryError::new(
                classify(&e),
                format!("{}: search {filter:?}: {e}", server.url),
            )
        })?;
        entries
            .into_iter()
            .map(|raw| {
                // SearchEntry::construct panics on a malformed entry; the
                // server's bytes must not be able to take a task down.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    SearchEntry::construct(raw)
                }))
                .map_err(|_| {
                    DirectoryError::new("protocol", format!("{}: malformed entry", server.url))
                })
            })
            .collect()
    }

    async fn query(
        &self,
        server: &Server,
        ldap: &mut Ldap,
        identity: &str,
        certificate: Option<&CertIdentity>,
    ) -> Result<Lookup, DirectoryError> {
        let s = &*self.settings;
        let (user, realm) = identity.rsplit_once('@').unwrap_or((identity, ""));
        let facts = certificate.map(CertIdentity::facts);
        let mut values = vec![("identity", identity), ("user", user), ("realm", realm)];
        values.extend(facts.iter().flatten().map(|(k, v)| (*k, v.as_str())));
        let user_filter = s.user_filter.expand(&values);
        // The common case (an enabled user) in one search: the disabled
        // condition is folded into the filter, and only an empty answer
        // needs a second search to tell "disabled" from "unknown".
        let filter = match &s.disabled_filter {
            Some(d) => format!("(&{user_filter}(!{}))", d.expand(&values)),
            None => user_filter.clone(),
        };
        let mut attrs: Vec<&str> = s.attributes.iter().map(String::as_str).collect();
        if let GroupSource::Attribute(a) = &s.groups {
            attrs.push(a);
        }
        if attrs.is_empty() {
            attrs.push("1.1"); // RFC 4511: no attributes
        }
        let mut found = self
            .search(server, ldap, &s.base, Scope::Subtree, &filter, &attrs)
            .await?;
        if found.is_empty() && s.disabled_filter.is_some() {
            let any = self
                .search(
                    server,
                    ldap,
                    &s.base,
                    Scope::Subtree,
                    &user_filter,
                    &["1.1"],
                )
                .await?;
            return match any.len() {
                0 => Ok(Lookup::NotFound),
                1 => Ok(Lookup::Disabled {
                    dn: any[0].dn.clone(),
                }),
                n => Err(ambiguous(n, &user_filter)),
            };
        }
        let user_entry = match found.len() {
            0 => return Ok(Lookup::NotFound),
            1 => found.remove(0),
            n => return Err(ambiguous(n, &filter)),
        };
        let dn = user_entry.dn.clone();
        let attributes: HashMap<String, Vec<String>> = user_entry
            .attrs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let groups = match &s.groups {
            GroupSource::Attribute(a) => {
                let direct = attributes
                    .get(&a.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default();
                self.nested_by_attribute(server, ldap, a, direct).await?
            }
            GroupSource::Search { base, filter } => {
                self.groups_by_search(server, ldap, base, filter, &values, &dn)
                    .await?
            }
        };
        Ok(Lookup::Found(Entry {
            dn,
            groups,
            attributes,
        }))
    }

    fn levels(&self) -> u32 {
        match self.settings.nesting {
            Nesting::Recursive(d) => d,
            Nesting::None | Nesting::InChain => 0,
        }
    }

    /// Direct groups from the membership attribute, then that attribute of
    /// each group, level by level.
    async fn nested_by_attribute(
        &self,
        server: &Server,
        ldap: &mut Ldap,
        attribute: &str,
        direct: Vec<String>,
    ) -> Result<Vec<Group>, DirectoryError> {
        let in_scope = |dn: &str| {
            self.settings
                .group_scope
                .as_deref()
                .is_none_or(|base| is_under(dn, base))
        };
        let mut seen = HashSet::new();
        let mut groups = Vec::new();
        let mut frontier = Vec::new();
        for dn in direct {
            if in_scope(&dn) && seen.insert(dn.to_ascii_lowercase()) {
                frontier.push(dn);
            }
        }
        for level in 0..=self.levels() {
            let mut next = Vec::new();
            for dn in frontier {
                if level < self.levels() {
                    for e in self
                        .search(
                            server,
                            ldap,
                            &dn,
                            Scope::Base,
                            "(objectClass=*)",
                            &[attribute],
                        )
                        .await?
                    {
                        for parent in attr_values(&e, attribute) {
                            if in_scope(parent)
                                && seen.insert(parent.to_ascii_lowercase())
                                && seen.len() <= MAX_GROUPS
                            {
                                next.push(parent.clone());
                            }
                        }
                    }
                }
                groups.push(Group {
                    name: first_rdn_value(&dn).to_string(),
                    dn: Some(dn),
                });
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(groups)
    }

    /// Groups whose members include the user (or, recursively, a group
    /// already found).
    async fn groups_by_search(
        &self,
        server: &Server,
        ldap: &mut Ldap,
        base: &str,
        filter: &FilterTemplate,
        values: &[(&str, &str)],
        user_dn: &str,
    ) -> Result<Vec<Group>, DirectoryError> {
        let name_attr = self.settings.group_name_attribute.as_str();
        let mut seen = HashSet::new();
        let mut groups = Vec::new();
        let mut frontier = vec![user_dn.to_string()];
        for _ in 0..=self.levels() {
            let mut next = Vec::new();
            // One search per level (in chunks): the member filters of the
            // whole frontier joined with OR.
            for chunk in frontier.chunks(GROUP_BATCH) {
                let filters: Vec<String> = chunk
                    .iter()
                    .map(|member| {
                        let mut v = values.to_vec();
                        v.push(("dn", member));
                        filter.expand(&v)
                    })
                    .collect();
                let joined = match filters.as_slice() {
                    [one] => one.clone(),
                    many => format!("(|{})", many.concat()),
                };
                let found = self
                    .search(server, ldap, base, Scope::Subtree, &joined, &[name_attr])
                    .await?;
                for e in found {
                    if !seen.insert(e.dn.to_ascii_lowercase()) || groups.len() >= MAX_GROUPS {
                        continue;
                    }
                    let name = attr_values(&e, name_attr)
                        .first()
                        .cloned()
                        .unwrap_or_else(|| first_rdn_value(&e.dn).to_string());
                    next.push(e.dn.clone());
                    groups.push(Group {
                        name,
                        dn: Some(e.dn),
                    });
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(groups)
    }
}

fn ambiguous(n: usize, filter: &str) -> DirectoryError {
    DirectoryError::new(
        "ambiguous",
        format!("{n} entries match {filter:?}: the filter must find one"),
    )
}

/// An attribute's values, whatever case the server spelled its name in.
fn attr_values<'e>(e: &'e SearchEntry, name: &str) -> &'e [String] {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default()
}

impl Directory for LdapDirectory {
    fn lookup<'a>(
        &'a self,
        identity: &'a str,
        certificate: Option<&'a CertIdentity>,
    ) -> LookupFuture<'a> {
        Box::pin(self.find(identity, certificate))
    }

    fn name(&self) -> &'static str {
        "ldap"
    }
}
