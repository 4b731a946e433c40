//! The NAS half of the test supplicant: builds Access-Requests around EAP
//! responses (User-Name, EAP-Message, State echo, Message-Authenticator)
//! and checks each reply's authenticators before trusting a byte of it.
//!
//! Sans-I/O: bytes in and out.

use crate::proto::eap::packet::{push_eap_message, reassemble};
use crate::proto::wire::attr::{
    CALLING_STATION_ID, FRAMED_MTU, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, NAS_IDENTIFIER,
    PROXY_STATE, STATE, USER_NAME, VENDOR_MICROSOFT,
};
use crate::proto::wire::crypto::{
    HeaderAuthenticator, Secret, mppe_decrypt, verify_message_authenticator_over,
    verify_response_authenticator,
};
use crate::proto::wire::{Code, Packet, PacketBuilder};

/// A checked reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: Code,
    pub eap: Vec<u8>,
    pub attributes: Vec<(u8, Vec<u8>)>,
    pub mppe_recv: Option<Vec<u8>>,
    pub mppe_send: Option<Vec<u8>>,
}

pub struct Exchange {
    secret: Secret,
    user_name: String,
    pub calling_station: Option<String>,
    pub nas_identifier: Option<String>,
    pub framed_mtu: Option<u32>,
    /// Sent in every request as a proxy would; every reply must echo it.
    pub proxy_state: Option<Vec<u8>>,
    state: Option<Vec<u8>>,
    identifier: u8,
    authenticator: [u8; 16],
    sent: u32,
    /// Require Message-Authenticator as the first attribute of replies (the
    /// BlastRADIUS mitigation certgate applies); other servers, FreeRADIUS
    /// 3.2.1 among them, put it elsewhere.
    pub message_authenticator_first: bool,
}

impl Exchange {
    pub fn new(secret: Secret, user_name: &str) -> Self {
        Exchange {
            secret,
            user_name: user_name.to_string(),
            calling_station: None,
            nas_identifier: None,
            framed_mtu: None,
            proxy_state: None,
            state: None,
            identifier: rand::random(),
            authenticator: [0; 16],
            sent: 0,
            message_authenticator_first: true,
        }
    }

    /// The State the next request echoes (a test of another NAS's
    /// replay sets one it did not receive).
    pub fn set_state(&mut self, state: Option<Vec<u8>>) {
        self.state = state;
    }

    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_deref()
    }

    pub fn round_trips(&self) -> u32 {
        self.sent
    }

    /// The next Access-Request, carrying `eap`. Call once per new request;
    /// resend the same bytes on timeout.
    pub fn request(&mut self, eap: &[u8]) -> Vec<u8> {
        self.request_with_id(self.identifier.wrapping_add(1), eap)
    }

    /// `request` with the Identifier the transport chose (a RadSec
    /// connection shared by many conversations hands out free ones).
    pub fn request_with_id(&mut self, identifier: u8, eap: &[u8]) -> Vec<u8> {
        self.identifier = identifier;
        self.authenticator = rand::random();
        self.sent += 1;
        let mut b = PacketBuilder::new(Code::AccessRequest, self.identifier, true);
        // Attribute sizes are bounded by construction here: a user name and
        // station id under 253 octets, EAP under 4000.
        let name = self.user_name.as_bytes();
        let _ = b.push(USER_NAME, &name[..name.len().min(253)]);
        if let Some(cs) = &self.calling_station {
            let _ = b.push(CALLING_STATION_ID, cs.as_bytes());
        }
        if let Some(id) = &self.nas_identifier {
            let _ = b.push(NAS_IDENTIFIER, id.as_bytes());
        }
        if let Some(ps) = &self.proxy_state {
            let _ = b.push(PROXY_STATE, ps);
        }
        if let Some(mtu) = self.framed_mtu {
            let _ = b.push_u32(FRAMED_MTU, mtu);
        }
        let _ = push_eap_message(&mut b, eap);
        if let Some(state) = &self.state {
            let _ = b.push(STATE, state);
        }
        b.finish_access_request(&self.authenticator, &self.secret)
    }

    /// Checks a datagram: Ok(None) if it answers another request, Err if it
    /// answers ours but fails a check.
    pub fn accept(&mut self, bytes: &[u8]) -> Result<Option<Reply>, String> {
        let p = Packet::decode(bytes).map_err(|e| e.to_string())?;
        if p.identifier() != self.identifier {
            return Ok(None);
        }
        if !verify_response_authenticator(&p, &self.authenticator, &self.secret) {
            return Err("bad Response Authenticator".into());
        }
        let offset = p.message_authenticator_offset();
        if offset.is_none() {
            return Err("Message-Authenticator missing".into());
        }
        if self.message_authenticator_first && offset != Some(crate::proto::wire::HEADER_LEN) {
            return Err("Message-Authenticator missing or not first".into());
        }
        let header = HeaderAuthenticator::Request(&self.authenticator);
        if !verify_message_authenticator_over(&p, header, &self.secret) {
            return Err("bad Message-Authenticator".into());
        }
        let echoed: Vec<&[u8]> = p.attributes_of(PROXY_STATE).collect();
        if echoed != self.proxy_state.as_deref().into_iter().collect::<Vec<_>>() {
            return Err(format!(
                "Proxy-State {echoed:02x?} in the reply; the request had {:02x?}",
                self.proxy_state
            ));
        }
        self.state = p.attribute(STATE).map(<[u8]>::to_vec);
        let mut mppe_recv = None;
        let mut mppe_send = None;
        for (kind, value) in p.vendor_attributes(VENDOR_MICROSOFT) {
            let key = mppe_decrypt(value, &self.authenticator, &self.secret);
            match kind {
                MS_MPPE_RECV_KEY => mppe_recv = key,
                MS_MPPE_SEND_KEY => mppe_send = key,
                _ => {}
            }
        }
        Ok(Some(Reply {
            code: p.code(),
            eap: reassemble(&p).unwrap_or_default(),
            attributes: p.attributes().map(|(k, v)| (k, v.to_vec())).collect(),
            mppe_recv,
            mppe_send,
        }))
    }
}
