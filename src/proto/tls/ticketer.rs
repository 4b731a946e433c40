//! Session tickets every node of a deployment can open (RFC 5077, RFC 8446
//! §4.6.1): a device that authenticated on node A resumes on node B. The
//! ticket keys come from a secret the nodes share: the key of rotation
//! period n is HMAC-SHA256(secret, "certgate ticket key" ‖ n), periods are
//! `tls.ticket_rotation` long on the engine's clock, and a ticket sealed
//! under the current or the previous period's key opens. A ticket is
//! n ‖ nonce ‖ AES-256-GCM(state) with n authenticated as AAD.
//!
//! What a resumption needs travels inside the ticket (rustls puts the
//! client's certificate chain in it): the resuming node verifies the chain
//! against its own CRLs, asks OCSP and the directory, as for a full
//! handshake.
//!
//! Keys only: it must not read the secret's file (the configuration does).

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use hmac::{KeyInit, Mac};

use crate::proto::clock::Clock;

/// The shared secret and rotation of `[tls]`'s tickets.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketSecret {
    secret: Vec<u8>,
    pub rotation_secs: u64,
}

impl std::fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSecret")
            .field("rotation_secs", &self.rotation_secs)
            .finish_non_exhaustive()
    }
}

impl TicketSecret {
    pub fn new(secret: &[u8], rotation_secs: u64) -> Self {
        TicketSecret {
            secret: secret.to_vec(),
            rotation_secs: rotation_secs.max(60),
        }
    }

    fn key(&self, period: u64) -> Option<RandomizedNonceKey> {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.secret).ok()?;
        mac.update(b"certgate ticket key");
        mac.update(&period.to_be_bytes());
        let key = mac.finalize().into_bytes();
        RandomizedNonceKey::new(&AES_256_GCM, &key).ok()
    }
}

const NONCE_LEN: usize = 12;

/// rustls's ticketer over the shared keys.
#[derive(Debug)]
pub struct SharedTicketer {
    secret: TicketSecret,
    clock: Arc<Clock>,
}

impl SharedTicketer {
    pub fn new(secret: TicketSecret, clock: Arc<Clock>) -> Self {
        SharedTicketer { secret, clock }
    }

    fn period(&self) -> u64 {
        self.clock.unix_time().as_secs() / self.secret.rotation_secs
    }
}

impl rustls::server::ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    /// A ticket opens until the end of the period after the one it was
    /// sealed in: at least one rotation.
    fn lifetime(&self) -> u32 {
        u32::try_from(self.secret.rotation_secs).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let period = self.period();
        let key = self.secret.key(period)?;
        let aad = period.to_be_bytes();
        let mut sealed = plain.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(8 + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&aad);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < 8 + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (head, rest) = cipher.split_at(8);
        let period = u64::from_be_bytes(head.try_into().ok()?);
        let now = self.period();
        if period != now && period.checked_add(1) != Some(now) {
            return None;
        }
        let key = self.secret.key(period)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(period.to_be_bytes()), &mut in_out)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::clock::Now;
    use rustls::server::ProducesTickets;

    fn at(unix: i64) -> Arc<Clock> {
        Arc::new(Clock::new(Now {
            instant: crate::server::time::now().instant,
            unix_ms: unix * 1000,
        }))
    }

    #[test]
    fn nodes_sharing_the_secret_open_each_others_tickets_for_two_periods() {
        let secret = TicketSecret::new(b"0123456789abcdef0123456789abcdef", 3600);
        let a = SharedTicketer::new(secret.clone(), at(7200));
        let b = SharedTicketer::new(secret.clone(), at(7200 + 10));
        let t = a.encrypt(b"session state").expect("sealed");
        assert_eq!(b.decrypt(&t).as_deref(), Some(&b"session state"[..]));
        assert_ne!(
            a.encrypt(b"session state"),
            Some(t.clone()),
            "fresh nonce each time"
        );
        // One rotation later the previous key still opens; two, not.
        assert!(
            SharedTicketer::new(secret.clone(), at(7200 + 3600))
                .decrypt(&t)
                .is_some()
        );
        assert!(
            SharedTicketer::new(secret.clone(), at(7200 + 7200))
                .decrypt(&t)
                .is_none()
        );
        // Another deployment's secret, a tampered ticket, garbage: nothing.
        let other = SharedTicketer::new(
            TicketSecret::new(b"another secret of the same length!", 3600),
            at(7200),
        );
        assert!(other.decrypt(&t).is_none());
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(b.decrypt(&bad).is_none());
        let mut moved = t.clone();
        moved[7] ^= 1; // the period, which the AAD authenticates
        assert!(b.decrypt(&moved).is_none());
        assert!(b.decrypt(&[0u8; 10]).is_none());
    }
}
