//! The octets of RFC 5176 requests and the check of their answers:
//! Disconnect-Request and CoA-Request with Event-Timestamp and
//! Message-Authenticator (hostapd requires both), the Request
//! Authenticator computed as for accounting (§3.5); and an ACK or NAK
//! verified against the request it answers, with its Error-Cause.
//!
//! Encoding and verification only: it must not choose what to send.

use thiserror::Error;

use super::Kind;
use crate::proto::wire::crypto::{
    HeaderAuthenticator, Secret, verify_message_authenticator_over, verify_response_authenticator,
};
use crate::proto::wire::packet::{HEADER_LEN, value_u32};
use crate::proto::wire::{BuildError, Code, Packet, PacketBuilder};

/// RFC 2869 §5.3.
pub const EVENT_TIMESTAMP: u8 = 55;
/// RFC 5176 §3.6.
pub const ERROR_CAUSE: u8 = 101;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AnswerError {
    #[error("not a RADIUS packet: {0}")]
    Malformed(String),
    #[error("{0} does not answer a {1} request")]
    WrongCode(&'static str, &'static str),
    #[error("the Response Authenticator does not verify (wrong secret?)")]
    BadAuthenticator,
    #[error("the Message-Authenticator does not verify")]
    BadMessageAuthenticator,
}

/// A request ready to send, and what its answer is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub authenticator: [u8; 16],
}

/// What the NAS said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    /// With its Error-Cause, when it gave one.
    Nak(Option<u32>),
}

fn request_code(kind: Kind) -> Code {
    match kind {
        Kind::Disconnect => Code::DisconnectRequest,
        Kind::Coa => Code::CoARequest,
    }
}

/// Encodes a request: `attributes` in order, then Event-Timestamp; the
/// Message-Authenticator first.
pub fn encode(
    kind: Kind,
    identifier: u8,
    attributes: &[(u8, Vec<u8>)],
    event_timestamp: u32,
    secret: &Secret,
) -> Result<Encoded, BuildError> {
    let mut b = PacketBuilder::new(request_code(kind), identifier, true);
    for (k, v) in attributes {
        b.push(*k, v)?;
    }
    b.push_u32(EVENT_TIMESTAMP, event_timestamp)?;
    let bytes = b.finish_accounting_request(secret);
    let mut authenticator = [0; 16];
    authenticator.copy_from_slice(&bytes[4..HEADER_LEN]);
    Ok(Encoded {
        bytes,
        authenticator,
    })
}

/// The code and Identifier of a datagram that may answer a request; None
/// for anything else (too short, or another code).
pub fn peek(bytes: &[u8]) -> Option<(Kind, u8)> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let kind = match Code::from(bytes[0]) {
        Code::DisconnectACK | Code::DisconnectNAK => Kind::Disconnect,
        Code::CoAACK | Code::CoANAK => Kind::Coa,
        _ => return None,
    };
    Some((kind, bytes[1]))
}

/// Verifies an answer to the request `sent` (of `kind`, under `secret`):
/// its code, its Response Authenticator and, when present, its
/// Message-Authenticator (RFC 3579 §3.2: computed with the request's
/// authenticator).
pub fn check(
    bytes: &[u8],
    kind: Kind,
    sent: &[u8; 16],
    secret: &Secret,
) -> Result<Verdict, AnswerError> {
    let packet = Packet::decode(bytes).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    let code = packet.code();
    let ack = match (kind, code) {
        (Kind::Disconnect, Code::DisconnectACK) | (Kind::Coa, Code::CoAACK) => true,
        (Kind::Disconnect, Code::DisconnectNAK) | (Kind::Coa, Code::CoANAK) => false,
        _ => return Err(AnswerError::WrongCode(code.string(), kind.as_str())),
    };
    if !verify_response_authenticator(&packet, sent, secret) {
        return Err(AnswerError::BadAuthenticator);
    }
    if packet.has_message_authenticator()
        && !verify_message_authenticator_over(&packet, HeaderAuthenticator::Request(sent), secret)
    {
        return Err(AnswerError::BadMessageAuthenticator);
    }
    Ok(if ack {
        Verdict::Ack
    } else {
        Verdict::Nak(packet.attribute(ERROR_CAUSE).and_then(value_u32))
    })
}

/// RFC 5176 §3.6's name for an Error-Cause value.
pub fn cause_name(cause: u32) -> &'static str {
    match cause {
        201 => "Residual Session Context Removed",
        202 => "Invalid EAP Packet",
        401 => "Unsupported Attribute",
        402 => "Missing Attribute",
        403 => "NAS Identification Mismatch",
        404 => "Invalid Request",
        405 => "Unsupported Service",
        406 => "Unsupported Extension",
        407 => "Invalid Attribute Value",
        501 => "Administratively Prohibited",
        502 => "Request Not Routable",
        503 => "Session Context Not Found",
        504 => "Session Context Not Removable",
        505 => "Other Proxy Processing Error",
        506 => "Resources Unavailable",
        507 => "Request Initiated",
        508 => "Multiple Session Selection Unsupported",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::attr::{MESSAGE_AUTHENTICATOR, USER_NAME};
    use crate::proto::wire::crypto::{packet_digest, verify_message_authenticator};

    fn secret() -> Secret {
        Secret::new(b"dassecret")
    }

    /// What a NAS does with a request (hostapd's checks): the Request
    /// Authenticator over zeros, the Message-Authenticator with a zero
    /// header, Event-Timestamp present.
    #[test]
    fn requests_verify_as_a_nas_checks_them() {
        let attrs = vec![(USER_NAME, b"alice@example.org".to_vec())];
        let e = encode(Kind::Disconnect, 7, &attrs, 1_796_000_000, &secret()).expect("encode");
        let p = Packet::decode(&e.bytes).expect("decode");
        assert_eq!(p.code(), Code::DisconnectRequest);
        assert_eq!(p.identifier(), 7);
        assert_eq!(
            p.attributes().next().map(|(k, _)| k),
            Some(MESSAGE_AUTHENTICATOR)
        );
        assert_eq!(
            p.attribute(EVENT_TIMESTAMP).and_then(value_u32),
            Some(1_796_000_000)
        );
        assert_eq!(
            packet_digest(&e.bytes, &[0; 16], &secret()),
            e.authenticator
        );
        assert!(verify_message_authenticator(&p, &secret()));
        assert!(!verify_message_authenticator(&p, &Secret::new(b"other")));
        let coa = encode(Kind::Coa, 8, &attrs, 1, &secret()).expect("encode");
        assert_eq!(coa.bytes[0], Code::CoARequest as u8);
    }

    fn answer(code: Code, id: u8, sent: &[u8; 16], cause: Option<u32>, key: &Secret) -> Vec<u8> {
        let mut b = PacketBuilder::new(code, id, true);
        if let Some(c) = cause {
            b.push_u32(ERROR_CAUSE, c).expect("push");
        }
        b.finish_response(sent, key)
    }

    #[test]
    fn answers_are_verified_against_their_request() {
        let e = encode(Kind::Disconnect, 9, &[], 1, &secret()).expect("encode");
        let ack = answer(Code::DisconnectACK, 9, &e.authenticator, None, &secret());
        assert_eq!(peek(&ack), Some((Kind::Disconnect, 9)));
        assert_eq!(
            check(&ack, Kind::Disconnect, &e.authenticator, &secret()),
            Ok(Verdict::Ack)
        );
        let nak = answer(
            Code::DisconnectNAK,
            9,
            &e.authenticator,
            Some(503),
            &secret(),
        );
        assert_eq!(
            check(&nak, Kind::Disconnect, &e.authenticator, &secret()),
            Ok(Verdict::Nak(Some(503)))
        );
        // Signed with another secret, or answering another request.
        let forged = answer(
            Code::DisconnectACK,
            9,
            &e.authenticator,
            None,
            &Secret::new(b"x"),
        );
        assert_eq!(
            check(&forged, Kind::Disconnect, &e.authenticator, &secret()),
            Err(AnswerError::BadAuthenticator)
        );
        assert_eq!(
            check(&ack, Kind::Disconnect, &[1; 16], &secret()),
            Err(AnswerError::BadAuthenticator)
        );
        // A CoA answer to a Disconnect.
        let coa_ack = answer(Code::CoAACK, 9, &e.authenticator, None, &secret());
        assert!(matches!(
            check(&coa_ack, Kind::Disconnect, &e.authenticator, &secret()),
            Err(AnswerError::WrongCode(..))
        ));
        // A Message-Authenticator that does not verify, with a valid
        // Response Authenticator over the tampered octets.
        let mut tampered = ack.clone();
        tampered[HEADER_LEN + 2] ^= 1;
        let ra = packet_digest(&tampered, &e.authenticator, &secret());
        tampered[4..HEADER_LEN].copy_from_slice(&ra);
        assert_eq!(
            check(&tampered, Kind::Disconnect, &e.authenticator, &secret()),
            Err(AnswerError::BadMessageAuthenticator)
        );
        assert_eq!(peek(&[41, 1, 0]), None);
        assert_eq!(peek(&e.bytes), None, "a request is no answer");
        assert!(matches!(
            check(
                &[41, 1, 0, 5, 0, 0],
                Kind::Disconnect,
                &e.authenticator,
                &secret()
            ),
            Err(AnswerError::Malformed(_))
        ));
    }
}
