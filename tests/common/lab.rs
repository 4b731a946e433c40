//! An EAP-TLS lab for the tests: a PKI generated at test time with the
//! certificates every case needs, a users file, the `[tls]` configuration
//! that uses them, and eapol_test (Debian package eapoltest) as the peer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::proto::wire::crypto::Secret;
use certgate::supplicant::{Outcome, Supplicant, Transport, Versions, client_config};
use serde_json::Value;

use super::TestServer;

pub const ALICE: &str = "alice@example.org";
/// Issued through the intermediate CA.
pub const CAROL: &str = "carol@example.org";
pub const REVOKED: &str = "rev@example.org";
pub const EXPIRED: &str = "old@example.org";
/// serverAuth EKU only.
pub const NO_EKU: &str = "srv@example.org";
/// Valid certificate, disabled in the directory.
pub const DISABLED: &str = "mallory@example.org";
/// Valid certificate, not in the directory.
pub const UNKNOWN: &str = "zed@example.org";

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    /// A second CA that the server does not trust.
    pub other: Pki,
}

pub const USERS: &str = r#"
[users."alice@example.org"]
groups = ["staff"]
[users."carol@example.org"]
groups = ["staff"]
[users."rev@example.org"]
groups = ["staff"]
[users."old@example.org"]
groups = ["staff"]
[users."srv@example.org"]
groups = ["staff"]
[users."mallory@example.org"]
groups = ["staff"]
disabled = true
"#;

/// The rule the users file's groups meet.
pub const STAFF_RULE: &str = r#"
[[authz.rule]]
name = "staff"
groups_any = "staff"
vlan = 20
reply = ["Filter-Id = {group}", "Class = user={identity}", "Aruba-User-Role = employee"]
"#;

impl Lab {
    pub fn new(server_key: KeyType) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::open(&dir.path().join("pki"));
        pki.init("radius.example.org", server_key)
            .expect("pki init");
        let normal = ClientOptions::default();
        for name in [ALICE, REVOKED, DISABLED, UNKNOWN] {
            pki.issue_client(name, &normal).expect("client");
        }
        let via = ClientOptions {
            via_intermediate: true,
            ..ClientOptions::default()
        };
        pki.issue_client(CAROL, &via).expect("intermediate client");
        let expired = ClientOptions {
            valid_from_days: -30,
            valid_until_days: -1,
            ..ClientOptions::default()
        };
        pki.issue_client(EXPIRED, &expired).expect("expired client");
        let no_eku = ClientOptions {
            client_auth_eku: false,
            ..ClientOptions::default()
        };
        pki.issue_client(NO_EKU, &no_eku).expect("no-eku client");
        pki.revoke(REVOKED).expect("revoke");
        let other = Pki::open(&dir.path().join("other")).with_ca_name("an unrelated CA");
        other
            .init("radius.example.org", KeyType::EcdsaP256)
            .expect("other pki");
        other.issue_client(ALICE, &normal).expect("other client");
        std::fs::write(dir.path().join("users.toml"), USERS).expect("users");
        Lab { dir, pki, other }
    }

    /// `[eap]`, `[tls]` and `[authz]` sections for the test server, with
    /// the users file and the staff rule.
    pub fn config(&self, eap_extra: &str, tls_extra: &str) -> String {
        let authz = format!(
            "[authz]\ndirectory = \"file\"\nusers = {:?}\n{STAFF_RULE}",
            self.dir.path().join("users.toml").display().to_string(),
        );
        self.config_with_authz(eap_extra, tls_extra, &authz)
    }

    /// `[eap]` and `[tls]`, then the given authorization sections.
    pub fn config_with_authz(&self, eap_extra: &str, tls_extra: &str, authz: &str) -> String {
        let p = |n: &str| self.pki.path(n).display().to_string();
        format!(
            "[eap]\n{eap_extra}\n[tls]\ncertificate = {:?}\nprivate_key = {:?}\nca = [{:?}]\ncrls = [{:?}]\n{tls_extra}\n{authz}\n",
            p("server.pem"),
            p("server.key"),
            p("ca.pem"),
            p("crl.pem"),
        )
    }

    /// The Rust test supplicant with `name`'s certificate from this lab's PKI.
    pub fn supplicant(&self, name: &str, versions: Versions, resumption: bool) -> Supplicant {
        let (cert, key) = self.client_files(&self.pki, name);
        let config = client_config(&self.pki.path("ca.pem"), &cert, &key, versions, resumption)
            .expect("client config");
        Supplicant::new(config, name)
    }

    pub fn client_files(&self, pki: &Pki, name: &str) -> (PathBuf, PathBuf) {
        (
            pki.dir().join("clients").join(format!("{name}.pem")),
            pki.dir().join("clients").join(format!("{name}.key")),
        )
    }

    /// Writes an eapol_test configuration for `name`'s certificate from
    /// `pki`, trusting `ca`, with extra network-block lines.
    pub fn eapol_conf(&self, pki: &Pki, name: &str, ca: &Path, extra: &str) -> PathBuf {
        let (cert, key) = self.client_files(pki, name);
        let path = self
            .dir
            .path()
            .join(format!("eapol-{}.conf", rand::random::<u32>()));
        let text = certgate::pki::eapol_test_conf(name, ca, &cert, &key, extra);
        std::fs::write(&path, text).expect("eapol conf");
        path
    }
}

/// Runs eapol_test; returns (it printed SUCCESS, its whole output).
pub fn eapol_test(conf: &Path, server: SocketAddr, secret: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("eapol_test")
        .arg("-c")
        .arg(conf)
        .args([
            "-a",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
            "-s",
            secret,
            "-t",
            "5",
        ])
        .args(args)
        .output()
        .expect("eapol_test must be installed (apt-get install eapoltest)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let success = out.status.success() && text.lines().any(|l| l == "SUCCESS");
    (success, text)
}

/// One whole conversation of `sup` against `s`, from a fresh socket.
pub async fn authenticate(sup: &Supplicant, s: &TestServer) -> Outcome {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let transport = Transport::udp(socket.into(), s.auth);
    sup.authenticate(&transport, &Secret::new(super::SECRET.as_bytes()))
        .await
        .expect("conversation")
}

/// The n-th "access accepted" or "access rejected" log line.
pub fn outcome(server: &TestServer, message: &str, n: usize) -> Value {
    server
        .wait_nth(|v| v["message"] == message, n, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("fewer than {n} {message:?} log lines"))
}
