//! EAP over RADIUS (RFC 3748, RFC 3579). Sans-I/O: bytes in, decisions out.
//!
//! So far this holds the framing: EAP packets and their transport in
//! EAP-Message attributes (`packet`), and EAP-TLS fragmentation
//! (`tls_frag`). The conversation state machine and the rustls-driven
//! EAP-TLS engine build on them. It must not touch sockets or clocks.

pub mod packet;
pub mod tls_frag;

pub use packet::{EapCode, EapError, EapPacket};
