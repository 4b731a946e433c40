//! Micro-benchmarks of the per-request hot paths: RADIUS decode with
//! authenticator and Message-Authenticator checks, reply encoding, EAP-TLS
//! fragmentation and reassembly, dictionary look-ups, policy evaluation,
//! accounting record encoding and journal appends (fdatasync'ed, 64 in
//! flight, as a loaded server batches them).
//!
//! Run: `cargo bench --bench hot_paths`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;

use certgate::metrics::AccountingMetrics;
use certgate::proto::accounting::record::Record;
use certgate::proto::authz::policy::{Policy, RawRule};
use certgate::proto::authz::{Entry, Group, Subject};
use certgate::proto::dictionary::Dictionary;
use certgate::proto::eap::conversation::Granted;
use certgate::proto::eap::keys::Keys;
use certgate::proto::eap::reply::{ReplyContext, encode};
use certgate::proto::eap::service::Reply;
use certgate::proto::eap::tls_frag::{Fragmenter, Incoming, Reassembler};
use certgate::proto::eap::tls_session::Established;
use certgate::proto::tls::identity::CertIdentity;
use certgate::proto::wire::crypto::{
    Secret, verify_message_authenticator, verify_request_authenticator,
};
use certgate::proto::wire::{Code, Packet, PacketBuilder, ReplyTo};
use certgate::server::journal::{Journal, JournalConfig};
use certgate::supplicant::exchange::Exchange;

fn dictionary() -> Dictionary {
    Dictionary::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary"),
        &|p| std::fs::read_to_string(p),
    )
    .expect("dictionaries")
}

fn accounting_request(secret: &Secret, n: u32) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::AccountingRequest, n as u8, false);
    b.push_u32(40, 3)
        .and_then(|b| b.push(44, format!("session-{n}").as_bytes()))
        .and_then(|b| b.push(1, b"alice@example.org"))
        .and_then(|b| b.push(4, &[10, 0, 0, 1]))
        .and_then(|b| b.push(31, b"02-00-00-00-00-01"))
        .and_then(|b| b.push(30, b"02-00-00-00-00-02:Corp"))
        .and_then(|b| b.push(8, &[10, 1, 2, 3]))
        .and_then(|b| b.push_u32(42, 123_456))
        .and_then(|b| b.push_u32(43, 654_321))
        .and_then(|b| b.push_u32(46, 600))
        .and_then(|b| b.push_u32(61, 19))
        .expect("attributes fit");
    b.finish_accounting_request(secret)
}

fn radius(c: &mut Criterion) {
    let secret = Secret::new(b"testing123");
    let mut ex = Exchange::new(secret.clone(), "alice@example.org");
    ex.calling_station = Some("02-00-00-00-00-01".into());
    let access = ex.request(&vec![0x5a; 1000]);
    let acct = accounting_request(&secret, 1);
    let mut g = c.benchmark_group("radius");
    g.bench_function(
        "decode + verify Access-Request (1000 B EAP, Message-Authenticator)",
        |b| {
            b.iter(|| {
                let p = Packet::decode(black_box(&access)).expect("decode");
                assert!(verify_message_authenticator(&p, &secret));
            })
        },
    );
    g.bench_function("decode + verify Accounting-Request", |b| {
        b.iter(|| {
            let p = Packet::decode(black_box(&acct)).expect("decode");
            assert!(verify_request_authenticator(&p, &secret));
        })
    });
    let request = ReplyTo::of(&Packet::decode(&access).expect("decode"));
    let ctx = ReplyContext {
        to: &request,
        secret: &secret,
        key_name_requested: true,
    };
    let rng = &mut rand::rng();
    let challenge = Reply::Challenge {
        eap: vec![0x5a; 1034],
        state: [3; 16],
    };
    g.bench_function("encode Access-Challenge (1034 B EAP, State)", |b| {
        b.iter(|| encode(black_box(&challenge), &ctx, rng).expect("encode"))
    });
    let keys = Keys {
        msk: [1; 64],
        emsk: [2; 64],
        session_id: vec![0x0d; 65],
    };
    let accept = Reply::Accept {
        eap: vec![3, 9, 0, 4],
        keys: keys.clone(),
        granted: Granted {
            identity: "alice@example.org".into(),
            attributes: vec![
                (64, vec![0, 0, 0, 13]),
                (65, vec![0, 0, 0, 6]),
                (81, b"20".to_vec()),
            ],
            auth: None,
        },
        established: Box::new(Established {
            version: rustls::ProtocolVersion::TLSv1_3,
            cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
            resumed: false,
            peer_chain: Vec::new(),
            keys,
        }),
        round_trips: 4,
        duration: Duration::from_millis(3),
    };
    g.bench_function(
        "encode Access-Accept (MPPE keys, EAP-Key-Name, VLAN)",
        |b| b.iter(|| encode(black_box(&accept), &ctx, rng).expect("encode")),
    );
    g.finish();
}

fn eap_tls_fragments(c: &mut Criterion) {
    let flight = vec![0x16u8; 4096];
    let fragments: Vec<Vec<u8>> = {
        let mut f = Fragmenter::new(flight.clone(), 1024);
        std::iter::from_fn(|| f.next_fragment()).collect()
    };
    let mut g = c.benchmark_group("eap-tls");
    g.bench_function("fragment a 4 KiB flight into 1024-octet fragments", |b| {
        b.iter(|| {
            let mut f = Fragmenter::new(black_box(flight.clone()), 1024);
            while let Some(x) = f.next_fragment() {
                black_box(x);
            }
        })
    });
    g.bench_function("reassemble a 4 KiB flight from 1024-octet fragments", |b| {
        b.iter(|| {
            let mut r = Reassembler::new(64 * 1024);
            for frag in &fragments {
                if let Incoming::Complete(data) = r.feed(frag).expect("fragment") {
                    assert_eq!(data.len(), 4096);
                }
            }
        })
    });
    g.finish();
}

fn dictionary_lookups(c: &mut Criterion) {
    let dict = dictionary();
    let status = dict.attribute("Acct-Status-Type").expect("defined").clone();
    let mut g = c.benchmark_group("dictionary");
    g.bench_function("attribute by name", |b| {
        b.iter(|| {
            dict.attribute(black_box("Tunnel-Private-Group-Id"))
                .expect("defined")
        })
    });
    g.bench_function("attribute by number (standard)", |b| {
        b.iter(|| dict.attribute_by_number(0, black_box(81)).expect("defined"))
    });
    g.bench_function("attribute by number (vendor)", |b| {
        b.iter(|| {
            dict.attribute_by_number(black_box(14823), 1)
                .expect("defined")
        })
    });
    g.bench_function("value name", |b| {
        b.iter(|| dict.value_name(&status, black_box(3)).expect("defined"))
    });
    g.finish();
}

const RULES: &str = r#"
[[rule]]
name = "quarantine"
groups_any = "quarantined"
action = "reject"
[[rule]]
name = "admins-on-corp"
groups_all = ["netadmins", "cn=staff,ou=groups,*"]
ssid = "corp"
vlan = 10
reply = ["Cisco-AVPair = shell:priv-lvl=15", "Class = {group}"]
[[rule]]
name = "guest-ssid"
ssid = "Guest"
reply = ["Aruba-User-Role = guest"]
[[rule]]
name = "staff"
groups_any = ["staff", "contractors"]
issuer = "CN=Example Issuing CA*"
realm = "example.org"
vlan = 20
reply = ["Filter-Id = {group}", "Class = dept={attr:departmentNumber}"]
"#;

fn policy(c: &mut Criterion) {
    #[derive(Deserialize)]
    struct Wrap {
        rule: Vec<RawRule>,
    }
    let dict = dictionary();
    let wrap: Wrap = toml::from_str(RULES).expect("rules");
    let policy = Policy::compile(&wrap.rule, false, &dict).expect("compiles");
    let subject = Subject {
        identity: "alice@example.org".into(),
        outer_identity: "anonymous@example.org".into(),
        certificate: Arc::new(CertIdentity {
            issuer: "CN=Example Issuing CA,O=Example".into(),
            emails: vec!["alice@example.org".into()],
            ..Default::default()
        }),
        nas: "ap-floor3".into(),
        called_station: Some("02-00-00-00-00-02:Corp".into()),
        calling_station: Some("02-00-00-00-00-01".into()),
        resumed: false,
    };
    let entry = Entry {
        dn: "uid=alice,ou=people,dc=example,dc=org".into(),
        groups: ["employees", "staff", "vpn"]
            .iter()
            .map(|g| Group {
                name: g.to_string(),
                dn: Some(format!("cn={g},ou=groups,dc=example,dc=org")),
            })
            .collect(),
        attributes: HashMap::from([("departmentnumber".into(), vec!["42".into()])]),
    };
    c.bench_function("policy: 4 rules, match on the last", |b| {
        b.iter(|| {
            let (rule, _) = policy.evaluate(black_box(&subject), &entry);
            assert_eq!(rule, "staff");
        })
    });
}

fn accounting(c: &mut Criterion) {
    let dict = dictionary();
    let secret = Secret::new(b"testing123");
    let request = accounting_request(&secret, 7);
    c.bench_function("accounting: record decode + JSON line", |b| {
        b.iter(|| {
            let p = Packet::decode(black_box(&request)).expect("decode");
            let r = Record::decode(&p, "nas1", &dict, 1_700_000_000_000);
            serde_json::to_vec(&r).expect("json")
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(AccountingMetrics::register(&registry).expect("metrics"));
    let journal = Arc::new(Journal::start(
        JournalConfig {
            dir: dir.path().to_path_buf(),
            rotate_bytes: 1 << 30,
            rotate_interval: Duration::from_secs(3600),
            group: None,
        },
        metrics,
    ));
    let line = {
        let p = Packet::decode(&request).expect("decode");
        serde_json::to_vec(&Record::decode(&p, "nas1", &dict, 1_700_000_000_000)).expect("json")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function(
        "accounting: journal append, fdatasync'ed, 64 in flight",
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..iters {
                        if set.len() >= 64 {
                            let _ = set.join_next().await;
                        }
                        let (j, l) = (journal.clone(), line.clone());
                        set.spawn(async move { j.append(l).await.expect("append") });
                    }
                    while set.join_next().await.is_some() {}
                    started.elapsed()
                })
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = radius, eap_tls_fragments, dictionary_lookups, policy, accounting
}
criterion_main!(benches);
