//! EAP packets (RFC 3748 §4) and their carriage in consecutive EAP-Message
//! attributes of at most 253 octets (RFC 3579 §3.1).
//!
//! Framing only: it must not decide what a packet means for a conversation.

use thiserror::Error;

use crate::proto::wire::attr::{EAP_MESSAGE, MAX_VALUE_LEN};
use crate::proto::wire::{BuildError, Packet, PacketBuilder};

/// EAP method types the server names in logs (IANA "Method Types").
pub mod method {
    pub const IDENTITY: u8 = 1;
    pub const NOTIFICATION: u8 = 2;
    pub const NAK: u8 = 3;
    pub const MD5_CHALLENGE: u8 = 4;
    pub const TLS: u8 = 13;
    pub const TTLS: u8 = 21;
    pub const PEAP: u8 = 25;
    pub const MSCHAPV2: u8 = 26;
    pub const FAST: u8 = 43;
    pub const TEAP: u8 = 55;

    /// A name for logs.
    pub fn name(t: u8) -> &'static str {
        match t {
            IDENTITY => "Identity",
            NOTIFICATION => "Notification",
            NAK => "Nak",
            MD5_CHALLENGE => "MD5-Challenge",
            TLS => "TLS",
            TTLS => "TTLS",
            PEAP => "PEAP",
            MSCHAPV2 => "MSCHAPv2",
            FAST => "FAST",
            TEAP => "TEAP",
            _ => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EapCode {
    Request = 1,
    Response = 2,
    Success = 3,
    Failure = 4,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum EapError {
    #[error("no EAP-Message attribute")]
    Absent,
    #[error("EAP-Message attributes are not consecutive")]
    NotConsecutive,
    #[error("EAP packet of {0} octets is shorter than its 4-octet header")]
    TooShort(usize),
    #[error("EAP Length {declared} disagrees with the {actual} octets carried")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("EAP code {0} is not Request, Response, Success or Failure")]
    UnknownCode(u8),
    #[error("EAP {0:?} without a Type octet")]
    MissingType(EapCode),
    #[error("EAP packet of {0} octets is too large for one RADIUS packet")]
    TooLarge(usize),
}

/// A parsed EAP packet borrowing its octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EapPacket<'a> {
    pub code: EapCode,
    pub identifier: u8,
    /// The method Type of Requests and Responses; None for Success/Failure.
    pub method: Option<u8>,
    /// Type-Data: what follows the Type octet.
    pub data: &'a [u8],
}

impl<'a> EapPacket<'a> {
    /// Parses one EAP packet; its Length must match the octets exactly.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EapError> {
        let [code, identifier, l0, l1, ..] = *bytes else {
            return Err(EapError::TooShort(bytes.len()));
        };
        let declared = usize::from(u16::from_be_bytes([l0, l1]));
        if declared != bytes.len() {
            return Err(EapError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        let code = match code {
            1 => EapCode::Request,
            2 => EapCode::Response,
            3 => EapCode::Success,
            4 => EapCode::Failure,
            other => return Err(EapError::UnknownCode(other)),
        };
        let (method, data) = match code {
            EapCode::Request | EapCode::Response => match bytes.get(4) {
                Some(&t) => (Some(t), &bytes[5..]),
                None => return Err(EapError::MissingType(code)),
            },
            EapCode::Success | EapCode::Failure => (None, &bytes[4..]),
        };
        Ok(EapPacket {
            code,
            identifier,
            method,
            data,
        })
    }
}

/// Encodes an EAP packet; `method` is None for Success and Failure.
pub fn build(code: EapCode, identifier: u8, method: Option<u8>, data: &[u8]) -> Vec<u8> {
    let len = 4 + usize::from(method.is_some()) + data.len();
    let mut out = Vec::with_capacity(len);
    out.push(code as u8);
    out.push(identifier);
    out.extend_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    if let Some(t) = method {
        out.push(t);
    }
    out.extend_from_slice(data);
    out
}

/// Joins a request's EAP-Message attributes, which RFC 3579 §3.1 requires
/// to be consecutive.
pub fn reassemble(packet: &Packet<'_>) -> Result<Vec<u8>, EapError> {
    let mut out = Vec::new();
    let mut state = 0u8; // 0 before, 1 inside, 2 after the run
    for (kind, value) in packet.attributes() {
        match (kind == EAP_MESSAGE, state) {
            (true, 0 | 1) => {
                state = 1;
                out.extend_from_slice(value);
            }
            (true, _) => return Err(EapError::NotConsecutive),
            (false, 1) => state = 2,
            (false, _) => {}
        }
    }
    if state == 0 {
        return Err(EapError::Absent);
    }
    Ok(out)
}

/// Appends `eap` as consecutive EAP-Message attributes.
pub fn push_eap_message(builder: &mut PacketBuilder, eap: &[u8]) -> Result<(), BuildError> {
    if eap.is_empty() {
        builder.push(EAP_MESSAGE, &[])?;
    }
    for chunk in eap.chunks(MAX_VALUE_LEN) {
        builder.push(EAP_MESSAGE, chunk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::Code;
    use crate::proto::wire::crypto::Secret;

    /// (code, identifier, method, data length) or the error.
    type Parsed = Result<(EapCode, u8, Option<u8>, usize), EapError>;

    #[test]
    fn parse_table() {
        let cases: Vec<(&str, Vec<u8>, Parsed)> = vec![
            (
                "identity response",
                build(EapCode::Response, 7, Some(1), b"alice"),
                Ok((EapCode::Response, 7, Some(1), 5)),
            ),
            (
                "success",
                vec![3, 9, 0, 4],
                Ok((EapCode::Success, 9, None, 0)),
            ),
            ("empty", vec![], Err(EapError::TooShort(0))),
            ("three octets", vec![2, 1, 0], Err(EapError::TooShort(3))),
            (
                "length too long",
                vec![2, 1, 0, 9, 1],
                Err(EapError::LengthMismatch {
                    declared: 9,
                    actual: 5,
                }),
            ),
            (
                "length too short",
                vec![2, 1, 0, 4, 1],
                Err(EapError::LengthMismatch {
                    declared: 4,
                    actual: 5,
                }),
            ),
            ("code 5", vec![5, 1, 0, 4], Err(EapError::UnknownCode(5))),
            (
                "response without type",
                vec![2, 1, 0, 4],
                Err(EapError::MissingType(EapCode::Response)),
            ),
        ];
        for (name, bytes, want) in cases {
            let got =
                EapPacket::parse(&bytes).map(|p| (p.code, p.identifier, p.method, p.data.len()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn split_and_reassemble() {
        let secret = Secret::new(b"s");
        let eap = build(EapCode::Response, 3, Some(method::TLS), &[0xAB; 1000]);
        let mut b = PacketBuilder::new(Code::AccessRequest, 1, true);
        b.push(1, b"user").expect("fits");
        push_eap_message(&mut b, &eap).expect("fits");
        b.push(24, b"state").expect("fits");
        let bytes = b.finish_access_request(&[0; 16], &secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert_eq!(p.attributes_of(EAP_MESSAGE).count(), 4);
        assert_eq!(reassemble(&p).expect("reassembles"), eap);

        let mut b = PacketBuilder::new(Code::AccessRequest, 1, true);
        b.push(EAP_MESSAGE, &eap[..10]).expect("fits");
        b.push(1, b"between").expect("fits");
        b.push(EAP_MESSAGE, &eap[10..20]).expect("fits");
        let bytes = b.finish_access_request(&[0; 16], &secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert_eq!(reassemble(&p), Err(EapError::NotConsecutive));

        let bytes = PacketBuilder::new(Code::AccessRequest, 1, true)
            .finish_access_request(&[0; 16], &secret);
        assert_eq!(
            reassemble(&Packet::decode(&bytes).expect("decodes")),
            Err(EapError::Absent)
        );
    }
}
