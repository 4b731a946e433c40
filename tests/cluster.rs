//! Redundant nodes (issue 21): a device that authenticated on one node
//! resumes its TLS session on another. The nodes share the ticket secret
//! (`tls.ticket_secret_file`); the resuming node still checks the
//! certificate against its own CRLs. Both nodes are the real binary on
//! loopback; the device is the in-process supplicant (TLS 1.3 and 1.2).

#[macro_use]
mod common;

use certgate::pki::KeyType;
use certgate::proto::wire::Code;
use certgate::supplicant::Versions;
use common::lab::{ALICE, CAROL, Lab, authenticate};
use common::*;

/// A lab and the ticket secret file its nodes share.
fn lab_with_secret() -> (Lab, std::path::PathBuf) {
    let lab = Lab::new(KeyType::EcdsaP256);
    let shared = lab.dir.path().join("ticket.secret");
    std::fs::write(
        &shared,
        "4f0c2a9e31d7b85a6c1e0f92d3b47a58e6c90d1f2a3b4c5d\n",
    )
    .expect("secret");
    (lab, shared)
}

fn node(lab: &Lab, secret_file: &std::path::Path) -> TestServer {
    TestServer::start(&format!(
        "{}\n{}",
        lab.config(
            "",
            &format!(
                "ticket_secret_file = {:?}",
                secret_file.display().to_string()
            )
        ),
        loopback_client("")
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_from_one_node_resumes_on_another() {
    let (lab, shared) = lab_with_secret();
    let (a, b) = (node(&lab, &shared), node(&lab, &shared));
    for versions in [Versions::Tls13, Versions::Tls12] {
        let sup = lab.supplicant(ALICE, versions, true);
        let first = authenticate(&sup, &a).await;
        assert_eq!(first.code, Code::AccessAccept, "{versions:?} on node A");
        assert!(!first.resumed);
        let second = authenticate(&sup, &b).await;
        assert_eq!(second.code, Code::AccessAccept, "{versions:?} on node B");
        assert!(
            second.resumed,
            "{versions:?}: node B resumed node A's session"
        );
        assert!(second.mppe_keys_match);
    }
    let resumed = |s: &TestServer| {
        s.metrics_text()
            .lines()
            .filter(|l| {
                l.starts_with("certgate_eap_conversations_succeeded_total")
                    && l.contains("resumed=\"true\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(resumed(&b), 2.0, "both versions resumed on B");
    assert_eq!(resumed(&a), 0.0);

    // A node of another deployment (another secret) cannot open the
    // ticket: a full handshake, still accepted.
    let other = lab.dir.path().join("other.secret");
    std::fs::write(&other, "99999999999999999999999999999999999999999999").expect("secret");
    let c = node(&lab, &other);
    let sup = lab.supplicant(CAROL, Versions::Tls13, true);
    assert_eq!(authenticate(&sup, &a).await.code, Code::AccessAccept);
    let elsewhere = authenticate(&sup, &c).await;
    assert_eq!(elsewhere.code, Code::AccessAccept);
    assert!(
        !elsewhere.resumed,
        "another deployment's node does a full handshake"
    );

    // The resuming node checks the certificate against its own CRLs: alice
    // revoked, node B (re-reading its CRLs on SIGHUP) refuses her resumption.
    let sup = lab.supplicant(ALICE, Versions::Tls13, true);
    assert_eq!(authenticate(&sup, &a).await.code, Code::AccessAccept);
    lab.pki.revoke(ALICE).expect("revoke");
    b.signal("HUP");
    b.wait_log(
        |v| v["message"] == "configuration reloaded",
        std::time::Duration::from_secs(10),
    )
    .expect("reloaded");
    let refused = authenticate(&sup, &b).await;
    assert_eq!(refused.code, Code::AccessReject);
    let why = b
        .wait_log(
            |v| v["message"] == "access rejected",
            std::time::Duration::from_secs(10),
        )
        .expect("logged");
    assert!(
        why["detail"]
            .as_str()
            .is_some_and(|d| d.contains("on resumption")),
        "{why}"
    );
}

#[test]
fn a_short_ticket_secret_is_refused_with_its_key() {
    let lab = Lab::new(KeyType::EcdsaP256);
    let short = lab.dir.path().join("short.secret");
    std::fs::write(&short, "too-short").expect("secret");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certgate.toml");
    std::fs::write(
        &config,
        config_text(&format!(
            "{}\n{}",
            lab.config(
                "",
                &format!("ticket_secret_file = {:?}", short.display().to_string())
            ),
            loopback_client("")
        )),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls.ticket_secret: is 9 characters; use at least 32"),
        "{err}"
    );
}

/// The real-NAS case: hostapd configured with both nodes, a
/// device (wpa_supplicant) authenticated through the first; the first node
/// is stopped, the device re-authenticates, hostapd fails over to the
/// second, and the second resumes the device's TLS session.
fn hostapd_failover(phase1: &str, version: &str) {
    if !common::hostapd::available(module_path!()) {
        return;
    }
    let (lab, shared) = lab_with_secret();
    let a = node(&lab, &shared);
    let b = node(&lab, &shared);
    let mut port = common::hostapd::WiredPort::start_with_servers(
        &[(a.auth, a.acct), (b.auth, b.acct)],
        SECRET,
        "unused-das-secret",
    );
    let wait = std::time::Duration::from_secs(60);
    port.connect_with(&lab, ALICE, &format!(" phase1=\"{phase1}\""));
    port.wait_event("AP-STA-CONNECTED", 1, wait);
    let first = a
        .wait_log(|v| v["message"] == "access accepted", wait)
        .expect("accepted by the first node");
    assert_eq!(first["tls_version"], version);
    assert_eq!(first["resumed"], false);

    drop(a); // the first node goes away (killed by PID)
    port.reauthenticate();
    let Some(second) = b.wait_log(|v| v["message"] == "access accepted", wait) else {
        panic!(
            "not accepted by the second node after failover\nhostapd:\n{}\nnode B: {:?}",
            std::fs::read_to_string(port.log_path()).unwrap_or_default(),
            b.logs().iter().rev().take(8).collect::<Vec<_>>()
        );
    };
    assert_eq!(second["tls_version"], version);
    assert_eq!(second["resumed"], true, "{second}");
    assert!(port.authorized());
}

#[test]
fn hostapd_fails_over_and_the_second_node_resumes_a_tls13_session() {
    hostapd_failover("tls_disable_tlsv1_3=0", "1.3");
}

/// TLS 1.2 resumes across nodes by ticket: wpa_supplicant asks for one
/// when told to (`tls_disable_session_ticket=0`; its default leaves TLS
/// 1.2 to session ids, which stay on the node that issued them).
#[test]
fn hostapd_fails_over_and_the_second_node_resumes_a_tls12_session_by_ticket() {
    hostapd_failover("tls_disable_tlsv1_3=1 tls_disable_session_ticket=0", "1.2");
}
