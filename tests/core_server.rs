//! The core server against real peers: Debian's radclient, promtool, raw UDP.
//! Each test starts its own certgate on ephemeral 127.0.0.1 ports.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use certgate::proto::wire::crypto::{
    HeaderAuthenticator, Secret, message_authenticator, verify_response_authenticator,
};
use certgate::proto::wire::{Code, HEADER_LEN, Packet, PacketBuilder};
use common::*;

const STATUS_INPUT: &str = "Message-Authenticator = 0x00\n";
const SHORT: Duration = Duration::from_secs(2);

#[test]
fn status_server_is_answered_on_both_ports() {
    require!("radclient");
    let s = TestServer::start(&loopback_client(""));
    let (ok, out) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(ok && out.contains("Received Access-Accept"), "{out}");
    let (ok, out) = radclient(s.acct, "status", SECRET, STATUS_INPUT);
    assert!(ok && out.contains("Received Accounting-Response"), "{out}");
    assert_eq!(
        s.metric("certgate_responses_total{code=\"Access-Accept\",listener=\"auth\"}"),
        1.0
    );
    assert_eq!(
        s.metric("certgate_requests_total{client=\"lo\",code=\"Status-Server\",listener=\"acct\"}"),
        1.0
    );
}

#[test]
fn wrong_secret_and_missing_message_authenticator_get_no_answer() {
    require!("radclient");
    let s = TestServer::start(&loopback_client(""));
    let (ok, out) = radclient(s.auth, "status", "not-the-secret", STATUS_INPUT);
    assert!(!ok, "wrong secret was answered: {out}");
    // radclient 3.2.1 adds no Message-Authenticator unless asked to.
    let (ok, out) = radclient(
        s.auth,
        "auth",
        SECRET,
        "User-Name = \"bob\", User-Password = \"x\"\n",
    );
    assert!(
        !ok,
        "request without Message-Authenticator was answered: {out}"
    );
    let bare = PacketBuilder::new(Code::StatusServer, 4, false)
        .finish_access_request(&[4; 16], &Secret::new(SECRET.as_bytes()));
    assert!(
        exchange(&udp(), s.auth, &bare, Duration::from_millis(500)).is_none(),
        "Status-Server without Message-Authenticator was answered"
    );
    let m = s.metrics_text();
    assert_eq!(
        metric_value(
            &m,
            "certgate_dropped_total{listener=\"auth\",reason=\"bad_message_authenticator\"}"
        ),
        1.0,
        "radclient -r 1 sends once"
    );
    assert_eq!(
        metric_value(
            &m,
            "certgate_dropped_total{listener=\"auth\",reason=\"missing_message_authenticator\"}"
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &m,
            "certgate_responses_total{code=\"Access-Accept\",listener=\"auth\"}"
        ),
        0.0
    );
    assert!(
        s.logs()
            .iter()
            .any(|l| l["message"] == "dropped" && l["reason"] == "bad_message_authenticator"),
        "no log line for the drop"
    );
}

#[test]
fn unknown_client_gets_no_answer() {
    require!("radclient");
    // The only client is ::1; the test sends from 127.0.0.1.
    let s = TestServer::start(&format!(
        "[[clients]]\nname = \"v6\"\naddress = \"::1\"\nsecret = \"{SECRET}\"\n"
    ));
    let (ok, out) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(!ok, "unknown client was answered: {out}");
    assert_eq!(
        s.metric("certgate_dropped_total{listener=\"auth\",reason=\"unknown_client\"}"),
        1.0
    );
}

#[test]
fn access_request_is_rejected_with_message_authenticator_first() {
    require!("radclient");
    let s = TestServer::start(&loopback_client(""));
    let secret = Secret::new(SECRET.as_bytes());
    let ra = [0x5A; 16];
    let mut b = PacketBuilder::new(Code::AccessRequest, 77, true);
    b.push(1, b"alice").expect("fits");
    let request = b.finish_access_request(&ra, &secret);
    let reply = exchange(&udp(), s.auth, &request, SHORT).expect("an Access-Reject");
    let p = Packet::decode(&reply).expect("well-formed reply");
    assert_eq!(p.code(), Code::AccessReject);
    assert_eq!(p.identifier(), 77);
    assert_eq!(
        p.message_authenticator_offset(),
        Some(HEADER_LEN),
        "Message-Authenticator must be first"
    );
    assert!(verify_response_authenticator(&p, &ra, &secret));
    let ma = message_authenticator(
        p.bytes(),
        HEADER_LEN,
        HeaderAuthenticator::Request(&ra),
        &secret,
    );
    assert_eq!(&reply[HEADER_LEN + 2..HEADER_LEN + 18], &ma);
    let decision = s
        .wait_log(|l| l["message"] == "decision" && l["id"] == 77, SHORT)
        .expect("a decision log line");
    assert_eq!(decision["client"], "lo");
    assert_eq!(decision["reply"], "Access-Reject");
    // radclient agrees the reply is authentic.
    let (ok, out) = radclient(
        s.auth,
        "auth",
        SECRET,
        "User-Name = \"bob\", User-Password = \"x\", Message-Authenticator = 0x00\n",
    );
    assert!(ok && out.contains("Received Access-Reject"), "{out}");
}

/// RFC 2865 §5.33: every Proxy-State of a request comes back in its reply,
/// in order and unchanged; a proxy in front of certgate matches answers by
/// them. Tried as a new user would, with radclient.
#[test]
fn proxy_state_is_echoed_in_every_reply() {
    require!("radclient");
    let s = TestServer::start(&loopback_client(""));
    let with_proxy_state = |attrs: &str| {
        format!(
            "{attrs}Proxy-State = 0x616263, Proxy-State = 0x78797a, Message-Authenticator = 0x00\n"
        )
    };
    for (port, command, attrs, want) in [
        (
            s.auth,
            "auth",
            "User-Name = \"bob\", ",
            "Received Access-Reject",
        ),
        (s.auth, "status", "", "Received Access-Accept"),
        (s.acct, "status", "", "Received Accounting-Response"),
    ] {
        let (ok, out) = radclient(port, command, SECRET, &with_proxy_state(attrs));
        assert!(ok && out.contains(want), "{command}: {out}");
        let reply = out.split(want).nth(1).unwrap_or_default();
        let first = reply.find("Proxy-State = 0x616263");
        let second = reply.find("Proxy-State = 0x78797a");
        assert!(
            first.is_some() && second.is_some() && first < second,
            "{command}: both Proxy-States, in order:\n{out}"
        );
    }
}

#[test]
fn duplicate_is_answered_byte_identically_from_cache() {
    let s = TestServer::start(&loopback_client(""));
    let secret = Secret::new(SECRET.as_bytes());
    let mut b = PacketBuilder::new(Code::AccessRequest, 9, true);
    b.push(1, b"dup").expect("fits");
    let request = b.finish_access_request(&[0x33; 16], &secret);
    let sock = udp();
    let first = exchange(&sock, s.auth, &request, SHORT).expect("first reply");
    let second = exchange(&sock, s.auth, &request, SHORT).expect("second reply");
    assert_eq!(first, second);
    s.wait_metric("certgate_duplicates_total{listener=\"auth\"}", 1.0);
    s.wait_metric(
        "certgate_responses_total{code=\"Access-Reject\",listener=\"auth\"}",
        2.0,
    );
    let decisions = s
        .logs()
        .iter()
        .filter(|l| l["message"] == "decision" && l["id"] == 9)
        .count();
    assert_eq!(decisions, 1, "the duplicate must not be processed again");
}

#[test]
fn malformed_datagrams_are_dropped_and_service_continues() {
    let s = TestServer::start(&loopback_client(""));
    let sock = udp();
    let secret = Secret::new(SECRET.as_bytes());
    let good =
        PacketBuilder::new(Code::StatusServer, 1, true).finish_access_request(&[1; 16], &secret);
    let mut bad_len = good.clone();
    bad_len[3] = 200;
    let mut attr_overrun = good.clone();
    attr_overrun[21] = 40;
    let mut unknown_code = good.clone();
    unknown_code[0] = 99;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![12],
        vec![0xFF; 19],
        bad_len,
        attr_overrun,
        unknown_code,
    ];
    for g in &garbage {
        sock.send_to(g, s.auth).expect("send");
    }
    // Answered after the garbage: the server is still serving.
    let reply = exchange(&sock, s.auth, &good, SHORT).expect("status answered after garbage");
    assert_eq!(reply[0], Code::AccessAccept as u8);
    assert!(
        receive(&sock, Duration::from_millis(200)).is_none(),
        "garbage got an answer"
    );
    let m = s.metrics_text();
    // The empty datagram is malformed too; code 99 is well-formed but unsupported.
    assert_eq!(
        metric_value(
            &m,
            "certgate_dropped_total{listener=\"auth\",reason=\"malformed\"}"
        ),
        5.0
    );
    assert_eq!(
        metric_value(
            &m,
            "certgate_dropped_total{listener=\"auth\",reason=\"unsupported_code\"}"
        ),
        1.0
    );
}

#[test]
fn accounting_is_dropped_until_storage_exists() {
    require!("radclient");
    let s = TestServer::start(&loopback_client(""));
    let (ok, out) = radclient(
        s.acct,
        "acct",
        SECRET,
        "Acct-Status-Type = Start, Acct-Session-Id = \"s1\", User-Name = \"bob\"\n",
    );
    assert!(!ok, "accounting was acknowledged without storage: {out}");
    assert_eq!(
        s.metric("certgate_dropped_total{listener=\"acct\",reason=\"accounting_not_enabled\"}"),
        1.0
    );
    let (ok, _) = radclient(s.acct, "acct", "wrong", "Acct-Status-Type = Start\n");
    assert!(!ok);
    assert_eq!(
        s.metric("certgate_dropped_total{listener=\"acct\",reason=\"bad_authenticator\"}"),
        1.0
    );
}

#[test]
fn sighup_reloads_clients_and_keeps_running_config_when_broken() {
    require!("radclient");
    let s = TestServer::start(&format!(
        "[[clients]]\nname = \"v6\"\naddress = \"::1\"\nsecret = \"{SECRET}\"\n"
    ));
    let (ok, _) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(!ok, "not yet a client");
    // Same listen addresses (port 0 stays port 0), one more client.
    let new = config_text(&format!(
        "[[clients]]\nname = \"v6\"\naddress = \"::1\"\nsecret = \"{SECRET}\"\n{}",
        loopback_client("")
    ));
    std::fs::write(s.config_path(), new).expect("rewrite config");
    s.signal("HUP");
    s.wait_log(
        |l| l["message"] == "configuration reloaded",
        Duration::from_secs(10),
    )
    .expect("reload logged");
    let (ok, out) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(ok, "new client not served after SIGHUP: {out}");

    std::fs::write(
        s.config_path(),
        "[[clients]]\nname = \"x\"\naddress = \"nonsense\"\n",
    )
    .expect("break config");
    s.signal("HUP");
    let failed = s
        .wait_log(
            |l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("reload failed"))
            },
            Duration::from_secs(10),
        )
        .expect("failed reload logged");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("clients[0].address")),
        "{failed}"
    );
    let (ok, out) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(
        ok,
        "running configuration lost after a broken reload: {out}"
    );
    let m = s.metrics_text();
    assert_eq!(
        metric_value(&m, "certgate_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        metric_value(&m, "certgate_config_reloads_total{result=\"failed\"}"),
        1.0
    );
}

#[test]
fn metrics_pass_promtool() {
    require!("radclient", "promtool");
    let s = TestServer::start(&loopback_client(""));
    radclient(s.auth, "status", SECRET, STATUS_INPUT);
    radclient(s.auth, "status", "wrong", STATUS_INPUT);
    let (status, body) = http_get(s.metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
    for family in [
        "certgate_requests_total",
        "certgate_responses_total",
        "certgate_dropped_total",
        "certgate_duplicates_total",
        "certgate_request_duration_seconds_bucket",
        "certgate_in_flight_requests",
        "certgate_build_info",
    ] {
        assert!(body.contains(family), "{family} missing");
    }
    promtool_check(&body);
    let (status, _) = http_get(s.metrics, "/nothing");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn sigterm_stops_gracefully_with_exit_zero() {
    require!("radclient");
    let mut s = TestServer::start(&loopback_client(""));
    let (ok, _) = radclient(s.auth, "status", SECRET, STATUS_INPUT);
    assert!(ok);
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(15)).expect("exited");
    assert_eq!(status.code(), Some(0));
    assert!(s.logs().iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stopped"))
    }));
}

/// Runs `certgate check-config` on `path` with extra environment variables.
fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check-config", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("run certgate check-config")
}

#[test]
fn check_config_reports_problems_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(&loopback_client(""))).expect("write");
    let out = check_config(&good, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        config_text("[[clients]]\nname = \"a\"\naddress = \"foo\"\nsecret = \"s\"\n[[clients]]\nname = \"b\"\naddress = \"10.0.0.0/8\"\n"),
    )
    .expect("write");
    let out = check_config(&bad, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("clients[0].address: \"foo\" is not an IP address or CIDR"),
        "{err}"
    );
    assert!(err.contains("clients[1].secret: missing"), "{err}");

    // The shipped example is valid.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/certgate.toml");
    let out = check_config(&shipped, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config_text(&loopback_client(""))).expect("write");
    let out = check_config(&path, &[("CERTGATE_METRICS__LISTEN", "not-an-address")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("metrics.listen: \"not-an-address\""), "{err}");
}

/// docker/certgate.toml as the image runs it (listeners from the image's
/// environment, here on loopback): valid, /metrics answers Prometheus's
/// Host name, and /sessions is not served at all.
#[test]
fn the_docker_configuration_keeps_sessions_off_and_serves_prometheus() {
    use certgate::pki::{KeyType, Pki};
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("docker/certgate.toml"),
        dir.path().join("certgate.toml"),
    )
    .expect("copy");
    Pki::open(&dir.path().join("pki"))
        .init("radius.example.org", KeyType::EcdsaP256)
        .expect("pki");
    // What the compose file's pki service adds: the nodes' ticket secret.
    std::fs::write(
        dir.path().join("pki/ticket.secret"),
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )
    .expect("ticket secret");
    let dictionary = dictionary_path().display().to_string();
    let journal = dir.path().join("acct").display().to_string();
    let config = dir.path().join("certgate.toml").display().to_string();
    let s = TestServer::spawn(
        dir,
        &["serve".into(), "--config".into(), config],
        &[
            ("CERTGATE_SERVER__DICTIONARY", &dictionary),
            ("CERTGATE_SERVER__AUTH_LISTEN", "127.0.0.1:0"),
            ("CERTGATE_SERVER__ACCT_LISTEN", "127.0.0.1:0"),
            ("CERTGATE_METRICS__LISTEN", "127.0.0.1:0"),
            ("CERTGATE_ACCOUNTING__JOURNAL_DIR", &journal),
            ("LDAP_BIND_PASSWORD", "ldap-secret"),
            ("PG_PASSWORD", "pg-secret"),
            ("CERTGATE_ACCOUNTING__POSTGRES__NODE", "certgate-1"),
        ],
    );
    let port = s.metrics.port();
    let (status, _) = http_get_with(
        s.metrics,
        "/metrics",
        &format!("Host: certgate-1:{port}\r\n"),
    );
    assert!(status.contains("200"), "{status}");
    let (status, _) = http_get_with(s.metrics, "/metrics", "Host: evil.example\r\n");
    assert!(status.contains("421"), "{status}");
    let (status, _) = http_get_with(
        s.metrics,
        "/sessions",
        &format!("Host: certgate-1:{port}\r\nAuthorization: Bearer anything-at-all-here\r\n"),
    );
    assert!(status.contains("404"), "/sessions is off: {status}");
    assert!(
        s.logs()
            .iter()
            .any(|l| l["message"] == "configuration warning"
                && l["warning"]
                    .as_str()
                    .is_some_and(|w| w.contains("clear text"))),
        "the cleartext bind is warned about"
    );
}

/// The compose file's Grafana dashboard parses, and every metric its
/// panels query is one certgate defines (histograms by their series).
#[test]
fn the_grafana_dashboard_queries_defined_metrics() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("docker/grafana/dashboards/certgate.json"))
        .expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let defined: String = std::fs::read_dir(repo.join("src/metrics"))
        .expect("metrics sources")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 8,
        "authentications, latency, sessions, journal, shipping, certificates…"
    );
    let mut checked = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("certgate_") {
                    continue;
                }
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    defined.contains(&format!("\"{base}\"")),
                    "panel {:?} queries {word}, which certgate does not define",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
}
