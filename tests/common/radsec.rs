//! A RadSec lab: the EAP-TLS lab plus a NAS PKI (an organisation CA, as a
//! cloud controller has, apart from the EAP CA) with the NAS certificates
//! every case needs, the `[radsec]` configuration that trusts it, TLS
//! client settings for a NAS, and radsecproxy (Debian package radsecproxy)
//! as a real NAS side: eapol_test → UDP → radsecproxy → TLS → certgate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::supplicant::{RadsecLink, Versions, client_config_with};
use rustls::pki_types::ServerName;

use super::lab::Lab;
use super::{TestServer, poll};

/// NAS certificates from the NAS CA: two access points of the `aps`
/// client, one revoked, and one that matches no client entry.
pub const AP1: &str = "ap1.nas.example.org";
pub const AP2: &str = "ap2.nas.example.org";
pub const REVOKED_AP: &str = "gone.nas.example.org";
pub const STRANGER: &str = "printer.elsewhere.example";

/// The client entry every NAS certificate of the lab's fleet matches.
pub const APS: &str = "[[radsec.clients]]\nname = \"aps\"\nnames = [\"*.nas.example.org\"]\n";

/// The environment `RadsecLab::start` gives the server (a RadSec listener
/// on an ephemeral port), for commands that read its configuration.
pub const LISTEN: &[(&str, &str)] = &[("CERTGATE_SERVER__RADSEC_LISTEN", "127.0.0.1:0")];

pub struct RadsecLab {
    pub lab: Lab,
    /// The NAS organisation CA.
    pub nas: Pki,
}

impl RadsecLab {
    pub fn new() -> RadsecLab {
        let lab = Lab::new(KeyType::EcdsaP256);
        let nas = Pki::open(&lab.dir.path().join("nas")).with_ca_name("NAS organisation CA");
        nas.init("unused.nas.example.org", KeyType::EcdsaP256)
            .expect("nas pki");
        for name in [AP1, AP2, REVOKED_AP, STRANGER] {
            nas.issue_client(name, &ClientOptions::default())
                .expect("nas certificate");
        }
        nas.revoke(REVOKED_AP).expect("revoke");
        // An access point whose certificate comes from a CA certgate does
        // not trust (the EAP lab's unrelated CA).
        lab.other
            .issue_client(AP1, &ClientOptions::default())
            .expect("untrusted nas certificate");
        RadsecLab { lab, nas }
    }

    /// The whole configuration after `[server]`: EAP-TLS and authorization
    /// from the EAP lab, `[radsec]` with `radsec_extra`, then `clients`.
    pub fn config(&self, radsec_extra: &str, clients: &str) -> String {
        let n = |f: &str| self.nas.path(f).display().to_string();
        format!(
            "{}\n[radsec]\nca = [{:?}]\ncrls = [{:?}]\n{radsec_extra}\n{clients}",
            self.lab.config("", ""),
            n("ca.pem"),
            n("crl.pem"),
        )
    }

    /// A certgate with RadSec on an ephemeral loopback port.
    pub fn start(&self, radsec_extra: &str, clients: &str) -> TestServer {
        let s = TestServer::start_with_env(&self.config(radsec_extra, clients), LISTEN);
        assert!(s.radsec.is_some(), "certgate logged no radsec listener");
        s
    }

    /// TLS settings of a NAS with `name`'s certificate from `pki`,
    /// trusting the server's CA.
    pub fn nas_tls(&self, pki: &Pki, name: &str, versions: Versions) -> Arc<rustls::ClientConfig> {
        let (cert, key) = self.lab.client_files(pki, name);
        client_config_with(
            &self.lab.pki.path("ca.pem"),
            &cert,
            &key,
            versions,
            true,
            true,
        )
        .expect("nas tls")
    }

    /// A RadSec connection from a NAS with `name`'s certificate.
    pub async fn connect(
        &self,
        s: &TestServer,
        pki: &Pki,
        name: &str,
        versions: Versions,
    ) -> Result<Arc<RadsecLink>, certgate::supplicant::SupplicantError> {
        RadsecLink::connect(
            s.radsec.expect("radsec listener"),
            self.nas_tls(pki, name, versions),
            ServerName::try_from("radius.example.org").expect("name"),
        )
        .await
    }
}

/// radsecproxy as the NAS side: UDP in on `udp` (secret `testing123`,
/// from anywhere on loopback), RadSec out to certgate with a NAS
/// certificate. Killed (by PID) when dropped.
pub struct Radsecproxy {
    child: Child,
    pub udp: SocketAddr,
    pub log: PathBuf,
}

/// What radsecproxy's TLS towards certgate may use.
#[derive(Clone, Copy)]
pub enum TlsVersion {
    V12,
    V13,
}

impl Radsecproxy {
    /// Starts radsecproxy towards `server` with `name`'s certificate from
    /// `pki` (None: no certificate at all), and waits until its UDP side
    /// answers Status-Server (radsecproxy answers it itself).
    pub fn start(
        lab: &RadsecLab,
        server: SocketAddr,
        nas: Option<(&Pki, &str)>,
        version: TlsVersion,
    ) -> Radsecproxy {
        let dir = lab.lab.dir.path();
        let tag: u32 = rand::random();
        let (ip, port) = super::private_loopback(tag);
        let udp: SocketAddr = format!("{ip}:{port}").parse().expect("address");
        let log = dir.join(format!("radsecproxy-{tag}.log"));
        let identity = match nas {
            Some((pki, name)) => {
                let (cert, key) = lab.lab.client_files(pki, name);
                format!(
                    "    CertificateFile {}\n    CertificateKeyFile {}\n",
                    cert.display(),
                    key.display()
                )
            }
            None => String::new(),
        };
        let version = match version {
            TlsVersion::V12 => "TLS1_2",
            TlsVersion::V13 => "TLS1_3",
        };
        let conf = format!(
            "ListenUDP {udp}\nLogLevel 4\nLogDestination file://{log}\nPidFile {pid}\n\
             tls default {{\n    CACertificateFile {ca}\n{identity}    TlsVersion {version}\n}}\n\
             client loopback {{\n    host 127.0.0.0/8\n    type udp\n    secret testing123\n}}\n\
             server certgate {{\n    host {host}\n    port {port}\n    type tls\n    secret radsec\n\
             \x20   CertificateNameCheck off\n    MatchCertificateAttribute SubjectAltName:DNS:/^radius\\.example\\.org$/\n\
             \x20   StatusServer auto\n}}\n\
             realm * {{\n    server certgate\n    accountingServer certgate\n}}\n",
            log = log.display(),
            pid = dir.join(format!("radsecproxy-{tag}.pid")).display(),
            ca = lab.lab.pki.path("ca.pem").display(),
            host = server.ip(),
            port = server.port(),
        );
        let path = dir.join(format!("radsecproxy-{tag}.conf"));
        std::fs::write(&path, conf).expect("radsecproxy conf");
        let child = Command::new("radsecproxy")
            .args(["-f", "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("radsecproxy must be installed (apt-get install radsecproxy)");
        let proxy = Radsecproxy { child, udp, log };
        let status = certgate::proto::wire::PacketBuilder::new(
            certgate::proto::wire::Code::StatusServer,
            1,
            true,
        )
        .finish_access_request(
            &[1; 16],
            &certgate::proto::wire::crypto::Secret::new(super::SECRET.as_bytes()),
        );
        let socket = super::udp();
        poll::expect(
            Duration::from_secs(10),
            "radsecproxy answers on UDP",
            || super::exchange(&socket, udp, &status, Duration::from_millis(100)),
        );
        proxy
    }

    /// radsecproxy's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Radsecproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
