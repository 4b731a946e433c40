//! What the server answers to an admitted request.
//!
//! Sans-I/O and synchronous: a request in, a reply's octets or a drop out.
//! Status-Server is answered here (RFC 5997); an Access-Request that EAP-TLS
//! does not take (no EAP, or EAP not configured) is rejected, and until accounting storage exists an
//! Accounting-Request is dropped (RFC 2866 §2: no storage, no response).
//! It must not touch sockets or the duplicate cache.

use crate::proto::wire::{Code, Packet, PacketBuilder};

use super::admission::{DropReason, Listener, Request};

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
fn bare_reply(
    request: &Request,
    packet: &Packet<'_>,
    code: Code,
    outcome: &'static str,
) -> Response {
    match PacketBuilder::reply_to(packet, code, true) {
        Ok(b) => Response::Reply {
            code,
            bytes: b.finish_response(packet.authenticator(), &request.client.secret),
            outcome: Some(outcome),
        },
        // Only a request whose Proxy-States fill a whole packet gets here.
        Err(e) => Response::Drop(DropReason::Unanswerable(e)),
    }
}

pub fn respond(request: &Request, packet: &Packet<'_>) -> Response {
    match (request.listener, request.code()) {
        (Listener::Auth, Code::StatusServer) => {
            bare_reply(request, packet, Code::AccessAccept, "status")
        }
        (Listener::Acct, Code::StatusServer) => {
            bare_reply(request, packet, Code::AccountingResponse, "status")
        }
        (Listener::Auth, Code::AccessRequest) => bare_reply(
            request,
            packet,
            Code::AccessReject,
            "reject: no authentication method for this request",
        ),
        (Listener::Acct, Code::AccountingRequest) => {
            Response::Drop(DropReason::AccountingNotEnabled)
        }
        _ => Response::Drop(DropReason::UnsupportedCode),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::config::ClientConfig;
    use crate::proto::wire::crypto::{Secret, verify_response_authenticator};
    use crate::proto::wire::{HEADER_LEN, Packet};

    fn request(listener: Listener, code: Code) -> Request {
        let secret = Secret::new(b"s");
        let bytes = PacketBuilder::new(code, 7, true).finish_access_request(&[1; 16], &secret);
        Request {
            listener,
            client: Arc::new(ClientConfig {
                name: "nas".into(),
                network: "127.0.0.1/32".parse().expect("net"),
                secret,
                require_message_authenticator: true,
                limit_proxy_state: true,
            }),
            source: "127.0.0.1:1".parse().expect("addr"),
            bytes,
            dedup_key: None,
            received: Instant::now(),
        }
    }

    #[test]
    fn answers_by_port_and_code() {
        let cases = [
            (Listener::Auth, Code::StatusServer, Some(Code::AccessAccept)),
            (
                Listener::Acct,
                Code::StatusServer,
                Some(Code::AccountingResponse),
            ),
            (
                Listener::Auth,
                Code::AccessRequest,
                Some(Code::AccessReject),
            ),
            (Listener::Acct, Code::AccountingRequest, None),
            (Listener::Acct, Code::AccessRequest, None),
        ];
        for (listener, code, want) in cases {
            let req = request(listener, code);
            let packet = req.packet().expect("decodes");
            match (respond(&req, &packet), want) {
                (
                    Response::Reply {
                        code: got, bytes, ..
                    },
                    Some(want),
                ) => {
                    assert_eq!(got, want, "{listener:?} {code:?}");
                    let p = Packet::decode(&bytes).expect("reply decodes");
                    assert_eq!(p.code(), want);
                    assert_eq!(p.identifier(), 7);
                    assert_eq!(p.message_authenticator_offset(), Some(HEADER_LEN));
                    assert!(verify_response_authenticator(
                        &p,
                        &[1; 16],
                        &req.client.secret
                    ));
                }
                (Response::Drop(_), None) => {}
                (other, want) => panic!("{listener:?} {code:?}: got {other:?}, want {want:?}"),
            }
        }
    }
}
