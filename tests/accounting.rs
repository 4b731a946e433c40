//! Accounting end to end: radclient and raw UDP senders against the real
//! binary, the JSON Lines journal on disk, live sessions, metrics, and a
//! kill -9 in the middle of concurrent load.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certgate::radius::crypto::Secret;
use certgate::radius::{Code, Packet, PacketBuilder};
use common::{TestServer, loopback_client, radclient};
use serde_json::Value;

fn server(journal: &Path) -> TestServer {
    TestServer::start(&format!(
        "{}[accounting]\njournal_dir = {:?}\nrotate_size = 20000\n",
        loopback_client(""),
        journal.display().to_string()
    ))
}

fn records(journal: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(journal)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read journal");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for line in text.lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{f:?}: {e}: {line}")));
        }
    }
    out
}

fn acct(server: &TestServer, attrs: &str) -> bool {
    radclient(server.acct, "acct", common::SECRET, attrs).0
}

#[test]
fn start_interim_stop_with_gigawords_journal_sessions_and_metrics() {
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    let common = "Acct-Session-Id = \"s-1\"\nUser-Name = \"alice@example.org\"\nNAS-IP-Address = 192.0.2.1\nCalling-Station-Id = \"02-00-00-00-00-01\"\nClass = \"group=staff\"\n";
    assert!(
        acct(&s, &format!("Acct-Status-Type = Start\n{common}")),
        "Start acknowledged"
    );
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 1.0);
    s.wait_metric(
        "certgate_acct_sessions_active_by_group{group=\"staff\"}",
        1.0,
    );
    let (_, page) = common::http_get(s.metrics, "/sessions?user=alice%40example.org");
    let page: Value = serde_json::from_str(&page).expect("sessions json");
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["sessions"][0]["session_id"], "s-1");
    assert!(acct(
        &s,
        &format!(
            "Acct-Status-Type = Interim-Update\n{common}Acct-Input-Octets = 100\nAcct-Input-Gigawords = 1\nAcct-Output-Octets = 7\nAcct-Session-Time = 60\n"
        )
    ));
    assert!(acct(
        &s,
        &format!(
            "Acct-Status-Type = Stop\n{common}Acct-Input-Octets = 300\nAcct-Input-Gigawords = 1\nAcct-Output-Octets = 9\nAcct-Session-Time = 120\nAcct-Terminate-Cause = User-Request\n"
        )
    ));
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 0.0);
    let r = records(journal.path());
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0]["status"], "Start");
    assert_eq!(r[1]["input_octets"], (1u64 << 32) + 100);
    assert_eq!(r[2]["status"], "Stop");
    assert_eq!(r[2]["input_octets"], (1u64 << 32) + 300);
    assert_eq!(r[2]["terminate_cause"], "User-Request");
    assert_eq!(r[2]["client"], "lo");
    assert_eq!(r[2]["class"], "group=staff");
    assert_eq!(r[2]["attributes"]["NAS-IP-Address"], "192.0.2.1");
    let m = s.metrics_text();
    assert_eq!(
        common::metric_value(&m, "certgate_acct_input_octets_total{client=\"lo\"}"),
        ((1u64 << 32) + 300) as f64
    );
    assert_eq!(
        common::metric_value(&m, "certgate_acct_output_octets_total{client=\"lo\"}"),
        9.0
    );
    assert_eq!(
        common::metric_value(&m, "certgate_acct_session_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        common::metric_value(&m, "certgate_acct_session_duration_seconds_sum"),
        120.0
    );
    assert_eq!(
        common::metric_value(
            &m,
            "certgate_acct_terminate_causes_total{cause=\"User-Request\"}"
        ),
        1.0
    );
    assert!(common::metric_value(&m, "certgate_journal_batch_records_count") >= 1.0);
}

#[test]
fn accounting_on_clears_the_nas_sessions() {
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    for id in ["a", "b", "c"] {
        assert!(acct(
            &s,
            &format!("Acct-Status-Type = Start\nAcct-Session-Id = \"{id}\"\n")
        ));
    }
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 3.0);
    assert!(acct(
        &s,
        "Acct-Status-Type = Accounting-On\nNAS-IP-Address = 127.0.0.1\n"
    ));
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 0.0);
}

#[test]
fn unwritable_journal_means_no_accounting_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the directory should be: no journal can be created, even
    // for root (who ignores permission bits).
    let journal = dir.path().join("not-a-dir");
    std::fs::write(&journal, "x").expect("file");
    let s = server(&journal);
    let (answered, out) = radclient(
        s.acct,
        "acct",
        common::SECRET,
        "Acct-Status-Type = Start\nAcct-Session-Id = \"x\"\n",
    );
    assert!(!answered, "acknowledged without storage: {out}");
    assert!(
        s.metric("certgate_dropped_total{listener=\"acct\",reason=\"accounting_not_stored\"}")
            >= 1.0
    );
    assert!(s.metric("certgate_journal_errors_total{kind=\"no_directory\"}") >= 1.0);
    // And it recovers by itself once the directory can exist.
    std::fs::remove_file(&journal).expect("remove");
    assert!(acct(
        &s,
        "Acct-Status-Type = Start\nAcct-Session-Id = \"y\"\n"
    ));
    assert_eq!(records(&journal).len(), 1);
}

fn accounting_request(secret: &Secret, id: u8, session: &str, delay: u32) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccountingRequest, id, false);
    b.push_u32(40, 3).expect("status");
    b.push(44, session.as_bytes()).expect("session");
    b.push(1, b"bob").expect("user");
    b.push_u32(42, 1000).expect("octets");
    b.push_u32(41, delay).expect("delay");
    b.finish_accounting_request(secret)
}

#[test]
fn exact_duplicates_are_stored_once_and_delay_resends_are_flagged() {
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    let secret = Secret::new(common::SECRET.as_bytes());
    let sock = common::udp();
    let first = accounting_request(&secret, 1, "d-1", 0);
    for _ in 0..2 {
        let reply = common::exchange(&sock, s.acct, &first, Duration::from_secs(5)).expect("reply");
        assert_eq!(reply[0], Code::AccountingResponse as u8);
    }
    let resend = accounting_request(&secret, 2, "d-1", 5);
    common::exchange(&sock, s.acct, &resend, Duration::from_secs(5)).expect("reply");
    let r = records(journal.path());
    assert_eq!(r.len(), 2, "the exact duplicate is not stored twice: {r:?}");
    assert_eq!(r[0]["probable_duplicate"], false);
    assert_eq!(r[1]["probable_duplicate"], true);
    assert_eq!(r[1]["delay_time"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    let journal = tempfile::tempdir().expect("tempdir");
    let mut s = server(journal.path());
    let secret = Secret::new(common::SECRET.as_bytes());
    let acked = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..64 {
        let (acked, stop, secret, target) = (acked.clone(), stop.clone(), secret.clone(), s.acct);
        senders.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let mut buf = vec![0u8; 4096];
            for n in 0u32.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let session = format!("k-{sender}-{n}");
                let req = accounting_request(&secret, n as u8, &session, 0);
                if sock.send_to(&req, target).await.is_err() {
                    break;
                }
                let got =
                    tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf))
                        .await;
                let Ok(Ok((len, _))) = got else { break };
                let Ok(reply) = Packet::decode(&buf[..len]) else {
                    break;
                };
                let ra: [u8; 16] = req[4..20].try_into().expect("16");
                if reply.code() == Code::AccountingResponse
                    && certgate::radius::crypto::verify_response_authenticator(&reply, &ra, &secret)
                {
                    acked.lock().expect("acked").insert(session);
                }
            }
        }));
    }
    // Let load build up, then kill -9 while requests are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while acked.lock().expect("acked").len() < 2000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal("KILL");
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("the server died");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in senders {
        let _ = t.await;
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= 500,
        "too little load before the kill: {}",
        acked.len()
    );

    // Restart on the same journal: the torn tail (if any) is repaired, and
    // every acknowledged record is there.
    let s2 = server(journal.path());
    s2.wait_log(
        |v| v["message"] == "live sessions rebuilt from the journal",
        Duration::from_secs(10),
    )
    .expect("replay");
    let stored: HashSet<String> = records(journal.path())
        .iter()
        .filter_map(|r| r["session_id"].as_str().map(str::to_string))
        .collect();
    let files = std::fs::read_dir(journal.path()).expect("dir").count();
    assert!(
        files >= 2,
        "rotate_size = 20000 rotated the journal ({files} files)"
    );
    let missing: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // Replay rebuilt the live table from the journal.
    assert!(s2.metric("certgate_acct_sessions_active{client=\"lo\"}") >= acked.len() as f64);
}
