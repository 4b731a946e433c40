//! The RADIUS answer that carries an EAP outcome: Access-Challenge with the
//! EAP-Request and State, Access-Accept with EAP-Success, MPPE keys
//! (RFC 2548), EAP-Key-Name (RFC 4072 §2.2) and the authorized attributes,
//! or Access-Reject with EAP-Failure. Message-Authenticator always first.
//!
//! Sans-I/O encoding only: it must not decide the outcome.

use crate::proto::wire::attr::{
    EAP_KEY_NAME, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, STATE, USER_NAME, VENDOR_MICROSOFT,
};
use rand::{CryptoRng, RngExt};

use crate::proto::wire::crypto::{Secret, mppe_encrypt};
use crate::proto::wire::{BuildError, Code, PacketBuilder, ReplyTo};

use super::packet::push_eap_message;
use super::service::Reply;

/// The request a reply answers and the secret that signs it.
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext<'a> {
    pub to: &'a ReplyTo,
    pub secret: &'a Secret,
    /// RFC 4072 §2.2: the NAS sent an EAP-Key-Name in the request: it
    /// wants the EAP Session-Id back.
    pub key_name_requested: bool,
}

/// Encodes the reply; None for a discard. `rng` makes the MPPE salts.
pub fn encode(
    reply: &Reply,
    ctx: &ReplyContext<'_>,
    rng: &mut dyn CryptoRng,
) -> Result<Option<(Code, Vec<u8>)>, BuildError> {
    let request_authenticator = &ctx.to.authenticator;
    let (code, b) = match reply {
        Reply::Discard(_) => return Ok(None),
        Reply::Challenge { eap, state } => {
            let mut b = PacketBuilder::reply(ctx.to, Code::AccessChallenge, true)?;
            push_eap_message(&mut b, eap)?;
            b.push(STATE, state)?;
            (Code::AccessChallenge, b)
        }
        Reply::Reject { eap, .. } => {
            let mut b = PacketBuilder::reply(ctx.to, Code::AccessReject, true)?;
            push_eap_message(&mut b, eap)?;
            (Code::AccessReject, b)
        }
        Reply::Accept {
            eap, keys, granted, ..
        } => {
            let mut b = PacketBuilder::reply(ctx.to, Code::AccessAccept, true)?;
            push_eap_message(&mut b, eap)?;
            if !granted.identity.is_empty() {
                let name = granted.identity.as_bytes();
                b.push(USER_NAME, &name[..name.len().min(253)])?;
            }
            // RFC 2548: each salt unique per Access-Accept, high bit set.
            let salt = rng.random::<u16>() | 0x8000;
            let salts = [salt.to_be_bytes(), (salt ^ 1).to_be_bytes()];
            let recv = mppe_encrypt(
                keys.mppe_recv(),
                salts[0],
                request_authenticator,
                ctx.secret,
            );
            let send = mppe_encrypt(
                keys.mppe_send(),
                salts[1],
                request_authenticator,
                ctx.secret,
            );
            b.push_vendor(VENDOR_MICROSOFT, MS_MPPE_RECV_KEY, &recv)?;
            b.push_vendor(VENDOR_MICROSOFT, MS_MPPE_SEND_KEY, &send)?;
            if ctx.key_name_requested {
                b.push(EAP_KEY_NAME, &keys.session_id)?;
            }
            for (kind, value) in &granted.attributes {
                b.push(*kind, value)?;
            }
            (Code::AccessAccept, b)
        }
    };
    Ok(Some((code, b.finish_reply(ctx.to, ctx.secret))))
}
