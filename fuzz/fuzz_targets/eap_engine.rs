//! The sans-I/O EAP engine (conversation table, EAP, EAP-TLS reassembly and
//! fragmentation over an in-memory rustls connection) fed an arbitrary
//! sequence of EAP-Responses. Input: records of [flags, length (2 octets),
//! EAP packet]; flags bit 0 sends the State of the last Access-Challenge,
//! bit 1 a Framed-MTU. No sequence may end in Access-Accept: the fuzzer
//! holds no client certificate, and the table never outgrows its cap.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use certgate::proto::eap::service::{self, EapRequest, EapSettings, Handled, Reply};
use certgate::proto::eap::table::{ConversationTable, Limits};
use certgate::pki::{KeyType, Pki};
use certgate::proto::clock::Clock;
use certgate::proto::tls::{SessionStore, TlsContext, TlsPolicy};
use rand::SeedableRng;
use libfuzzer_sys::fuzz_target;

struct Engine {
    _dir: tempfile::TempDir,
    tls: TlsContext,
    settings: EapSettings,
}

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pki = Pki::open(dir.path());
    pki.init("radius.example.org", KeyType::EcdsaP256)
        .expect("pki");
    let policy = TlsPolicy {
        crl_missing_rejects: false,
        session_lifetime: Duration::from_secs(60),
        session_cache_entries: 100,
        verified_chain_cache: 100,
        ..TlsPolicy::default()
    };
    let clock = Arc::new(Clock::new(certgate::server::time::now()));
    let sessions = Arc::new(SessionStore::new(100, Duration::from_secs(60), clock));
    let material = pki.server_material().expect("material");
    Engine {
        tls: TlsContext::build(&material, &policy, &sessions).expect("tls"),
        settings: EapSettings {
            fragment_size: 1000,
            max_message: 65536,
            table: Limits {
                cap: 4,
                per_nas: 2,
                ..Limits::default()
            },
            ..EapSettings::default()
        },
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let e = &*ENGINE;
    let table = Arc::new(ConversationTable::new(e.settings.table));
    // Seeded: a crashing input replays exactly.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut now = Instant::now();
    let mut state = None;
    let mut rest = data;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let eap = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let req = EapRequest {
            eap,
            state: if flags & 1 != 0 {
                state.as_ref().map(|s: &[u8; 16]| &s[..])
            } else {
                None
            },
            calling_station: (flags & 4 != 0).then_some("02-00-00-00-00-01"),
            framed_mtu: (flags & 2 != 0).then_some(u32::from(flags) * 8),
            nas: if flags & 8 != 0 { "a" } else { "b" },
            ..EapRequest::default()
        };
        now += Duration::from_millis(u64::from(flags >> 4) * 100);
        let reply = match service::handle(&table, &e.tls.server, &e.settings, &req, now, &mut rng) {
            Handled::Done(r) => r,
            Handled::Authorize(out) => {
                service::finish(&table, out, Ok(Default::default()), &e.settings, now)
            }
        };
        match reply {
            Reply::Accept { .. } => panic!("Access-Accept without a client certificate"),
            Reply::Challenge { eap, state: s } => {
                assert!(eap.len() <= 1000 + 10);
                state = Some(s);
            }
            Reply::Reject { eap, .. } => assert_eq!(eap[0], 4, "EAP-Failure"),
            Reply::Discard(_) => {}
        }
        assert!(table.len() <= 4);
    }
});
