//! RADIUS wire layer: strict decoding, authenticators, Message-Authenticator,
//! attribute hiding (User-Password, MPPE keys) and packet building.
//!
//! Sans-I/O: bytes and secrets in, values and bytes out. It must not know about
//! sockets, clocks, clients or policy. The `radius` crate supplies the packet
//! codes and attribute numbers; its own `Packet` type is not used on the hot
//! path because it copies the secret and every attribute per packet, reports
//! errors as strings and knows nothing of Message-Authenticator, which we need
//! on every packet (RFC 3579, BlastRADIUS).

pub mod attr;
pub mod builder;
pub mod crypto;
pub mod packet;

pub use builder::{BuildError, PacketBuilder, ReplyTo};
pub use packet::{Code, DecodeError, HEADER_LEN, MAX_LEN, OwnedPacket, Packet};
