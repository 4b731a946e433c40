//! The cost of a full mutual-auth handshake on the server side, twice: a
//! bare rustls `ServerConnection` (the floor: the same certificates, the
//! same crypto provider, no EAP, no RADIUS), and the same handshake as
//! certgate runs it — RADIUS decode and Message-Authenticator check, EAP
//! reassembly, the conversation table, EAP-TLS fragmentation, the
//! certificate identity, and the reply with its authenticators and MPPE
//! keys. Only server-side calls are timed (`iter_custom`); the client runs
//! in the same loop untimed. The ratio eap/bare is the overhead certgate
//! adds to TLS; sockets and the async runtime are measured by
//! `certgate-bench` instead.
//!
//! Run: `cargo bench --bench handshake`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::proto::eap::conversation::Granted;
use certgate::proto::eap::packet::reassemble;
use certgate::proto::eap::reply::{ReplyContext, encode};
use certgate::proto::eap::service::{self, EapRequest, EapSettings, Handled, Reply};
use certgate::proto::eap::table::{ConversationTable, Limits};
use certgate::proto::tls::{SessionStore, TlsContext, TlsMaterial, TlsPolicy};
use certgate::proto::wire::Packet;
use certgate::proto::wire::attr::STATE;
use certgate::proto::wire::crypto::{Secret, verify_message_authenticator};
use certgate::supplicant::exchange::Exchange;
use certgate::supplicant::peer::{EapTlsPeer, PeerStep};
use certgate::supplicant::{Versions, client_config_with};

const CLIENT: &str = "alice@example.org";

struct Setup {
    _dir: tempfile::TempDir,
    material: TlsMaterial,
    client12: Arc<ClientConfig>,
    client13: Arc<ClientConfig>,
}

fn setup(key: KeyType) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::open(dir.path());
    pki.init("radius.example.org", key).expect("pki init");
    let files = pki
        .issue_client(CLIENT, &ClientOptions::default())
        .expect("client certificate");
    let material = pki.server_material().expect("material");
    let client = |v| {
        client_config_with(
            &pki.path("ca.pem"),
            &files.certificate,
            &files.key,
            v,
            false,
            false,
        )
        .expect("client config")
    };
    Setup {
        client12: client(Versions::Tls12),
        client13: client(Versions::Tls13),
        material,
        _dir: dir,
    }
}

/// A plain rustls server: the same certificates and provider, webpki's
/// client verifier, no session storage.
fn bare_server(material: &TlsMaterial) -> Arc<ServerConfig> {
    // certgate's provider (its cipher-suite order), so the ratio is about
    // what certgate adds, not about which suite won.
    let provider = Arc::new(certgate::proto::tls::provider());
    let mut roots = RootCertStore::empty();
    for r in &material.roots {
        roots.add(r.clone()).expect("root");
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("verifier");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .expect("server config");
    config.ignore_client_order = true;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("radius.example.org").expect("name")
}

/// One bare handshake; returns the time spent in server calls.
fn bare_handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> Duration {
    let mut c = ClientConnection::new(client.clone(), server_name()).expect("client");
    let mut spent = Duration::ZERO;
    let t = Instant::now();
    let mut s = ServerConnection::new(server.clone()).expect("server");
    spent += t.elapsed();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        let t = Instant::now();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server read");
        }
        s.process_new_packets().expect("server process");
        let mut out = Vec::with_capacity(4096);
        while s.wants_write() {
            s.write_tls(&mut out).expect("server write");
        }
        // What an EAP server needs from a finished handshake: the MSK.
        if !s.is_handshaking() {
            let mut msk = [0u8; 64];
            s.export_keying_material(&mut msk, b"client EAP encryption", None)
                .expect("export");
        }
        spent += t.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client read");
        }
        c.process_new_packets().expect("client process");
    }
    spent
}

struct Eap {
    table: ConversationTable,
    tls: TlsContext,
    settings: EapSettings,
    secret: Secret,
}

fn eap_server(material: &TlsMaterial) -> Eap {
    let policy = TlsPolicy {
        crl_missing_rejects: false,
        crl_expired_rejects: false,
        resumption: false,
        session_cache_entries: 1000,
        verified_chain_cache: 0,
        ..TlsPolicy::default()
    };
    let sessions = Arc::new(SessionStore::new(1000, Duration::from_secs(3600)));
    let settings = EapSettings {
        fragment_size: 1024,
        max_message: 64 * 1024,
        table: Limits {
            cap: 1000,
            per_nas: 1000,
            ..Limits::default()
        },
        ..EapSettings::default()
    };
    Eap {
        table: ConversationTable::new(settings.table),
        tls: TlsContext::build(material, &policy, &sessions).expect("tls context"),
        settings,
        secret: Secret::new(b"testing123"),
    }
}

/// certgate's work on one Access-Request, less sockets and the runtime.
fn eap_step(eap: &Eap, datagram: &[u8]) -> Vec<u8> {
    let packet = Packet::decode(datagram).expect("decode");
    assert!(verify_message_authenticator(&packet, &eap.secret));
    let message = reassemble(&packet).expect("eap");
    let req = EapRequest {
        eap: &message,
        state: packet.attribute(STATE),
        nas: "bench",
        ..EapRequest::default()
    };
    let reply = match service::handle(
        &eap.table,
        &eap.tls.server,
        &eap.settings,
        &req,
        Instant::now(),
    ) {
        Handled::Done(reply) => reply,
        Handled::Authorize(out) => {
            let chain = &out
                .conversation
                .as_ref()
                .and_then(|c| c.established.as_ref())
                .expect("established")
                .peer_chain;
            let identity = eap.tls.identity(chain, false).expect("identity");
            let granted = Granted {
                identity: identity.cn().unwrap_or_default().to_string(),
                attributes: vec![
                    (64, vec![0, 0, 0, 13]),
                    (65, vec![0, 0, 0, 6]),
                    (81, b"20".to_vec()),
                ],
            };
            service::finish(&eap.table, out, Ok(granted), &eap.settings, Instant::now())
        }
    };
    let ctx = ReplyContext {
        request: &packet,
        secret: &eap.secret,
    };
    if let Reply::Reject { failure, .. } = &reply {
        panic!("rejected: {failure:?}");
    }
    encode(&reply, &ctx).expect("encode").expect("reply").1
}

/// One EAP-TLS conversation; returns the time spent in server calls.
fn eap_handshake(eap: &Eap, client: &Arc<ClientConfig>) -> Duration {
    let mut peer = EapTlsPeer::new(client.clone(), server_name(), CLIENT, 1024).expect("peer");
    let mut ex = Exchange::new(eap.secret.clone(), CLIENT);
    let mut message = peer.identity_response(1);
    let mut spent = Duration::ZERO;
    loop {
        let request = ex.request(&message);
        let t = Instant::now();
        let answer = eap_step(eap, &request);
        spent += t.elapsed();
        let reply = ex.accept(&answer).expect("reply").expect("ours");
        match peer.on_request(&reply.eap).expect("peer") {
            PeerStep::Respond(next) => message = next,
            PeerStep::Success => return spent,
        }
    }
}

fn bench_key(c: &mut Criterion, key: KeyType, label: &str) {
    let s = setup(key);
    let bare = bare_server(&s.material);
    let eap = eap_server(&s.material);
    let mut group = c.benchmark_group(format!("full handshake, server side, {label}"));
    for (version, client) in [("TLS 1.2", &s.client12), ("TLS 1.3", &s.client13)] {
        group.bench_function(format!("bare rustls {version}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bare_handshake(&bare, client)).sum())
        });
        group.bench_function(format!("certgate EAP-TLS {version}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| eap_handshake(&eap, client)).sum())
        });
    }
    group.finish();
}

fn handshakes(c: &mut Criterion) {
    bench_key(c, KeyType::EcdsaP256, "ECDSA P-256");
    bench_key(c, KeyType::Rsa2048, "RSA-2048");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = handshakes
}
criterion_main!(benches);
