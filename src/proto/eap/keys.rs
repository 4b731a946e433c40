//! EAP-TLS key material (RFC 5216 §2.3, RFC 9190 §2.3): MSK, EMSK and the
//! EAP Session-Id that becomes EAP-Key-Name.
//!
//! Sans-I/O: reads an established rustls connection's exporter and the
//! plaintext hello randoms seen on the wire. It must not encrypt keys for
//! RADIUS (that is `wire::crypto::mppe_encrypt`).

use rustls::{ProtocolVersion, ServerConnection};
use thiserror::Error;

// EAP-TLS's method type is the first octet of its Session-Id.
use super::packet::method;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("TLS exporter failed: {0}")]
    Exporter(String),
    #[error("TLS 1.2 hello random not seen in the {0}")]
    NoRandom(&'static str),
    #[error("TLS version {0:?} has no EAP-TLS key derivation")]
    Version(ProtocolVersion),
}

/// The keys of one successful EAP-TLS conversation.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub msk: [u8; 64],
    pub emsk: [u8; 64],
    /// EAP Session-Id: 0x0D || client.random || server.random (TLS 1.2),
    /// 0x0D || Method-Id (TLS 1.3).
    pub session_id: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// MS-MPPE-Recv-Key (RFC 2548 via RFC 5216 §2.3): MSK octets 0..32.
    pub fn mppe_recv(&self) -> &[u8] {
        &self.msk[..32]
    }

    /// MS-MPPE-Send-Key: MSK octets 32..64.
    pub fn mppe_send(&self) -> &[u8] {
        &self.msk[32..]
    }
}

/// Derives the keys once the handshake is complete. `randoms` are the
/// client and server hello randoms, needed for the TLS 1.2 Session-Id only.
pub fn derive(
    conn: &ServerConnection,
    randoms: Option<([u8; 32], [u8; 32])>,
) -> Result<Keys, KeyError> {
    let exporter = |label: &[u8], context: Option<&[u8]>, out: &mut [u8]| {
        conn.export_keying_material(out, label, context)
            .map(|_| ())
            .map_err(|e| KeyError::Exporter(e.to_string()))
    };
    // One 128-octet export: under TLS 1.3 the output length is part of the
    // HKDF label, so two 64-octet calls would give different octets.
    let mut material = [0u8; 128];
    let version = conn
        .protocol_version()
        .ok_or(KeyError::Exporter("no protocol version".into()))?;
    let session_id = match version {
        ProtocolVersion::TLSv1_2 => {
            // Context None, not Some(&[]): an empty context changes the PRF seed.
            exporter(b"client EAP encryption", None, &mut material)?;
            let (client, server) = randoms.ok_or(KeyError::NoRandom("handshake"))?;
            let mut id = Vec::with_capacity(65);
            id.push(method::TLS);
            id.extend_from_slice(&client);
            id.extend_from_slice(&server);
            id
        }
        ProtocolVersion::TLSv1_3 => {
            exporter(
                b"EXPORTER_EAP_TLS_Key_Material",
                Some(&[method::TLS]),
                &mut material,
            )?;
            let mut method_id = [0u8; 64];
            exporter(
                b"EXPORTER_EAP_TLS_Method-Id",
                Some(&[method::TLS]),
                &mut method_id,
            )?;
            let mut id = Vec::with_capacity(65);
            id.push(method::TLS);
            id.extend_from_slice(&method_id);
            id
        }
        other => return Err(KeyError::Version(other)),
    };
    let mut msk = [0u8; 64];
    let mut emsk = [0u8; 64];
    msk.copy_from_slice(&material[..64]);
    emsk.copy_from_slice(&material[64..]);
    Ok(Keys {
        msk,
        emsk,
        session_id,
    })
}

/// The 32-octet random of the first handshake message in a flight of TLS
/// records, if that message is a ClientHello (1) or ServerHello (2) in
/// plaintext. Record: type 22, version (2), length (2); handshake: type (1),
/// length (3), legacy_version (2), random (32).
pub fn hello_random(flight: &[u8], hello_type: u8) -> Option<[u8; 32]> {
    if flight.first() != Some(&22) || flight.get(5) != Some(&hello_type) {
        return None;
    }
    flight.get(11..43)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_random_reads_only_plaintext_hellos() {
        let mut rec = vec![22, 3, 3, 0, 50, 1, 0, 0, 46, 3, 3];
        rec.extend((0..32).map(|i| i as u8));
        rec.extend([0; 8]);
        let r = hello_random(&rec, 1).expect("client hello");
        assert_eq!(r[0], 0);
        assert_eq!(r[31], 31);
        assert_eq!(hello_random(&rec, 2), None, "not a ServerHello");
        rec[0] = 23;
        assert_eq!(hello_random(&rec, 1), None, "application data");
        assert_eq!(hello_random(&[22, 3, 3], 1), None, "truncated");
    }
}
