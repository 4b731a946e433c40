//! Accounting end to end: radclient and raw UDP senders against the real
//! binary, the JSON Lines journal on disk, live sessions, metrics, and a
//! kill -9 in the middle of concurrent load.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certgate::proto::wire::crypto::Secret;
use certgate::proto::wire::{Code, Packet, PacketBuilder};
use common::{TestServer, loopback_client, radclient};
use serde_json::Value;

/// The bearer token `/sessions` needs in these tests.
const TOKEN: &str = "test-token-0123456789";

fn server(journal: &Path) -> TestServer {
    TestServer::start_with_env(
        &format!(
            "{}[accounting]\njournal_dir = {:?}\nrotate_size = 20000\n",
            loopback_client(""),
            journal.display().to_string()
        ),
        &[
            ("CERTGATE_METRICS__SESSIONS", "true"),
            ("CERTGATE_METRICS__TOKEN_ENV", "SESSIONS_TOKEN"),
            ("SESSIONS_TOKEN", TOKEN),
        ],
    )
}

/// `GET /sessions` with the token; (status line, parsed body).
fn sessions(server: &TestServer, query: &str) -> (String, Value) {
    let (status, body) = common::http_get_with(
        server.metrics,
        &format!("/sessions{query}"),
        &format!(
            "Host: {}\r\nAuthorization: Bearer {TOKEN}\r\n",
            server.metrics
        ),
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
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
    require!("radclient");
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    let common = "Acct-Session-Id = \"s-1\"\nUser-Name = \"alice@example.org\"\nNAS-IP-Address = 192.0.2.1\nCalling-Station-Id = \"02-00-00-00-00-01\"\nClass = \"group=staff\"\n";
    assert!(
        acct(&s, &format!("Acct-Status-Type = Start\n{common}")),
        "Start acknowledged"
    );
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 1.0);
    // This server never issued group=staff (no EAP here): a NAS's Class
    // alone makes no by-group series.
    assert!(
        !s.metrics_text()
            .contains("certgate_acct_sessions_active_by_group{group=\"staff\"}"),
        "a by-group series from a Class the server never issued"
    );
    let (_, page) = sessions(&s, "?user=alice%40example.org");
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

/// `certgate_acct_sessions_active_by_group` counts only groups this server
/// issued in an Access-Accept's Class: whatever Class values a NAS sends
/// in accounting, its labels stay bounded.
#[tokio::test]
async fn sessions_by_group_counts_only_groups_the_policy_issued() {
    require!("radclient");
    use certgate::pki::KeyType;
    use certgate::supplicant::Versions;
    use common::lab::{ALICE, Lab, authenticate};
    let lab = Lab::new(KeyType::EcdsaP256);
    let journal = tempfile::tempdir().expect("tempdir");
    let users = lab.dir.path().join("users.toml");
    let s = TestServer::start(&format!(
        "{}{}[accounting]\njournal_dir = {:?}\n",
        loopback_client(""),
        lab.config_with_authz(
            "",
            "",
            &format!(
                "[authz]\nusers = {:?}\n[[authz.rule]]\nname = \"staff\"\ngroups_any = \"staff\"\nreply = [\"Class = group={{group}}\"]\n",
                users.display().to_string()
            )
        ),
        journal.path().display().to_string()
    ));
    let o = authenticate(&lab.supplicant(ALICE, Versions::Tls13, false), &s).await;
    assert!(
        o.attributes.contains(&(25, b"group=staff".to_vec())),
        "{o:?}"
    );
    for (i, class) in ["group=staff", "group=made-up-1", "group=made-up-2"]
        .iter()
        .enumerate()
    {
        let (ok, out) = radclient(
            s.acct,
            "acct",
            common::SECRET,
            &format!(
                "Acct-Status-Type = Start\nAcct-Session-Id = \"g-{i}\"\nClass = \"{class}\"\n"
            ),
        );
        assert!(ok, "{out}");
    }
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 3.0);
    s.wait_metric(
        "certgate_acct_sessions_active_by_group{group=\"staff\"}",
        1.0,
    );
    assert!(
        !s.metrics_text().contains("made-up"),
        "a NAS-made Class became a label"
    );
}

/// RFC 2866 §5.13: Proxy-State comes back in the Accounting-Response, in
/// order and unchanged.
#[test]
fn accounting_response_echoes_proxy_state() {
    require!("radclient");
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    let (ok, out) = radclient(
        s.acct,
        "acct",
        common::SECRET,
        "Acct-Status-Type = Start\nAcct-Session-Id = \"p-1\"\nProxy-State = 0x616263\nProxy-State = 0x78797a\n",
    );
    assert!(ok, "{out}");
    let reply = out
        .split("Received Accounting-Response")
        .nth(1)
        .expect("a response");
    let first = reply.find("Proxy-State = 0x616263");
    let second = reply.find("Proxy-State = 0x78797a");
    assert!(first.is_some() && first < second, "{out}");
}

/// `/sessions` names who is on the network: it answers only with the
/// bearer token, only to Host names it serves, and a page never holds more
/// than its limit; pages chain through `next` to every session once.
#[test]
fn sessions_need_the_token_and_come_in_pages() {
    require!("radclient");
    let journal = tempfile::tempdir().expect("tempdir");
    let s = server(journal.path());
    for i in 0..7 {
        assert!(acct(
            &s,
            &format!(
                "Acct-Status-Type = Start\nAcct-Session-Id = \"s-{i}\"\nUser-Name = \"u{i}@example.org\"\n"
            )
        ));
    }
    s.wait_metric("certgate_acct_sessions_active{client=\"lo\"}", 7.0);
    let host = format!("Host: {}\r\n", s.metrics);
    for headers in [
        host.clone(),
        format!("{host}Authorization: Bearer wrong-token-0123456789\r\n"),
        format!("{host}Authorization: Basic {TOKEN}\r\n"),
    ] {
        let (status, body) = common::http_get_with(s.metrics, "/sessions", &headers);
        assert!(status.contains("401"), "{status} {body}");
        assert!(!body.contains("u1@example.org"));
    }
    let (status, _) = common::http_get_with(
        s.metrics,
        "/sessions",
        &format!("Host: rebound.evil.example\r\nAuthorization: Bearer {TOKEN}\r\n"),
    );
    assert!(status.contains("421"), "{status}");
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_string();
    loop {
        let (status, page) = sessions(&s, &query);
        assert!(status.contains("200"), "{status}");
        assert!(page["count"].as_u64().expect("count") <= 3, "{page}");
        assert_eq!(page["total"], 7);
        for x in page["sessions"].as_array().expect("sessions") {
            seen.push(x["session_id"].as_str().expect("id").to_string());
        }
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("s-{i}")).collect::<Vec<_>>());
    let (status, _) = sessions(&s, "?limit=5000");
    assert!(status.contains("400"), "{status}");
    assert!(s.metric("certgate_http_requests_total{path=\"sessions\",status=\"401\"}") >= 3.0);
}

#[test]
fn accounting_on_clears_the_nas_sessions() {
    require!("radclient");
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
    require!("radclient");
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
    // One try per record: once the server is killed nothing answers.
    let load = Senders::start(s.acct, 64, "k", Duration::ZERO);
    // Let load build up, then kill -9 while requests are in flight.
    common::poll::until_async(Duration::from_secs(10), || async {
        (load.acked() >= 2000).then_some(())
    })
    .await;
    s.signal("KILL");
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("the server died");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    let (acked, _) = load.finish().await;
    let acked: HashSet<String> = acked.into_iter().collect();
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

/// Whether the tests run as root: only root can mount the size-limited
/// tmpfs that makes a disk fill up.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) {
    let ok = std::process::Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{program} {args:?} failed");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let at_str = at.display().to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                &at_str,
            ],
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let at = self.0.display().to_string();
        let _ = std::process::Command::new("chattr")
            .args(["-i", &at])
            .status();
        let _ = std::process::Command::new("umount")
            .args(["-l", &at])
            .status();
    }
}

/// Makes the journal directory refuse new files (root ignores permission
/// bits, so root uses the immutable attribute), or lets it accept them.
fn directory_writable(dir: &Path, writable: bool, root: bool) {
    if root {
        let flag = if writable { "-i" } else { "+i" };
        run("chattr", &[flag, &dir.display().to_string()]);
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = if writable { 0o755 } else { 0o555 };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// Fills the file system holding `path` with one file; returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    // Smaller and smaller writes take the last partial chunk too.
    let mut size = chunk.len();
    while size > 0 {
        match f.write(&chunk[..size]) {
            Ok(n) if n > 0 => written += n as u64,
            _ => size /= 2,
        }
    }
    written
}

/// 16 senders, each retrying one record until it is acknowledged (as a NAS
/// does), while the journal's disk fills up and is freed, then its
/// directory turns read-only and writable again. No acknowledgement while
/// the journal cannot write; acknowledgements resume by themselves; every
/// acknowledged record is in the journal exactly once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_journal_under_load_loses_nothing_acknowledged() {
    let root = is_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).expect("journal dir");
    let _tmpfs = root.then(|| Tmpfs::mount(&journal, "64m"));
    let s = TestServer::start(&format!(
        "{}[accounting]\njournal_dir = {:?}\nrotate_size = 4096\n",
        loopback_client(""),
        journal.display().to_string()
    ));
    // Each record is retried until stored, for far longer than the faults.
    let load = Senders::start(s.acct, 16, "f", Duration::from_secs(60));
    let count = || load.acked();
    let wait_for = |n: usize| async move {
        let got = common::poll::until_async(Duration::from_secs(20), || async {
            (count() >= n).then_some(())
        })
        .await;
        assert!(got.is_some(), "acknowledgements stalled at {}", count());
    };
    // Once the fault has bitten, acknowledgements stop: a few small batches
    // may still fit in the page the journal file already holds (or, for a
    // directory, in the open file until it rotates at 4 KiB), then none for
    // 1.5 s, three rounds of retries from every sender. Returns the count.
    let stalled = |what: &'static str| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (mut last, mut since) = (count(), std::time::Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count();
            if now != last {
                (last, since) = (now, std::time::Instant::now());
            } else if since.elapsed() >= Duration::from_millis(1500) {
                return last;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "acknowledgements went on while the journal {what}"
            );
        }
    };
    let first_error = |kind: &str| {
        let series = format!("certgate_journal_errors_total{{kind=\"{kind}\"}}");
        let n = tokio::task::block_in_place(|| {
            s.wait_metric_at_least(&series, 1.0, Duration::from_secs(10))
        });
        assert!(n >= 1.0, "no {series} within 10 s");
    };
    wait_for(200).await;

    if root {
        let filler = journal.join("filler");
        let size = fill(&filler);
        first_error("no_space");
        let at = stalled("was full").await;
        eprintln!("disk full ({size} octets of filler) at {at} acknowledged records");
        std::fs::remove_file(&filler).expect("free the disk");
        wait_for(at + 200).await;
    } else {
        eprintln!("not root: the disk-full phase needs a tmpfs mount; skipped");
    }

    directory_writable(&journal, false, root);
    first_error("permission");
    let at = stalled("was read-only").await;
    eprintln!("directory read-only at {at} acknowledged records");
    directory_writable(&journal, true, root);
    wait_for(at + 200).await;

    let (acked, unacked) = load.finish().await;
    assert!(unacked.is_empty(), "never acknowledged: {unacked:?}");
    let stored: Vec<String> = records(&journal)
        .iter()
        .filter_map(|r| r["session_id"].as_str().map(str::to_string))
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a record was stored twice");
    let missing: Vec<&String> = acked.iter().filter(|a| !unique.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert_eq!(stored.len(), acked.len(), "stored without acknowledgement");
    let not_stored =
        s.metric("certgate_dropped_total{listener=\"acct\",reason=\"accounting_not_stored\"}");
    assert!(not_stored >= 1.0);
    eprintln!(
        "{} records acknowledged and stored; {not_stored} requests not stored during the faults",
        acked.len()
    );
}

/// Accounting senders, each on its own socket sending records with unique
/// session ids one after another, and retrying each (the same packet, as a
/// NAS does) every 500 ms until it is acknowledged or `patience` has passed.
struct Senders {
    acked: Arc<std::sync::Mutex<Vec<String>>>,
    unacked: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Senders {
    fn start(target: SocketAddr, senders: usize, prefix: &str, patience: Duration) -> Senders {
        let secret = Secret::new(common::SECRET.as_bytes());
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let unacked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for sender in 0..senders {
            let (acked, unacked, stop, secret) =
                (acked.clone(), unacked.clone(), stop.clone(), secret.clone());
            let prefix = prefix.to_string();
            tasks.push(tokio::spawn(async move {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                for n in 0u32.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let session = format!("{prefix}-{sender}-{n}");
                    let req = accounting_request(&secret, n as u8, &session, 0);
                    let ra: [u8; 16] = req[4..20].try_into().expect("16");
                    let give_up = std::time::Instant::now() + patience;
                    let stored = loop {
                        let got =
                            common::exchange_async(&sock, target, &req, Duration::from_millis(500))
                                .await;
                        if let Some(reply) = got {
                            let ok = Packet::decode(&reply).is_ok_and(|reply| {
                                reply.code() == Code::AccountingResponse
                                    && reply.identifier() == n as u8
                                    && certgate::proto::wire::crypto::verify_response_authenticator(
                                        &reply, &ra, &secret,
                                    )
                            });
                            if ok {
                                break true;
                            }
                        }
                        if std::time::Instant::now() >= give_up {
                            break false;
                        }
                    };
                    let list = if stored { &acked } else { &unacked };
                    list.lock().expect("list").push(session);
                }
            }));
        }
        Senders {
            acked,
            unacked,
            stop,
            tasks,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Stops after each sender's current record; returns the session ids
    /// acknowledged and those given up on.
    async fn finish(self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("sender");
        }
        let take =
            |l: &std::sync::Mutex<Vec<String>>| std::mem::take(&mut *l.lock().expect("list"));
        (take(&self.acked), take(&self.unacked))
    }
}
