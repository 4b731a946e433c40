//! A validated, zero-copy view of one RADIUS packet.
//!
//! Decoding walks the attributes exactly once and rejects anything RFC 2865
//! §3 and §5 forbid, so later code can iterate attributes without re-checking
//! bounds. It must not verify authenticators (that needs the client's secret:
//! see `crypto`) nor interpret attribute values.

use thiserror::Error;

use super::attr;

pub use radius::core::code::Code;

/// Code, Identifier, Length and Authenticator.
pub const HEADER_LEN: usize = 20;
/// RFC 2865 §3: the largest Length a packet may declare.
pub const MAX_LEN: usize = 4096;

/// Why a datagram is not a well-formed RADIUS packet.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    #[error("datagram of {0} octets is shorter than the 20-octet header")]
    ShortDatagram(usize),
    #[error("Length field {0} is below the 20-octet minimum")]
    LengthTooSmall(usize),
    #[error("Length field {0} is above the 4096-octet maximum")]
    LengthTooLarge(usize),
    #[error("Length field {length} exceeds the {datagram}-octet datagram")]
    Truncated { length: usize, datagram: usize },
    #[error("attribute at offset {offset} has invalid length {length}")]
    AttributeLength { offset: usize, length: u8 },
    #[error("attribute at offset {offset} (length {length}) overruns the packet")]
    AttributeOverrun { offset: usize, length: u8 },
    #[error("attribute header at offset {offset} is cut off by the end of the packet")]
    AttributeHeaderCut { offset: usize },
    #[error("Message-Authenticator at offset {offset} has length {length}, not 18")]
    MessageAuthenticatorLength { offset: usize, length: u8 },
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
}

/// What decoding learned besides the octets, so that a packet kept as
/// owned octets (`OwnedPacket`) is viewed again without a second walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Framing {
    /// Offset of the Message-Authenticator attribute's header, if present.
    message_authenticator_at: Option<usize>,
    has_proxy_state: bool,
    has_eap_message: bool,
}

/// A packet whose header and attribute framing have been checked.
///
/// Octets past the Length field are padding (RFC 2865 §3) and are not part
/// of `bytes()`.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    bytes: &'a [u8],
    framing: Framing,
}

/// A decoded packet that owns its octets: what admission hands on, so the
/// packet is decoded once however long it waits to be processed.
#[derive(Debug, Clone)]
pub struct OwnedPacket {
    bytes: Vec<u8>,
    framing: Framing,
}

impl OwnedPacket {
    pub fn of(packet: &Packet<'_>) -> Self {
        OwnedPacket {
            bytes: packet.bytes.to_vec(),
            framing: packet.framing,
        }
    }

    /// The packet again, without re-checking what decoding checked.
    pub fn view(&self) -> Packet<'_> {
        Packet {
            bytes: &self.bytes,
            framing: self.framing,
        }
    }
}

impl<'a> Packet<'a> {
    /// Checks framing and returns a view over `datagram`.
    pub fn decode(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        if datagram.len() < HEADER_LEN {
            return Err(DecodeError::ShortDatagram(datagram.len()));
        }
        let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if length < HEADER_LEN {
            return Err(DecodeError::LengthTooSmall(length));
        }
        if length > MAX_LEN {
            return Err(DecodeError::LengthTooLarge(length));
        }
        if length > datagram.len() {
            return Err(DecodeError::Truncated {
                length,
                datagram: datagram.len(),
            });
        }
        let bytes = &datagram[..length];
        let mut packet = Packet {
            bytes,
            framing: Framing::default(),
        };
        let mut offset = HEADER_LEN;
        while offset < length {
            if offset + 2 > length {
                return Err(DecodeError::AttributeHeaderCut { offset });
            }
            let kind = bytes[offset];
            let attr_len = bytes[offset + 1];
            if attr_len < 2 {
                return Err(DecodeError::AttributeLength {
                    offset,
                    length: attr_len,
                });
            }
            if offset + usize::from(attr_len) > length {
                return Err(DecodeError::AttributeOverrun {
                    offset,
                    length: attr_len,
                });
            }
            match kind {
                attr::MESSAGE_AUTHENTICATOR => {
                    if usize::from(attr_len) != attr::MESSAGE_AUTHENTICATOR_LEN {
                        return Err(DecodeError::MessageAuthenticatorLength {
                            offset,
                            length: attr_len,
                        });
                    }
                    if packet.framing.message_authenticator_at.is_some() {
                        return Err(DecodeError::DuplicateMessageAuthenticator);
                    }
                    packet.framing.message_authenticator_at = Some(offset);
                }
                attr::PROXY_STATE => packet.framing.has_proxy_state = true,
                attr::EAP_MESSAGE => packet.framing.has_eap_message = true,
                _ => {}
            }
            offset += usize::from(attr_len);
        }
        Ok(packet)
    }

    /// The packet's octets, up to its Length field.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn code(&self) -> Code {
        Code::from(self.bytes[0])
    }

    pub fn code_byte(&self) -> u8 {
        self.bytes[0]
    }

    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    pub fn authenticator(&self) -> &'a [u8; 16] {
        // Slicing 4..20 of a buffer checked to hold at least 20 octets.
        self.bytes[4..HEADER_LEN].try_into().unwrap_or(&[0; 16])
    }

    pub fn message_authenticator_offset(&self) -> Option<usize> {
        self.framing.message_authenticator_at
    }

    pub fn has_message_authenticator(&self) -> bool {
        self.framing.message_authenticator_at.is_some()
    }

    pub fn has_proxy_state(&self) -> bool {
        self.framing.has_proxy_state
    }

    pub fn has_eap_message(&self) -> bool {
        self.framing.has_eap_message
    }

    /// Attributes in packet order as (type, value).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: &self.bytes[HEADER_LEN..],
        }
    }

    /// The first attribute of `kind`.
    pub fn attribute(&self, kind: u8) -> Option<&'a [u8]> {
        self.attributes().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Values of every attribute of `kind`, in order.
    pub fn attributes_of(&self, kind: u8) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attributes()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, v)| v)
    }

    /// Vendor-Specific sub-attributes of `vendor` in the common 1-octet
    /// type / 1-octet length format (RFC 2865 §5.26), from every
    /// Vendor-Specific attribute of the packet.
    pub fn vendor_attributes(&self, vendor: u32) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        self.attributes_of(attr::VENDOR_SPECIFIC)
            .filter_map(vendor_specific)
            .filter(move |(v, _)| *v == vendor)
            .flat_map(|(_, subs)| subs)
    }
}

/// The vendor and sub-attributes of one Vendor-Specific attribute's value;
/// None when it is too short to hold a vendor.
pub fn vendor_specific(value: &[u8]) -> Option<(u32, Attributes<'_>)> {
    let (vendor, rest) = value.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*vendor), Attributes { rest }))
}

/// Iterator over attribute framing already validated by `Packet::decode`.
/// Used for vendor sub-attributes too, where it stops at the first bad length.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let [kind, len, ..] = *self.rest else {
            return None;
        };
        let len = usize::from(len);
        if len < 2 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let value = &self.rest[2..len];
        self.rest = &self.rest[len..];
        Some((kind, value))
    }
}

/// Reads a 4-octet integer attribute value.
pub fn value_u32(value: &[u8]) -> Option<u32> {
    let b: [u8; 4] = value.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Splits a tagged string or octets value (RFC 2868 §3.1): a first octet in
/// 0x01..=0x1F is the tag; anything else means no tag (0) and is data.
pub fn split_tagged(value: &[u8]) -> (u8, &[u8]) {
    match value.first() {
        Some(&t @ 0x01..=0x1F) => (t, &value[1..]),
        _ => (0, value),
    }
}

/// Reads a tagged integer (RFC 2868 §3.2): the high octet is the tag and the
/// low three octets the value.
pub fn split_tagged_u32(value: &[u8]) -> Option<(u8, u32)> {
    let b: [u8; 4] = value.try_into().ok()?;
    if b[0] > 0x1F {
        return None;
    }
    Some((b[0], u32::from_be_bytes([0, b[1], b[2], b[3]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(code: u8, len: u16) -> Vec<u8> {
        let mut v = vec![code, 7];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0xAA; 16]);
        v
    }

    fn with_attrs(code: u8, attrs: &[u8]) -> Vec<u8> {
        let mut v = header(code, (HEADER_LEN + attrs.len()) as u16);
        v.extend_from_slice(attrs);
        v
    }

    /// Each malformed datagram with the error it must produce.
    #[test]
    fn malformed_table() {
        let mut ma_short = with_attrs(1, &[80, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        ma_short.truncate(30);
        let mut two_ma = vec![80, 18];
        two_ma.extend_from_slice(&[0; 16]);
        two_ma.extend_from_slice(&[80, 18]);
        two_ma.extend_from_slice(&[0; 16]);
        let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            ("empty", vec![], DecodeError::ShortDatagram(0)),
            ("19 octets", vec![1; 19], DecodeError::ShortDatagram(19)),
            ("Length 19", header(1, 19), DecodeError::LengthTooSmall(19)),
            ("Length 0", header(1, 0), DecodeError::LengthTooSmall(0)),
            (
                "Length 4097",
                header(1, 4097),
                DecodeError::LengthTooLarge(4097),
            ),
            (
                "Length beyond datagram",
                header(1, 40),
                DecodeError::Truncated {
                    length: 40,
                    datagram: 20,
                },
            ),
            (
                "attribute length 0",
                with_attrs(1, &[1, 0, 0, 0]),
                DecodeError::AttributeLength {
                    offset: 20,
                    length: 0,
                },
            ),
            (
                "attribute length 1",
                with_attrs(1, &[1, 1, 0, 0]),
                DecodeError::AttributeLength {
                    offset: 20,
                    length: 1,
                },
            ),
            (
                "attribute overrun",
                with_attrs(1, &[1, 5, b'a', b'b']),
                DecodeError::AttributeOverrun {
                    offset: 20,
                    length: 5,
                },
            ),
            (
                "lone type octet",
                with_attrs(1, &[1, 3, b'a', 4]),
                DecodeError::AttributeHeaderCut { offset: 23 },
            ),
            (
                "Message-Authenticator too short",
                ma_short,
                DecodeError::MessageAuthenticatorLength {
                    offset: 20,
                    length: 10,
                },
            ),
            (
                "two Message-Authenticators",
                with_attrs(1, &two_ma),
                DecodeError::DuplicateMessageAuthenticator,
            ),
        ];
        for (name, bytes, want) in cases {
            match Packet::decode(&bytes) {
                Ok(_) => panic!("{name}: decoded"),
                Err(got) => assert_eq!(got, want, "{name}"),
            }
        }
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut bytes = with_attrs(1, &[1, 5, b'b', b'o', b'b']);
        bytes.extend_from_slice(&[0xFF; 10]);
        let p = Packet::decode(&bytes).expect("valid");
        assert_eq!(p.bytes().len(), 25);
        assert_eq!(p.attribute(attr::USER_NAME), Some(&b"bob"[..]));
        assert_eq!(p.code(), Code::AccessRequest);
    }

    #[test]
    fn empty_value_and_flags() {
        let mut attrs = vec![24, 2, 33, 3, b'x'];
        attrs.extend_from_slice(&[79, 3, 1]);
        let bytes = with_attrs(1, &attrs);
        let p = Packet::decode(&bytes).expect("valid");
        assert_eq!(p.attribute(attr::STATE), Some(&b""[..]));
        assert!(p.has_proxy_state());
        assert!(p.has_eap_message());
        assert!(!p.has_message_authenticator());
        assert_eq!(p.attributes().count(), 3);
    }

    #[test]
    fn tagged_values() {
        assert_eq!(split_tagged(&[1, b'2', b'0']), (1, &b"20"[..]));
        assert_eq!(split_tagged(b"20"), (0, &b"20"[..]));
        assert_eq!(split_tagged(&[]), (0, &b""[..]));
        assert_eq!(split_tagged_u32(&[1, 0, 0, 13]), Some((1, 13)));
        assert_eq!(split_tagged_u32(&[0x20, 0, 0, 13]), None);
        assert_eq!(split_tagged_u32(&[1, 0, 13]), None);
    }

    #[test]
    fn vendor_attributes_are_split() {
        let attrs = [26, 12, 0, 0, 0x01, 0x37, 1, 3, b'a', 2, 3, b'b'];
        let bytes = with_attrs(2, &attrs);
        let p = Packet::decode(&bytes).expect("valid");
        let subs: Vec<_> = p.vendor_attributes(311).collect();
        assert_eq!(subs, vec![(1, &b"a"[..]), (2, &b"b"[..])]);
        assert_eq!(p.vendor_attributes(9).count(), 0);
    }
}
