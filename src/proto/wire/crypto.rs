//! Shared-secret cryptography of RADIUS: Request and Response Authenticators
//! (RFC 2865 §3, RFC 2866 §3), Message-Authenticator (RFC 3579 §3.2),
//! User-Password hiding (RFC 2865 §5.2) and MPPE key encryption (RFC 2548 §2.4).
//!
//! Pure functions over bytes. Comparisons of authenticators are constant-time.
//! It must never log or format a secret.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::attr::MESSAGE_AUTHENTICATOR_LEN;
use super::packet::{Code, HEADER_LEN, Packet};

type HmacMd5 = Hmac<Md5>;

/// A client's shared secret, with the HMAC-MD5 key schedule computed once:
/// every Message-Authenticator would otherwise hash the key pads again.
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
    mac: HmacMd5,
}

impl Secret {
    pub fn new(bytes: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; an empty
        // secret is refused earlier, by configuration validation.
        let mac = HmacMd5::new_from_slice(bytes).unwrap_or_else(|_| {
            HmacMd5::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
        });
        Secret {
            bytes: bytes.into(),
            mac,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn hmac(&self) -> HmacMd5 {
        self.mac.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

/// Which value the Authenticator field takes while the Message-Authenticator
/// of a packet is computed.
#[derive(Debug, Clone, Copy)]
pub enum HeaderAuthenticator<'a> {
    /// As it stands in the packet (Access-Request, Status-Server).
    AsIs,
    /// Sixteen zero octets (Accounting-Request, CoA, Disconnect: RFC 5176 §3.5).
    Zero,
    /// The request's authenticator (replies: RFC 3579 §3.2).
    Request(&'a [u8; 16]),
}

impl HeaderAuthenticator<'_> {
    /// The rule RFC 3579 and RFC 5176 give for a received packet's code.
    pub fn for_received(code: Code) -> Self {
        match code {
            Code::AccountingRequest | Code::CoARequest | Code::DisconnectRequest => Self::Zero,
            _ => Self::AsIs,
        }
    }
}

/// HMAC-MD5 over `bytes` with the Message-Authenticator value at `ma_at`
/// (offset of its header) taken as zeros. `bytes` must hold the whole packet.
pub fn message_authenticator(
    bytes: &[u8],
    ma_at: usize,
    header: HeaderAuthenticator<'_>,
    secret: &Secret,
) -> [u8; 16] {
    let mut mac = secret.hmac();
    mac.update(&bytes[..4]);
    match header {
        HeaderAuthenticator::AsIs => mac.update(&bytes[4..HEADER_LEN]),
        HeaderAuthenticator::Zero => mac.update(&[0; 16]),
        HeaderAuthenticator::Request(ra) => mac.update(ra),
    }
    mac.update(&bytes[HEADER_LEN..ma_at + 2]);
    mac.update(&[0; 16]);
    mac.update(&bytes[ma_at + MESSAGE_AUTHENTICATOR_LEN..]);
    mac.finalize().into_bytes().into()
}

/// Checks a received request's Message-Authenticator; false when absent.
pub fn verify_message_authenticator(packet: &Packet<'_>, secret: &Secret) -> bool {
    verify_message_authenticator_over(
        packet,
        HeaderAuthenticator::for_received(packet.code()),
        secret,
    )
}

/// Checks a packet's Message-Authenticator as computed with `header` in
/// the Authenticator field: `for_received` for a request, the request's
/// authenticator for a reply (RFC 3579 §3.2). False when absent.
pub fn verify_message_authenticator_over(
    packet: &Packet<'_>,
    header: HeaderAuthenticator<'_>,
    secret: &Secret,
) -> bool {
    let Some(at) = packet.message_authenticator_offset() else {
        return false;
    };
    let bytes = packet.bytes();
    let want = message_authenticator(bytes, at, header, secret);
    let got = &bytes[at + 2..at + MESSAGE_AUTHENTICATOR_LEN];
    want.ct_eq(got).into()
}

/// MD5(Code | Identifier | Length | `authenticator` | Attributes | Secret).
/// The same formula gives the Response Authenticator (with the request's
/// authenticator) and the Accounting Request Authenticator (with zeros).
pub fn packet_digest(bytes: &[u8], authenticator: &[u8; 16], secret: &Secret) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&bytes[..4]);
    md5.update(authenticator);
    md5.update(&bytes[HEADER_LEN..]);
    md5.update(secret.as_bytes());
    md5.finalize().into()
}

/// RFC 2866 §3: an Accounting-Request's authenticator is the digest of the
/// packet with sixteen zero octets in its place.
pub fn verify_request_authenticator(packet: &Packet<'_>, secret: &Secret) -> bool {
    let want = packet_digest(packet.bytes(), &[0; 16], secret);
    want.ct_eq(packet.authenticator()).into()
}

/// Checks a received response against the request it answers.
pub fn verify_response_authenticator(
    response: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> bool {
    let want = packet_digest(response.bytes(), request_authenticator, secret);
    want.ct_eq(response.authenticator()).into()
}

/// The RFC 2865 §5.2 keystream: b1 = MD5(S | seed), bi = MD5(S | c(i-1)),
/// applied in place. `encrypting` says whether `data` is plain text (the
/// chain continues from the output) or cipher text (from the input).
fn md5_chain_xor(data: &mut [u8], secret: &Secret, seed: &[&[u8]], encrypting: bool) {
    let mut prev: Option<[u8; 16]> = None;
    for block in data.chunks_mut(16) {
        let mut md5 = Md5::new();
        md5.update(secret.as_bytes());
        match &prev {
            None => seed.iter().for_each(|s| md5.update(s)),
            Some(c) => md5.update(c),
        }
        let key: [u8; 16] = md5.finalize().into();
        let mut cipher = [0u8; 16];
        for ((x, k), c) in block.iter_mut().zip(key).zip(cipher.iter_mut()) {
            let input = *x;
            *x ^= k;
            *c = if encrypting { *x } else { input };
        }
        prev = Some(cipher);
    }
}

/// Recovers a User-Password (RFC 2865 §5.2); None when the value is not a
/// multiple of 16 octets between 16 and 128.
pub fn decode_user_password(
    value: &[u8],
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> Option<Vec<u8>> {
    if value.is_empty() || !value.len().is_multiple_of(16) || value.len() > 128 {
        return None;
    }
    let mut plain = value.to_vec();
    md5_chain_xor(&mut plain, secret, &[request_authenticator], false);
    while plain.last() == Some(&0) {
        plain.pop();
    }
    Some(plain)
}

/// Hides a User-Password (RFC 2865 §5.2); passwords over 128 octets are cut.
pub fn encode_user_password(
    password: &[u8],
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> Vec<u8> {
    let len = password.len().clamp(1, 128).div_ceil(16) * 16;
    let mut data = vec![0u8; len];
    let n = password.len().min(128);
    data[..n].copy_from_slice(&password[..n]);
    md5_chain_xor(&mut data, secret, &[request_authenticator], true);
    data
}

/// RFC 2548 §2.4.2: Salt | C, where P = length octet | key | zero padding.
/// The salt's high bit must be set and the salt unique per Access-Accept.
pub fn mppe_encrypt(
    key: &[u8],
    salt: [u8; 2],
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> Vec<u8> {
    let key = &key[..key.len().min(239)];
    let plain_len = (1 + key.len()).div_ceil(16) * 16;
    let mut data = vec![0u8; plain_len];
    data[0] = key.len() as u8;
    data[1..=key.len()].copy_from_slice(key);
    md5_chain_xor(&mut data, secret, &[request_authenticator, &salt], true);
    let mut out = Vec::with_capacity(2 + data.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&data);
    out
}

/// Inverse of `mppe_encrypt`, for supplicant-side checks; None when malformed.
pub fn mppe_decrypt(
    value: &[u8],
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> Option<Vec<u8>> {
    if value.len() < 18 || !(value.len() - 2).is_multiple_of(16) || value[0] & 0x80 == 0 {
        return None;
    }
    let (salt, cipher) = value.split_at(2);
    let mut data = cipher.to_vec();
    md5_chain_xor(&mut data, secret, &[request_authenticator, salt], false);
    let len = usize::from(data[0]);
    if len + 1 > data.len() {
        return None;
    }
    Some(data[1..=len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::proto::hex::decode(s).expect("hex")
    }

    /// RFC 2865 §7.1: Access-Request for nemo / arctangent, secret xyzzy5461,
    /// and its Access-Accept.
    const RFC_REQUEST: &str = "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003";
    const RFC_ACCEPT: &str =
        "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103";

    fn rfc_request() -> Vec<u8> {
        hex(RFC_REQUEST)
    }

    #[test]
    fn rfc2865_user_password() {
        let req = rfc_request();
        let p = Packet::decode(&req).expect("RFC packet decodes");
        let secret = Secret::new(b"xyzzy5461");
        let value = p.attribute(2).expect("User-Password");
        let pw = decode_user_password(value, p.authenticator(), &secret).expect("decodes");
        assert_eq!(pw, b"arctangent");
        assert_eq!(
            encode_user_password(b"arctangent", p.authenticator(), &secret),
            value
        );
    }

    #[test]
    fn rfc2865_response_authenticator() {
        let req = rfc_request();
        let req = Packet::decode(&req).expect("request");
        let acc = hex(RFC_ACCEPT);
        let acc = Packet::decode(&acc).expect("accept");
        let secret = Secret::new(b"xyzzy5461");
        assert!(verify_response_authenticator(
            &acc,
            req.authenticator(),
            &secret
        ));
        assert!(!verify_response_authenticator(
            &acc,
            req.authenticator(),
            &Secret::new(b"wrong")
        ));
    }

    #[test]
    fn mppe_round_trip_and_salt() {
        let secret = Secret::new(b"s3cret");
        let ra = [7u8; 16];
        let key = [0x42u8; 32];
        let enc = mppe_encrypt(&key, [0x80, 0x01], &ra, &secret);
        assert_eq!(enc.len(), 2 + 48);
        assert_eq!(mppe_decrypt(&enc, &ra, &secret).as_deref(), Some(&key[..]));
        let other = mppe_encrypt(&key, [0x80, 0x02], &ra, &secret);
        assert_ne!(enc[2..], other[2..], "salt changes the cipher text");
        assert_eq!(mppe_decrypt(&enc[..20], &ra, &secret), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new(b"topsecret")),
            "Secret(<redacted>)"
        );
    }
}
