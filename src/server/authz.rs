//! The authorizer certgate runs: the directory (through the cache, within
//! one deadline), then the policy. Unknown and disabled identities, and a
//! directory that cannot answer, get their configured outcome here, each
//! with a reason and a counter.
//!
//! Glue: it must not parse directory data or match rules itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use super::directory::Directory;
use super::directory::file::FileDirectory;
use super::directory::ldap::{LdapDirectory, LdapSettings};
use crate::metrics::AuthzMetrics;
use crate::proto::authz::cache::{Cache, CacheSettings};
use crate::proto::authz::policy::Policy;
use crate::proto::authz::{Decision, DirectoryError, Entry, Group, Lookup, Subject};

pub type DecisionFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// A source of authorization decisions. Implementations answer within
/// their own timeouts: a decision that never comes is a bug.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    fn authorize<'a>(&'a self, subject: &'a Subject) -> DecisionFuture<'a>;

    /// For logs and metrics.
    fn name(&self) -> &'static str;
}

/// Which directory, as configured.
#[derive(Debug, Clone)]
pub enum DirectoryKind {
    File(Arc<FileDirectory>),
    Ldap(Arc<LdapSettings>),
}

/// What to do when the directory cannot answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    Reject,
    /// Evaluate the policy as if the identity had these groups (e.g. a
    /// rule that puts `directory-down` into a restricted VLAN).
    Accept {
        groups: Vec<String>,
    },
}

/// `[authz]` as checked by the configuration.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    pub directory: DirectoryKind,
    pub policy: Arc<Policy>,
    pub cache: CacheSettings,
    /// The whole look-up, failovers included.
    pub timeout: Duration,
    pub on_error: OnError,
    /// Identities the directory does not know: rejected, or given to the
    /// policy with no groups (certificate-only rules).
    pub unknown_to_policy: bool,
}

pub struct Authz {
    directory: Box<dyn Directory>,
    settings: AuthzSettings,
    cache: Cache,
    metrics: AuthzMetrics,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("directory", &self.directory)
            .finish()
    }
}

impl Authz {
    /// Opens nothing: LDAP connections are made on first use.
    pub fn new(settings: AuthzSettings, metrics: AuthzMetrics) -> Self {
        let directory: Box<dyn Directory> = match &settings.directory {
            DirectoryKind::File(f) => Box::new(f.clone()),
            DirectoryKind::Ldap(l) => Box::new(LdapDirectory::new(l.clone(), metrics.clone())),
        };
        for rule in settings.policy.rule_names() {
            for outcome in ["accept", "reject"] {
                metrics.policy_decisions.with_label_values(&[rule, outcome]);
            }
        }
        Authz {
            directory,
            cache: Cache::new(settings.cache),
            settings,
            metrics,
        }
    }

    async fn lookup(&self, identity: &str) -> Result<Lookup, DirectoryError> {
        let key = crate::proto::authz::fold(identity);
        if let Some(hit) = self.cache.get(&key, Instant::now()) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        self.metrics.cache_misses.inc();
        let timeout = self.settings.timeout;
        let lookup = tokio::time::timeout(timeout, self.directory.lookup(identity))
            .await
            .map_err(|_| {
                DirectoryError::new(
                    "deadline",
                    format!("no answer within {}", humantime::format_duration(timeout)),
                )
            })??;
        let evicted = self.cache.put(&key, &lookup, Instant::now());
        self.metrics.cache_evictions.inc_by(evicted as u64);
        self.metrics.cache_entries.set(self.cache.len() as i64);
        Ok(lookup)
    }

    pub async fn decide(&self, subject: &Subject) -> Decision {
        let entry = match self.lookup(&subject.identity).await {
            Ok(Lookup::Found(entry)) => entry,
            Ok(Lookup::Disabled { dn }) => {
                return Decision::Reject {
                    reason: "disabled",
                    detail: format!("{dn} is disabled in the directory"),
                };
            }
            Ok(Lookup::NotFound) if self.settings.unknown_to_policy => Entry::default(),
            Ok(Lookup::NotFound) => {
                return Decision::Reject {
                    reason: "unknown_identity",
                    detail: format!("not in the {} directory", self.directory.name()),
                };
            }
            Err(e) => {
                self.metrics
                    .directory_errors
                    .with_label_values(&[self.directory.name(), e.kind])
                    .inc();
                match &self.settings.on_error {
                    OnError::Reject => {
                        return Decision::Reject {
                            reason: "directory_unavailable",
                            detail: e.to_string(),
                        };
                    }
                    OnError::Accept { groups } => {
                        tracing::warn!(
                            identity = %subject.identity,
                            error = %e,
                            groups = ?groups,
                            "directory unavailable; applying the policy with the fallback groups"
                        );
                        Entry {
                            groups: groups.iter().map(|g| Group::named(g)).collect(),
                            ..Entry::default()
                        }
                    }
                }
            }
        };
        let (rule, decision) = self.settings.policy.evaluate(subject, &entry);
        let outcome = match decision {
            Decision::Accept { .. } => "accept",
            Decision::Reject { .. } => "reject",
        };
        self.metrics
            .policy_decisions
            .with_label_values(&[rule, outcome])
            .inc();
        tracing::debug!(identity = %subject.identity, rule, outcome, "policy decided");
        decision
    }
}

impl Authorizer for Authz {
    fn authorize<'a>(&'a self, subject: &'a Subject) -> DecisionFuture<'a> {
        Box::pin(self.decide(subject))
    }

    fn name(&self) -> &'static str {
        self.directory.name()
    }
}
