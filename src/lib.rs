//! certgate: a RADIUS server for networks that authenticate with certificates.
//!
//! `proto` is the sans-I/O engine that decides; `server` is the I/O shell
//! that drives it (sockets, directories, the journal, HTTP, signals);
//! `config` reads and validates the configuration. The library holds
//! everything; `main.rs` is only the command line, so tests, fuzzers and
//! the load generator run the same code as the server.

// Memory safety is the compiler's job here: no unsafe code in this crate.
#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod proto;
pub mod server;
pub mod supplicant;
