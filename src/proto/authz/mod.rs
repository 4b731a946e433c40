//! Authorization's decisions: after EAP-TLS proves who the client is,
//! decide whether it may connect and with which reply attributes.
//!
//! What a directory answers about an identity (`Lookup`, `Entry`, `Group`)
//! is data here; asking the directory is the shell's job
//! (`server::directory`). The `cache` keeps answers, the ordered `policy`
//! rules decide, `reply` compiles attribute lines and `pattern` the globs
//! rules match with. Sans-I/O: it must not talk to a directory.

pub mod cache;
pub mod decide;
pub mod pattern;
pub mod policy;
pub mod reply;

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use crate::proto::tls::identity::CertIdentity;

/// An identity as directories and caches compare it: ASCII letters folded
/// to lower case, nothing else. Unicode folding maps distinct identities
/// together (the Kelvin sign lowercases to `k`, so `\u{212a}im@…` would
/// find kim's entry, or be answered from kim's cache entry).
pub fn fold(identity: &str) -> String {
    identity.to_ascii_lowercase()
}

/// What authorization knows about the request.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The authenticated identity, from the certificate.
    pub identity: String,
    pub outer_identity: String,
    pub certificate: Arc<CertIdentity>,
    pub nas: String,
    pub called_station: Option<String>,
    pub calling_station: Option<String>,
    pub resumed: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept {
        /// The rule that accepted (a configured name, or the default's).
        rule: String,
        groups: Vec<String>,
        /// (type, value) pairs, vendor attributes as type 26.
        attributes: Vec<(u8, Vec<u8>)>,
    },
    Reject {
        /// A metric label.
        reason: &'static str,
        detail: String,
    },
}

/// A group the directory says an identity belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Short name (an LDAP group's `cn`, a users-file group name).
    pub name: String,
    /// Distinguished name, for LDAP groups.
    pub dn: Option<String>,
}

impl Group {
    pub fn named(name: &str) -> Self {
        Group {
            name: name.to_string(),
            dn: None,
        }
    }
}

/// What the directory knows about an identity that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub groups: Vec<Group>,
    /// Attribute values by lower-cased name, for `{attr:name}` templates.
    pub attributes: HashMap<String, Vec<String>>,
}

/// A directory's answer about one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Entry),
    NotFound,
    Disabled { dn: String },
}

/// Why a directory could not answer. `kind` is a metric label.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{kind}: {detail}")]
pub struct DirectoryError {
    pub kind: &'static str,
    pub detail: String,
}

impl DirectoryError {
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        DirectoryError {
            kind,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identities_fold_ascii_case_only() {
        assert_eq!(super::fold("Alice@Example.ORG"), "alice@example.org");
        assert_eq!(super::fold("\u{212a}im@x"), "\u{212a}im@x");
        assert_ne!(super::fold("\u{212a}im@x"), super::fold("kim@x"));
        assert_eq!(super::fold("ÖSTEN"), "Östen");
    }
}
