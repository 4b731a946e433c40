//! What the server answers to an admitted request.
//!
//! Sans-I/O and synchronous: a request in, a reply's octets or a drop out.
//! Status-Server is answered here (RFC 5997); until EAP-TLS is configured an
//! Access-Request is rejected, and until accounting storage exists an
//! Accounting-Request is dropped (RFC 2866 §2: no storage, no response).
//! It must not touch sockets or the duplicate cache.

use crate::radius::{Code, PacketBuilder};

use super::pipeline::{DropReason, Listener, Request};

#[derive(Debug, PartialEq)]
pub enum Response {
    Reply {
        code: Code,
        bytes: Vec<u8>,
        outcome: &'static str,
    },
    Drop(DropReason),
}

/// Builds a reply with Message-Authenticator first and no other attribute.
fn bare_reply(request: &Request, code: Code) -> Vec<u8> {
    let request_authenticator: [u8; 16] = request.bytes[4..20].try_into().unwrap_or([0; 16]);
    PacketBuilder::new(code, request.identifier(), true)
        .finish_response(&request_authenticator, &request.client.secret)
}

pub fn respond(request: &Request) -> Response {
    match (request.listener, request.code()) {
        (Listener::Auth, Code::StatusServer) => Response::Reply {
            code: Code::AccessAccept,
            bytes: bare_reply(request, Code::AccessAccept),
            outcome: "status",
        },
        (Listener::Acct, Code::StatusServer) => Response::Reply {
            code: Code::AccountingResponse,
            bytes: bare_reply(request, Code::AccountingResponse),
            outcome: "status",
        },
        (Listener::Auth, Code::AccessRequest) => Response::Reply {
            code: Code::AccessReject,
            bytes: bare_reply(request, Code::AccessReject),
            outcome: "reject: no authentication method for this request",
        },
        (Listener::Acct, Code::AccountingRequest) => {
            Response::Drop(DropReason::AccountingNotEnabled)
        }
        _ => Response::Drop(DropReason::UnsupportedCode),
    }
}
