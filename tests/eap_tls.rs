//! EAP-TLS end to end: the real certgate binary against eapol_test (the
//! wpa_supplicant test peer) and against the Rust test supplicant, with a
//! PKI generated at test time.

#[macro_use]
mod common;

use std::time::Duration;

use certgate::pki::KeyType;
use certgate::proto::wire::crypto::Secret;
use certgate::supplicant::{Versions, client_config};
use common::lab::*;
use common::load::Load;
use common::{TestServer, loopback_client};

fn server(lab: &Lab, eap_extra: &str, tls_extra: &str) -> TestServer {
    TestServer::start(&format!(
        "{}{}",
        loopback_client(""),
        lab.config(eap_extra, tls_extra)
    ))
}

const TLS13: &str = "  phase1=\"tls_disable_tlsv1_3=0\"";
const TLS12_ONLY: &str = "  phase1=\"tls_disable_tlsv1_3=1\"";

#[test]
fn eapol_test_tls12_and_tls13_get_keys_and_reply_attributes() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let ca = lab.pki.path("ca.pem");
    for (n, (extra, version)) in [(TLS12_ONLY, "1.2"), (TLS13, "1.3")]
        .into_iter()
        .enumerate()
    {
        let conf = lab.eapol_conf(&lab.pki, ALICE, &ca, extra);
        let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &["-e"]);
        assert!(ok, "TLS {version} failed:\n{out}");
        assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
        assert!(
            out.contains("Locally derived EAP Session-Id matches EAP-Key-Name from server"),
            "EAP-Key-Name: {out}"
        );
        // Authorization's reply attributes reach the NAS.
        for attr in [
            "Attribute 64 (Tunnel-Type)",
            "Attribute 81 (Tunnel-Private-Group-Id)",
            "Attribute 11 (",
            "Attribute 25 (Class)",
        ] {
            assert!(
                out.contains(attr),
                "{attr} missing in TLS {version}:\n{out}"
            );
        }
        let line = outcome(&s, "access accepted", n + 1);
        assert_eq!(line["tls_version"], version);
        assert_eq!(line["identity"], ALICE);
        assert_eq!(line["resumed"], false);
    }
    let m = s.metrics_text();
    assert!(
        m.contains("certgate_eap_conversations_succeeded_total{cipher_suite=\"TLS13_AES_128_GCM_SHA256\",resumed=\"false\",tls_version=\"1.3\"} 1"),
        "{m}"
    );
}

#[test]
fn eapol_test_with_rsa_server_certificate_and_intermediate_client_ca() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::Rsa2048);
    let s = server(&lab, "", "");
    let ca = lab.pki.path("ca.pem");
    for extra in [TLS12_ONLY, TLS13] {
        let conf = lab.eapol_conf(&lab.pki, CAROL, &ca, extra);
        let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
        assert!(ok, "intermediate-issued client refused ({extra}):\n{out}");
        assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
    }
}

#[test]
fn eapol_test_small_client_fragments() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    // The server fragments too: 200 octets of TLS per EAP-TLS packet.
    let s = server(&lab, "fragment_size = 200", "");
    let ca = lab.pki.path("ca.pem");
    for size in ["300", "100"] {
        for version in [TLS12_ONLY, TLS13] {
            let conf = lab.eapol_conf(
                &lab.pki,
                ALICE,
                &ca,
                &format!("{version}\n  fragment_size={size}"),
            );
            let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
            assert!(ok, "fragment_size={size} {version}:\n{out}");
            assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
        }
    }
    let accepted = outcome(&s, "access accepted", 4);
    assert!(
        accepted["round_trips"].as_u64().unwrap_or(0) > 10,
        "small fragments need many round trips: {accepted}"
    );
}

#[test]
fn bad_client_certificates_are_rejected_with_reasons() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let ca = lab.pki.path("ca.pem");
    let cases = [
        (&lab.pki, REVOKED, "certificate_rejected", "revoked"),
        (&lab.pki, EXPIRED, "certificate_rejected", "expired"),
        (&lab.other, ALICE, "certificate_rejected", "issuer"),
        (
            &lab.pki,
            NO_EKU,
            "certificate_rejected",
            "extended key usage",
        ),
        (&lab.pki, DISABLED, "disabled", "disabled"),
        (
            &lab.pki,
            UNKNOWN,
            "unknown_identity",
            "not in the file directory",
        ),
    ];
    for (n, (pki, name, reason, detail)) in cases.into_iter().enumerate() {
        for extra in [TLS12_ONLY, TLS13] {
            let conf = lab.eapol_conf(pki, name, &ca, extra);
            let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
            assert!(!ok, "{name} accepted:\n{out}");
            assert!(
                out.contains("Access-Reject") && out.contains("EAP Failure"),
                "{name}: no Access-Reject with EAP-Failure:\n{out}"
            );
        }
        let line = outcome(&s, "access rejected", 2 * n + 2);
        assert_eq!(line["reason"], reason, "{name}: {line}");
        assert!(
            line["detail"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains(detail),
            "{name}: {line}"
        );
    }
    // The TLS alert reached the peer before the EAP-Failure.
    let conf = lab.eapol_conf(&lab.pki, REVOKED, &ca, TLS12_ONLY);
    let (_, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
    assert!(
        out.contains("SSL3 alert: read (remote end reported an error):fatal:certificate revoked"),
        "{out}"
    );
}

#[test]
fn a_peer_that_does_not_trust_our_ca_refuses_us() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.other.path("ca.pem"), TLS13);
    let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
    assert!(!ok, "{out}");
    let line = outcome(&s, "access rejected", 1);
    assert_eq!(line["reason"], "peer_alert", "{line}");
}

#[test]
fn wrong_shared_secret_gets_no_answer() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.pki.path("ca.pem"), TLS13);
    let (ok, out) = eapol_test(&conf, s.auth, "not-the-secret", &["-t", "2"]);
    assert!(!ok, "{out}");
    assert!(
        !out.contains("Received RADIUS packet"),
        "an answer came: {out}"
    );
    assert!(
        s.metric("certgate_dropped_total{listener=\"auth\",reason=\"bad_message_authenticator\"}")
            >= 1.0
    );
}

#[test]
fn eapol_test_reauthentication_resumes_every_time() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let ca = lab.pki.path("ca.pem");
    let mut accepted = 0;
    for extra in [TLS12_ONLY, TLS13] {
        let conf = lab.eapol_conf(&lab.pki, ALICE, &ca, extra);
        let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &["-r", "2"]);
        assert!(ok, "{extra}:\n{out}");
        assert!(out.contains("MPPE keys OK: 3  mismatch: 0"), "{out}");
        assert!(
            !out.contains("Handshake finished - resumed=0")
                || out.matches("resumed=0").count() < out.matches("resumed=1").count(),
            "re-authentications resume ({extra}):\n{out}"
        );
        for resumed in [false, true, true] {
            accepted += 1;
            let line = outcome(&s, "access accepted", accepted);
            assert_eq!(line["resumed"], resumed, "{line}");
        }
    }
}

#[tokio::test]
async fn rust_supplicant_checks_keys_attributes_and_resumption() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    for versions in [Versions::Tls12, Versions::Tls13] {
        let sup = lab.supplicant(ALICE, versions, true);
        for resumed in [false, true, true] {
            let o = authenticate(&sup, &s).await;
            assert_eq!(o.code, certgate::proto::wire::Code::AccessAccept, "{o:?}");
            assert!(o.mppe_keys_match, "{versions:?}: MPPE keys differ from MSK");
            assert_eq!(o.resumed, resumed, "{versions:?}");
            assert!(o.peer_error.is_none(), "{o:?}");
            let vlan = o
                .attributes
                .iter()
                .find(|(k, _)| *k == 81)
                .map(|(_, v)| v.clone());
            assert_eq!(
                vlan.as_deref(),
                Some(&b"\x0120"[..]),
                "Tunnel-Private-Group-Id"
            );
            assert!(
                o.attributes
                    .contains(&(25, b"user=alice@example.org".to_vec()))
            );
            if !resumed {
                assert!(
                    (3..=6).contains(&o.round_trips),
                    "{} round trips",
                    o.round_trips
                );
            }
        }
    }
    let disabled = lab.supplicant(DISABLED, Versions::Both, false);
    let o = authenticate(&disabled, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessReject);
}

#[tokio::test]
async fn identity_binding_exact_rejects_a_foreign_outer_identity() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "identity_binding = \"exact\"", "");
    let mut sup = lab.supplicant(ALICE, Versions::Tls13, false);
    sup.identity = "bob@example.org".into();
    let o = authenticate(&sup, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessReject);
    let line = outcome(&s, "access rejected", 1);
    assert_eq!(line["reason"], "identity_mismatch", "{line}");
}

#[test]
fn metrics_page_passes_promtool_after_eap() {
    require!("eapol_test", "promtool");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.pki.path("ca.pem"), TLS13);
    assert!(eapol_test(&conf, s.auth, common::SECRET, &[]).0);
    let text = s.metrics_text();
    common::promtool_check(&text);
    assert_eq!(
        common::metric_value(&text, "certgate_eap_conversations_started_total"),
        1.0
    );
    assert_eq!(
        common::metric_value(
            &text,
            "certgate_authz_decisions_total{backend=\"file\",result=\"accept\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn revocation_after_sighup_stops_full_and_resumed_authentications() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let resuming = lab.supplicant(ALICE, Versions::Tls13, true);
    let o = authenticate(&resuming, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessAccept);

    lab.pki.revoke(ALICE).expect("revoke");
    s.signal("HUP");
    s.wait_log(
        |v| v["message"] == "configuration reloaded",
        Duration::from_secs(10),
    )
    .expect("reload");

    // The ticket from before still resumes the TLS session, but the
    // certificate restored from it is checked against the new CRL.
    let o = authenticate(&resuming, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessReject);
    let line = outcome(&s, "access rejected", 1);
    assert!(
        line["detail"]
            .as_str()
            .unwrap_or("")
            .contains("on resumption"),
        "{line}"
    );
    let full = lab.supplicant(ALICE, Versions::Tls12, false);
    let o = authenticate(&full, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessReject);
    assert_eq!(
        outcome(&s, "access rejected", 2)["reason"],
        "certificate_rejected"
    );
}

#[test]
fn certgate_demo_serves_the_printed_eapol_test_configuration() {
    require!("eapol_test");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    let journal = dir.path().join("journal").display().to_string();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/demo.toml");
    let args = [
        "demo".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--pki".into(),
        pki.display().to_string(),
    ];
    let s = TestServer::spawn(
        dir,
        &args,
        &[
            ("CERTGATE_SERVER__AUTH_LISTEN", "127.0.0.1:0"),
            ("CERTGATE_SERVER__ACCT_LISTEN", "127.0.0.1:0"),
            ("CERTGATE_METRICS__LISTEN", "127.0.0.1:0"),
            ("CERTGATE_LOG__FORMAT", "json"),
            ("CERTGATE_ACCOUNTING__JOURNAL_DIR", journal.as_str()),
        ],
    );
    let conf = pki.join("eapol_test.conf");
    let (ok, out) = eapol_test(&conf, s.auth, "testing123", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
    // The demo's users.toml puts alice in VLAN 20.
    assert!(
        out.contains("Value: 013230"),
        "Tunnel-Private-Group-Id 1:20: {out}"
    );
}

#[test]
fn retransmitted_access_request_is_answered_from_the_cache_not_rerun() {
    use certgate::supplicant::Exchange;
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let sock = common::udp();
    let mut ex = Exchange::new(Secret::new(common::SECRET.as_bytes()), ALICE);
    let identity = certgate::proto::eap::packet::build(
        certgate::proto::eap::EapCode::Response,
        1,
        Some(certgate::proto::eap::packet::method::IDENTITY),
        ALICE.as_bytes(),
    );
    let request = ex.request(&identity);
    let first = common::exchange(&sock, s.auth, &request, Duration::from_secs(5)).expect("reply");
    let again = common::exchange(&sock, s.auth, &request, Duration::from_secs(5)).expect("reply");
    assert_eq!(first, again, "byte-for-byte the cached Access-Challenge");
    assert_eq!(
        s.metric("certgate_duplicates_total{listener=\"auth\"}"),
        1.0
    );
    assert_eq!(s.metric("certgate_eap_conversations_started_total"), 1.0);
    assert_eq!(s.metric("certgate_eap_conversations_active"), 1.0);
}

/// Drives one conversation by hand with the sans-I/O peer: `before_first`
/// runs after the EAP-TLS Start, mid-conversation. Returns the final code
/// and the server certificate the peer saw.
fn conversation_with_pause(
    lab: &Lab,
    server: std::net::SocketAddr,
    before_first: impl FnOnce(),
) -> (certgate::proto::wire::Code, Vec<u8>) {
    use certgate::supplicant::{EapTlsPeer, Exchange, PeerStep};
    let (cert, key) = lab.client_files(&lab.pki, ALICE);
    let config = client_config(&lab.pki.path("ca.pem"), &cert, &key, Versions::Tls13, false)
        .expect("client config");
    let name = rustls::pki_types::ServerName::try_from("radius.example.org").expect("name");
    let mut peer = EapTlsPeer::new(config, name, ALICE, 1000).expect("peer");
    let mut ex = Exchange::new(Secret::new(common::SECRET.as_bytes()), ALICE);
    let sock = common::udp();
    let mut eap = peer.identity_response(1);
    let mut pause = Some(before_first);
    loop {
        let request = ex.request(&eap);
        let bytes =
            common::exchange(&sock, server, &request, Duration::from_secs(5)).expect("reply");
        let reply = ex.accept(&bytes).expect("valid reply").expect("ours");
        if let Some(f) = pause.take() {
            f();
        }
        match peer.on_request(&reply.eap) {
            Ok(PeerStep::Respond(next))
                if reply.code == certgate::proto::wire::Code::AccessChallenge =>
            {
                eap = next
            }
            _ => {
                let cert = peer.server_certificate().unwrap_or_default().to_vec();
                return (reply.code, cert);
            }
        }
    }
}

#[test]
fn sighup_swaps_the_server_certificate_without_dropping_conversations() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let old = std::fs::read_to_string(lab.pki.path("server.pem")).expect("pem");
    let (code, seen) = conversation_with_pause(&lab, s.auth, || {
        lab.pki
            .issue_server("radius.example.org", KeyType::Rsa2048)
            .expect("new server cert");
        s.signal("HUP");
        s.wait_log(
            |v| v["message"] == "configuration reloaded",
            Duration::from_secs(10),
        )
        .expect("reload");
    });
    assert_eq!(
        code,
        certgate::proto::wire::Code::AccessAccept,
        "conversation survived"
    );
    let old_der = rustls::pki_types::pem::PemObject::from_pem_slice(old.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .expect("der");
    assert_eq!(
        seen, old_der,
        "it finished with the certificate it began with"
    );
    let (code, seen) = conversation_with_pause(&lab, s.auth, || {});
    assert_eq!(code, certgate::proto::wire::Code::AccessAccept);
    assert_ne!(seen, old_der, "new conversations get the new certificate");
}

#[tokio::test]
async fn crls_are_reread_periodically() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "crl_refresh = \"1s\"");
    let sup = lab.supplicant(ALICE, Versions::Tls12, false);
    let o = authenticate(&sup, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessAccept);
    lab.pki.revoke(ALICE).expect("revoke");
    s.wait_log(|v| v["message"] == "CRLs reloaded", Duration::from_secs(10))
        .expect("CRL refresh");
    let o = authenticate(&sup, &s).await;
    assert_eq!(o.code, certgate::proto::wire::Code::AccessReject);
}

#[tokio::test]
async fn an_unreadable_crl_keeps_the_loaded_ones() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "crl_refresh = \"1s\"");
    std::fs::remove_file(lab.pki.path("crl.pem")).expect("remove CRL");
    s.wait_log(
        |v| v["message"] == "CRL reload failed; keeping the loaded CRLs",
        Duration::from_secs(10),
    )
    .expect("the failure is logged");
    assert!(s.metric("certgate_crl_reloads_total{result=\"failed\"}") >= 1.0);
    // Still serving with the CRLs loaded at start: alice in, the revoked out.
    let alice = lab.supplicant(ALICE, Versions::Tls13, false);
    assert_eq!(
        authenticate(&alice, &s).await.code,
        certgate::proto::wire::Code::AccessAccept
    );
    let revoked = lab.supplicant(REVOKED, Versions::Tls13, false);
    assert_eq!(
        authenticate(&revoked, &s).await.code,
        certgate::proto::wire::Code::AccessReject
    );
}

/// SIGHUP with a broken configuration file, a broken server certificate
/// and a missing CRL while supplicants authenticate: each reload fails and
/// says why, the running configuration serves every conversation
/// meanwhile, and once the files are whole again the next SIGHUP applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_reloads_under_load_keep_the_running_configuration() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    let mut sup = lab.supplicant(ALICE, Versions::Both, false);
    // A lost answer must show as a failure, not be hidden by a retry.
    sup.attempts = 1;
    let load = Load::start(&sup, s.auth, 6);
    assert!(load.wait_more(20, Duration::from_secs(30)).await, "load");
    let failed_reloads = "certgate_config_reloads_total{result=\"failed\"}";
    let breakages: [(&str, std::path::PathBuf, Option<&[u8]>); 3] = [
        (
            "configuration",
            s.config_path(),
            Some(b"[server\nauth_listen = 5\n"),
        ),
        (
            "server certificate",
            lab.pki.path("server.pem"),
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ),
        ("CRL", lab.pki.path("crl.pem"), None),
    ];
    for (n, (what, path, broken)) in breakages.into_iter().enumerate() {
        let whole = std::fs::read(&path).expect("read");
        match broken {
            Some(bytes) => std::fs::write(&path, bytes).expect("break"),
            None => std::fs::remove_file(&path).expect("remove"),
        }
        s.signal("HUP");
        let line = s
            .wait_nth(
                |v| {
                    v["message"] == "configuration reload failed; keeping the running configuration"
                },
                n + 1,
                Duration::from_secs(10),
            )
            .unwrap_or_else(|| panic!("{what}: no failed reload logged"));
        eprintln!("broken {what}: {}", line["error"]);
        tokio::task::block_in_place(|| s.wait_metric(failed_reloads, (n + 1) as f64));
        assert!(
            load.wait_more(20, Duration::from_secs(30)).await,
            "{what}: service continues while the file is broken"
        );
        std::fs::write(&path, whole).expect("restore");
    }
    s.signal("HUP");
    s.wait_log(
        |v| v["message"] == "configuration reloaded",
        Duration::from_secs(10),
    )
    .expect("the repaired files load");
    assert!(load.wait_more(20, Duration::from_secs(30)).await, "after");
    let samples = load.finish().await;
    for x in &samples {
        let o = x
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("no answer: {e}"));
        assert_eq!(o.code, certgate::proto::wire::Code::AccessAccept, "{o:?}");
        assert!(o.mppe_keys_match);
    }
    eprintln!("{} conversations, all accepted", samples.len());
    assert_eq!(
        s.metric("certgate_config_reloads_total{result=\"ok\"}"),
        1.0
    );
}

/// One Access-Request carrying `eap` and its checked reply.
async fn round(
    sock: &tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    ex: &mut certgate::supplicant::Exchange,
    eap: &[u8],
) -> certgate::supplicant::Reply {
    let request = ex.request(eap);
    let reply = common::exchange_async(sock, to, &request, Duration::from_secs(5))
        .await
        .expect("an answer");
    ex.accept(&reply)
        .expect("authentic reply")
        .expect("the answer to this request")
}

/// Like strongSwan 5.9's client: a peer whose certificate is refused
/// aborts on the server's TLS alert without acknowledging it. The RFC
/// behaviour stays (the alert goes out in an Access-Challenge); the
/// conversation then ends after eap.alert_timeout with a log line giving
/// the failure, instead of lingering for the idle timeout.
#[tokio::test]
async fn a_peer_that_aborts_on_our_alert_ends_its_conversation_early() {
    use certgate::proto::wire::Code;
    use certgate::supplicant::{EapTlsPeer, Exchange, PeerStep};
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "alert_timeout = \"1s\"", "");
    let sup = lab.supplicant(REVOKED, Versions::Tls12, false);
    let mut peer =
        EapTlsPeer::new(sup.config.clone(), sup.server_name.clone(), REVOKED, 1000).expect("peer");
    let mut ex = Exchange::new(Secret::new(common::SECRET.as_bytes()), REVOKED);
    ex.calling_station = Some("02-00-00-00-00-0c".into());
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut eap = peer.identity_response(1);
    let mut aborted = false;
    for _ in 0..10 {
        let reply = round(&sock, s.auth, &mut ex, &eap).await;
        assert_eq!(
            reply.code,
            Code::AccessChallenge,
            "the alert comes in a challenge"
        );
        match peer.on_request(&reply.eap) {
            Ok(PeerStep::Respond(next)) => eap = next,
            Ok(PeerStep::Success) => panic!("success"),
            Err(_) => {
                aborted = true;
                break;
            }
        }
    }
    assert!(aborted, "the peer saw the alert");
    let line = s
        .wait_log(
            |l| {
                l["message"]
                    == "access rejected: the peer did not acknowledge the TLS alert; conversation ended"
            },
            Duration::from_secs(5),
        )
        .expect("the early end is logged");
    assert_eq!(line["reason"], "certificate_rejected", "{line}");
    assert_eq!(line["calling_station"], "02-00-00-00-00-0c", "{line}");
    s.wait_metric(
        "certgate_eap_conversations_expired_total{reason=\"alert_unanswered\"}",
        1.0,
    );
    s.wait_metric(
        "certgate_eap_conversations_failed_total{reason=\"certificate_rejected\"}",
        1.0,
    );
    s.wait_metric("certgate_eap_conversations_active", 0.0);
}

/// RFC 2865 §5.33 through a whole EAP-TLS conversation: every
/// Access-Challenge, the Access-Accept and an Access-Reject echo the
/// request's Proxy-State (the Rust supplicant refuses any reply that does
/// not), and so does eapol_test's view of the Access-Accept.
#[tokio::test]
async fn proxy_state_is_echoed_in_challenges_accept_and_reject() {
    require!("eapol_test");
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = server(&lab, "", "");
    for (name, want) in [
        (ALICE, certgate::proto::wire::Code::AccessAccept),
        (REVOKED, certgate::proto::wire::Code::AccessReject),
    ] {
        let mut sup = lab.supplicant(name, Versions::Tls13, false);
        sup.proxy_state = Some(b"proxy-7f3a".to_vec());
        let o = authenticate(&sup, &s).await;
        assert_eq!(o.code, want, "{name}: {o:?}");
    }
    let conf = lab.eapol_conf(&lab.pki, ALICE, &lab.pki.path("ca.pem"), TLS13);
    let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &["-N33:x:616263"]);
    assert!(ok, "{out}");
    let accept = out
        .split("code=2 (Access-Accept)")
        .nth(1)
        .expect("an Access-Accept dump");
    assert!(
        accept.contains("Attribute 33 (Proxy-State) length=5"),
        "{accept}"
    );
}

/// A conversation belongs to the NAS that started it: a second configured
/// NAS (here 127.0.0.2, its own secret) replaying the first one's State is
/// answered as if the State were unknown, counted, and the first NAS
/// finishes its conversation undisturbed, keys and all.
#[tokio::test]
async fn another_nas_cannot_continue_a_conversation() {
    use certgate::proto::wire::Code;
    use certgate::supplicant::{EapTlsPeer, Exchange, PeerStep};
    let lab = Lab::new(KeyType::EcdsaP256);
    let s = TestServer::start(&format!(
        "[[clients]]\nname = \"ap-a\"\naddress = \"127.0.0.1\"\nsecret = \"secret-a\"\n\
         [[clients]]\nname = \"ap-b\"\naddress = \"127.0.0.2\"\nsecret = \"secret-b\"\n{}",
        lab.config("", "")
    ));
    let sup = lab.supplicant(ALICE, Versions::Tls13, false);
    let mut peer =
        EapTlsPeer::new(sup.config.clone(), sup.server_name.clone(), ALICE, 1000).expect("peer");
    let mac = "02-00-00-00-00-0A";
    let mut a = Exchange::new(Secret::new(b"secret-a"), ALICE);
    a.calling_station = Some(mac.into());
    let mut b = Exchange::new(Secret::new(b"secret-b"), ALICE);
    b.calling_station = Some(mac.into());
    let sock_a = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sock_b = tokio::net::UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let start = round(&sock_a, s.auth, &mut a, &peer.identity_response(1)).await;
    assert_eq!(start.code, Code::AccessChallenge);
    let PeerStep::Respond(mut eap) = peer.on_request(&start.eap).expect("peer") else {
        panic!("no ClientHello");
    };
    b.set_state(a.state().map(<[u8]>::to_vec));
    let stolen = round(&sock_b, s.auth, &mut b, &eap).await;
    assert_eq!(
        stolen.code,
        Code::AccessReject,
        "the other NAS is turned away"
    );
    s.wait_metric(
        "certgate_eap_conversations_failed_total{reason=\"foreign_state\"}",
        1.0,
    );
    for _ in 0..10 {
        let reply = round(&sock_a, s.auth, &mut a, &eap).await;
        match reply.code {
            Code::AccessChallenge => match peer.on_request(&reply.eap).expect("peer") {
                PeerStep::Respond(next) => eap = next,
                PeerStep::Success => panic!("success in a challenge"),
            },
            Code::AccessAccept => {
                let msk = peer.msk().expect("msk");
                assert_eq!(reply.mppe_recv.as_deref(), Some(&msk[..32]));
                let line = outcome(&s, "access accepted", 1);
                assert_eq!(line["client"], "ap-a", "{line}");
                return;
            }
            other => panic!("the owner got {other:?}"),
        }
    }
    panic!("no Access-Accept");
}
