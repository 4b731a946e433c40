//! certgate: a RADIUS server for networks that authenticate with certificates.
//!
//! The library holds everything; `main.rs` is only the command line, so tests
//! and the load generator run the same code as the server.

// Memory safety is the compiler's job here: no unsafe code in this crate.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod authz;
pub mod bench;
pub mod config;
pub mod dictionary;
pub mod eap;
pub mod hex;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod radius;
pub mod server;
pub mod supplicant;
pub mod tls;
