//! Hardening, end to end against the real binary: floods of abandoned
//! conversations above the table's cap, and hostile datagrams.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use certgate::bench::{random_station, rss_kib};
use certgate::pki::KeyType;
use certgate::radius::Code;
use certgate::radius::crypto::Secret;
use certgate::supplicant::{Supplicant, Versions};
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
            let secret = Secret::new(common::SECRET.as_bytes());
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let mut sup = (*sup).clone();
                sup.calling_station = Some(random_station());
                if let Ok(Code::AccessChallenge) =
                    sup.abandon_after(&socket, server, &secret, 2).await
                {
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
    let lab = Lab::new(KeyType::EcdsaP256);
    // A small table, and a short protection so that a flood this machine
    // can drive outruns it, as a real flood would outrun 100 000 and 1 s.
    let s = TestServer::start(&format!(
        "{}{}",
        loopback_client(""),
        lab.config(
            "max_conversations = 1000\nmax_conversations_per_nas = 1000\nevictable_after = \"100ms\"\nidle_timeout = \"2s\"",
            ""
        )
    ));
    let idle_rss = rss_kib(s.pid()).expect("rss");
    let cap = 1000.0;

    // During the flood: eapol_test, a real supplicant, on its first try.
    let flood_size = 6000;
    let started = Instant::now();
    let flooding = tokio::spawn(flood(
        Arc::new(lab.supplicant(ALICE, Versions::Both, false)),
        s.auth,
        flood_size,
        48,
    ));
    // Let the table fill before the real supplicant arrives.
    while s.metric("certgate_eap_conversations_started_total") < 2.0 * cap {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flood too slow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
