//! EAP over RADIUS (RFC 3748, RFC 3579). Sans-I/O: bytes in, decisions out.
//!
//! So far this holds the framing: EAP packets and their transport in
//! EAP-Message attributes. The conversation state machine and EAP-TLS build
//! on it. It must not touch sockets or clocks.

pub mod packet;

pub use packet::{EapCode, EapError, EapPacket};
