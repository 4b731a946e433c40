//! The cost of a full mutual-auth handshake on the server side, twice: a
//! bare rustls `ServerConnection` (the floor: the same certificates, the
//! same crypto provider, no EAP, no RADIUS), and the same handshake as
//! certgate's engine runs it — admission (RADIUS decode,
//! Message-Authenticator check, duplicate cache), EAP reassembly, the
//! conversation table, EAP-TLS fragmentation, the certificate identity,
//! the users-file look-up and the policy, and the reply with its
//! authenticators and MPPE keys. Only server-side calls are timed (`iter_custom`); the client runs
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

use certgate::config::Config;
use certgate::metrics::Metrics;
use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::proto::admission::Listener;
use certgate::proto::tls::TlsMaterial;
use certgate::proto::wire::crypto::Secret;
use certgate::proto::{Action, Answer, Engine, Received, Work};
use certgate::server::directory::Directory;
use certgate::server::time::now;
use certgate::supplicant::exchange::Exchange;
use certgate::supplicant::peer::{EapTlsPeer, PeerStep};
use certgate::supplicant::{Versions, client_config_with};

const CLIENT: &str = "alice@example.org";

struct Setup {
    _dir: tempfile::TempDir,
    pki: Pki,
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
        pki,
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

/// certgate's engine on loopback ports it never binds: EAP-TLS with the
/// users file (alice in "all" → VLAN 20), no resumption, no chain cache,
/// no CRLs, as `bench/compare.sh` runs the server.
struct Eap {
    engine: Engine,
    directory: Box<dyn Directory>,
    secret: Secret,
    _dir: tempfile::TempDir,
}

fn eap_server(pki: &Pki) -> Eap {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("users.toml"),
        "[users.\"alice@example.org\"]\ngroups = [\"all\"]\n",
    )
    .expect("users");
    let q = |p: std::path::PathBuf| format!("{:?}", p.display().to_string());
    let dictionary =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
    let text = format!(
        "[server]\ndictionary = {}\n[metrics]\nlisten = \"\"\n\
         [[clients]]\nname = \"bench\"\naddress = \"127.0.0.1\"\nsecret = \"testing123\"\n\
         [eap]\nfragment_size = 1024\n\
         [tls]\ncertificate = {}\nprivate_key = {}\nca = [{}]\nresumption = false\nverified_chain_cache = 0\n\
         [authz]\nusers = {}\n[[authz.rule]]\ngroups_any = \"all\"\nvlan = 20\n",
        q(dictionary),
        q(pki.path("server.pem")),
        q(pki.path("server.key")),
        q(pki.path("ca.pem")),
        q(dir.path().join("users.toml")),
    );
    let path = dir.path().join("certgate.toml");
    std::fs::write(&path, text).expect("config");
    let config = Config::load(&path).expect("valid config");
    let metrics = Metrics::new().expect("metrics");
    let directory = certgate::server::directory::open(
        &config.eap.as_ref().expect("eap").authz.directory,
        &metrics.authz,
    );
    Eap {
        engine: Engine::new(Arc::new(config), metrics, now()).expect("engine"),
        directory,
        secret: Secret::new(b"testing123"),
        _dir: dir,
    }
}

/// certgate's work on one Access-Request, less the socket and the runtime:
/// admission, the EAP-TLS step, the directory look-up (the users file,
/// answered at once) and the reply.
fn eap_step(eap: &Eap, datagram: &[u8]) -> Vec<u8> {
    let from = "127.0.0.1:4000".parse().expect("address");
    let rng = &mut rand::rng();
    let Received::Process(request) = eap.engine.receive(now(), Listener::Auth, from, datagram)
    else {
        panic!("not admitted");
    };
    let mut action = eap.engine.process(now(), request, rng);
    loop {
        match action {
            Action::Send { bytes, .. } => return bytes.to_vec(),
            Action::Ask {
                ticket,
                work: Work::Lookup { identity, .. },
            } => {
                let lookup = futures_ready(eap.directory.lookup(&identity, None));
                action = eap
                    .engine
                    .resume(now(), ticket, Answer::Lookup(lookup), rng);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The users file answers without waiting: its future is ready at once.
fn futures_ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the users file does not wait"),
    }
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
    let eap = eap_server(&s.pki);
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
