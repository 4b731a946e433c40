//! Admission table: each kind of datagram and the decision it must get.

use std::time::Duration;

use super::*;
use crate::proto::wire::crypto::Secret;
use crate::proto::wire::{Code, PacketBuilder};

const SECRET: &[u8] = b"testing123";

fn client(require_ma: bool) -> crate::config::UdpClient {
    crate::config::UdpClient {
        network: "127.0.0.1/32".parse().expect("net"),
        client: ClientConfig {
            name: "nas".into(),
            secret: Secret::new(SECRET),
            require_message_authenticator: require_ma,
            limit_proxy_state: true,
            das: Default::default(),
        },
    }
}

fn source() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

fn access(ma: bool, secret: &[u8], attrs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccessRequest, 5, ma);
    for (k, v) in attrs {
        b.push(*k, v).expect("fits");
    }
    b.finish_access_request(&[0x11; 16], &Secret::new(secret))
}

fn status(ma: bool) -> Vec<u8> {
    PacketBuilder::new(Code::StatusServer, 9, ma)
        .finish_access_request(&[0x22; 16], &Secret::new(SECRET))
}

fn accounting(secret: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccountingRequest, 3, false);
    b.push_u32(40, 1).expect("fits");
    b.finish_accounting_request(&Secret::new(secret))
}

fn reason(a: Admission) -> Option<DropReason> {
    match a {
        Admission::Drop { reason, .. } => Some(reason),
        _ => None,
    }
}

/// (name, client table, listener, source, datagram, expected drop or None to process)
type Case<'a> = (
    &'a str,
    &'a ClientTable,
    Listener,
    SocketAddr,
    Vec<u8>,
    Option<DropReason>,
);

#[test]
fn admission_table() {
    let strict = ClientTable::new(&[client(true)]);
    let lax = ClientTable::new(&[client(false)]);
    let dedup = DedupCache::new(Duration::from_secs(5), 1000);
    let now = Instant::now();
    let unknown: SocketAddr = "[::1]:40000".parse().expect("addr");
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown client",
            &strict,
            Listener::Auth,
            unknown,
            status(true),
            Some(DropReason::UnknownClient),
        ),
        (
            "truncated",
            &strict,
            Listener::Auth,
            source(),
            vec![12, 0, 0],
            Some(DropReason::Malformed(DecodeError::ShortDatagram(3))),
        ),
        (
            "status without MA",
            &strict,
            Listener::Auth,
            source(),
            status(false),
            Some(DropReason::MissingMessageAuthenticator),
        ),
        (
            "access without MA",
            &strict,
            Listener::Auth,
            source(),
            access(false, SECRET, &[]),
            Some(DropReason::MissingMessageAuthenticator),
        ),
        (
            "access with wrong secret",
            &strict,
            Listener::Auth,
            source(),
            access(true, b"wrong", &[]),
            Some(DropReason::BadMessageAuthenticator),
        ),
        (
            "EAP without MA, lax client",
            &lax,
            Listener::Auth,
            source(),
            access(false, SECRET, &[(79, &[2, 1, 0, 4])]),
            Some(DropReason::MissingMessageAuthenticator),
        ),
        (
            "Proxy-State without MA, lax client",
            &lax,
            Listener::Auth,
            source(),
            access(false, SECRET, &[(33, b"p")]),
            Some(DropReason::ProxyStateWithoutMessageAuthenticator),
        ),
        (
            "access without MA, lax client",
            &lax,
            Listener::Auth,
            source(),
            access(false, SECRET, &[(1, b"bob")]),
            None,
        ),
        (
            "access on the accounting port",
            &strict,
            Listener::Acct,
            source(),
            access(true, SECRET, &[]),
            Some(DropReason::UnsupportedCode),
        ),
        (
            "accounting on the auth port",
            &strict,
            Listener::Auth,
            source(),
            accounting(SECRET),
            Some(DropReason::UnsupportedCode),
        ),
        (
            "accounting, wrong authenticator",
            &strict,
            Listener::Acct,
            source(),
            accounting(b"wrong"),
            Some(DropReason::BadAuthenticator),
        ),
        (
            "accounting, good",
            &strict,
            Listener::Acct,
            source(),
            accounting(SECRET),
            None,
        ),
        (
            "status on acct",
            &strict,
            Listener::Acct,
            source(),
            status(true),
            None,
        ),
    ];
    for (name, table, listener, src, bytes, want) in cases {
        let got = reason(admit(table, &dedup, listener, src, &bytes, now));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn duplicates_are_answered_from_cache_and_forgeries_never_touch_it() {
    let table = ClientTable::new(&[client(true)]);
    let dedup = DedupCache::new(Duration::from_secs(5), 1000);
    let now = Instant::now();
    let good = status(true);
    // A forgery with the same Identifier and authenticator but a bad MA.
    let mut forged = good.clone();
    forged[25] ^= 0xFF;
    assert_eq!(
        reason(admit(
            &table,
            &dedup,
            Listener::Auth,
            source(),
            &forged,
            now
        )),
        Some(DropReason::BadMessageAuthenticator)
    );
    let Admission::Process(req) = admit(&table, &dedup, Listener::Auth, source(), &good, now)
    else {
        panic!("first copy must be processed");
    };
    assert_eq!(
        reason(admit(&table, &dedup, Listener::Auth, source(), &good, now)),
        Some(DropReason::DuplicateInProgress)
    );
    let key = req.dedup_key.expect("cached");
    dedup.complete(key, Arc::from(&b"reply"[..]), now);
    match admit(&table, &dedup, Listener::Auth, source(), &good, now) {
        Admission::Resend { reply, .. } => assert_eq!(&reply[..], b"reply"),
        other => panic!("expected a resend, got {other:?}"),
    }
    // Another source port is another request.
    let other: SocketAddr = "127.0.0.1:40001".parse().expect("addr");
    assert!(matches!(
        admit(&table, &dedup, Listener::Auth, other, &good, now),
        Admission::Process(_)
    ));
}
