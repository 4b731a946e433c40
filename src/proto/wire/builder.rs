//! Builds RADIUS packets: replies (Message-Authenticator first, then the
//! Response Authenticator over the final octets) and requests (for the test
//! supplicant and the load generator).
//!
//! It writes straight into one buffer; it must not decide which attributes a
//! reply carries — that is the dispatcher's and the policy's job.

use thiserror::Error;

use super::attr::{
    MAX_VALUE_LEN, MESSAGE_AUTHENTICATOR, MESSAGE_AUTHENTICATOR_LEN, PROXY_STATE, VENDOR_SPECIFIC,
};
use super::crypto::{self, HeaderAuthenticator, Secret};
use super::packet::{Code, HEADER_LEN, MAX_LEN, Packet};

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    #[error("attribute {kind} value of {len} octets exceeds 253")]
    ValueTooLong { kind: u8, len: usize },
    #[error("packet would be {0} octets, above the 4096 maximum")]
    PacketTooLong(usize),
    #[error("tag {0} is outside 0..=31")]
    BadTag(u8),
}

/// What a reply needs from its request: the Identifier, the Request
/// Authenticator and the Proxy-States to echo. Kept in place of the
/// request when the answer comes later (after a directory look-up or a
/// journal write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    /// The request's Proxy-State attributes, header and all, in order.
    echo: Vec<u8>,
}

impl ReplyTo {
    pub fn of(request: &Packet<'_>) -> Self {
        let mut echo = Vec::new();
        for value in request.attributes_of(PROXY_STATE) {
            echo.push(PROXY_STATE);
            echo.push((2 + value.len()) as u8);
            echo.extend_from_slice(value);
        }
        ReplyTo {
            identifier: request.identifier(),
            authenticator: *request.authenticator(),
            echo,
        }
    }

    /// Octets of the Proxy-State attributes a reply echoes.
    pub fn echo_len(&self) -> usize {
        self.echo.len()
    }
}

/// A packet under construction. The header's Length and Authenticator are
/// filled in by one of the `finish_*` methods.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    /// Whether a Message-Authenticator placeholder sits right after the header.
    message_authenticator: bool,
}

impl PacketBuilder {
    /// Starts a packet; with `message_authenticator` its placeholder becomes
    /// the first attribute (the BlastRADIUS mitigation for replies).
    pub fn new(code: Code, identifier: u8, message_authenticator: bool) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[code as u8, identifier, 0, 0]);
        buf.extend_from_slice(&[0; 16]);
        if message_authenticator {
            buf.extend_from_slice(&[MESSAGE_AUTHENTICATOR, MESSAGE_AUTHENTICATOR_LEN as u8]);
            buf.extend_from_slice(&[0; 16]);
        }
        PacketBuilder {
            buf,
            message_authenticator,
        }
    }

    /// Starts a reply: the request's Identifier, Message-Authenticator
    /// first when asked, then every Proxy-State of the request, in order
    /// and unchanged (RFC 2865 §5.33, RFC 2866 §5.13: a proxy matches its
    /// answers by them). Every reply the server sends starts here, so none
    /// can forget them.
    pub fn reply(
        to: &ReplyTo,
        code: Code,
        message_authenticator: bool,
    ) -> Result<Self, BuildError> {
        let mut b = PacketBuilder::new(code, to.identifier, message_authenticator);
        b.reserve(to.echo.len())?;
        b.buf.extend_from_slice(&to.echo);
        Ok(b)
    }

    /// Finishes a reply started by `reply`: Message-Authenticator over
    /// the packet with the request's authenticator in the header, then the
    /// Response Authenticator.
    pub fn finish_reply(self, to: &ReplyTo, secret: &Secret) -> Vec<u8> {
        self.finish_response(&to.authenticator, secret)
    }

    fn reserve(&mut self, extra: usize) -> Result<(), BuildError> {
        let total = self.buf.len() + extra;
        if total > MAX_LEN {
            return Err(BuildError::PacketTooLong(total));
        }
        Ok(())
    }

    /// Appends one attribute.
    pub fn push(&mut self, kind: u8, value: &[u8]) -> Result<&mut Self, BuildError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(BuildError::ValueTooLong {
                kind,
                len: value.len(),
            });
        }
        self.reserve(2 + value.len())?;
        self.buf.push(kind);
        self.buf.push((2 + value.len()) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Appends a 4-octet integer attribute.
    pub fn push_u32(&mut self, kind: u8, value: u32) -> Result<&mut Self, BuildError> {
        self.push(kind, &value.to_be_bytes())
    }

    /// Appends a Vendor-Specific attribute holding one sub-attribute in the
    /// common 1-octet type / 1-octet length format.
    pub fn push_vendor(
        &mut self,
        vendor: u32,
        kind: u8,
        value: &[u8],
    ) -> Result<&mut Self, BuildError> {
        if value.len() > MAX_VALUE_LEN - 6 {
            return Err(BuildError::ValueTooLong {
                kind: VENDOR_SPECIFIC,
                len: value.len() + 6,
            });
        }
        let mut vsa = Vec::with_capacity(6 + value.len());
        vsa.extend_from_slice(&vendor.to_be_bytes());
        vsa.push(kind);
        vsa.push((2 + value.len()) as u8);
        vsa.extend_from_slice(value);
        self.push(VENDOR_SPECIFIC, &vsa)
    }

    /// Appends a tagged integer (RFC 2868 §3: the tag replaces the high octet).
    pub fn push_tagged_u32(
        &mut self,
        kind: u8,
        tag: u8,
        value: u32,
    ) -> Result<&mut Self, BuildError> {
        if tag > 31 {
            return Err(BuildError::BadTag(tag));
        }
        let v = value.to_be_bytes();
        self.push(kind, &[tag, v[1], v[2], v[3]])
    }

    /// Appends a tagged string (RFC 2868 §3: a leading tag octet when non-zero).
    pub fn push_tagged(
        &mut self,
        kind: u8,
        tag: u8,
        value: &[u8],
    ) -> Result<&mut Self, BuildError> {
        if tag > 31 {
            return Err(BuildError::BadTag(tag));
        }
        if tag == 0 {
            return self.push(kind, value);
        }
        let mut v = Vec::with_capacity(1 + value.len());
        v.push(tag);
        v.extend_from_slice(value);
        self.push(kind, &v)
    }

    fn set_length(&mut self) {
        let len = (self.buf.len() as u16).to_be_bytes();
        self.buf[2] = len[0];
        self.buf[3] = len[1];
    }

    fn sign_message_authenticator(&mut self, header: HeaderAuthenticator<'_>, secret: &Secret) {
        if self.message_authenticator {
            let ma = crypto::message_authenticator(&self.buf, HEADER_LEN, header, secret);
            self.buf[HEADER_LEN + 2..HEADER_LEN + MESSAGE_AUTHENTICATOR_LEN].copy_from_slice(&ma);
        }
    }

    /// A reply: Message-Authenticator over the packet with the request's
    /// authenticator in the header, then the Response Authenticator.
    pub fn finish_response(mut self, request_authenticator: &[u8; 16], secret: &Secret) -> Vec<u8> {
        self.set_length();
        self.sign_message_authenticator(
            HeaderAuthenticator::Request(request_authenticator),
            secret,
        );
        let ra = crypto::packet_digest(&self.buf, request_authenticator, secret);
        self.buf[4..HEADER_LEN].copy_from_slice(&ra);
        self.buf
    }

    /// An Access-Request or Status-Server with the given (random) authenticator.
    pub fn finish_access_request(mut self, authenticator: &[u8; 16], secret: &Secret) -> Vec<u8> {
        self.set_length();
        self.buf[4..HEADER_LEN].copy_from_slice(authenticator);
        self.sign_message_authenticator(HeaderAuthenticator::AsIs, secret);
        self.buf
    }

    /// An Accounting-Request: Message-Authenticator with a zero header, then
    /// the Request Authenticator of RFC 2866 §3.
    pub fn finish_accounting_request(mut self, secret: &Secret) -> Vec<u8> {
        self.set_length();
        self.sign_message_authenticator(HeaderAuthenticator::Zero, secret);
        let ra = crypto::packet_digest(&self.buf, &[0; 16], secret);
        self.buf[4..HEADER_LEN].copy_from_slice(&ra);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::Packet;
    use crate::proto::wire::crypto::{
        verify_message_authenticator, verify_request_authenticator, verify_response_authenticator,
    };

    #[test]
    fn reply_has_message_authenticator_first_and_verifies() {
        let secret = Secret::new(b"testing123");
        let ra = [9u8; 16];
        let mut b = PacketBuilder::new(Code::AccessReject, 42, true);
        b.push(18, b"no").expect("fits");
        let bytes = b.finish_response(&ra, &secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert_eq!(p.message_authenticator_offset(), Some(HEADER_LEN));
        assert_eq!(p.identifier(), 42);
        assert!(verify_response_authenticator(&p, &ra, &secret));
        // A reply's Message-Authenticator uses the request authenticator.
        let ma = crypto::message_authenticator(
            p.bytes(),
            HEADER_LEN,
            HeaderAuthenticator::Request(&ra),
            &secret,
        );
        assert_eq!(&bytes[22..38], &ma);
    }

    #[test]
    fn replies_echo_every_proxy_state_in_order() {
        let secret = Secret::new(b"s");
        let mut b = PacketBuilder::new(Code::AccessRequest, 9, true);
        b.push(PROXY_STATE, b"abc").expect("fits");
        b.push(1, b"bob").expect("fits");
        b.push(PROXY_STATE, &[0, 1, 2]).expect("fits");
        let request = b.finish_access_request(&[3; 16], &secret);
        let request = Packet::decode(&request).expect("decodes");
        let to = ReplyTo::of(&request);
        assert_eq!(to.echo_len(), 10);
        let mut reply = PacketBuilder::reply(&to, Code::AccessReject, true).expect("fits");
        reply.push(18, b"no").expect("fits");
        let bytes = reply.finish_reply(&to, &secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert_eq!(p.identifier(), 9);
        assert_eq!(p.message_authenticator_offset(), Some(HEADER_LEN));
        let echoed: Vec<&[u8]> = p.attributes_of(PROXY_STATE).collect();
        assert_eq!(echoed, [&b"abc"[..], &[0, 1, 2][..]]);
        assert!(verify_response_authenticator(
            &p,
            request.authenticator(),
            &secret
        ));
    }

    #[test]
    fn requests_verify_as_received() {
        let secret = Secret::new(b"testing123");
        let mut b = PacketBuilder::new(Code::AccessRequest, 1, true);
        b.push(1, b"bob").expect("fits");
        let bytes = b.finish_access_request(&[3; 16], &secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert!(verify_message_authenticator(&p, &secret));
        assert!(!verify_message_authenticator(&p, &Secret::new(b"other")));

        let mut b = PacketBuilder::new(Code::AccountingRequest, 2, true);
        b.push_u32(40, 1).expect("fits");
        let bytes = b.finish_accounting_request(&secret);
        let p = Packet::decode(&bytes).expect("decodes");
        assert!(verify_request_authenticator(&p, &secret));
        assert!(verify_message_authenticator(&p, &secret));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let p = Packet::decode(&flipped).expect("decodes");
        assert!(!verify_request_authenticator(&p, &secret));
    }

    #[test]
    fn limits_are_enforced() {
        let mut b = PacketBuilder::new(Code::AccessAccept, 0, true);
        assert_eq!(
            b.push(18, &[0; 254]).err(),
            Some(BuildError::ValueTooLong { kind: 18, len: 254 })
        );
        assert_eq!(
            b.push_tagged(81, 32, b"x").err(),
            Some(BuildError::BadTag(32))
        );
        for _ in 0..15 {
            b.push(18, &[0; 253]).expect("fits");
        }
        assert!(matches!(
            b.push(18, &[0; 253]),
            Err(BuildError::PacketTooLong(_))
        ));
    }

    #[test]
    fn tagged_and_vendor_encoding() {
        let mut b = PacketBuilder::new(Code::AccessAccept, 0, false);
        b.push_tagged_u32(64, 1, 13).expect("fits");
        b.push_tagged(81, 1, b"20").expect("fits");
        b.push_vendor(14823, 1, b"employee").expect("fits");
        let bytes = b.finish_response(&[0; 16], &Secret::new(b"s"));
        assert_eq!(&bytes[20..26], &[64, 6, 1, 0, 0, 13]);
        assert_eq!(&bytes[26..31], &[81, 5, 1, b'2', b'0']);
        let p = Packet::decode(&bytes).expect("decodes");
        assert_eq!(
            p.vendor_attributes(14823).next(),
            Some((1, &b"employee"[..]))
        );
    }
}
