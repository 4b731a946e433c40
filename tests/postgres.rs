//! Accounting shipped into PostgreSQL (issue 21): a real PostgreSQL
//! started by the test, certgate nodes shipping their journals into it.
//! Every acknowledged record lands exactly once through a node killed
//! with SIGKILL and the database stopped and restarted; radacct's open
//! and closed sessions come out right; an old Interim-Update shipped late
//! never overwrites newer counters, nor reopens a stopped session.

#[macro_use]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use certgate::proto::wire::crypto::Secret;
use certgate::proto::wire::{Code, PacketBuilder};
use common::postgres::Postgres;
use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// A node's configuration file (kept outside the server's own folder so a
/// restarted node finds it, and its journal, again).
fn node_config(base: &Path, pg: &Postgres, node: &str) -> PathBuf {
    let path = base.join(format!("{node}.toml"));
    let text = config_text(&format!(
        "{}\n[accounting]\njournal_dir = {:?}\n[accounting.postgres]\nurl = {:?}\nnode = \"{node}\"\nretry = \"200ms\"\nbatch = 50\n",
        loopback_client(""),
        base.join(format!("journal-{node}")).display().to_string(),
        pg.url()
    ));
    std::fs::write(&path, text).expect("config");
    path
}

fn serve(config: &Path) -> TestServer {
    TestServer::spawn(
        tempfile::tempdir().expect("tempdir"),
        &[
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[],
    )
}

/// One Accounting-Request; true when it was acknowledged.
fn account(
    to: SocketAddr,
    id: u8,
    status: u32,
    session: &str,
    delay: u32,
    octets: u32,
    time: Option<u32>,
) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut b = PacketBuilder::new(Code::AccountingRequest, id, false);
    b.push_u32(40, status).expect("status");
    b.push(44, session.as_bytes()).expect("session");
    b.push(1, b"user@example.org").expect("user");
    b.push(4, &[192, 0, 2, 10]).expect("nas ip");
    b.push(31, b"02-00-00-00-00-01").expect("station");
    b.push_u32(41, delay).expect("delay");
    if status != 1 {
        b.push_u32(42, octets).expect("octets");
    }
    if let Some(t) = time {
        b.push_u32(46, t).expect("session time");
    }
    let bytes = b.finish_accounting_request(&Secret::new(SECRET.as_bytes()));
    exchange(&sock, to, &bytes, Duration::from_secs(3))
        .is_some_and(|r| r[0] == Code::AccountingResponse as u8)
}

/// `n` Interim-Updates of distinct sessions as fast as acknowledgements
/// come (eight senders); returns how many were acknowledged.
fn burst(to: SocketAddr, n: u32) -> u32 {
    let per = n / 8;
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut acked = 0;
                for k in 0..per {
                    let session = format!("burst-{t}-{k}");
                    if account(to, (k % 250) as u8, 3, &session, 0, k, Some(1)) {
                        acked += 1;
                    }
                }
                acked
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("sender")).sum()
}

fn wait_rows(pg: &Postgres, sql: &str, want: &str) {
    poll::expect(
        WAIT,
        &format!("{sql} never gave {want:?} (last {:?})", pg.query(sql)),
        || (pg.query(sql) == want).then_some(()),
    );
}

#[test]
fn every_acknowledged_record_lands_once_through_kills_and_restarts() {
    require!("psql");
    let Some(pg) = common::postgres::for_test() else {
        return;
    };
    let base = tempfile::tempdir().expect("tempdir");
    let (ca, cb) = (
        node_config(base.path(), &pg, "a"),
        node_config(base.path(), &pg, "b"),
    );
    let mut a = serve(&ca);
    let b = serve(&cb);
    let mut acked = 0;
    for i in 0..60u32 {
        match i {
            20 => {
                // A burst the shipper is still writing when the node dies
                // (SIGKILL); it comes back and goes on from its position.
                acked += burst(a.acct, 2000);
                eprintln!(
                    "killed with {} records on disk not yet shipped",
                    a.metric("certgate_ship_lag_records")
                );
                drop(a);
                a = serve(&ca);
            }
            35 => pg.stop_server(),
            45 => pg.start_server(),
            _ => {}
        }
        let node = if i % 2 == 0 { &a } else { &b };
        let session = format!("s-{i}");
        let id = (i % 200) as u8;
        let mut sent = vec![(1, 0, None), (3, 1000, Some(10))];
        if i % 3 == 0 {
            sent.push((2, 2000, Some(30)));
        }
        for (status, octets, time) in sent {
            // Acknowledged now, while the database is down too.
            assert!(
                account(node.acct, id, status, &session, 0, octets, time),
                "{session} {status}"
            );
            acked += 1;
        }
    }
    let total = acked.to_string();
    wait_rows(&pg, "SELECT count(*) FROM certgate_acct_records", &total);
    assert_eq!(
        pg.query("SELECT count(DISTINCT record->>'session_id') FROM certgate_acct_records WHERE record->>'session_id' LIKE 'burst-%'"),
        pg.query("SELECT count(*) FROM certgate_acct_records WHERE record->>'session_id' LIKE 'burst-%'"),
        "each burst record once"
    );
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM (SELECT record->>'session_id', record->>'status' FROM certgate_acct_records GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        "0",
        "no record twice"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM radacct WHERE AcctSessionId LIKE 's-%'"),
        "60"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM radacct WHERE AcctStopTime IS NOT NULL"),
        "20"
    );
    assert_eq!(
        pg.query("SELECT AcctInputOctets, AcctSessionTime, AcctStopTime IS NULL FROM radacct WHERE AcctSessionId = 's-3'"),
        "2000|30|f"
    );
    assert_eq!(
        pg.query("SELECT AcctInputOctets, AcctSessionTime, AcctStopTime IS NULL FROM radacct WHERE AcctSessionId = 's-1'"),
        "1000|10|t"
    );
    assert_eq!(
        pg.query("SELECT string_agg(node, ',' ORDER BY node) FROM certgate_ship_position"),
        "a,b"
    );
    for node in [&a, &b] {
        node.wait_metric("certgate_ship_lag_records", 0.0);
        assert_eq!(node.metric("certgate_ship_connected"), 1.0);
    }
    assert!(
        b.metric("certgate_ship_errors_total{kind=\"connect\"}")
            + b.metric("certgate_ship_errors_total{kind=\"query\"}")
            >= 1.0,
        "node b saw the database go away"
    );
}

/// A stalled node's old Interim-Update, shipped after a newer one, leaves
/// the newer counters; nothing reopens a stopped session.
#[test]
fn late_interim_updates_never_win() {
    require!("psql");
    let Some(pg) = common::postgres::for_test() else {
        return;
    };
    let base = tempfile::tempdir().expect("tempdir");
    let s = serve(&node_config(base.path(), &pg, "solo"));
    assert!(account(s.acct, 1, 1, "late", 0, 0, None));
    assert!(account(s.acct, 2, 3, "late", 0, 5000, Some(120)));
    // Sent now but 100 s old: the NAS held it.
    assert!(account(s.acct, 3, 3, "late", 100, 100, Some(20)));
    wait_rows(&pg, "SELECT count(*) FROM certgate_acct_records", "3");
    assert_eq!(
        pg.query(
            "SELECT AcctInputOctets, AcctSessionTime FROM radacct WHERE AcctSessionId = 'late'"
        ),
        "5000|120"
    );
    assert!(account(s.acct, 4, 2, "late", 0, 6000, Some(130)));
    assert!(account(s.acct, 5, 3, "late", 0, 7000, Some(140)));
    wait_rows(&pg, "SELECT count(*) FROM certgate_acct_records", "5");
    assert_eq!(
        pg.query("SELECT AcctInputOctets, AcctSessionTime, AcctStopTime IS NULL FROM radacct WHERE AcctSessionId = 'late'"),
        "6000|130|f",
        "closed by its Stop, not reopened"
    );
    // Accounting-On from the NAS closes what it had open.
    assert!(account(s.acct, 6, 1, "open-1", 0, 0, None));
    assert!(account(s.acct, 7, 7, "on", 0, 0, None));
    wait_rows(&pg, "SELECT count(*) FROM certgate_acct_records", "7");
    assert_eq!(
        pg.query("SELECT AcctTerminateCause FROM radacct WHERE AcctSessionId = 'open-1'"),
        "NAS-Reboot"
    );
}

/// Journal files are deleted once wholly shipped and past
/// accounting.postgres.retention, never the one being written; what they
/// held is in PostgreSQL.
#[test]
fn shipped_journal_files_past_their_retention_are_deleted() {
    require!("psql");
    let Some(pg) = common::postgres::for_test() else {
        return;
    };
    let base = tempfile::tempdir().expect("tempdir");
    let journal = base.path().join("journal-r");
    let path = base.path().join("r.toml");
    std::fs::write(
        &path,
        config_text(&format!(
            "{}\n[accounting]\njournal_dir = {:?}\nrotate_size = 4096\n[accounting.postgres]\nurl = {:?}\nnode = \"r\"\nretention = \"1s\"\n",
            loopback_client(""),
            journal.display().to_string(),
            pg.url()
        )),
    )
    .expect("config");
    let s = serve(&path);
    for i in 0..60u32 {
        assert!(account(
            s.acct,
            i as u8,
            3,
            &format!("r-{i}"),
            0,
            i,
            Some(1)
        ));
    }
    wait_rows(&pg, "SELECT count(*) FROM certgate_acct_records", "60");
    let files = || std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0);
    assert!(files() > 3, "rotated into several files");
    s.wait_metric_at_least("certgate_ship_journal_files_deleted_total", 1.0, WAIT);
    poll::expect(WAIT, "old shipped files are deleted", || {
        (files() <= 2).then_some(())
    });
    assert!(files() >= 1, "the file being written stays");
    assert_eq!(pg.query("SELECT count(*) FROM certgate_acct_records"), "60");
}
