//! EAP over RADIUS (RFC 3748, RFC 3579) with EAP-TLS (RFC 5216, RFC 9190).
//! Sans-I/O: bytes and the current time in, decisions out.
//!
//! - `packet`: EAP packets and their carriage in EAP-Message attributes.
//! - `tls_frag`: EAP-TLS flags, length and fragmentation.
//! - `tls_session`: a rustls `ServerConnection` driven from memory.
//! - `keys`: MSK, EMSK and Session-Id.
//! - `conversation`: Identifier sequencing and method choice.
//! - `table`: running conversations keyed by State.
//! - `service`: one Access-Request's EAP step, start to finish.
//! - `reply`: the RADIUS answer that carries the outcome.
//!
//! It must not touch sockets, clocks or directories.

pub mod conversation;
pub mod keys;
pub mod packet;
pub mod reply;
pub mod service;
pub mod table;
pub mod tls_frag;
pub mod tls_session;

pub use packet::{EapCode, EapError, EapPacket};

#[cfg(test)]
mod tests;
