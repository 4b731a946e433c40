//! The engine on virtual time, without sockets or sleeps: a simulated NAS
//! (the test supplicant's RADIUS half) and peer (its EAP-TLS half) talk to
//! `Engine` through its API, the directory is the users file answered at
//! once, the journal is a vector that can be told to fail, and time moves
//! only when a test says so. Retransmissions, conversation timeouts,
//! eviction, duplicate-cache expiry, reload and the directory deadline are
//! tested here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

use super::*;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pki::{ClientOptions, KeyType, Pki};
use crate::proto::authz::{Entry, Group, Lookup};
use crate::proto::wire::{Code, Packet, PacketBuilder};
use crate::supplicant::{EapTlsPeer, Exchange, PeerStep, Versions, client_config};

const SECRET: &[u8] = b"testing123";
const ALICE: &str = "alice@example.org";

/// The engine, its configuration files, virtual time and what the shell
/// would do, done in memory.
struct Sim {
    engine: Engine,
    dir: tempfile::TempDir,
    pki: Pki,
    now: Now,
    rng: StdRng,
    /// Lines "written" to the journal.
    journal: Vec<Vec<u8>>,
    /// When set, journal writes fail with this kind.
    journal_fails: Option<&'static str>,
    /// When set, directory look-ups are left unanswered.
    directory_hangs: bool,
}

/// What one request came to.
#[derive(Debug, PartialEq)]
enum Got {
    Reply(Vec<u8>),
    Nothing,
    /// The directory was asked and did not answer (yet).
    Waiting(Ticket),
    /// RadSec: the connection must close, and why.
    Closed(&'static str),
}

fn config_text(sim_dir: &std::path::Path, pki: &Pki, vlan: u16, eap_extra: &str) -> String {
    let q = |p: std::path::PathBuf| format!("{:?}", p.display().to_string());
    let dictionary =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
    format!(
        "[server]\ndictionary = {}\n[metrics]\nlisten = \"\"\n\
         [[clients]]\nname = \"ap\"\naddress = \"127.0.0.1\"\nsecret = \"testing123\"\n\
         [eap]\n{eap_extra}\n\
         [tls]\ncertificate = {}\nprivate_key = {}\nca = [{}]\ncrls = [{}]\n\
         [authz]\nusers = {}\n[[authz.rule]]\nname = \"staff\"\ngroups_any = \"staff\"\nvlan = {vlan}\n\
         [accounting]\njournal_dir = {}\n",
        q(dictionary),
        q(pki.path("server.pem")),
        q(pki.path("server.key")),
        q(pki.path("ca.pem")),
        q(pki.path("crl.pem")),
        q(sim_dir.join("users.toml")),
        q(sim_dir.join("journal")),
    )
}

/// RadSec on (never bound here: the engine has no sockets), with the demo
/// CA as NAS CA and alice's certificate as a NAS's.
const RADSEC: &str =
    "\n[radsec]\nca = [CA]\n[[radsec.clients]]\nname = \"cloud\"\nnames = [\"alice@*\"]\n";

impl Sim {
    fn new(eap_extra: &str) -> Sim {
        Sim::build(eap_extra, false)
    }

    fn build(eap_extra: &str, radsec: bool) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(&dir.path().join("pki"));
        pki.init("radius.example.org", KeyType::EcdsaP256)
            .expect("pki");
        pki.issue_client(ALICE, &ClientOptions::default())
            .expect("client");
        std::fs::write(
            dir.path().join("users.toml"),
            "[users.\"alice@example.org\"]\ngroups = [\"staff\"]\n",
        )
        .expect("users");
        let path = dir.path().join("certgate.toml");
        let mut text = config_text(dir.path(), &pki, 20, eap_extra);
        if radsec {
            text = text.replace(
                "[server]\n",
                "[server]\nradsec_listen = [\"127.0.0.1:2083\"]\n",
            );
            let ca = format!("{:?}", pki.path("ca.pem").display().to_string());
            text.push_str(&RADSEC.replace("CA", &ca));
        }
        std::fs::write(&path, text).expect("config");
        let config = Config::load(&path).expect("valid configuration");
        // Virtual time starts at the wall clock (certificates are valid
        // from yesterday) and moves only when a test says so.
        let now = crate::server::time::now();
        let engine =
            Engine::new(Arc::new(config), Metrics::new().expect("metrics"), now).expect("engine");
        Sim {
            engine,
            dir,
            pki,
            now,
            rng: StdRng::seed_from_u64(42),
            journal: Vec::new(),
            journal_fails: None,
            directory_hangs: false,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    fn tick(&mut self) {
        self.engine.tick(self.now);
    }

    /// A NAS at `from` sends `datagram` on the auth (or accounting) port:
    /// admission, processing, and the asked-for work done at once.
    fn send(&mut self, listener: Listener, from: SocketAddr, datagram: &[u8]) -> Got {
        let action = match self.engine.receive(self.now, listener, from, datagram) {
            Received::Act(action) => action,
            Received::Process(request) => self.engine.process(self.now, request, &mut self.rng),
        };
        self.drive(action)
    }

    fn drive(&mut self, mut action: Action) -> Got {
        loop {
            match action {
                Action::Send { bytes, .. } => return Got::Reply(bytes.to_vec()),
                Action::Nothing => return Got::Nothing,
                Action::Close { reason } => return Got::Closed(reason),
                Action::Ask { ticket, work } => {
                    let answer = match work {
                        Work::Lookup { identity, .. } => {
                            if self.directory_hangs {
                                return Got::Waiting(ticket);
                            }
                            Answer::Lookup(Ok(if identity == ALICE {
                                Lookup::Found(Entry {
                                    dn: "user=alice".into(),
                                    groups: vec![Group::named("staff")],
                                    attributes: Default::default(),
                                })
                            } else {
                                Lookup::NotFound
                            }))
                        }
                        Work::Store { line } => match self.journal_fails {
                            Some(kind) => Answer::Stored(Err(kind)),
                            None => {
                                self.journal.push(line);
                                Answer::Stored(Ok(()))
                            }
                        },
                        // This rig configures no OCSP.
                        Work::Ocsp { .. } => Answer::Ocsp(Err("no responder in the rig".into())),
                    };
                    action = self.engine.resume(self.now, ticket, answer, &mut self.rng);
                }
            }
        }
    }

    /// Rewrites the configuration with another VLAN and swaps it in, as
    /// SIGHUP does.
    fn reload(&mut self, vlan: u16) {
        let path = self.dir.path().join("certgate.toml");
        std::fs::write(&path, config_text(self.dir.path(), &self.pki, vlan, "")).expect("config");
        let config = Config::load(&path).expect("valid configuration");
        let runtime = self
            .engine
            .build_runtime(Arc::new(config))
            .expect("runtime");
        self.engine.runtime().store(Arc::new(runtime));
    }

    fn metric(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.engine
            .metrics()
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            // A family is a counter or a gauge; the other reads 0.
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .sum()
    }

    /// A NAS and supplicant for alice.
    fn nas(&self, station: &str) -> Nas {
        let pki = &self.pki;
        let client = client_config(
            &pki.path("ca.pem"),
            &pki.dir().join("clients").join(format!("{ALICE}.pem")),
            &pki.dir().join("clients").join(format!("{ALICE}.key")),
            Versions::Tls13,
            false,
        )
        .expect("client config");
        let peer = EapTlsPeer::new(
            client,
            ServerName::try_from("radius.example.org").expect("name"),
            ALICE,
            1000,
        )
        .expect("peer");
        let mut ex = Exchange::new(crate::proto::wire::crypto::Secret::new(SECRET), ALICE);
        ex.calling_station = Some(station.into());
        Nas {
            from: "127.0.0.1:40000".parse().expect("address"),
            peer,
            ex,
            next: None,
        }
    }
}

/// The RADIUS and EAP halves of one station's supplicant behind a NAS.
struct Nas {
    from: SocketAddr,
    peer: EapTlsPeer,
    ex: Exchange,
    /// The EAP-Response to send next.
    next: Option<Vec<u8>>,
}

/// How a conversation step went, from the NAS's side.
#[derive(Debug, PartialEq)]
enum Step {
    /// An Access-Challenge: the peer has its next response.
    Continue,
    Accept {
        keys_match: bool,
        vlan: Option<Vec<u8>>,
    },
    Reject,
    NoAnswer,
}

impl Nas {
    /// The next Access-Request's octets (Identity first).
    fn request(&mut self) -> Vec<u8> {
        let eap = self
            .next
            .take()
            .unwrap_or_else(|| self.peer.identity_response(1));
        self.ex.request(&eap)
    }

    /// Takes the server's answer to the last request.
    fn answer(&mut self, got: Got) -> Step {
        let Got::Reply(bytes) = got else {
            return Step::NoAnswer;
        };
        let reply = self
            .ex
            .accept(&bytes)
            .expect("authentic reply")
            .expect("our reply");
        match reply.code {
            Code::AccessChallenge => match self.peer.on_request(&reply.eap) {
                Ok(PeerStep::Respond(next)) => {
                    self.next = Some(next);
                    Step::Continue
                }
                other => panic!("peer: {other:?}"),
            },
            Code::AccessAccept => {
                let _ = self.peer.on_request(&reply.eap);
                let msk = self.peer.msk().expect("msk");
                let keys_match = reply.mppe_recv.as_deref() == Some(&msk[..32])
                    && reply.mppe_send.as_deref() == Some(&msk[32..]);
                let vlan = reply
                    .attributes
                    .iter()
                    .find(|(k, _)| *k == 81)
                    .map(|(_, v)| v.clone());
                Step::Accept { keys_match, vlan }
            }
            Code::AccessReject => Step::Reject,
            other => panic!("{other:?}"),
        }
    }

    /// Runs the conversation to its end.
    fn authenticate(&mut self, sim: &mut Sim) -> Step {
        for _ in 0..20 {
            let request = self.request();
            let got = sim.send(Listener::Auth, self.from, &request);
            match self.answer(got) {
                Step::Continue => sim.advance(Duration::from_millis(5)),
                end => return end,
            }
        }
        panic!("no end in 20 round trips");
    }
}

fn vlan(n: u16) -> Option<Vec<u8>> {
    let mut v = vec![1];
    v.extend_from_slice(n.to_string().as_bytes());
    Some(v)
}

#[test]
fn a_whole_conversation_on_virtual_time() {
    let mut sim = Sim::new("");
    let mut nas = sim.nas("02-00-00-00-00-01");
    assert_eq!(
        nas.authenticate(&mut sim),
        Step::Accept {
            keys_match: true,
            vlan: vlan(20)
        }
    );
    assert_eq!(
        sim.metric("certgate_eap_conversations_succeeded_total", &[]),
        1.0
    );
    assert_eq!(sim.engine.in_progress(), (0, 0), "nothing left behind");
}

/// A retransmission (same octets) is answered from the cache, byte for
/// byte, and the conversation does not run twice; past the cache's
/// lifetime the same octets are processed again — here the conversation
/// has moved on, so they are discarded.
#[test]
fn retransmissions_and_duplicate_cache_expiry() {
    let mut sim = Sim::new("");
    let mut nas = sim.nas("02-00-00-00-00-01");
    let identity = nas.request();
    let first = sim.send(Listener::Auth, nas.from, &identity);
    let again = sim.send(Listener::Auth, nas.from, &identity);
    let (Got::Reply(a), Got::Reply(b)) = (&first, &again) else {
        panic!("{first:?} {again:?}");
    };
    assert_eq!(a, b, "the same octets again");
    assert_eq!(
        sim.metric("certgate_duplicates_total", &[("listener", "auth")]),
        1.0
    );
    assert_eq!(sim.engine.in_progress().0, 1, "one conversation, not two");
    assert_eq!(nas.answer(first), Step::Continue);
    let hello = nas.request();
    let Got::Reply(flight) = sim.send(Listener::Auth, nas.from, &hello) else {
        panic!("no flight");
    };
    // 5 s later the cache has let go: the ClientHello is processed again,
    // and its EAP Identifier is one the conversation has passed.
    sim.advance(Duration::from_secs(6));
    sim.tick();
    assert!(matches!(
        sim.send(Listener::Auth, nas.from, &hello),
        Got::Nothing
    ));
    assert_eq!(
        sim.metric(
            "certgate_eap_discarded_total",
            &[("reason", "wrong_eap_identifier")]
        ),
        1.0
    );
    // The conversation itself goes on from the flight it got.
    assert_eq!(nas.answer(Got::Reply(flight)), Step::Continue);
    assert!(matches!(nas.authenticate(&mut sim), Step::Accept { .. }));
}

#[test]
fn an_idle_conversation_times_out() {
    let mut sim = Sim::new("");
    let mut nas = sim.nas("02-00-00-00-00-01");
    let identity = nas.request();
    let got = sim.send(Listener::Auth, nas.from, &identity);
    assert_eq!(nas.answer(got), Step::Continue);
    sim.advance(Duration::from_secs(31));
    sim.tick();
    assert_eq!(
        sim.metric(
            "certgate_eap_conversations_expired_total",
            &[("reason", "idle")]
        ),
        1.0
    );
    assert_eq!(sim.engine.in_progress().0, 0);
    assert_eq!(
        nas.authenticate(&mut sim),
        Step::Reject,
        "its State is gone"
    );
}

/// A full table makes room by evicting the conversation idle longest, but
/// never one that made progress within evictable_after.
#[test]
fn a_full_table_evicts_the_idlest_conversation() {
    let mut sim = Sim::new("max_conversations = 2\nmax_conversations_per_nas = 2");
    let mut stations: Vec<Nas> = (0..3)
        .map(|i| sim.nas(&format!("02-00-00-00-00-0{i}")))
        .collect();
    for nas in &mut stations[..2] {
        let r = nas.request();
        let got = sim.send(Listener::Auth, nas.from, &r);
        assert_eq!(nas.answer(got), Step::Continue);
    }
    // Full, and both are recent: the third is refused.
    let r = stations[2].request();
    let got = sim.send(Listener::Auth, stations[2].from, &r);
    assert_eq!(stations[2].answer(got), Step::Reject);
    // A second later the idlest goes to make room.
    sim.advance(Duration::from_secs(2));
    stations[2] = sim.nas("02-00-00-00-00-02");
    assert!(matches!(
        stations[2].authenticate(&mut sim),
        Step::Accept { .. }
    ));
    sim.tick();
    assert_eq!(
        sim.metric(
            "certgate_eap_conversations_evicted_total",
            &[("reason", "table_full")]
        ),
        1.0
    );
    assert_eq!(
        sim.metric(
            "certgate_eap_conversations_failed_total",
            &[("reason", "table_full")]
        ),
        1.0
    );
}

/// A reload swaps the configuration under a running conversation: its
/// handshake finishes with the TLS configuration it started with, and the
/// policy in force when it is authorized decides (the new rule's VLAN), as
/// for the next conversation.
#[test]
fn a_reload_applies_to_new_conversations() {
    let mut sim = Sim::new("");
    let mut running = sim.nas("02-00-00-00-00-01");
    let r = running.request();
    let got = sim.send(Listener::Auth, running.from, &r);
    assert_eq!(running.answer(got), Step::Continue);
    sim.reload(30);
    assert_eq!(
        running.authenticate(&mut sim),
        Step::Accept {
            keys_match: true,
            vlan: vlan(30)
        },
        "started before the reload, authorized after it"
    );
    let mut next = sim.nas("02-00-00-00-00-02");
    assert_eq!(
        next.authenticate(&mut sim),
        Step::Accept {
            keys_match: true,
            vlan: vlan(30)
        }
    );
}

/// The shell bounds a directory look-up by its deadline; should an answer
/// never come anyway, the engine gives the conversation up a second past
/// it, and a late answer changes nothing.
#[test]
fn a_directory_answer_that_never_comes_is_given_up() {
    let mut sim = Sim::new("");
    sim.directory_hangs = true;
    let mut nas = sim.nas("02-00-00-00-00-01");
    let ticket = loop {
        let r = nas.request();
        match sim.send(Listener::Auth, nas.from, &r) {
            Got::Waiting(ticket) => break ticket,
            got => assert_eq!(nas.answer(got), Step::Continue),
        }
    };
    assert_eq!(sim.engine.in_progress(), (1, 1));
    sim.advance(Duration::from_secs(5));
    sim.tick();
    assert_eq!(sim.engine.in_progress().1, 1, "within the deadline (5 s)");
    sim.advance(Duration::from_secs(2));
    sim.tick();
    assert_eq!(sim.engine.in_progress(), (0, 0), "given up");
    let late = sim.engine.resume(
        sim.now,
        ticket,
        Answer::Lookup(Ok(Lookup::NotFound)),
        &mut sim.rng,
    );
    assert!(matches!(late, Action::Nothing));
}

/// An Accounting-Request is answered only once the journal has it; a
/// failed write gets no answer, and the NAS's retransmission is stored
/// when the journal works again.
#[test]
fn accounting_is_answered_only_once_stored() {
    let mut sim = Sim::new("");
    let from: SocketAddr = "127.0.0.1:40001".parse().expect("address");
    let secret = crate::proto::wire::crypto::Secret::new(SECRET);
    let mut b = PacketBuilder::new(Code::AccountingRequest, 9, false);
    b.push_u32(40, 1).expect("fits");
    b.push(44, b"session-1").expect("fits");
    let request = b.finish_accounting_request(&secret);
    sim.journal_fails = Some("no_space");
    assert!(matches!(
        sim.send(Listener::Acct, from, &request),
        Got::Nothing
    ));
    assert!(sim.journal.is_empty());
    sim.journal_fails = None;
    let Got::Reply(reply) = sim.send(Listener::Acct, from, &request) else {
        panic!("no Accounting-Response");
    };
    let p = Packet::decode(&reply).expect("reply");
    assert_eq!(p.code(), Code::AccountingResponse);
    assert_eq!(sim.journal.len(), 1);
    assert!(String::from_utf8_lossy(&sim.journal[0]).contains("session-1"));
    assert_eq!(
        sim.metric(
            "certgate_dropped_total",
            &[("reason", "accounting_not_stored")]
        ),
        1.0
    );
    let page = sim
        .engine
        .sessions_json(&crate::proto::accounting::sessions::Query {
            limit: 10,
            ..Default::default()
        })
        .expect("accounting is on");
    assert!(page.contains("session-1"), "{page}");
}

/// RadSec through the engine: a NAS certificate names its client, a whole
/// conversation runs on the `radsec` secret, and a packet that fails
/// authentication or is malformed closes the connection, where UDP would
/// only drop it.
#[test]
fn radsec_packets_run_through_the_same_engine() {
    let mut sim = Sim::build("", true);
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("address");
    let alice_chain = rustls::pki_types::CertificateDer::pem_file_iter(
        sim.pki.dir().join("clients").join(format!("{ALICE}.pem")),
    )
    .expect("pem")
    .collect::<Result<Vec<_>, _>>()
    .expect("chain");
    let client = sim
        .engine
        .radsec_client(sim.now, peer, &alice_chain, false)
        .expect("alice's certificate names the cloud client");
    assert_eq!(client.name, "cloud");
    assert_eq!(
        client.secret,
        crate::proto::wire::crypto::Secret::new(b"radsec")
    );
    assert!(sim.engine.radsec_has_client("cloud") && !sim.engine.radsec_has_client("ap"));

    let stream = |sim: &mut Sim, packet: &[u8]| {
        let action = match sim.engine.receive_stream(sim.now, &client, peer, packet) {
            Received::Act(action) => action,
            Received::Process(request) => sim.engine.process(sim.now, request, &mut sim.rng),
        };
        sim.drive(action)
    };
    // A whole EAP-TLS conversation: MPPE keys under the radsec secret.
    let mut nas = sim.nas("02-00-00-00-00-09");
    nas.ex = Exchange::new(crate::proto::wire::crypto::Secret::new(b"radsec"), ALICE);
    nas.ex.calling_station = Some("02-00-00-00-00-09".into());
    let mut end = Step::NoAnswer;
    for _ in 0..20 {
        let request = nas.request();
        let got = stream(&mut sim, &request);
        end = nas.answer(got);
        if end != Step::Continue {
            break;
        }
    }
    assert_eq!(
        end,
        Step::Accept {
            keys_match: true,
            vlan: vlan(20)
        }
    );
    assert!(
        sim.metric(
            "certgate_requests_total",
            &[("listener", "radsec"), ("client", "cloud")]
        ) >= 4.0,
        "counted under the radsec listener and the client's name"
    );

    // Status-Server under the wrong secret: authentication fails, close.
    let forged = PacketBuilder::new(Code::StatusServer, 7, true)
        .finish_access_request(&[7; 16], &crate::proto::wire::crypto::Secret::new(SECRET));
    assert_eq!(stream(&mut sim, &forged), Got::Closed("authentication"));
    // An attribute running past the end: malformed, close.
    let mut broken = PacketBuilder::new(Code::StatusServer, 8, true)
        .finish_access_request(&[8; 16], &client.secret);
    let last = broken.len() - 18;
    broken[last + 1] = 200;
    assert_eq!(stream(&mut sim, &broken), Got::Closed("malformed"));
    // A code RadSec does not serve here is dropped; the connection stays.
    let mut coa = PacketBuilder::new(Code::StatusServer, 9, true)
        .finish_access_request(&[9; 16], &client.secret);
    coa[0] = 43;
    assert_eq!(stream(&mut sim, &coa), Got::Nothing);
    // And Status-Server is answered.
    let status = PacketBuilder::new(Code::StatusServer, 10, true)
        .finish_access_request(&[10; 16], &client.secret);
    let Got::Reply(reply) = stream(&mut sim, &status) else {
        panic!("Status-Server unanswered");
    };
    assert_eq!(
        Packet::decode(&reply).expect("reply").code(),
        Code::AccessAccept
    );

    // A certificate that names no client is refused and counted.
    let server_chain = rustls::pki_types::CertificateDer::pem_file_iter(sim.pki.path("server.pem"))
        .expect("pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    assert_eq!(
        sim.engine
            .radsec_client(sim.now, peer, &server_chain, false)
            .err(),
        Some("unknown_client")
    );
    assert_eq!(
        sim.metric(
            "certgate_radsec_handshakes_total",
            &[("reason", "unknown_client")]
        ),
        1.0
    );
}
