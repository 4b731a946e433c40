//! Authorization from a real OpenLDAP (`slapd` on an ephemeral loopback
//! port, loaded with `common::slapd::LDIF`): groups, nested groups, the
//! disabled filter, reply attributes and vendor attributes reaching
//! eapol_test and the Rust supplicant, filter escaping, and the failure
//! policy when slapd is stopped or frozen mid-run, with recovery.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use certgate::pki::{ClientOptions, KeyType};
use certgate::proto::wire::Code;
use certgate::supplicant::{Outcome, Supplicant, Versions};
use common::lab::*;
use common::latency::LatencyRelay;
use common::load::{Load, within};
use common::slapd::{BIND_DN, BIND_PASSWORD, Slapd};
use common::{TestServer, loopback_client};
use rustls::pki_types::pem::PemObject;

/// Only in a group named `employees` outside ou=groups.
const DAVE: &str = "dave@example.org";
/// An identity made of LDAP filter metacharacters.
const INJECTION: &str = "*)(uid=*";
/// Two LDAP entries carry this mail address.
const TWIN: &str = "twin@example.org";

const RULES: &str = r#"
[[authz.rule]]
name = "employees"
groups_any = "employees"
vlan = 20
reply = [
    "Aruba-User-Role = employee",
    "Fortinet-Group-Name = {group}",
    "Cisco-AVPair = shell:priv-lvl=15",
    "Class = dept={attr:departmentNumber}",
]

[[authz.rule]]
name = "directory-down"
groups_any = "directory-down"
vlan = 99
reply = ["Filter-Id = restricted"]
"#;

fn authz(url: &str, groups: &str, extra: &str) -> String {
    format!(
        "[authz]\ndirectory = \"ldap\"\ntimeout = \"2s\"\n{extra}\n\
         [authz.ldap]\nurls = [{:?}]\nbind_dn = {BIND_DN:?}\nbind_password = {BIND_PASSWORD:?}\n\
         allow_cleartext = true\n\
         base = \"dc=example,dc=org\"\n\
         user_filter = \"(&(objectClass=inetOrgPerson)(|(mail={{identity}})(uid={{identity}})))\"\n\
         {groups}\n\
         disabled_filter = \"(employeeType=disabled)\"\nattributes = [\"departmentNumber\"]\n\
         connect_timeout = \"1s\"\noperation_timeout = \"1s\"\nbackoff_max = \"500ms\"\n{RULES}",
        url
    )
}

const BY_SEARCH: &str = "groups = \"search\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\nnested = \"recursive\"\nnested_depth = 2";
const BY_MEMBER_OF: &str = "groups = \"attribute\"\nmember_attribute = \"memberOf\"\nnested = \"recursive\"\nnested_depth = 2";

fn server(lab: &Lab, authz: &str) -> TestServer {
    TestServer::start(&format!(
        "{}{}",
        loopback_client(""),
        lab.config_with_authz("", "", authz)
    ))
}

fn lab() -> Lab {
    let lab = Lab::new(KeyType::EcdsaP256);
    for name in [INJECTION, TWIN, DAVE] {
        lab.pki
            .issue_client(name, &ClientOptions::default())
            .expect("extra client");
    }
    lab
}

fn supplicant(lab: &Lab, name: &str) -> Supplicant {
    let mut s = lab.supplicant(name, Versions::Tls13, false);
    // Longer than any look-up here, so a slow answer is not retransmitted.
    s.timeout = Duration::from_secs(6);
    s
}

fn attribute(o: &Outcome, kind: u8) -> Option<&[u8]> {
    o.attributes
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.as_slice())
}

/// The vendor sub-attribute (type 1) of `vendor` in the reply.
fn vsa(o: &Outcome, vendor: u32) -> Option<&[u8]> {
    o.attributes
        .iter()
        .filter(|(k, _)| *k == 26)
        .find(|(_, v)| v.len() > 6 && v[..4] == vendor.to_be_bytes() && v[4] == 1)
        .map(|(_, v)| &v[6..])
}

#[tokio::test]
async fn ldap_groups_nested_groups_and_attributes_decide_the_reply() {
    require!("slapd", "ldapadd");
    let slapd = Slapd::start();
    let lab = lab();
    for (strategy, groups) in [("search", BY_SEARCH), ("memberOf", BY_MEMBER_OF)] {
        let s = server(&lab, &authz(&slapd.url(), groups, ""));
        // alice is in staff, which is in employees: only nesting gives her
        // the employees rule.
        let o = authenticate(&supplicant(&lab, ALICE), &s).await;
        assert_eq!(o.code, Code::AccessAccept, "{strategy}: {o:?}");
        assert!(o.mppe_keys_match);
        assert_eq!(attribute(&o, 64), Some(&[1, 0, 0, 13][..]), "Tunnel-Type");
        assert_eq!(
            attribute(&o, 65),
            Some(&[1, 0, 0, 6][..]),
            "Tunnel-Medium-Type"
        );
        assert_eq!(attribute(&o, 81), Some(&b"\x0120"[..]), "{strategy}: VLAN");
        assert_eq!(
            attribute(&o, 25),
            Some(&b"dept=42"[..]),
            "{strategy}: Class"
        );
        assert_eq!(vsa(&o, 14823), Some(&b"employee"[..]), "Aruba-User-Role");
        assert_eq!(
            vsa(&o, 12356),
            Some(&b"employees"[..]),
            "Fortinet-Group-Name"
        );
        assert_eq!(vsa(&o, 9), Some(&b"shell:priv-lvl=15"[..]), "Cisco-AVPair");

        let cases = [
            (DISABLED, "disabled"),
            (UNKNOWN, "unknown_identity"),
            (CAROL, "no_matching_rule"),
            // Escaped, the filter finds nobody; unescaped it would match
            // every person (ambiguous → directory error) or be invalid.
            (INJECTION, "unknown_identity"),
        ];
        for (n, (name, reason)) in cases.into_iter().enumerate() {
            let o = authenticate(&supplicant(&lab, name), &s).await;
            assert_eq!(o.code, Code::AccessReject, "{strategy} {name}");
            let line = outcome(&s, "access rejected", n + 1);
            assert_eq!(line["reason"], reason, "{strategy} {name}: {line}");
        }
        // A second authentication is answered from the cache.
        let o = authenticate(&supplicant(&lab, ALICE), &s).await;
        assert_eq!(o.code, Code::AccessAccept);
        assert!(s.metric("certgate_authz_cache_hits_total") >= 1.0);
        assert!(s.metric("certgate_authz_cache_misses_total") >= 5.0);
        assert_eq!(
            s.metric(
                "certgate_authz_policy_decisions_total{outcome=\"accept\",rule=\"employees\"}"
            ),
            2.0
        );
        assert_eq!(
            s.metric("certgate_authz_policy_decisions_total{outcome=\"reject\",rule=\"default\"}"),
            1.0
        );
        let searches = format!(
            "certgate_ldap_operation_duration_seconds_count{{operation=\"search\",server=\"{}\"}}",
            slapd.url()
        );
        assert!(s.metric(&searches) >= 5.0, "{searches}");
    }
}

/// memberOf names groups anywhere in the directory: a delegated OU admin
/// can make a group called `employees` and join it. With
/// `groups_under_base`, only groups under group_base count; a rule on the
/// group's DN pattern is the other way to be exact.
#[tokio::test]
async fn member_of_groups_outside_group_base_can_be_ignored() {
    require!("slapd", "ldapadd");
    let slapd = Slapd::start();
    let lab = lab();
    let scope = "groups_under_base = true\ngroup_base = \"ou=groups,dc=example,dc=org\"";
    for (extra, dave_gets_in) in [("", true), (scope, false)] {
        let s = server(
            &lab,
            &authz(&slapd.url(), &format!("{BY_MEMBER_OF}\n{extra}"), ""),
        );
        let o = authenticate(&supplicant(&lab, DAVE), &s).await;
        assert_eq!(
            o.code == Code::AccessAccept,
            dave_gets_in,
            "{extra:?}: {o:?}"
        );
        // alice's groups are under ou=groups: unaffected.
        let o = authenticate(&supplicant(&lab, ALICE), &s).await;
        assert_eq!(o.code, Code::AccessAccept, "{extra:?}");
    }
    // A rule on the DN pattern tells the two `employees` groups apart
    // without any scoping.
    let by_dn = authz(&slapd.url(), BY_MEMBER_OF, "").replace(
        "groups_any = \"employees\"",
        "groups_any = \"cn=employees,ou=groups,dc=example,dc=org\"",
    );
    let s = server(&lab, &by_dn);
    let o = authenticate(&supplicant(&lab, DAVE), &s).await;
    assert_eq!(o.code, Code::AccessReject);
    let o = authenticate(&supplicant(&lab, ALICE), &s).await;
    assert_eq!(o.code, Code::AccessAccept);
}

/// A bind password over ldap:// without StartTLS is a configuration error
/// unless allow_cleartext = true, and then a warning at every start.
#[test]
fn a_cleartext_bind_needs_allow_cleartext_and_is_warned_about() {
    let lab = lab();
    let with = authz("ldap://127.0.0.1:389", BY_SEARCH, "");
    let without = with.replace("allow_cleartext = true\n", "");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    let text = |authz: &str| {
        common::config_text(&format!(
            "{}{}",
            loopback_client(""),
            lab.config_with_authz("", "", authz)
        ))
    };
    std::fs::write(&path, text(&without)).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("authz.ldap.urls[0]: \"ldap://127.0.0.1:389\" without starttls would send the bind password in clear text"),
        "{err}"
    );
    std::fs::write(&path, text(&with)).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("check-config");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("warning: authz.ldap.urls[0]"), "{said}");
    let s = server(&lab, &with);
    s.wait_log(
        |l| {
            l["message"] == "configuration warning"
                && l["warning"]
                    .as_str()
                    .is_some_and(|w| w.contains("clear text"))
        },
        Duration::from_secs(5),
    )
    .expect("a warning at start");
}

#[test]
fn eapol_test_sees_vlan_and_vendor_attributes_from_ldap() {
    require!("eapol_test", "slapd", "ldapadd");
    let slapd = Slapd::start();
    let lab = lab();
    let s = server(&lab, &authz(&slapd.url(), BY_SEARCH, ""));
    let conf = lab.eapol_conf(
        &lab.pki,
        ALICE,
        &lab.pki.path("ca.pem"),
        "  phase1=\"tls_disable_tlsv1_3=0\"",
    );
    let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{out}");
    for attr in [
        "Attribute 64 (Tunnel-Type)",
        "Attribute 65 (Tunnel-Medium-Type)",
        "Attribute 81 (Tunnel-Private-Group-Id)",
        "Attribute 25 (Class)",
        "Attribute 26 (Vendor-Specific)",
    ] {
        assert!(out.contains(attr), "{attr} missing:\n{out}");
    }
    let conf = lab.eapol_conf(&lab.pki, DISABLED, &lab.pki.path("ca.pem"), "");
    let (ok, out) = eapol_test(&conf, s.auth, common::SECRET, &[]);
    assert!(!ok, "a disabled account must fail:\n{out}");
    assert_eq!(outcome(&s, "access rejected", 1)["reason"], "disabled");
}

/// Retries until slapd is back and the backoff has passed; bounded.
async fn until_vlan(sup: &Supplicant, s: &TestServer, want: &[u8]) -> Outcome {
    let got = common::poll::until_async(Duration::from_secs(20), || async {
        let o = authenticate(sup, s).await;
        (attribute(&o, 81) == Some(want)).then_some(o)
    })
    .await;
    match got {
        Some(o) => o,
        // One more for the caller's assertion to show.
        None => authenticate(sup, s).await,
    }
}

#[tokio::test]
async fn ldap_down_or_hung_gets_the_failure_policy_in_time_and_recovers() {
    require!("slapd", "ldapadd");
    let mut slapd = Slapd::start();
    let lab = lab();
    // No cache, so every authentication asks slapd.
    let no_cache = "cache_ttl = \"0s\"\nnegative_cache_ttl = \"0s\"\n";
    let fallback = server(
        &lab,
        &authz(
            &slapd.url(),
            BY_SEARCH,
            &format!(
                "{no_cache}on_directory_error = \"accept\"\nfallback_groups = [\"directory-down\"]"
            ),
        ),
    );
    let strict = server(&lab, &authz(&slapd.url(), BY_SEARCH, no_cache));
    let alice = supplicant(&lab, ALICE);
    for s in [&fallback, &strict] {
        let o = authenticate(&alice, s).await;
        assert_eq!(attribute(&o, 81), Some(&b"\x0120"[..]), "before the outage");
    }

    // Hung: TCP accepted, no answer. The open connections time out.
    slapd.freeze(true);
    let started = Instant::now();
    let o = authenticate(&alice, &fallback).await;
    let hung = started.elapsed();
    assert_eq!(o.code, Code::AccessAccept, "{o:?}");
    assert_eq!(attribute(&o, 81), Some(&b"\x0199"[..]), "fallback VLAN");
    assert_eq!(attribute(&o, 11), Some(&b"restricted"[..]));
    let o = authenticate(&alice, &strict).await;
    assert_eq!(o.code, Code::AccessReject);
    assert_eq!(
        outcome(&strict, "access rejected", 1)["reason"],
        "directory_unavailable"
    );
    // Bounded by the configured 2 s (plus the handshake itself).
    assert!(hung < Duration::from_secs(4), "hung look-up took {hung:?}");
    slapd.freeze(false);
    let o = until_vlan(&alice, &fallback, b"\x0120").await;
    assert_eq!(
        attribute(&o, 81),
        Some(&b"\x0120"[..]),
        "recovered after a hang"
    );

    // Stopped: connections refused.
    slapd.stop();
    let started = Instant::now();
    let o = authenticate(&alice, &fallback).await;
    assert_eq!(attribute(&o, 81), Some(&b"\x0199"[..]), "fallback VLAN");
    assert!(started.elapsed() < Duration::from_secs(4));
    let o = authenticate(&alice, &strict).await;
    assert_eq!(o.code, Code::AccessReject);
    assert_eq!(
        outcome(&strict, "access rejected", 2)["reason"],
        "directory_unavailable"
    );
    assert!(fallback.metric("certgate_ldap_failovers_total") == 0.0);
    let errors = fallback.metrics_text();
    assert!(
        errors.contains("certgate_authz_directory_errors_total{directory=\"ldap\""),
        "{errors}"
    );

    slapd.restart();
    for s in [&fallback, &strict] {
        let o = until_vlan(&alice, s, b"\x0120").await;
        assert_eq!(
            attribute(&o, 81),
            Some(&b"\x0120"[..]),
            "recovered after a restart"
        );
    }
}

#[tokio::test]
async fn a_dead_first_server_fails_over_to_the_second() {
    require!("slapd", "ldapadd");
    let slapd = Slapd::start();
    let lab = lab();
    // Port 1 on loopback refuses connections.
    let text = authz(&slapd.url(), BY_SEARCH, "").replacen(
        &format!("urls = [{:?}]", slapd.url()),
        &format!("urls = [\"ldap://127.0.0.1:1\", {:?}]", slapd.url()),
        1,
    );
    let s = server(&lab, &text);
    let o = authenticate(&supplicant(&lab, ALICE), &s).await;
    assert_eq!(attribute(&o, 81), Some(&b"\x0120"[..]));
    assert!(s.metric("certgate_ldap_failovers_total") >= 1.0);
    assert!(
        s.metric("certgate_ldap_errors_total{kind=\"connect\",server=\"ldap://127.0.0.1:1\"}")
            >= 1.0
    );
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_server_against_the_configured_ca() {
    require!("slapd", "ldapadd");
    let lab = lab();
    let ldap_pki = certgate::pki::Pki::open(&lab.dir.path().join("ldap-pki"));
    ldap_pki
        .init("127.0.0.1", KeyType::EcdsaP256)
        .expect("ldap pki");
    let slapd = Slapd::start_with_tls(Some((
        ldap_pki.path("server.pem"),
        ldap_pki.path("server.key"),
    )));
    let tls_port = slapd.tls_port.expect("ldaps port");
    let ldap_ca = ldap_pki.path("ca.pem").display().to_string();
    let wrong_ca = lab.pki.path("ca.pem").display().to_string();
    let plain = format!("urls = [{:?}]", slapd.url());
    for (urls, ca, accepted) in [
        (
            format!("urls = [\"ldaps://127.0.0.1:{tls_port}\"]"),
            &ldap_ca,
            true,
        ),
        (format!("{plain}\nstarttls = true"), &ldap_ca, true),
        (
            format!("urls = [\"ldaps://127.0.0.1:{tls_port}\"]"),
            &wrong_ca,
            false,
        ),
        (format!("{plain}\nstarttls = true"), &wrong_ca, false),
    ] {
        let text =
            authz(&slapd.url(), BY_SEARCH, "").replacen(&plain, &format!("{urls}\nca = {ca:?}"), 1);
        let s = server(&lab, &text);
        let o = authenticate(&supplicant(&lab, ALICE), &s).await;
        if accepted {
            assert_eq!(attribute(&o, 81), Some(&b"\x0120"[..]), "{urls}");
        } else {
            assert_eq!(o.code, Code::AccessReject, "{urls} with the wrong CA");
            let line = outcome(&s, "access rejected", 1);
            assert_eq!(line["reason"], "directory_unavailable", "{line}");
            assert!(
                line["detail"].as_str().unwrap_or("").contains("connect"),
                "{line}"
            );
        }
    }
}

#[tokio::test]
async fn ambiguous_entries_and_a_refused_bind_are_directory_errors() {
    require!("slapd", "ldapadd");
    let slapd = Slapd::start();
    let lab = lab();
    let s = server(&lab, &authz(&slapd.url(), BY_SEARCH, ""));
    let o = authenticate(&supplicant(&lab, TWIN), &s).await;
    assert_eq!(o.code, Code::AccessReject);
    let line = outcome(&s, "access rejected", 1);
    assert_eq!(line["reason"], "directory_unavailable", "{line}");
    assert!(
        line["detail"]
            .as_str()
            .unwrap_or("")
            .contains("ambiguous: 2 entries"),
        "{line}"
    );

    let wrong = authz(&slapd.url(), BY_SEARCH, "").replacen(
        &format!("bind_password = {BIND_PASSWORD:?}"),
        "bind_password = \"not-the-password\"",
        1,
    );
    let s = server(&lab, &wrong);
    let o = authenticate(&supplicant(&lab, ALICE), &s).await;
    assert_eq!(o.code, Code::AccessReject);
    let line = outcome(&s, "access rejected", 1);
    assert_eq!(line["reason"], "directory_unavailable", "{line}");
    assert!(
        line["detail"].as_str().unwrap_or("").contains("bind as"),
        "{line}"
    );
    let bind_errors = format!(
        "certgate_ldap_errors_total{{kind=\"bind\",server=\"{}\"}}",
        slapd.url()
    );
    assert_eq!(s.metric(&bind_errors), 1.0);
}

/// Load through a latency relay to slapd while it turns slow, too slow,
/// hung and stopped: every conversation is answered within the look-up
/// timeout, by the failure policy when the directory cannot answer in
/// time; service recovers without a restart; no connection or request is
/// left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_slow_hung_and_stopped_under_load_answer_by_policy_and_recover() {
    require!("slapd", "ldapadd");
    let mut slapd = Slapd::start();
    let relay = LatencyRelay::start(
        format!("127.0.0.1:{}", slapd.port)
            .parse()
            .expect("slapd address"),
    );
    let lab = lab();
    let s = server(
        &lab,
        &authz(
            &relay.url(),
            BY_SEARCH,
            "cache_ttl = \"0s\"\nnegative_cache_ttl = \"0s\"\n\
             on_directory_error = \"accept\"\nfallback_groups = [\"directory-down\"]",
        ),
    );
    let mut sup = supplicant(&lab, ALICE);
    // A lost answer must show as a failure, not be hidden by a retry.
    sup.attempts = 1;
    let load = Load::start(&sup, s.auth, 6);
    let vlan = |o: &Outcome| attribute(o, 81).map(<[u8]>::to_vec);
    let (normal, fallback) = (b"\x0120".to_vec(), b"\x0199".to_vec());
    let mut phases: Vec<(&str, Instant, Instant, Option<&Vec<u8>>)> = Vec::new();
    let hold = Duration::from_secs(3);

    let t = Instant::now();
    assert!(load.wait_more(30, Duration::from_secs(30)).await, "load");
    let fds_before = s.fd_count();
    phases.push(("healthy", t, Instant::now(), Some(&normal)));

    // Slow but within the timeouts: still the directory's answer.
    relay.set_latency(Duration::from_millis(100));
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    phases.push(("slow (100 ms each way)", t, Instant::now(), Some(&normal)));

    // Slower than operation_timeout: the failure policy.
    relay.set_latency(Duration::from_millis(1500));
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    phases.push((
        "too slow (1.5 s each way)",
        t,
        Instant::now(),
        Some(&fallback),
    ));
    relay.set_latency(Duration::ZERO);
    let t = Instant::now();
    until_answer(&load, t, &normal, vlan).await;
    phases.push(("recovering", t, Instant::now(), None));

    slapd.freeze(true);
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    phases.push(("hung", t, Instant::now(), Some(&fallback)));
    slapd.freeze(false);
    let t = Instant::now();
    until_answer(&load, t, &normal, vlan).await;
    phases.push(("recovering", t, Instant::now(), None));

    slapd.stop();
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    phases.push(("stopped", t, Instant::now(), Some(&fallback)));
    slapd.restart();
    let t = Instant::now();
    until_answer(&load, t, &normal, vlan).await;
    phases.push(("recovering", t, Instant::now(), None));

    let samples = load.finish().await;
    // The look-up timeout (2 s) plus the rest of a conversation under load.
    let bound = Duration::from_millis(3500);
    for (name, from, to, want) in &phases {
        let inside = within(&samples, *from, *to);
        let slowest = inside.iter().map(|x| x.took).max().unwrap_or_default();
        eprintln!(
            "{name}: {} conversations inside the phase, slowest {slowest:?}",
            inside.len()
        );
        if let Some(want) = want {
            assert!(!inside.is_empty(), "{name}: no conversation inside");
            for x in &inside {
                let o = x.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(vlan(o).as_ref(), Some(*want), "{name}: {o:?}");
            }
        }
    }
    for x in &samples {
        let o = x
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("no answer: {e}"));
        assert_eq!(o.code, Code::AccessAccept, "{o:?}");
        assert!(x.took < bound, "a conversation took {:?}", x.took);
    }
    tokio::task::block_in_place(|| s.wait_metric("certgate_in_flight_requests", 0.0));
    let fds_after = s.fd_count();
    eprintln!(
        "{} conversations; fds {fds_before} → {fds_after}",
        samples.len()
    );
    // The pool holds at most two connections; everything else was closed.
    assert!(
        fds_after <= fds_before + 2,
        "fds {fds_before} before the faults, {fds_after} after"
    );
}

/// Waits (bounded) until a conversation that began after `since` got `want`.
async fn until_answer(
    load: &Load,
    since: Instant,
    want: &[u8],
    vlan: impl Fn(&Outcome) -> Option<Vec<u8>>,
) {
    let recovered = common::poll::until_async(Duration::from_secs(20), || async {
        load.any_since(since, |o| vlan(o).as_deref() == Some(want))
            .then_some(())
    })
    .await;
    assert!(recovered.is_some(), "no recovery within 20 s");
}

/// Active Directory's attribute for explicit certificate mappings
/// (KB5014754), added to the test's slapd with an auxiliary class.
const ALT_SECURITY_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.4.867 NAME 'altSecurityIdentities' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\
objectclass ( 1.3.6.1.4.1.99999.42.1 NAME 'certgateMapped' SUP top AUXILIARY MAY altSecurityIdentities )";

/// Strong certificate mapping: alice's entry is bound (altSecurityIdentities,
/// issuer and byte-reversed serial as AD writes them) to one certificate.
/// Another certificate carrying alice's name but bound to no one is
/// refused with `authz.ldap.certificate_binding`; with a user filter on
/// `{issuer_serial_ad}` the certificate alone finds her, and the unbound
/// one finds no one.
#[tokio::test]
async fn strong_mapping_binds_the_certificate_to_the_entry() {
    require!("slapd", "ldapadd");
    let lab = Lab::new(KeyType::EcdsaP256);
    // The bound certificate, kept aside; then a second one for the same
    // name (the PKI writes each issue to the same files).
    let (cert, key) = lab.client_files(&lab.pki, ALICE);
    let bound_dir = lab.dir.path().join("bound");
    std::fs::create_dir_all(bound_dir.join("clients")).expect("dir");
    std::fs::copy(&cert, bound_dir.join(format!("clients/{ALICE}.pem"))).expect("copy");
    std::fs::copy(&key, bound_dir.join(format!("clients/{ALICE}.key"))).expect("copy");
    lab.pki
        .issue_client(ALICE, &ClientOptions::default())
        .expect("second certificate");
    let der = rustls::pki_types::CertificateDer::from_pem_file(
        bound_dir.join(format!("clients/{ALICE}.pem")),
    )
    .expect("der");
    let mapping = certgate::proto::tls::identity::CertIdentity::from_der(&der)
        .expect("identity")
        .issuer_serial_ad();
    let slapd = Slapd::start_with(
        None,
        ALT_SECURITY_SCHEMA,
        &format!(
            "dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: modify\nadd: objectClass\nobjectClass: certgateMapped\n-\nadd: altSecurityIdentities\naltSecurityIdentities: {mapping}\n"
        ),
    );
    let bound = || {
        let (c, k) = (
            bound_dir.join(format!("clients/{ALICE}.pem")),
            bound_dir.join(format!("clients/{ALICE}.key")),
        );
        let config = certgate::supplicant::client_config(
            &lab.pki.path("ca.pem"),
            &c,
            &k,
            Versions::Tls13,
            false,
        )
        .expect("client config");
        let mut s = Supplicant::new(config, ALICE);
        s.timeout = Duration::from_secs(6);
        s
    };

    let s = server(
        &lab,
        &authz(&slapd.url(), BY_SEARCH, "").replace(
            "attributes = [\"departmentNumber\"]",
            "attributes = [\"departmentNumber\"]\ncertificate_binding = \"altSecurityIdentities\"",
        ),
    );
    let o = authenticate(&bound(), &s).await;
    assert_eq!(o.code, Code::AccessAccept, "the bound certificate: {o:?}");
    let o = authenticate(&supplicant(&lab, ALICE), &s).await;
    assert_eq!(o.code, Code::AccessReject, "alice's name, bound to no one");
    let refused = s
        .wait_log(
            |v| v["message"] == "access rejected",
            Duration::from_secs(10),
        )
        .expect("logged");
    assert_eq!(refused["reason"], "certificate_not_bound");
    // Cached per certificate: the bound one still gets in after the
    // unbound one was refused, and the other way round.
    assert_eq!(authenticate(&bound(), &s).await.code, Code::AccessAccept);
    assert_eq!(
        authenticate(&supplicant(&lab, ALICE), &s).await.code,
        Code::AccessReject
    );
    drop(s);

    // The certificate alone finds the entry.
    let s = server(
        &lab,
        &authz(&slapd.url(), BY_SEARCH, "").replace(
            "user_filter = \"(&(objectClass=inetOrgPerson)(|(mail={identity})(uid={identity})))\"",
            "user_filter = \"(altSecurityIdentities={issuer_serial_ad})\"",
        ),
    );
    assert_eq!(authenticate(&bound(), &s).await.code, Code::AccessAccept);
    let o = authenticate(&supplicant(&lab, ALICE), &s).await;
    assert_eq!(o.code, Code::AccessReject);
    let refused = s
        .wait_log(
            |v| v["message"] == "access rejected",
            Duration::from_secs(10),
        )
        .expect("logged");
    assert_eq!(refused["reason"], "unknown_identity");
}
