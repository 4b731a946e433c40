//! RadSec (RADIUS over TLS) against real peers and hostile ones:
//! radsecproxy as the NAS side in front of certgate (eapol_test → UDP →
//! radsecproxy → TLS → certgate), NAS certificates that are untrusted,
//! revoked, absent or of no configured client, and a raw TLS client that
//! splits, joins and garbles packets, holds connections idle and opens too
//! many. Certificates are generated per test; everything is on loopback.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use certgate::proto::radsec::frame;
use certgate::proto::wire::crypto::{Secret, verify_response_authenticator};
use certgate::proto::wire::{Code, MAX_LEN, Packet, PacketBuilder};
use certgate::supplicant::{Transport, Versions};
use common::lab::{ALICE, REVOKED, eapol_test};
use common::radsec::*;
use common::*;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

const TLS13: &str = "  phase1=\"tls_disable_tlsv1_3=0\"";
const TLS12_ONLY: &str = "  phase1=\"tls_disable_tlsv1_3=1\"";
const RADSEC_SECRET: &[u8] = b"radsec";
const WAIT: Duration = Duration::from_secs(10);

fn accounting(lab: &RadsecLab) -> String {
    format!(
        "[accounting]\njournal_dir = {:?}\n",
        lab.lab.dir.path().join("journal").display().to_string()
    )
}

fn status_server(id: u8, secret: &[u8]) -> Vec<u8> {
    PacketBuilder::new(Code::StatusServer, id, true)
        .finish_access_request(&[id; 16], &Secret::new(secret))
}

#[test]
fn radsecproxy_carries_eap_tls_and_accounting_over_tls12_and_tls13() {
    require!("radsecproxy", "eapol_test", "radclient");
    let lab = RadsecLab::new();
    let s = lab.start("", &format!("{APS}{}", accounting(&lab)));
    let server = s.radsec.expect("radsec");
    let ca = lab.lab.pki.path("ca.pem");
    // The NAS link's TLS version and the EAP-TLS version vary apart.
    for (n, (link, link_label, eap, eap_label)) in [
        (TlsVersion::V12, "TLSv1_2", TLS13, "1.3"),
        (TlsVersion::V13, "TLSv1_3", TLS12_ONLY, "1.2"),
    ]
    .into_iter()
    .enumerate()
    {
        let proxy = Radsecproxy::start(&lab, server, Some((&lab.nas, AP1)), link);
        let open = s
            .wait_nth(|v| v["message"] == "radsec connection open", n + 1, WAIT)
            .expect("radsecproxy connected");
        assert_eq!(open["client"], "aps");
        assert_eq!(open["version"], link_label);

        let conf = lab.lab.eapol_conf(&lab.lab.pki, ALICE, &ca, eap);
        let (ok, out) = eapol_test(&conf, proxy.udp, SECRET, &[]);
        assert!(
            ok,
            "EAP-TLS {eap_label} over RadSec {link_label} failed:\n{out}\nradsecproxy:\n{}",
            proxy.log_text()
        );
        assert!(
            out.contains("MPPE keys OK: 1  mismatch: 0"),
            "MS-MPPE keys (encrypted with the radsec secret) must match:\n{out}"
        );
        let accepted = common::lab::outcome(&s, "access accepted", n + 1);
        assert_eq!(accepted["tls_version"], eap_label);
        assert_eq!(accepted["client"], "aps", "the RadSec client's name");

        let conf = lab.lab.eapol_conf(&lab.lab.pki, REVOKED, &ca, eap);
        let (ok, out) = eapol_test(&conf, proxy.udp, SECRET, &[]);
        assert!(!ok, "a revoked client was accepted:\n{out}");
        assert!(out.contains("Access-Reject"), "{out}");

        for status in ["Start", "Stop"] {
            let input = format!(
                "Acct-Status-Type = {status}\nAcct-Session-Id = \"rs-{n}\"\nUser-Name = \"{ALICE}\"\n\
                 NAS-Identifier = \"ap1\"\nCalling-Station-Id = \"02-00-00-00-00-0{n}\"\n"
            );
            let (ok, out) = radclient(proxy.udp, "acct", SECRET, &input);
            assert!(
                ok && out.contains("Received Accounting-Response"),
                "{status}: {out}"
            );
        }
        drop(proxy);
    }
    assert_eq!(
        s.metric("certgate_acct_records_total{client=\"aps\",status=\"start\"}"),
        2.0,
        "both Starts stored"
    );
    assert!(
        s.metric(
            "certgate_requests_total{client=\"aps\",code=\"Access-Request\",listener=\"radsec\"}"
        ) >= 8.0
    );
    assert_eq!(
        s.metric("certgate_responses_total{code=\"Accounting-Response\",listener=\"radsec\"}"),
        4.0
    );
    assert_eq!(
        s.metric("certgate_radsec_handshakes_total{reason=\"ok\",result=\"ok\"}"),
        2.0
    );
    promtool_check(&s.metrics_text());
}

/// FreeRADIUS 3.2 as the RadSec client (a proxy with a `home_server`
/// over TLS), as sites that keep a FreeRADIUS proxy tier run it.
#[test]
fn freeradius_as_radsec_client_carries_eap_tls_and_accounting() {
    require!("freeradius", "eapol_test", "radclient");
    let lab = RadsecLab::new();
    let s = lab.start("", &format!("{APS}{}", accounting(&lab)));
    let (cert, key) = lab.lab.client_files(&lab.nas, AP2);
    let proxy = common::freeradius::FreeradiusProxy::start(
        lab.lab.dir.path(),
        s.radsec.expect("radsec"),
        &cert,
        &key,
        &lab.lab.pki.path("ca.pem"),
    );
    let ca = lab.lab.pki.path("ca.pem");
    for (n, eap) in [TLS12_ONLY, TLS13].into_iter().enumerate() {
        let conf = lab.lab.eapol_conf(&lab.lab.pki, ALICE, &ca, eap);
        let (ok, out) = eapol_test(&conf, proxy.auth, common::freeradius::NAS_SECRET, &[]);
        assert!(ok, "via FreeRADIUS:\n{out}\n{}", proxy.log_text());
        assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
        common::lab::outcome(&s, "access accepted", n + 1);
    }
    let conf = lab.lab.eapol_conf(&lab.lab.pki, REVOKED, &ca, TLS13);
    let (ok, out) = eapol_test(&conf, proxy.auth, common::freeradius::NAS_SECRET, &[]);
    assert!(!ok && out.contains("Access-Reject"), "{out}");
    for status in ["Start", "Stop"] {
        let input = format!(
            "Acct-Status-Type = {status}\nAcct-Session-Id = \"fr-1\"\nUser-Name = \"{ALICE}\"\nNAS-Identifier = \"fr\"\n"
        );
        let (ok, out) = radclient(proxy.acct, "acct", common::freeradius::NAS_SECRET, &input);
        assert!(
            ok && out.contains("Received Accounting-Response"),
            "{status}: {out}"
        );
    }
    assert_eq!(
        s.metric("certgate_acct_records_total{client=\"aps\",status=\"stop\"}"),
        1.0
    );
    let open = s
        .wait_log(|v| v["message"] == "radsec connection open", WAIT)
        .expect("connected");
    assert_eq!(open["client"], "aps");
}

#[test]
fn nas_with_an_untrusted_revoked_unknown_or_no_certificate_is_refused() {
    require!("radsecproxy", "eapol_test");
    let lab = RadsecLab::new();
    let s = lab.start("", APS);
    let server = s.radsec.expect("radsec");
    let refused = |reason: &str| {
        s.metric(&format!(
            "certgate_radsec_handshakes_total{{reason=\"{reason}\",result=\"refused\"}}"
        ))
    };

    // An access point whose certificate another CA issued: the handshake
    // fails, and the NAS's users get no answer through it.
    let proxy = Radsecproxy::start(&lab, server, Some((&lab.lab.other, AP1)), TlsVersion::V13);
    s.wait_log(|v| v["message"] == "radsec handshake failed", WAIT)
        .expect("refusal logged");
    let conf = lab
        .lab
        .eapol_conf(&lab.lab.pki, ALICE, &lab.lab.pki.path("ca.pem"), TLS13);
    let (ok, out) = eapol_test(&conf, proxy.udp, SECRET, &["-t", "2"]);
    assert!(!ok && !out.contains("Access-Accept"), "{out}");
    drop(proxy);
    let untrusted = refused("tls");
    assert!(untrusted >= 1.0);

    // A revoked NAS certificate (the NAS CA's CRL).
    let before = refused("tls");
    let _proxy = Radsecproxy::start(&lab, server, Some((&lab.nas, REVOKED_AP)), TlsVersion::V12);
    poll::expect(WAIT, "revoked NAS refused", || {
        (refused("tls") > before).then_some(())
    });

    // No certificate at all (radsecproxy will not start without one: a
    // raw TLS client plays it).
    let mut roots = rustls::RootCertStore::empty();
    for c in
        rustls::pki_types::CertificateDer::pem_file_iter(lab.lab.pki.path("ca.pem")).expect("ca")
    {
        roots.add(c.expect("ca")).expect("root");
    }
    let anonymous = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut nas = RawNas::with_config(server, Arc::new(anonymous));
    assert!(nas.closed(), "a NAS without a certificate is refused");
    s.wait_log(
        |v| {
            v["message"] == "radsec handshake failed"
                && v["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no certificates")
        },
        WAIT,
    )
    .expect("logged as a NAS without a certificate");
    let revoked = s
        .logs()
        .into_iter()
        .filter(|v| v["message"] == "radsec handshake failed")
        .any(|v| v["error"].as_str().unwrap_or("").contains("Revoked"));
    assert!(revoked, "the revoked NAS certificate is named as such");

    // Trusted, but named by no client entry: closed after the handshake,
    // logged with the certificate's subject.
    let _proxy = Radsecproxy::start(&lab, server, Some((&lab.nas, STRANGER)), TlsVersion::V13);
    let line = s
        .wait_log(|v| v["message"] == "radsec connection refused", WAIT)
        .expect("unknown client logged");
    assert_eq!(line["reason"], "unknown_client");
    assert!(
        line["subject"].as_str().unwrap_or("").contains(STRANGER),
        "{line}"
    );
    assert!(refused("unknown_client") >= 1.0);
    assert_eq!(
        s.metric("certgate_radsec_handshakes_total{reason=\"ok\",result=\"ok\"}"),
        0.0
    );
}

/// A NAS on a raw TLS stream, for the cases no real NAS produces on
/// purpose: packets split across writes, several in one write, garbage.
struct RawNas {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
    /// The handshake failed: the server refused us.
    refused: bool,
}

impl RawNas {
    /// A NAS with `name`'s certificate from the NAS CA.
    fn connect(lab: &RadsecLab, server: SocketAddr, name: &str) -> RawNas {
        RawNas::connect_with(lab, server, &lab.nas, name)
    }

    fn connect_with(
        lab: &RadsecLab,
        server: SocketAddr,
        pki: &certgate::pki::Pki,
        name: &str,
    ) -> RawNas {
        RawNas::with_config(server, lab.nas_tls(pki, name, Versions::Both))
    }

    fn with_config(server: SocketAddr, config: Arc<rustls::ClientConfig>) -> RawNas {
        let conn = rustls::ClientConnection::new(
            config,
            ServerName::try_from("radius.example.org").expect("name"),
        )
        .expect("tls client");
        let tcp = TcpStream::connect(server).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now. With TLS 1.3 the client finishes
        // before the server has judged its certificate: a refusal then
        // shows as a closed connection on the first read.
        let mut refused = false;
        while stream.conn.is_handshaking() && !refused {
            refused = stream.conn.complete_io(&mut stream.sock).is_err();
        }
        RawNas {
            stream,
            buf: Vec::new(),
            refused,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        assert!(!self.refused, "the server refused this connection");
        self.stream.write_all(bytes).expect("write");
        self.stream.flush().expect("flush");
    }

    /// The next whole packet, or None when the server closed the
    /// connection (or the read timed out).
    fn packet(&mut self) -> Option<Vec<u8>> {
        if self.refused {
            return None;
        }
        loop {
            if let Ok(Some(len)) = frame(&self.buf, MAX_LEN) {
                return Some(self.buf.drain(..len).collect());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the server closed the connection: nothing more to read.
    fn closed(&mut self) -> bool {
        self.packet().is_none()
    }
}

fn assert_status_answer(reply: Option<Vec<u8>>, id: u8) {
    let reply = reply.expect("Status-Server answered");
    let p = Packet::decode(&reply).expect("reply");
    assert_eq!((p.code(), p.identifier()), (Code::AccessAccept, id));
    assert!(verify_response_authenticator(
        &p,
        &[id; 16],
        &Secret::new(RADSEC_SECRET)
    ));
}

#[test]
fn stream_framing_split_joined_and_garbage_on_one_connection_only() {
    let lab = RadsecLab::new();
    let s = lab.start("", APS);
    let server = s.radsec.expect("radsec");
    let mut a = RawNas::connect(&lab, server, AP1);
    let mut b = RawNas::connect(&lab, server, AP2);

    // One packet in three writes (three TLS records, three reads).
    let p = status_server(1, RADSEC_SECRET);
    a.send(&p[..3]);
    a.send(&p[3..21]);
    a.send(&p[21..]);
    assert_status_answer(a.packet(), 1);
    // Three packets in one write, answered each.
    let joined: Vec<u8> = (2..5)
        .flat_map(|id| status_server(id, RADSEC_SECRET))
        .collect();
    a.send(&joined);
    for _ in 2..5 {
        let reply = a.packet().expect("answer");
        let id = reply[1];
        assert!((2..5).contains(&id));
        assert_status_answer(Some(reply), id);
    }

    // The same request again once answered (a proxy's resend): answered
    // byte for byte from the connection's duplicate cache.
    let mut builder = PacketBuilder::new(Code::AccessRequest, 42, true);
    builder.push(1, b"nobody@example.org").expect("User-Name");
    let request = builder.finish_access_request(&[42; 16], &Secret::new(RADSEC_SECRET));
    a.send(&request);
    let first = a.packet().expect("answer");
    assert_eq!(
        Packet::decode(&first).expect("reply").code(),
        Code::AccessReject
    );
    a.send(&request);
    assert_eq!(a.packet().expect("second answer"), first);
    assert_eq!(
        s.metric("certgate_duplicates_total{listener=\"radsec\"}"),
        1.0
    );

    // A Length past 4096: that connection closes, the other serves on.
    a.send(&[12, 1, 0x10, 0x01]);
    assert!(a.closed(), "a bad Length closes the connection");
    s.wait_metric("certgate_radsec_closed_total{reason=\"framing\"}", 1.0);
    b.send(&status_server(9, RADSEC_SECRET));
    assert_status_answer(b.packet(), 9);

    // A packet under the wrong secret: authentication fails, closed.
    let mut c = RawNas::connect(&lab, server, AP1);
    c.send(&status_server(3, SECRET.as_bytes()));
    assert!(c.closed(), "a forged packet closes the connection");
    s.wait_metric(
        "certgate_radsec_closed_total{reason=\"authentication\"}",
        1.0,
    );

    // A code RadSec does not serve is dropped, the connection stays.
    let mut d = RawNas::connect(&lab, server, AP1);
    let mut coa = status_server(4, RADSEC_SECRET);
    coa[0] = 43;
    d.send(&coa);
    d.send(&status_server(5, RADSEC_SECRET));
    assert_status_answer(d.packet(), 5);
    assert_eq!(s.metric("certgate_radsec_connections{client=\"aps\"}"), 2.0);
    assert!(
        s.metric("certgate_dropped_total{listener=\"radsec\",reason=\"unsupported_code\"}") >= 1.0
    );
}

#[test]
fn many_conversations_in_flight_on_one_connection() {
    let lab = RadsecLab::new();
    let s = lab.start("", &format!("{APS}{}", accounting(&lab)));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let link = lab
            .connect(&s, &lab.nas, AP1, Versions::Tls13)
            .await
            .expect("connect");
        let transport = Arc::new(Transport::Radsec(link));
        let sup = lab.lab.supplicant(ALICE, Versions::Both, false);
        let secret = Secret::new(RADSEC_SECRET);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..48u32 {
            let (transport, secret) = (transport.clone(), secret.clone());
            let mut sup = sup.clone();
            sup.calling_station = Some(format!("02-00-00-00-{:02X}-{:02X}", i / 256, i % 256));
            tasks.spawn(async move { sup.authenticate(&transport, &secret).await });
        }
        let mut accepted = 0;
        while let Some(outcome) = tasks.join_next().await {
            let outcome = outcome.expect("task").expect("conversation");
            assert_eq!(outcome.code, Code::AccessAccept);
            assert!(outcome.mppe_keys_match);
            accepted += 1;
        }
        assert_eq!(accepted, 48);
    });
    assert_eq!(
        s.metric("certgate_radsec_handshakes_total{reason=\"ok\",result=\"ok\"}"),
        1.0,
        "one connection carried them all"
    );
    assert_eq!(
        s.metric_total("certgate_eap_conversations_succeeded_total"),
        48.0
    );
}

#[test]
fn handshake_idle_and_connection_limits() {
    let lab = RadsecLab::new();
    let clients = "[[radsec.clients]]\nname = \"one\"\nnames = [\"ap1.*\"]\n\
                   [[radsec.clients]]\nname = \"two\"\nnames = [\"ap2.*\"]\n";
    let s = lab.start(
        "handshake_timeout = \"500ms\"\nidle_timeout = \"2s\"\nmax_connections = 3\nmax_connections_per_client = 2\n",
        clients,
    );
    let server = s.radsec.expect("radsec");
    let refused = |reason: &str| {
        s.metric(&format!(
            "certgate_radsec_handshakes_total{{reason=\"{reason}\",result=\"refused\"}}"
        ))
    };

    // A TCP connection that never starts TLS is closed at the deadline.
    let mut silent = TcpStream::connect(server).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(silent.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed");
    assert_eq!(refused("timeout"), 1.0);
    drop(silent);

    // Two of client one; the third is one too many for it.
    let mut one_a = RawNas::connect(&lab, server, AP1);
    let _one_b = RawNas::connect(&lab, server, AP1);
    let mut one_c = RawNas::connect(&lab, server, AP1);
    assert!(one_c.closed(), "past max_connections_per_client");
    assert_eq!(refused("client_limit"), 1.0);
    // Client two takes the third slot; a fourth connection is refused
    // before its handshake.
    let _two = RawNas::connect(&lab, server, AP2);
    s.wait_metric("certgate_radsec_connections{client=\"two\"}", 1.0);
    let mut fourth = RawNas::connect(&lab, server, AP2);
    assert!(fourth.closed(), "past max_connections");
    assert_eq!(refused("connection_limit"), 1.0);

    // Status-Server keeps a connection busy; silence closes it.
    one_a.send(&status_server(7, RADSEC_SECRET));
    assert_status_answer(one_a.packet(), 7);
    assert!(one_a.closed(), "idle connection closed");
    s.wait_metric("certgate_radsec_closed_total{reason=\"idle\"}", 3.0);
    assert_eq!(s.metric("certgate_radsec_connections{client=\"one\"}"), 0.0);
}

#[test]
fn sighup_applies_new_cas_and_clients_to_new_connections_and_closes_removed_clients() {
    let lab = RadsecLab::new();
    let clients = "[[radsec.clients]]\nname = \"one\"\nnames = [\"ap1.*\"]\n\
                   [[radsec.clients]]\nname = \"two\"\nnames = [\"ap2.*\"]\n";
    let s = lab.start("", clients);
    let server = s.radsec.expect("radsec");
    let mut one = RawNas::connect(&lab, server, AP1);
    let mut two = RawNas::connect(&lab, server, AP2);
    s.wait_metric("certgate_radsec_connections{client=\"two\"}", 1.0);

    // The organisation moves its access points to a new CA (the lab's
    // other one) and client two is gone.
    let text = std::fs::read_to_string(s.config_path()).expect("config");
    let text = text
        .replace(
            &format!("{:?}", lab.nas.path("ca.pem").display().to_string()),
            &format!("{:?}", lab.lab.other.path("ca.pem").display().to_string()),
        )
        .replace(
            &format!("{:?}", lab.nas.path("crl.pem").display().to_string()),
            &format!("{:?}", lab.lab.other.path("crl.pem").display().to_string()),
        )
        .replace(
            "[[radsec.clients]]\nname = \"two\"\nnames = [\"ap2.*\"]\n",
            "",
        );
    std::fs::write(s.config_path(), text).expect("rewrite");
    s.signal("HUP");
    s.wait_log(|v| v["message"] == "configuration reloaded", WAIT)
        .expect("reloaded");

    assert!(two.closed(), "the removed client's connection is closed");
    s.wait_metric("certgate_radsec_closed_total{reason=\"reload\"}", 1.0);
    // The established connection of a kept client carries on, though its
    // CA is no longer trusted for new ones.
    one.send(&status_server(1, RADSEC_SECRET));
    assert_status_answer(one.packet(), 1);
    // New connections: the old CA is refused, the new one accepted.
    let mut old_ca = RawNas::connect(&lab, server, AP1);
    assert!(old_ca.closed(), "refused under the new CA bundle");
    let mut new_ca = RawNas::connect_with(&lab, server, &lab.lab.other, AP1);
    new_ca.send(&status_server(2, RADSEC_SECRET));
    assert_status_answer(new_ca.packet(), 2);
    assert_eq!(s.metric("certgate_radsec_connections{client=\"one\"}"), 2.0);
}

#[test]
fn sigterm_closes_radsec_connections_with_close_notify_and_exits_zero() {
    let lab = RadsecLab::new();
    let mut s = lab.start("", APS);
    let server = s.radsec.expect("radsec");
    let mut nas = RawNas::connect(&lab, server, AP1);
    nas.send(&status_server(1, RADSEC_SECRET));
    assert_status_answer(nas.packet(), 1);
    s.signal("TERM");
    // A clean close: TLS close_notify, read as end of stream, not an error.
    let mut chunk = [0u8; 16];
    assert_eq!(nas.stream.read(&mut chunk).expect("clean close"), 0);
    let status = s.wait_exit(WAIT).expect("exited");
    assert_eq!(status.code(), Some(0));
    assert!(
        s.logs()
            .iter()
            .any(|l| { l["message"] == "radsec connection closed" && l["reason"] == "shutdown" })
    );
}

/// One request in flight per connection: twenty pipelined in one write are
/// all answered, the connection not read while one is processed.
#[test]
fn a_connection_past_its_in_flight_bound_is_paused_not_dropped() {
    let lab = RadsecLab::new();
    let s = lab.start("max_in_flight = 1\n", APS);
    let mut nas = RawNas::connect(&lab, s.radsec.expect("radsec"), AP1);
    let burst: Vec<u8> = (0..20u8)
        .flat_map(|id| status_server(id, RADSEC_SECRET))
        .collect();
    nas.send(&burst);
    let mut ids: Vec<u8> = (0..20).map(|_| nas.packet().expect("answer")[1]).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<u8>>());
    assert_eq!(
        s.metric("certgate_dropped_total{listener=\"radsec\",reason=\"overload\"}"),
        0.0
    );
}

/// The NAS CA's CRL is re-read on its own schedule: a NAS certificate
/// revoked meanwhile is refused on its next connection, while the
/// connection it already has carries on (as for a reload).
#[test]
fn nas_crls_are_refreshed_without_a_reload() {
    let lab = RadsecLab::new();
    let s = lab.start("crl_refresh = \"1s\"\n", APS);
    let server = s.radsec.expect("radsec");
    let mut established = RawNas::connect(&lab, server, AP2);
    lab.nas.revoke(AP2).expect("revoke");
    s.wait_metric_at_least("certgate_crl_reloads_total{result=\"ok\"}", 1.0, WAIT);
    let mut fresh = RawNas::connect(&lab, server, AP2);
    assert!(fresh.closed(), "a revoked NAS certificate is refused");
    assert_eq!(
        s.metric("certgate_radsec_handshakes_total{reason=\"tls\",result=\"refused\"}"),
        1.0
    );
    established.send(&status_server(1, RADSEC_SECRET));
    assert_status_answer(established.packet(), 1);
}

/// Reverse CoA (draft-ietf-radext-reverse-coa): a NAS that reaches
/// certgate over RadSec (as one behind NAT would) gets its Disconnect-
/// Request down its own connection, signed with the RadSec secret, and its
/// ACK comes back up it; with no connection open the request fails at
/// once instead of waiting.
#[test]
fn disconnect_requests_go_down_the_nas_own_radsec_connection() {
    let lab = RadsecLab::new();
    let d = lab.lab.dir.path();
    let extra = format!(
        "{APS}\n[accounting]\njournal_dir = {:?}\n[das]\nenabled = true\ntimeout = \"500ms\"\n[admin]\nsocket = {:?}\n",
        d.join("journal").display().to_string(),
        d.join("admin.sock").display().to_string(),
    );
    let s = lab.start("", &extra);
    let cfg = s.config_path();
    let mut nas = RawNas::connect(&lab, s.radsec.expect("radsec"), AP1);
    let secret = Secret::new(RADSEC_SECRET);
    let mut b = PacketBuilder::new(Code::AccountingRequest, 3, false);
    b.push_u32(40, 1).expect("status");
    b.push(44, b"rs-1").expect("session");
    b.push(1, b"dave@example.org").expect("user");
    nas.send(&b.finish_accounting_request(&secret));
    let ack = nas.packet().expect("accounting answered");
    assert_eq!(ack[0], Code::AccountingResponse as u8);

    let cli = {
        let cfg = cfg.clone();
        std::thread::spawn(move || certgate_with_env(&["disconnect", "--nas", "aps"], &cfg, LISTEN))
    };
    let Some(request) = nas.packet() else {
        panic!("no Disconnect-Request on the connection: {:?}", cli.join());
    };
    let p = Packet::decode(&request).expect("request");
    assert_eq!(p.code(), Code::DisconnectRequest);
    assert!(certgate::proto::wire::crypto::verify_message_authenticator(
        &p, &secret
    ));
    assert_eq!(p.attribute(44), Some(b"rs-1".as_slice()));
    let mut sent = [0; 16];
    sent.copy_from_slice(&request[4..20]);
    nas.send(
        &PacketBuilder::new(Code::DisconnectACK, request[1], true).finish_response(&sent, &secret),
    );
    let (code, out) = cli.join().expect("cli");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ack") && out.contains("via=radsec:aps"),
        "{out}"
    );
    s.wait_metric(
        "certgate_das_sessions_disconnected_total{trigger=\"operator\"}",
        1.0,
    );

    // The NAS hangs up: the next request has no way to it.
    drop(nas);
    poll::expect(WAIT, "the connection stayed registered", || {
        (s.metric("certgate_radsec_connections{client=\"aps\"}") == 0.0).then_some(())
    });
    let (code, out) = certgate_with_env(&["disconnect", "--nas", "aps"], &cfg, LISTEN);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no RadSec connection from this NAS"), "{out}");
}
