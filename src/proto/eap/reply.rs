//! The RADIUS answer that carries an EAP outcome: Access-Challenge with the
//! EAP-Request and State, Access-Accept with EAP-Success, MPPE keys
//! (RFC 2548), EAP-Key-Name (RFC 4072 §2.2) and the authorized attributes,
//! or Access-Reject with EAP-Failure. Message-Authenticator always first.
//!
//! Sans-I/O encoding only: it must not decide the outcome.

use crate::proto::wire::attr::{
    MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, STATE, USER_NAME, VENDOR_MICROSOFT,
};
use crate::proto::wire::crypto::{Secret, mppe_encrypt};
use crate::proto::wire::{BuildError, Code, Packet, PacketBuilder};

use super::packet::push_eap_message;
use super::service::Reply;

/// RFC 4072 §2.2.
pub const EAP_KEY_NAME: u8 = 102;

/// The request a reply answers and the secret that signs it.
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext<'a> {
    pub request: &'a Packet<'a>,
    pub secret: &'a Secret,
}

/// Encodes the reply; None for a discard.
pub fn encode(
    reply: &Reply,
    ctx: &ReplyContext<'_>,
) -> Result<Option<(Code, Vec<u8>)>, BuildError> {
    let request_authenticator = ctx.request.authenticator();
    let (code, b) = match reply {
        Reply::Discard(_) => return Ok(None),
        Reply::Challenge { eap, state } => {
            let mut b = PacketBuilder::reply_to(ctx.request, Code::AccessChallenge, true)?;
            push_eap_message(&mut b, eap)?;
            b.push(STATE, state)?;
            (Code::AccessChallenge, b)
        }
        Reply::Reject { eap, .. } => {
            let mut b = PacketBuilder::reply_to(ctx.request, Code::AccessReject, true)?;
            push_eap_message(&mut b, eap)?;
            (Code::AccessReject, b)
        }
        Reply::Accept {
            eap, keys, granted, ..
        } => {
            let mut b = PacketBuilder::reply_to(ctx.request, Code::AccessAccept, true)?;
            push_eap_message(&mut b, eap)?;
            if !granted.identity.is_empty() {
                let name = granted.identity.as_bytes();
                b.push(USER_NAME, &name[..name.len().min(253)])?;
            }
            // RFC 2548: each salt unique per Access-Accept, high bit set.
            let salt = rand::random::<u16>() | 0x8000;
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
            // RFC 4072 §2.2: a NAS that wants the Session-Id sends an
            // EAP-Key-Name in the request.
            if ctx.request.attribute(EAP_KEY_NAME).is_some() {
                b.push(EAP_KEY_NAME, &keys.session_id)?;
            }
            for (kind, value) in &granted.attributes {
                b.push(*kind, value)?;
            }
            (Code::AccessAccept, b)
        }
    };
    Ok(Some((
        code,
        b.finish_response(request_authenticator, ctx.secret),
    )))
}
