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

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Lookup, DirectoryError>> + Send + 'a>>;

/// Where identities and their groups come from.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Looks `identity` up (the certificate identity, unescaped: escaping
    /// for a query language is the directory's job).
    fn lookup<'a>(&'a self, identity: &'a str) -> LookupFuture<'a>;

    /// For logs and metrics.
    fn name(&self) -> &'static str;
}

impl<T: Directory + ?Sized> Directory for std::sync::Arc<T> {
    fn lookup<'a>(&'a self, identity: &'a str) -> LookupFuture<'a> {
        (**self).lookup(identity)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}
