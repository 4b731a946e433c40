//! The protocol engine: everything that decides. RADIUS decoding,
//! verification and encoding (`wire`, with the `dictionary`), client
//! admission and duplicate detection (`admission`, `clients`, `dedup`),
//! Status-Server and plain answers (`status`), EAP and EAP-TLS (`eap`),
//! certificate checks and identities (`tls`), authorization decisions
//! (`authz`), accounting records and sessions (`accounting`), and
//! dynamic authorization requests to the NAS (`das`), and OCSP queries
//! and their answers (`ocsp`).
//!
//! Sans-I/O: bytes, the current time and a random source come in as
//! arguments, decisions go out. Nothing here reads a clock, a file, a
//! socket or the environment, or uses tokio; `tests/purity.rs` fails if
//! anything does. The shell (`server`) does the I/O.

mod access;
pub mod accounting;
pub mod admission;
pub mod authz;
pub mod clients;
pub mod clock;
pub mod das;
pub mod dedup;
pub mod dictionary;
pub mod droplog;
pub mod eap;
pub mod engine;
pub mod hex;
pub mod ocsp;
pub mod radsec;
pub mod runtime;
pub mod status;
pub mod tls;
pub mod wire;

pub use admission::Request;
pub use clock::Now;
pub use engine::{Action, Answer, Engine, Received, Ticket, Work};
