//! Authorization as the engine runs it: a directory answer (from the cache,
//! or the one the shell fetched) becomes a decision — unknown and disabled
//! identities and a directory that could not answer get their configured
//! outcome, each with a reason and a counter, and the policy decides the
//! rest.
//!
//! Sans-I/O: it never asks the directory; the engine hands the look-up to
//! the shell and brings the answer back here.

use std::time::{Duration, Instant};

use super::cache::{Cache, CacheSettings};
use super::policy::Policy;
use super::{Decision, DirectoryError, Entry, Group, Lookup, Subject, fold};
use crate::metrics::AuthzMetrics;
use std::sync::Arc;

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

/// `[authz]` less the directory, as checked by the configuration.
#[derive(Debug, Clone)]
pub struct DecisionSettings {
    pub policy: Arc<Policy>,
    pub cache: CacheSettings,
    /// The whole look-up, failovers included (the shell enforces it).
    pub timeout: Duration,
    pub on_error: OnError,
    /// Identities the directory does not know: rejected, or given to the
    /// policy with no groups (certificate-only rules).
    pub unknown_to_policy: bool,
    /// `file` or `ldap`, for logs and metrics.
    pub directory: &'static str,
    /// Strong mapping: the entry's attribute (lower case) that must hold
    /// one of the certificate's KB5014754 strong mappings.
    pub binding: Option<String>,
    /// Answers are cached per certificate, not per identity: the look-up
    /// depends on the certificate (binding, or certificate facts in the
    /// filter).
    pub cache_by_certificate: bool,
}

/// The policy and the cache of one configuration: a reload starts a new
/// one, with an empty cache.
/// Whether `entry`'s `attr` holds one of the certificate's strong
/// mappings (ASCII case aside, as Active Directory compares them).
fn bound(subject: &Subject, entry: &Entry, attr: &str) -> bool {
    let mappings = subject.certificate.strong_mappings();
    entry.attributes.get(attr).is_some_and(|values| {
        values
            .iter()
            .any(|v| mappings.iter().any(|m| m.eq_ignore_ascii_case(v.trim())))
    })
}

pub struct Authorization {
    settings: DecisionSettings,
    cache: Cache,
    metrics: AuthzMetrics,
}

impl Authorization {
    pub fn new(settings: DecisionSettings, metrics: AuthzMetrics) -> Self {
        for rule in settings.policy.rule_names() {
            for outcome in ["accept", "reject"] {
                metrics.policy_decisions.with_label_values(&[rule, outcome]);
            }
        }
        Authorization {
            cache: Cache::new(settings.cache),
            settings,
            metrics,
        }
    }

    pub fn settings(&self) -> &DecisionSettings {
        &self.settings
    }

    /// The cached directory answer for `identity`, if fresh.
    /// What answers about `subject` are cached under.
    fn cache_key(&self, subject: &Subject) -> String {
        let identity = fold(&subject.identity);
        if self.settings.cache_by_certificate {
            format!("{identity}\0{}", subject.certificate.sha256)
        } else {
            identity
        }
    }

    pub fn cached(&self, subject: &Subject, now: Instant) -> Option<Lookup> {
        let hit = self.cache.get(&self.cache_key(subject), now);
        match hit {
            Some(_) => self.metrics.cache_hits.inc(),
            None => self.metrics.cache_misses.inc(),
        }
        hit
    }

    /// Keeps a directory answer (never an error).
    pub fn remember(&self, subject: &Subject, lookup: &Lookup, now: Instant) {
        let evicted = self.cache.put(&self.cache_key(subject), lookup, now);
        self.metrics.cache_evictions.inc_by(evicted as u64);
        self.metrics.cache_entries.set(self.cache.len() as i64);
    }

    /// The decision for `subject` given the directory's answer.
    pub fn decide(&self, subject: &Subject, answer: Result<Lookup, DirectoryError>) -> Decision {
        let s = &self.settings;
        let entry = match answer {
            Ok(Lookup::Found(entry)) => entry,
            Ok(Lookup::Disabled { dn }) => {
                return Decision::Reject {
                    reason: "disabled",
                    detail: format!("{dn} is disabled in the directory"),
                };
            }
            Ok(Lookup::NotFound) if s.unknown_to_policy => Entry::default(),
            Ok(Lookup::NotFound) => {
                return Decision::Reject {
                    reason: "unknown_identity",
                    detail: format!("not in the {} directory", s.directory),
                };
            }
            Err(e) => {
                self.metrics
                    .directory_errors
                    .with_label_values(&[s.directory, e.kind])
                    .inc();
                match &s.on_error {
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
        if let Some(attr) = &s.binding
            && !bound(subject, &entry, attr)
        {
            return Decision::Reject {
                reason: "certificate_not_bound",
                detail: format!(
                    "{} has no {attr} value naming this certificate ({})",
                    if entry.dn.is_empty() {
                        "the entry"
                    } else {
                        &entry.dn
                    },
                    subject.certificate.issuer_serial_ad()
                ),
            };
        }
        let (rule, decision) = s.policy.evaluate(subject, &entry);
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
