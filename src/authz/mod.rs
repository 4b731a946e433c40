//! Authorization: after EAP-TLS proves who the client is, decide whether it
//! may connect and with which reply attributes.
//!
//! The `Authorizer` trait is the hook the EAP layer calls between the end of
//! the handshake and the final flight; backends implement it (`file` here,
//! LDAP later). `reply` compiles attribute lines. Backends may do I/O; the
//! decision types and `reply` are sans-I/O.

pub mod file;
pub mod reply;

use std::future::Future;
use std::pin::Pin;

use crate::tls::identity::CertIdentity;

/// What authorization knows about the request.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The authenticated identity, from the certificate.
    pub identity: String,
    pub outer_identity: String,
    pub certificate: CertIdentity,
    pub nas: String,
    pub called_station: Option<String>,
    pub calling_station: Option<String>,
    pub resumed: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept {
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

pub type DecisionFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// A source of authorization decisions. Implementations answer within
/// their own timeouts: a decision that never comes is a bug.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    fn authorize<'a>(&'a self, subject: &'a Subject) -> DecisionFuture<'a>;

    /// For logs and metrics.
    fn name(&self) -> &'static str;
}
