//! Hardening, end to end against the real binary: floods of abandoned
//! conversations above the table's cap, and hostile datagrams.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use certgate::bench::{random_station, rss_kib};
use certgate::pki::KeyType;
use certgate::proto::eap::packet::{EapCode, build as eap_packet, method, push_eap_message};
use certgate::proto::wire::crypto::{HeaderAuthenticator, Secret, message_authenticator};
use certgate::proto::wire::{Code, HEADER_LEN, Packet, PacketBuilder};
use certgate::supplicant::{Supplicant, Transport, Versions};
use common::lab::*;
use common::{TestServer, loopback_client};

/// Abandons `n` conversations after their ClientHello (the server holds a
/// handshake in progress for each), `concurrency` at a time; returns how
/// many the server admitted (answered the ClientHello with a challenge).
async fn flood(sup: Arc<Supplicant>, server: SocketAddr, n: u64, concurrency: u64) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (sup, next, held) = (sup.clone(), next.clone(), held.clone());
        tasks.spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let transport = Transport::udp(socket.into(), server);
            let secret = Secret::new(common::SECRET.as_bytes());
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let mut sup = (*sup).clone();
                sup.calling_station = Some(random_station());
                if let Ok(Code::AccessChallenge) = sup.abandon_after(&transport, &secret, 2).await {
                    held.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("flood task");
    }
    held.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_above_the_cap_leaves_room_for_real_authentications() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    // A small table that a flood this machine can drive outruns, as a real
    // flood would outrun 100 000. The protection of recent conversations
    // is short so that the flood's own abandoned ones (6 000 a second
    // here, 600 in 100 ms) always include some old enough to evict: the
    // test is about room for real users, not about refusing the flood.
    let s = TestServer::start(&format!(
        "{}{}",
        loopback_client(""),
        lab.config(
            "max_conversations = 1000\nmax_conversations_per_nas = 1000\nevictable_after = \"10ms\"\nidle_timeout = \"2s\"",
            ""
        )
    ));
    let idle_rss = rss_kib(s.pid()).expect("rss");
    let cap = 1000.0;

    // During the flood: eapol_test, a real supplicant, on its first try.
    let flood_size = 6000;
    let flooding = tokio::spawn(flood(
        Arc::new(lab.supplicant(ALICE, Versions::Both, false)),
        s.auth,
        flood_size,
        48,
    ));
    // Let the table fill before the real supplicant arrives.
    let filled = common::poll::until_async(Duration::from_secs(60), || async {
        (s.metric("certgate_eap_conversations_started_total") >= 2.0 * cap).then_some(())
    })
    .await;
    assert!(filled.is_some(), "flood too slow");
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.pki.path("ca.pem"), "");
    let (ok, out) = tokio::task::block_in_place(|| eapol_test(&conf, s.auth, common::SECRET, &[]));
    let during = s.metric("certgate_eap_conversations_started_total");
    assert!(ok, "eapol_test during the flood:\n{out}");
    let held = flooding.await.expect("flood");
    assert!(
        during < flood_size as f64,
        "eapol_test ran during the flood ({during} of {flood_size} started)"
    );
    assert!(
        held as f64 > cap,
        "the flood was larger than the cap ({held} held)"
    );

    // Right after it: the Rust supplicant, also on its first try.
    let sup = lab.supplicant(ALICE, Versions::Both, false);
    let after = authenticate(&sup, &s).await;
    assert_eq!(after.code, Code::AccessAccept, "right after the flood");

    // Evictions are counted by the once-a-second sweep.
    let evicted = tokio::task::block_in_place(|| {
        s.wait_metric_at_least(
            "certgate_eap_conversations_evicted_total{reason=\"table_full\"}",
            held as f64 - cap,
            Duration::from_secs(3),
        )
    });
    assert!(
        evicted >= held as f64 - cap,
        "{evicted} evictions for {held} abandoned conversations"
    );
    assert_eq!(
        s.metric("certgate_eap_conversations_failed_total{reason=\"table_full\"}"),
        0.0,
        "no conversation was refused"
    );
    // The table's cap bounds memory: at most 16 KiB per conversation held
    // over idle, with some slack for the allocator.
    let peak = rss_kib(s.pid()).expect("rss");
    eprintln!("RSS idle {idle_rss} KiB, after a flood of {held}: {peak} KiB");
    assert!(
        peak <= idle_rss + 16 * cap as u64 + 8 * 1024,
        "RSS {peak} KiB after the flood, {idle_rss} KiB at idle"
    );
    // After the idle timeout every abandoned conversation is gone.
    tokio::task::block_in_place(|| {
        s.wait_metric_within(
            "certgate_eap_conversations_active",
            0.0,
            Duration::from_secs(10),
        )
    });
}

/// A small deterministic generator, so a failing run can be replayed from
/// the seed it prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const USER_NAME: u8 = 1;
const STATE: u8 = 24;
use certgate::proto::wire::attr::ACCT_STATUS_TYPE;
const ACCT_SESSION_ID: u8 = 44;

fn secret() -> Secret {
    Secret::new(common::SECRET.as_bytes())
}

/// A correctly signed Access-Request carrying `eap` (and `state`).
fn access_request(id: u8, eap: &[u8], state: Option<&[u8]>) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccessRequest, id, true);
    b.push(USER_NAME, b"alice@example.org").expect("user");
    push_eap_message(&mut b, eap).expect("eap");
    if let Some(s) = state {
        b.push(STATE, s).expect("state");
    }
    b.finish_access_request(&rand::random(), &secret())
}

fn status_server(id: u8) -> Vec<u8> {
    PacketBuilder::new(Code::StatusServer, id, true)
        .finish_access_request(&rand::random(), &secret())
}

fn accounting_request(id: u8) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccountingRequest, id, true);
    b.push(USER_NAME, b"alice@example.org").expect("user");
    b.push_u32(ACCT_STATUS_TYPE, 1).expect("status type");
    b.push(ACCT_SESSION_ID, format!("s{id}").as_bytes())
        .expect("session");
    b.finish_accounting_request(&secret())
}

/// Rewrites octet 0 and re-signs the Message-Authenticator (first
/// attribute, as PacketBuilder puts it): well-formed and signed, but a code
/// the server does not serve.
fn with_code(mut packet: Vec<u8>, code: u8) -> Vec<u8> {
    packet[0] = code;
    let ma = message_authenticator(&packet, HEADER_LEN, HeaderAuthenticator::AsIs, &secret());
    packet[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&ma);
    packet
}

fn identity_eap(id: u8) -> Vec<u8> {
    eap_packet(
        EapCode::Response,
        id,
        Some(method::IDENTITY),
        b"alice@example.org",
    )
}

/// One malformed datagram of class `class` for the auth or acct port.
fn malformed(rng: &mut Rng, class: usize) -> (Vec<u8>, bool) {
    let id = rng.next() as u8;
    let valid = || match id % 3 {
        0 => (access_request(id, &identity_eap(id), None), true),
        1 => (status_server(id), true),
        _ => (accounting_request(id), false),
    };
    match class {
        // Random bytes, of every length a datagram can have here.
        0 => {
            let n = rng.below(700);
            (rng.bytes(n), rng.below(2) == 0)
        }
        // Length field below the header or beyond the datagram.
        1 => {
            let (mut p, auth) = valid();
            let bogus = match rng.below(3) {
                0 => rng.below(HEADER_LEN),
                1 => p.len() + 1 + rng.below(500),
                _ => 4097 + rng.below(60000),
            };
            p[2..4].copy_from_slice(&(bogus as u16).to_be_bytes());
            (p, auth)
        }
        // An attribute of length 0 or 1, or one that runs past the end.
        2 => {
            let (mut p, auth) = valid();
            let at = last_attribute(&p);
            p[at + 1] = match rng.below(3) {
                0 => 0,
                1 => 1,
                _ => (p.len() - at + 1 + rng.below(100)).min(255) as u8,
            };
            (p, auth)
        }
        // One bit flipped anywhere.
        3 => {
            let (mut p, auth) = valid();
            let bit = rng.below(p.len() * 8);
            p[bit / 8] ^= 1 << (bit % 8);
            (p, auth)
        }
        // A wrong Message-Authenticator.
        4 => {
            let (mut p, auth) = valid();
            let wrong = rng.bytes(16);
            p[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&wrong);
            (p, auth)
        }
        // Two Message-Authenticators (the second a copy of the first).
        5 => {
            let (mut p, auth) = valid();
            let ma = p[HEADER_LEN..HEADER_LEN + 18].to_vec();
            p.extend_from_slice(&ma);
            let len = p.len() as u16;
            p[2..4].copy_from_slice(&len.to_be_bytes());
            (p, auth)
        }
        // An accounting request whose Request Authenticator is wrong.
        6 => {
            let mut p = accounting_request(id);
            let wrong = rng.bytes(16);
            p[4..HEADER_LEN].copy_from_slice(&wrong);
            (p, false)
        }
        // A signed packet of a code neither port serves.
        _ => {
            let code = loop {
                let c = rng.next() as u8;
                if ![1, 4, 12].contains(&c) {
                    break c;
                }
            };
            (with_code(status_server(id), code), rng.below(2) == 0)
        }
    }
}

fn last_attribute(p: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    loop {
        let next = at + usize::from(p[at + 1]);
        if next >= p.len() {
            return at;
        }
        at = next;
    }
}

/// Sends a Status-Server from `probe` until it is answered (three tries,
/// as a NAS would); returns the tries it took.
fn probe_answered(probe: &std::net::UdpSocket, s: &TestServer, id: u8) -> u32 {
    let packet = status_server(id);
    for attempt in 1..=3 {
        if let Some(reply) = common::exchange(probe, s.auth, &packet, Duration::from_secs(2)) {
            assert_eq!(reply[0], Code::AccessAccept as u8, "probe answer");
            return attempt;
        }
    }
    panic!("Status-Server probe {id} was not answered");
}

/// Starts a conversation from `setup`; returns its State and the
/// Identifier of the EAP-TLS Start.
fn start_conversation(setup: &std::net::UdpSocket, s: &TestServer, id: u8) -> (Vec<u8>, u8) {
    let reply = common::exchange(
        setup,
        s.auth,
        &access_request(id, &identity_eap(1), None),
        Duration::from_secs(2),
    )
    .expect("Start");
    let p = Packet::decode(&reply).expect("reply");
    assert_eq!(p.code(), Code::AccessChallenge);
    let state = p.attribute(STATE).expect("State").to_vec();
    let eap = p.attribute(79).expect("EAP-Message");
    (state, eap[1])
}

/// Broken EAP inside correctly signed RADIUS; the State, when the case
/// needs one, comes from a conversation started on the setup socket.
fn broken_eap(
    rng: &mut Rng,
    case: usize,
    setup: &std::net::UdpSocket,
    s: &TestServer,
) -> Vec<Vec<u8>> {
    let id = rng.next() as u8;
    match case {
        // EAP Length disagreeing with the attribute.
        0 => {
            let mut eap = identity_eap(id);
            let wrong = (eap.len() as u16).wrapping_add(1 + rng.below(3000) as u16);
            eap[2..4].copy_from_slice(&wrong.to_be_bytes());
            vec![access_request(id, &eap, None)]
        }
        // Codes a peer never sends.
        1 => {
            let code = [1u8, 3, 4, 5, 99, 255][rng.below(6)];
            let mut eap = identity_eap(id);
            eap[0] = code;
            vec![access_request(id, &eap, None)]
        }
        // EAP-TLS without its flags octet.
        2 => {
            let (state, start) = start_conversation(setup, s, id);
            let eap = [2, start, 0, 5, method::TLS];
            vec![access_request(id, &eap, Some(&state))]
        }
        // An absurd TLS Message Length, then many fragments after it.
        3 => {
            let (state, start) = start_conversation(setup, s, id);
            let mut tls = vec![0xC0];
            tls.extend_from_slice(&u32::MAX.to_be_bytes());
            tls.extend_from_slice(&rng.bytes(200));
            let mut out = vec![access_request(
                id,
                &eap_packet(EapCode::Response, start, Some(method::TLS), &tls),
                Some(&state),
            )];
            for n in 1..20u8 {
                let mut frag = vec![0x40];
                frag.extend_from_slice(&rng.bytes(200));
                out.push(access_request(
                    id.wrapping_add(n),
                    &eap_packet(
                        EapCode::Response,
                        start.wrapping_add(n),
                        Some(method::TLS),
                        &frag,
                    ),
                    Some(&state),
                ));
            }
            out
        }
        // A State the server never handed out.
        4 => {
            let eap = eap_packet(EapCode::Response, id, Some(method::TLS), &[0]);
            vec![access_request(id, &eap, Some(&rng.bytes(16)))]
        }
        // The wrong EAP Identifier for the conversation.
        5 => {
            let (state, start) = start_conversation(setup, s, id);
            let eap = eap_packet(
                EapCode::Response,
                start.wrapping_add(7),
                Some(method::TLS),
                &[0],
            );
            vec![access_request(id, &eap, Some(&state))]
        }
        // Random octets as the EAP packet.
        _ => {
            let n = 1 + rng.below(400);
            vec![access_request(id, &rng.bytes(n), None)]
        }
    }
}

#[test]
fn hostile_datagrams_get_no_answer_and_broken_eap_never_continues() {
    require!("eapol_test");
    let seed = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>)
        | 1;
    eprintln!("HOSTILE_SEED={seed}");
    let mut rng = Rng(seed);
    let lab = Lab::new(KeyType::EcdsaP256);
    let journal = tempfile::tempdir().expect("journal dir");
    let s = TestServer::start(&format!(
        "{}{}\n[accounting]\njournal_dir = {:?}\n",
        loopback_client(""),
        lab.config("", ""),
        journal.path().display().to_string()
    ));
    let idle_rss = rss_kib(s.pid()).expect("rss");
    let (garbage, probe, setup, eap) = (common::udp(), common::udp(), common::udp(), common::udp());

    // Wire layer: every class, round robin, to both ports.
    const MALFORMED: usize = 24_000;
    const EVERY: usize = 300;
    let mut retries = 0;
    for n in 0..MALFORMED {
        let (packet, auth) = malformed(&mut rng, n % 8);
        let to = if auth { s.auth } else { s.acct };
        garbage.send_to(&packet, to).expect("send");
        if n % EVERY == EVERY - 1 {
            retries += probe_answered(&probe, &s, (n / EVERY) as u8) - 1;
        }
    }
    retries += probe_answered(&probe, &s, 0) - 1;

    // Broken EAP in signed RADIUS.
    let (mut broken, mut rejects) = (0, 0);
    for n in 0..2_100 {
        for packet in broken_eap(&mut rng, n % 7, &setup, &s) {
            eap.send_to(&packet, s.auth).expect("send");
            broken += 1;
            // Paced by its answer, so every case meets its conversation.
            if let Some(r) = common::receive(&eap, Duration::from_millis(50)) {
                check_eap_answer(&r);
                rejects += 1;
            }
        }
        if n % 100 == 99 {
            retries += probe_answered(&probe, &s, n as u8) - 1;
        }
    }
    while let Some(r) = common::receive(&eap, Duration::from_millis(300)) {
        check_eap_answer(&r);
        rejects += 1;
    }
    // Only the wrong-Identifier case (one in seven) is silently discarded.
    let discards = 2_100 / 7;
    assert_eq!(rejects, broken - discards, "Access-Rejects for broken EAP");

    let answered =
        std::iter::from_fn(|| common::receive(&garbage, Duration::from_millis(300))).count();
    assert_eq!(answered, 0, "malformed datagrams got answers");
    let rss = rss_kib(s.pid()).expect("the server is still running");
    eprintln!(
        "{MALFORMED} malformed datagrams, {broken} broken EAP requests: no answers to malformed, \
         {retries} probe retries, RSS {idle_rss} → {rss} KiB"
    );
    assert!(
        rss < idle_rss + 32 * 1024,
        "RSS grew from {idle_rss} to {rss} KiB"
    );
    // Every malformed datagram was read and counted as dropped.
    let m = s.metrics_text();
    let dropped: f64 = m
        .lines()
        .filter(|l| l.starts_with("certgate_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let discarded = common::metric_value(
        &m,
        "certgate_dropped_total{listener=\"auth\",reason=\"eap_discarded\"}",
    );
    assert_eq!(
        discarded, discards as f64,
        "wrong EAP Identifiers discarded"
    );
    assert_eq!(dropped - discarded, MALFORMED as f64, "drops counted:\n{m}");
    // And the server still authenticates.
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.pki.path("ca.pem"), "");
    let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
    assert!(ok, "eapol_test after the hostile traffic:\n{out}");
}

/// Broken EAP may get Access-Reject or nothing: never Access-Accept, and
/// never a Challenge that would carry a broken conversation on.
fn check_eap_answer(reply: &[u8]) {
    let code = Code::from(reply[0]);
    assert_eq!(
        code,
        Code::AccessReject,
        "broken EAP answered with {code:?}"
    );
}

/// The HTTP endpoint under a connection flood: past metrics.max_connections
/// a connection is closed without an answer (and counted), a connection
/// that sends nothing is closed after metrics.read_timeout, and when the
/// process runs out of descriptors the accept loop backs off instead of
/// spinning a core; once the flood is gone the endpoint answers again.
#[test]
fn the_http_endpoint_caps_connections_and_backs_off_without_descriptors() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let s = TestServer::start_with_env(
        &loopback_client(""),
        &[
            ("CERTGATE_METRICS__MAX_CONNECTIONS", "4"),
            ("CERTGATE_METRICS__READ_TIMEOUT", "2s"),
        ],
    );
    let connect = || {
        let c = TcpStream::connect(s.metrics).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        c
    };
    // Closed by the server: EOF or a reset, and no HTTP answer.
    let closed_without_answer = |c: &mut TcpStream| {
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        !got.starts_with(b"HTTP/")
    };
    let idle: Vec<TcpStream> = (0..4).map(|_| connect()).collect();
    let mut fifth = connect();
    // The server may close it before the request is written (a broken
    // pipe here): what counts is that no answer comes.
    let _ = write!(
        fifth,
        "GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.metrics
    );
    assert!(
        closed_without_answer(&mut fifth),
        "a connection past the cap was served"
    );
    for mut c in idle {
        assert!(
            closed_without_answer(&mut c),
            "an idle connection outlived the read timeout"
        );
    }
    assert_eq!(s.metric("certgate_http_connections_refused_total"), 1.0);

    // Out of descriptors: room for two connections, fewer than the cap
    // (past the cap a connection is accepted and closed at once, which
    // would give its descriptor back).
    let open: Vec<usize> = std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .expect("fd list")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap_or(0);
    let limit = lowest_free + 2;
    let ok = std::process::Command::new("prlimit")
        .args([
            &format!("--pid={}", s.pid()),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit (util-linux)")
        .success();
    assert!(ok, "prlimit failed");
    let flood: Vec<TcpStream> = (0..6).map(|_| connect()).collect();
    s.wait_log(
        |l| l["message"] == "accept failed" && l["listener"] == "metrics",
        Duration::from_secs(5),
    )
    .expect("the accept failure is logged");
    let cpu_before = certgate::bench::cpu_seconds(s.pid()).expect("cpu");
    // The accepted connections end at the read timeout (2 s), which frees
    // descriptors for the others, which end 2 s later.
    for mut c in flood {
        closed_without_answer(&mut c);
    }
    let cpu = certgate::bench::cpu_seconds(s.pid()).expect("cpu") - cpu_before;
    assert!(
        cpu < 0.5,
        "{cpu:.2} s of CPU while out of descriptors: the accept loop spins"
    );
    let (status, _) = common::http_get(s.metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
}
