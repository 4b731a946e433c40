//! Accounting-Requests: store, then acknowledge. The Accounting-Response
//! goes out only after the journal confirms the record is on disk; when it
//! cannot, the request is dropped (counted `accounting_not_stored`) and the
//! NAS retransmits.
//!
//! Glue only: decoding, storage and sessions live in `accounting`.

use crate::proto::dictionary::Dictionary;
use crate::proto::wire::{Code, Packet, PacketBuilder};
use crate::server::accounting::Accounting;

use crate::proto::admission::{DropReason, Request};
use crate::proto::status::Response;

pub async fn respond(
    accounting: &Accounting,
    dict: &Dictionary,
    request: &Request,
    packet: &Packet<'_>,
) -> Response {
    match accounting.record(packet, &request.client.name, dict).await {
        Ok(record) => {
            tracing::debug!(
                client = %request.client.name,
                status = record.status.map_or("none", |s| s.label()),
                session = record.session_id.as_deref().unwrap_or(""),
                probable_duplicate = record.probable_duplicate,
                "accounting stored"
            );
            // No Message-Authenticator: RFC 2866 does not define one here,
            // and FreeRADIUS-based NAS code verifies an Accounting-Response's
            // over a zeroed authenticator while RFC 3579 replies use the
            // request's, so adding one only risks a refused acknowledgement.
            // The Response Authenticator authenticates the reply.
            match PacketBuilder::reply_to(packet, Code::AccountingResponse, false) {
                Ok(b) => Response::Reply {
                    code: Code::AccountingResponse,
                    bytes: b.finish_response(packet.authenticator(), &request.client.secret),
                    outcome: None,
                },
                Err(e) => Response::Drop(DropReason::Unanswerable(e)),
            }
        }
        Err(_) => Response::Drop(DropReason::AccountingNotStored),
    }
}
