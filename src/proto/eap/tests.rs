//! The malformed-input table of the sans-I/O EAP engine, and whole
//! conversations between it and the test peer without sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::conversation::Claimed;
use super::packet::{self, EapCode, method};
use super::service::{self, EapRequest, EapSettings, Handled, Reply};
use super::table::{CheckedOut, ConversationTable, Limits, Missing, State};
use super::tls_frag::{FLAG_L, FLAG_M};
use crate::pki::{ClientOptions, KeyType, Pki};
use crate::proto::clock::{Clock, Now};
use crate::proto::tls::{SessionStore, TlsContext, TlsPolicy};
use crate::supplicant::{EapTlsPeer, PeerStep, Versions, client_config};

struct Rig {
    _dir: tempfile::TempDir,
    tls: TlsContext,
    table: Arc<ConversationTable>,
    settings: EapSettings,
    client: Arc<rustls::ClientConfig>,
    client_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
}

fn rig(fragment_size: usize, cap: usize) -> Rig {
    rig_shared(fragment_size, cap, cap)
}

fn rig_shared(fragment_size: usize, cap: usize, per_nas: usize) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::open(dir.path());
    pki.init("radius.example.org", KeyType::EcdsaP256)
        .expect("pki");
    let files = pki
        .issue_client("alice@example.org", &ClientOptions::default())
        .expect("client");
    let material = pki.server_material().expect("material");
    let policy = TlsPolicy {
        session_lifetime: Duration::from_secs(60),
        session_cache_entries: 100,
        verified_chain_cache: 100,
        ..TlsPolicy::default()
    };
    let tls = TlsContext::build(
        &material,
        &policy,
        &Arc::new(SessionStore::new(
            100,
            Duration::from_secs(60),
            Arc::new(Clock::new(Now {
                instant: Instant::now(),
                unix_ms: crate::server::time::now().unix_ms,
            })),
        )),
    )
    .expect("tls");
    let client = client_config(
        &pki.path("ca.pem"),
        &files.certificate,
        &files.key,
        Versions::Both,
        false,
    )
    .expect("client config");
    let settings = EapSettings {
        fragment_size,
        max_message: 16384,
        table: Limits {
            cap,
            per_nas,
            ..Limits::default()
        },
        ..EapSettings::default()
    };
    Rig {
        client_chain: {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::pem_file_iter(&files.certificate)
                .expect("pem")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs")
        },
        _dir: dir,
        tls,
        table: Arc::new(ConversationTable::new(settings.table)),
        settings,
        client,
    }
}

impl Rig {
    fn send(
        &self,
        eap: &[u8],
        state: Option<&State>,
        station: Option<&str>,
        now: Instant,
    ) -> Reply {
        self.send_mtu(eap, state, station, None, now)
    }

    fn send_mtu(
        &self,
        eap: &[u8],
        state: Option<&State>,
        station: Option<&str>,
        framed_mtu: Option<u32>,
        now: Instant,
    ) -> Reply {
        let req = EapRequest {
            eap,
            state: state.map(|s| &s[..]),
            calling_station: station,
            framed_mtu,
            nas: "nas",
            ..EapRequest::default()
        };
        self.handle(&req, now)
    }

    /// An EAP-Response/Identity from `nas`; the State of the Start, or
    /// the reason it was refused.
    fn identity_from(&self, nas: &str, now: Instant) -> Result<State, &'static str> {
        let id = packet::build(EapCode::Response, 7, Some(method::IDENTITY), b"x");
        let req = EapRequest {
            eap: &id,
            nas,
            ..EapRequest::default()
        };
        match self.handle(&req, now) {
            Reply::Challenge { state, .. } => Ok(state),
            other => Err(reason(other)),
        }
    }

    fn handle(&self, req: &EapRequest<'_>, now: Instant) -> Reply {
        match service::handle(
            &self.table,
            &self.tls.server,
            &self.settings,
            req,
            now,
            &mut rand::rng(),
        ) {
            Handled::Done(r) => r,
            Handled::Authorize(out) => service::finish(
                &self.table,
                out,
                Ok(Default::default()),
                &self.settings,
                now,
            ),
        }
    }

    /// Identity → Start; returns (State, Identifier of the Start).
    fn start(&self, station: Option<&str>) -> (State, u8) {
        self.start_mtu(station, None)
    }

    fn start_at(&self, station: Option<&str>, now: Instant) -> (State, u8) {
        let id = packet::build(EapCode::Response, 7, Some(method::IDENTITY), b"alice");
        match self.send(&id, None, station, now) {
            Reply::Challenge { state, .. } => (state, 8),
            other => panic!("{other:?}"),
        }
    }

    /// Checks a conversation out as a request from `nas` and `station`.
    fn take(
        &self,
        state: &State,
        nas: &str,
        station: Option<&str>,
        now: Instant,
    ) -> Result<CheckedOut, Missing> {
        let claimed = Claimed {
            nas,
            calling_station: station,
            ..Claimed::default()
        };
        self.table.take(state, &claimed, now)
    }

    fn start_mtu(&self, station: Option<&str>, framed_mtu: Option<u32>) -> (State, u8) {
        let id = packet::build(
            EapCode::Response,
            7,
            Some(method::IDENTITY),
            b"alice@example.org",
        );
        match self.send_mtu(&id, None, station, framed_mtu, Instant::now()) {
            Reply::Challenge { eap, state } => {
                assert_eq!(eap, [1, 8, 0, 6, 13, 0x20], "Start: S only, no L");
                (state, 8)
            }
            other => panic!("{other:?}"),
        }
    }

    /// Answers the Start with a peer's ClientHello (acknowledging our acks
    /// of its fragments) until the server sends TLS data; returns that
    /// EAP-Request.
    fn first_server_flight(&self, state: &State, start_id: u8) -> Vec<u8> {
        self.first_server_flight_from(state, start_id, None)
    }

    fn first_server_flight_from(
        &self,
        state: &State,
        start_id: u8,
        station: Option<&str>,
    ) -> Vec<u8> {
        let mut peer = self.peer();
        let mut request = packet::build(EapCode::Request, start_id, Some(method::TLS), &[0x20]);
        loop {
            let PeerStep::Respond(resp) = peer.on_request(&request).expect("peer") else {
                panic!("no response");
            };
            let Reply::Challenge { eap, .. } =
                self.send(&resp, Some(state), station, Instant::now())
            else {
                panic!("no server flight");
            };
            if eap.len() > 6 {
                return eap;
            }
            request = eap;
        }
    }

    fn peer(&self) -> EapTlsPeer {
        EapTlsPeer::new(
            self.client.clone(),
            ServerName::try_from("radius.example.org").expect("name"),
            "alice@example.org",
            1000,
        )
        .expect("peer")
    }
}

fn tls_response(id: u8, data: &[u8]) -> Vec<u8> {
    packet::build(EapCode::Response, id, Some(method::TLS), data)
}

fn reason(reply: Reply) -> &'static str {
    match reply {
        Reply::Reject { eap, failure } => {
            assert_eq!(eap[0], EapCode::Failure as u8, "EAP-Failure");
            failure.reason
        }
        Reply::Discard(r) => r,
        other => panic!("expected a reject or discard, got {other:?}"),
    }
}

#[test]
fn whole_conversation_without_sockets_in_small_fragments() {
    let r = rig(100, 10);
    let (mut state, mut id) = r.start(None);
    let mut peer = r.peer();
    let mut eap = packet::build(EapCode::Request, id, Some(method::TLS), &[0x20]);
    let mut trips = 1;
    let mut accepted = false;
    while let PeerStep::Respond(resp) = peer.on_request(&eap).expect("peer") {
        trips += 1;
        match r.send(&resp, Some(&state), None, Instant::now()) {
            Reply::Challenge { eap: e, state: s } => {
                assert_eq!(s, state, "State stays for the conversation");
                assert_eq!(e[1], id.wrapping_add(1), "Identifiers advance by one");
                id = e[1];
                eap = e;
                state = s;
            }
            Reply::Accept { eap: e, keys, .. } => {
                assert_eq!(e, [3, id, 0, 4], "EAP-Success echoes the last Identifier");
                assert_eq!(peer.on_request(&e), Ok(PeerStep::Success));
                assert_eq!(Some(keys.msk), peer.msk(), "server and peer MSK agree");
                accepted = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(accepted);
    assert!(
        trips > 10,
        "100-octet fragments take many round trips ({trips})"
    );
    assert!(r.table.is_empty(), "finished conversations leave the table");
}

#[test]
fn malformed_eap_tls_table() {
    let r = rig(1000, 10);
    let big = (70_000u32).to_be_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no flags octet", vec![], "malformed_eap_tls"),
        (
            "L with a truncated length",
            vec![FLAG_L, 0, 1],
            "malformed_eap_tls",
        ),
        (
            "TLS Message Length below the fragment",
            vec![FLAG_L, 0, 0, 0, 2, 22, 3, 3, 0],
            "malformed_eap_tls",
        ),
        (
            "TLS Message Length above the cap",
            vec![FLAG_L, big[0], big[1], big[2], big[3], 22],
            "malformed_eap_tls",
        ),
        ("S flag from the peer", vec![0x20], "malformed_eap_tls"),
        (
            "acknowledgement with nothing outstanding",
            vec![0],
            "unexpected_message",
        ),
    ];
    for (name, data, want) in cases {
        let (state, id) = r.start(None);
        let got = reason(r.send(&tls_response(id, &data), Some(&state), None, Instant::now()));
        assert_eq!(got, want, "{name}");
        assert!(
            r.take(&state, "nas", None, Instant::now()).is_err(),
            "{name}: conversation ended"
        );
    }
    assert!(r.table.is_empty());
}

#[test]
fn tls_garbage_gets_an_alert_then_failure() {
    let r = rig(1000, 10);
    let (state, id) = r.start(None);
    let junk = tls_response(id, b"\x00GET / HTTP/1.1\r\n\r\n");
    let Reply::Challenge { eap, .. } = r.send(&junk, Some(&state), None, Instant::now()) else {
        panic!("the alert should go to the peer first");
    };
    // EAP-TLS flags with L, 4-octet length, then a TLS record of type 21 (alert).
    assert_eq!(eap[10], 21, "TLS alert record: {eap:?}");
    let ack = tls_response(eap[1], &[0]);
    assert_eq!(
        reason(r.send(&ack, Some(&state), None, Instant::now())),
        "tls_handshake"
    );
    assert!(r.table.is_empty());
}

#[test]
fn fragments_add_up_beyond_the_cap() {
    let r = rig(1000, 10);
    let (state, mut id) = r.start(None);
    let chunk = vec![0x16; 1000];
    let mut last = None;
    for _ in 0..20 {
        let mut data = vec![FLAG_M];
        data.extend_from_slice(&chunk);
        match r.send(&tls_response(id, &data), Some(&state), None, Instant::now()) {
            Reply::Challenge { eap, .. } => {
                assert_eq!(&eap[4..], &[13, 0], "each fragment is acknowledged");
                id = eap[1];
            }
            other => {
                last = Some(reason(other));
                break;
            }
        }
    }
    assert_eq!(last, Some("malformed_eap_tls"), "the 16 KiB cap ends it");
}

#[test]
fn missing_acknowledgement_of_our_fragments() {
    let r = rig(64, 10);
    let (state, id) = r.start(None);
    let eap = r.first_server_flight(&state, id);
    assert_eq!(eap[5] & FLAG_M, FLAG_M, "64-octet fragments: more follow");
    // Data where an acknowledgement belongs.
    let got = reason(r.send(
        &tls_response(eap[1], &[0, 1, 2]),
        Some(&state),
        None,
        Instant::now(),
    ));
    assert_eq!(got, "unexpected_message");
}

#[test]
fn eap_framing_state_and_identifier_table() {
    let r = rig(1000, 10);
    let now = Instant::now();
    // EAP Length disagreeing with the attribute data.
    let mut eap = tls_response(8, &[0]);
    eap[3] += 5;
    assert_eq!(reason(r.send(&eap, None, None, now)), "malformed_eap");
    // An EAP Request from a peer.
    let req = packet::build(EapCode::Request, 1, Some(method::IDENTITY), b"x");
    assert_eq!(reason(r.send(&req, None, None, now)), "malformed_eap");
    // Unknown State, no State.
    let resp = tls_response(8, &[0]);
    assert_eq!(
        reason(r.send(&resp, Some(&[9; 16]), None, now)),
        "unknown_state"
    );
    assert_eq!(reason(r.send(&resp, None, None, now)), "no_state");
    // Wrong Identifier: discarded, the conversation goes on.
    let (state, id) = r.start(None);
    let wrong = tls_response(id.wrapping_add(3), &[0]);
    assert_eq!(
        reason(r.send(&wrong, Some(&state), None, now)),
        "wrong_eap_identifier"
    );
    let nak = packet::build(EapCode::Response, id, Some(method::NAK), &[method::PEAP]);
    assert_eq!(reason(r.send(&nak, Some(&state), None, now)), "nak");
    // Expired State.
    let (state, id) = r.start(None);
    let later = now + Duration::from_secs(31);
    assert_eq!(
        reason(r.send(&tls_response(id, &[0]), Some(&state), None, later)),
        "unknown_state"
    );
    assert!(r.table.is_empty());
}

#[test]
fn table_cap_sweep_and_station_replacement() {
    let r = rig(1000, 2);
    let t0 = Instant::now();
    let (first, _) = r.start_at(Some("aa"), t0);
    let later = t0 + Duration::from_secs(2);
    let (second, _) = r.start_at(Some("aa"), later);
    assert_eq!(
        r.table.len(),
        1,
        "the station's new conversation replaced its idle old one"
    );
    assert_eq!(r.table.take_replaced(), 1);
    assert!(r.take(&first, "nas", Some("aa"), later).is_err());
    r.start_at(Some("bb"), later);
    assert_eq!(r.table.len(), 2);
    let id = packet::build(EapCode::Response, 1, Some(method::IDENTITY), b"x");
    assert_eq!(reason(r.send(&id, None, Some("cc"), later)), "table_full");
    // Running conversations continue while the table is full.
    let out = r.take(&second, "nas", Some("aa"), later).expect("running");
    r.table.put_back(out, true, later);
    assert_eq!(r.table.sweep(later + Duration::from_secs(31)).len(), 2);
    assert!(r.table.is_empty());
}

/// A second configured NAS that sees the first one's traffic must not
/// continue its conversation (and receive its keys under its own secret),
/// nor end it; the owner finishes undisturbed.
#[test]
fn a_state_is_bound_to_the_nas_that_started_it() {
    let r = rig(1000, 10);
    let t0 = Instant::now();
    fn owner<'a>(eap: &'a [u8], state: Option<&'a [u8]>, mac: &'a str) -> EapRequest<'a> {
        EapRequest {
            eap,
            state,
            nas: "ap-1",
            nas_identifier: Some("ap-1.example"),
            calling_station: Some(mac),
            ..EapRequest::default()
        }
    }
    let identity = packet::build(EapCode::Response, 7, Some(method::IDENTITY), b"alice");
    let Reply::Challenge { state, eap: start } =
        r.handle(&owner(&identity, None, "02-00-00-00-00-0A"), t0)
    else {
        panic!("no Start");
    };
    let mut peer = r.peer();
    let PeerStep::Respond(hello) = peer.on_request(&start).expect("peer") else {
        panic!("no ClientHello");
    };
    let intruders = [
        (
            "another client entry",
            "ap-2",
            Some("ap-1.example"),
            Some("02-00-00-00-00-0A"),
        ),
        (
            "another NAS-Identifier",
            "ap-1",
            Some("ap-9.example"),
            Some("02-00-00-00-00-0A"),
        ),
        ("no NAS-Identifier", "ap-1", None, Some("02-00-00-00-00-0A")),
        (
            "another station",
            "ap-1",
            Some("ap-1.example"),
            Some("02-00-00-00-00-0B"),
        ),
    ];
    for (what, nas, nas_identifier, calling_station) in intruders {
        let foreign = |eap| EapRequest {
            eap,
            state: Some(&state[..]),
            nas,
            nas_identifier,
            calling_station,
            ..EapRequest::default()
        };
        assert_eq!(
            reason(r.handle(&foreign(&hello), t0)),
            "foreign_state",
            "{what}: continuing"
        );
        // An Identity or a malformed packet naming the State ends only a
        // conversation of its own.
        r.handle(&foreign(&identity), t0);
        r.handle(&foreign(&[2, 0, 0, 99]), t0);
    }
    // The owner goes on from where it was, to Access-Accept (in another
    // case of the same MAC: notations vary, the station does not).
    let mut next = hello;
    for _ in 0..20 {
        let request = match r.handle(&owner(&next, Some(&state[..]), "02-00-00-00-00-0a"), t0) {
            Reply::Challenge { eap, .. } => eap,
            Reply::Accept { keys, .. } => {
                let success = packet::build(EapCode::Success, next[1], None, &[]);
                assert_eq!(peer.on_request(&success), Ok(PeerStep::Success));
                assert_eq!(Some(keys.msk), peer.msk());
                return;
            }
            other => panic!("owner: {other:?}"),
        };
        let PeerStep::Respond(resp) = peer.on_request(&request).expect("peer") else {
            panic!("peer stopped");
        };
        next = resp;
    }
    panic!("no Access-Accept");
}

/// hostapd failing over to the next server re-sends every pending request
/// of a station at once: here two Identity responses of two attempts. The
/// NAS continues the first; the second must not have ended it.
#[test]
fn a_failover_burst_of_identities_keeps_the_conversation_the_nas_continues() {
    let r = rig(1000, 10);
    let t0 = Instant::now();
    let (first, id) = r.start_at(Some("02-00-00-00-00-01"), t0);
    let (second, _) = r.start_at(Some("02-00-00-00-00-01"), t0 + Duration::from_millis(3));
    assert_ne!(first, second);
    let flight = r.first_server_flight_from(&first, id, Some("02-00-00-00-00-01"));
    assert!(flight.len() > 6, "the first conversation goes on");
    assert_eq!(r.table.take_replaced(), 0);
    // Once the older is idle for evictable_after, the station's next
    // Identity ends it, and at most four are kept per station.
    let later = t0 + Duration::from_secs(2);
    r.start_at(Some("02-00-00-00-00-01"), later);
    assert_eq!(r.table.take_replaced(), 2);
    let burst = later + Duration::from_millis(1);
    for _ in 0..6 {
        r.start_at(Some("02-00-00-00-00-01"), burst);
    }
    assert_eq!(r.table.len(), 4, "four per station");
}

/// `0x80 0 0 0 0`: L set, length zero, no data. Answering it with an
/// acknowledgement let a peer without a certificate keep a conversation
/// alive forever.
#[test]
fn an_empty_fragment_with_l_or_m_is_malformed() {
    let r = rig(1000, 10);
    for data in [
        vec![FLAG_L, 0, 0, 0, 0],
        vec![FLAG_M],
        vec![FLAG_L | FLAG_M, 0, 0, 0, 9],
    ] {
        let (state, id) = r.start(None);
        assert_eq!(
            reason(r.send(&tls_response(id, &data), Some(&state), None, Instant::now())),
            "malformed_eap_tls",
            "{data:?}"
        );
    }
    assert!(r.table.is_empty());
}

#[test]
fn round_trips_are_capped() {
    let r = rig(1000, 10);
    let (state, mut id) = r.start(None);
    let mut got = None;
    for trip in 2..=200 {
        let mut data = vec![FLAG_M];
        data.extend_from_slice(&[0x16; 10]);
        match r.send(&tls_response(id, &data), Some(&state), None, Instant::now()) {
            Reply::Challenge { eap, .. } => id = eap[1],
            other => {
                got = Some((trip, reason(other)));
                break;
            }
        }
    }
    assert_eq!(got, Some((101, "max_rounds")));
    assert!(r.table.is_empty());
}

#[test]
fn a_busy_conversation_ends_at_its_maximum_duration() {
    let r = rig(1000, 10);
    let t0 = Instant::now();
    let (state, mut id) = r.start_at(None, t0);
    let mut got = None;
    for step in 1..=5u64 {
        let mut data = vec![FLAG_M];
        data.extend_from_slice(&[0x16; 10]);
        let at = t0 + Duration::from_secs(20 * step);
        match r.send(&tls_response(id, &data), Some(&state), None, at) {
            Reply::Challenge { eap, .. } => id = eap[1],
            other => {
                got = Some((step, reason(other)));
                break;
            }
        }
    }
    assert_eq!(
        got,
        Some((4, "max_duration")),
        "never idle, but 80 s > 60 s"
    );
    assert!(r.table.is_empty());
}

/// strongSwan 5.9's client aborts on our alert without acknowledging it:
/// the conversation ends after eap.alert_timeout, not the idle timeout,
/// and the sweep hands back the failure the alert reported.
#[test]
fn an_unanswered_alert_ends_the_conversation_early() {
    use super::table::Expiry;
    let r = rig(1000, 10);
    let t0 = Instant::now();
    let (state, id) = r.start_at(None, t0);
    let junk = tls_response(id, b"\x16\x03\x01\x00\x05hello");
    let Reply::Challenge { eap, .. } = r.send(&junk, Some(&state), None, t0) else {
        panic!("the alert goes to the peer first");
    };
    assert_eq!(eap[10], 21, "a TLS alert record");
    assert!(r.table.sweep(t0 + Duration::from_secs(2)).is_empty());
    let swept = r.table.sweep(t0 + Duration::from_secs(4));
    assert_eq!(swept.len(), 1);
    let (why, conv) = &swept[0];
    assert_eq!(*why, Expiry::AlertUnanswered);
    assert_eq!(conv.alert_sent().map(|f| f.reason), Some("tls_handshake"));
}

/// The octets conversations buffer are bounded in all: past the budget
/// the idlest conversations of the NAS buffering most are evicted, and
/// when all are recent the newcomer is refused.
#[test]
fn buffered_octets_stay_within_the_memory_budget() {
    use super::table::NoRoom;
    let mut r = rig(1000, 10);
    r.settings.table.memory_budget = 25_000;
    r.table = Arc::new(ConversationTable::new(r.settings.table));
    let t0 = Instant::now();
    let fragment = |id| {
        let mut data = vec![FLAG_M];
        data.extend_from_slice(&[0x16; 10_000]);
        tls_response(id, &data)
    };
    let mut states = Vec::new();
    for i in 0..2u64 {
        let at = t0 + Duration::from_millis(i);
        let (state, id) = r.start_at(None, at);
        assert!(matches!(
            r.send(&fragment(id), Some(&state), None, at),
            Reply::Challenge { .. }
        ));
        states.push(state);
    }
    assert!(r.table.buffered() >= 20_000);
    // A third, while both others are recent: refused.
    let (state, id) = r.start_at(None, t0);
    assert_eq!(
        reason(r.send(&fragment(id), Some(&state), None, t0)),
        "memory_budget"
    );
    // Later the idlest makes room.
    let later = t0 + Duration::from_secs(2);
    let (state, id) = r.start_at(None, later);
    assert!(matches!(
        r.send(&fragment(id), Some(&state), None, later),
        Reply::Challenge { .. }
    ));
    assert!(r.take(&states[0], "nas", None, later).is_err(), "evicted");
    assert!(r.table.buffered() <= 25_000);
    assert_eq!(r.table.take_evictions()[NoRoom::MemoryBudget as usize].1, 1);
    for (_, c) in r.table.sweep(later + Duration::from_secs(31)) {
        drop(c);
    }
    assert_eq!(r.table.buffered(), 0, "every charge is returned");
}

#[test]
fn framed_mtu_lowers_the_fragment_size() {
    let r = rig(1000, 10);
    let (state, id) = r.start_mtu(None, Some(300));
    let flight = r.first_server_flight(&state, id);
    // EAP header 5, flags 1, length 4, then at most 300 - 10 TLS octets.
    assert_eq!(flight[5] & FLAG_M, FLAG_M, "the flight is split");
    assert_eq!(flight.len(), 5 + 1 + 4 + 290);
}

#[test]
fn chain_identity_comes_from_the_verified_chain_cache() {
    use crate::proto::tls::ChainError;
    let r = rig(1000, 10);
    let first = r.tls.identity(&r.client_chain, true).expect("verifies");
    assert_eq!(first.cn(), Some("alice@example.org"));
    let again = r.tls.identity(&r.client_chain, true).expect("verifies");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second check is a cache hit"
    );
    assert!(matches!(r.tls.identity(&[], true), Err(ChainError::Empty)));
    let junk = vec![rustls::pki_types::CertificateDer::from(b"junk".to_vec())];
    assert!(matches!(
        r.tls.identity(&junk, true),
        Err(ChainError::Rejected(_))
    ));
    // Another CA's certificate is refused, cache or not.
    let other = rig(1000, 10);
    assert!(matches!(
        r.tls.identity(&other.client_chain, true),
        Err(ChainError::Rejected(_))
    ));
}

#[test]
fn a_full_table_evicts_the_idlest_conversation_of_the_largest_nas() {
    use super::table::NoRoom;
    let r = rig_shared(1000, 4, 4);
    let t0 = Instant::now();
    let a1 = r.identity_from("a", t0).expect("admitted");
    let a2 = r.identity_from("a", t0).expect("admitted");
    let a3 = r
        .identity_from("a", t0 + Duration::from_millis(100))
        .expect("admitted");
    let b1 = r.identity_from("b", t0).expect("admitted");
    // Full, and nothing has been idle for evictable_after (1 s).
    let soon = t0 + Duration::from_millis(500);
    assert_eq!(r.identity_from("c", soon), Err("table_full"));
    // a1 makes progress (a request continues it): it is no longer idlest.
    let later = t0 + Duration::from_millis(1500);
    let mut out = r.take(&a1, "a", None, later).expect("a1 runs");
    if let Some(c) = out.conversation.as_mut() {
        c.last_seen = later;
    }
    r.table.put_back(out, false, later);
    let c1 = r.identity_from("c", later).expect("room was made");
    assert!(
        r.take(&a2, "a", None, later).is_err(),
        "a2, idlest of the largest NAS, went"
    );
    for (kept, nas) in [(a1, "a"), (a3, "a"), (b1, "b"), (c1, "c")] {
        let out = r.take(&kept, nas, None, later).expect("still running");
        r.table.put_back(out, false, later);
    }
    assert_eq!(r.table.len(), 4);
    assert_eq!(r.table.nas_len("a"), 2);
    assert_eq!(
        r.table.take_evictions(),
        [
            (NoRoom::TableFull, 1),
            (NoRoom::NasShare, 0),
            (NoRoom::MemoryBudget, 0)
        ]
    );
    assert_eq!(r.table.take_evictions()[0].1, 0, "taken counts reset");
}

#[test]
fn one_nas_cannot_take_more_than_its_share() {
    use super::table::NoRoom;
    let r = rig_shared(1000, 6, 3);
    let t0 = Instant::now();
    let flood: Vec<State> = (0..3)
        .map(|i| {
            r.identity_from("noisy", t0 + Duration::from_millis(i))
                .expect("admitted")
        })
        .collect();
    assert_eq!(r.identity_from("noisy", t0), Err("nas_share"));
    // Other NASes still get in while the noisy one is at its share.
    for _ in 0..3 {
        r.identity_from("quiet", t0)
            .expect("another NAS is admitted");
    }
    // Once the noisy NAS's oldest is evictable, it makes room from its own.
    let later = t0 + Duration::from_millis(1001);
    r.identity_from("noisy", later)
        .expect("evicts its own idlest");
    assert!(r.take(&flood[0], "noisy", None, later).is_err());
    assert_eq!(r.table.nas_len("noisy"), 3);
    assert_eq!(r.table.nas_len("quiet"), 3);
    assert_eq!(
        r.table.take_evictions(),
        [
            (NoRoom::TableFull, 0),
            (NoRoom::NasShare, 1),
            (NoRoom::MemoryBudget, 0)
        ]
    );
}

#[test]
fn a_flood_above_the_cap_keeps_the_table_bounded_and_sweeps_to_empty() {
    let r = rig_shared(1000, 50, 50);
    let t0 = Instant::now();
    let mut refused = 0;
    for i in 0..500u64 {
        // 25 ms apart: each is evictable 40 arrivals later, before the
        // table is full again.
        if r.identity_from("a", t0 + Duration::from_millis(25 * i))
            .is_err()
        {
            refused += 1;
        }
        assert!(r.table.len() <= 50);
    }
    assert_eq!(refused, 0, "every new conversation found an evictable one");
    let end = t0 + Duration::from_millis(25 * 500);
    assert_eq!(r.table.sweep(end + Duration::from_secs(31)).len(), 50);
    assert!(r.table.is_empty());
    assert_eq!(r.table.nas_len("a"), 0);
}

/// `max_fragment_size` is exactly what one Access-Challenge carries: a
/// fragment of that size encodes to at most 4096 octets, one more does not
/// fit; the request's Proxy-States come off it.
#[test]
fn the_largest_fragment_fills_one_access_challenge() {
    use super::reply::{ReplyContext, encode};
    use super::service::max_fragment_size;
    use crate::proto::wire::attr::PROXY_STATE;
    use crate::proto::wire::crypto::Secret;
    use crate::proto::wire::{Code, Packet, PacketBuilder, ReplyTo};
    let secret = Secret::new(b"s");
    let request = |proxy: &[u8]| {
        let mut b = PacketBuilder::new(Code::AccessRequest, 1, true);
        if !proxy.is_empty() {
            b.push(PROXY_STATE, proxy).expect("fits");
        }
        b.finish_access_request(&[1; 16], &secret)
    };
    let challenge = |tls: usize| Reply::Challenge {
        eap: tls_response(1, &vec![0; tls + 5]),
        state: [0; 16],
    };
    let plain = request(b"");
    let plain = ReplyTo::of(&Packet::decode(&plain).expect("decodes"));
    let ctx = ReplyContext {
        to: &plain,
        secret: &secret,
        key_name_requested: false,
    };
    let rng = &mut rand::rng();
    let most = max_fragment_size();
    assert_eq!(most, 3998);
    let (_, bytes) = encode(&challenge(most), &ctx, rng)
        .expect("fits")
        .expect("reply");
    assert!(bytes.len() <= 4096, "{}", bytes.len());
    assert!(encode(&challenge(most + 1), &ctx, rng).is_err());
    let proxied = request(b"0123456789");
    let proxied = ReplyTo::of(&Packet::decode(&proxied).expect("decodes"));
    let echo = proxied.echo_len();
    let ctx = ReplyContext {
        to: &proxied,
        secret: &secret,
        key_name_requested: false,
    };
    assert!(encode(&challenge(most), &ctx, rng).is_err());
    assert!(encode(&challenge(most - echo), &ctx, rng).is_ok());
}
