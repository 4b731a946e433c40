//! Answers that need no conversation: Status-Server (RFC 5997) on either
//! port, and Access-Reject for an Access-Request no method takes (no EAP,
//! or EAP not configured: no PAP or CHAP, by design).
//!
//! Sans-I/O encoding; the engine decides when they apply. It must not
//! touch the duplicate cache.

use crate::proto::admission::DropReason;
use crate::proto::wire::crypto::Secret;
use crate::proto::wire::{Code, PacketBuilder, ReplyTo};

/// What the engine answers to one request, before it is sent.
#[derive(Debug, PartialEq)]
pub enum Response {
    Reply {
        code: Code,
        bytes: Vec<u8>,
        /// For the decision log line; None when the responder logged it.
        outcome: Option<&'static str>,
    },
    Drop(DropReason),
}

/// A reply with Message-Authenticator first and nothing else but the
/// request's Proxy-State.
pub fn bare_reply(to: &ReplyTo, secret: &Secret, code: Code, outcome: &'static str) -> Response {
    match PacketBuilder::reply(to, code, true) {
        Ok(b) => Response::Reply {
            code,
            bytes: b.finish_reply(to, secret),
            outcome: Some(outcome),
        },
        // Only a request whose Proxy-States fill a whole packet gets here.
        Err(e) => Response::Drop(DropReason::Unanswerable(e)),
    }
}

/// Status-Server's answer on the auth port (Access-Accept) or the
/// accounting port (Accounting-Response).
pub fn status(to: &ReplyTo, secret: &Secret, accounting: bool) -> Response {
    let code = if accounting {
        Code::AccountingResponse
    } else {
        Code::AccessAccept
    };
    bare_reply(to, secret, code, "status")
}

/// Access-Reject for an Access-Request no method takes.
pub fn no_method(to: &ReplyTo, secret: &Secret) -> Response {
    bare_reply(
        to,
        secret,
        Code::AccessReject,
        "reject: no authentication method for this request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::crypto::verify_response_authenticator;
    use crate::proto::wire::{HEADER_LEN, Packet};

    #[test]
    fn bare_replies_carry_message_authenticator_first_and_verify() {
        let secret = Secret::new(b"s");
        let request = PacketBuilder::new(Code::StatusServer, 7, true)
            .finish_access_request(&[1; 16], &secret);
        let to = ReplyTo::of(&Packet::decode(&request).expect("decodes"));
        for (response, want) in [
            (status(&to, &secret, false), Code::AccessAccept),
            (status(&to, &secret, true), Code::AccountingResponse),
            (no_method(&to, &secret), Code::AccessReject),
        ] {
            let Response::Reply { code, bytes, .. } = response else {
                panic!("{want:?}: no reply");
            };
            assert_eq!(code, want);
            let p = Packet::decode(&bytes).expect("reply decodes");
            assert_eq!(p.code(), want);
            assert_eq!(p.identifier(), 7);
            assert_eq!(p.message_authenticator_offset(), Some(HEADER_LEN));
            assert!(verify_response_authenticator(&p, &[1; 16], &secret));
        }
    }
}
