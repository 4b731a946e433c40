//! Directories: where identities and their groups come from. The engine
//! asks (`proto::authz::Lookup` is the answer); these do the asking — the
//! users file from memory, LDAP over the network.
//!
//! I/O edge: it must not decide access; the policy does, from the entry.

pub mod file;
pub mod ldap;

use std::future::Future;
use std::pin::Pin;

use crate::proto::authz::{DirectoryError, Lookup};
use crate::proto::tls::identity::CertIdentity;

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Lookup, DirectoryError>> + Send + 'a>>;

/// Where identities and their groups come from.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Looks `identity` up (the certificate identity, unescaped: escaping
    /// for a query language is the directory's job); `certificate` gives
    /// the facts strong mapping filters use (`{issuer_serial_ad}`, …).
    fn lookup<'a>(
        &'a self,
        identity: &'a str,
        certificate: Option<&'a CertIdentity>,
    ) -> LookupFuture<'a>;

    /// For logs and metrics.
    fn name(&self) -> &'static str;
}

impl<T: Directory + ?Sized> Directory for std::sync::Arc<T> {
    fn lookup<'a>(
        &'a self,
        identity: &'a str,
        certificate: Option<&'a CertIdentity>,
    ) -> LookupFuture<'a> {
        (**self).lookup(identity, certificate)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Which directory, as configured.
#[derive(Debug, Clone)]
pub enum DirectoryKind {
    File(std::sync::Arc<file::FileDirectory>),
    Ldap(std::sync::Arc<ldap::LdapSettings>),
}

/// `[authz]` as checked by the configuration: the directory the shell
/// asks, and what the engine decides with.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    pub directory: DirectoryKind,
    pub decision: crate::proto::authz::decide::DecisionSettings,
}

/// The directory `kind` names, ready to ask (LDAP connects on first use).
pub fn open(kind: &DirectoryKind, metrics: &crate::metrics::AuthzMetrics) -> Box<dyn Directory> {
    match kind {
        DirectoryKind::File(f) => Box::new(f.clone()),
        DirectoryKind::Ldap(l) => Box::new(ldap::LdapDirectory::new(l.clone(), metrics.clone())),
    }
}

/// Asks `directory` about `identity`, giving up after `deadline` (failovers
/// included): a look-up always ends.
pub async fn lookup(
    directory: &dyn Directory,
    identity: &str,
    certificate: Option<&CertIdentity>,
    deadline: std::time::Duration,
) -> Result<Lookup, DirectoryError> {
    tokio::time::timeout(deadline, directory.lookup(identity, certificate))
        .await
        .map_err(|_| {
            DirectoryError::new(
                "deadline",
                format!("no answer within {}", humantime::format_duration(deadline)),
            )
        })?
}
