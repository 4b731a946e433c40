//! FreeRADIUS (Debian package freeradius, 3.2) as a RadSec client: a proxy
//! that takes RADIUS/UDP from a NAS on loopback and forwards everything to
//! certgate over TLS with a NAS certificate (`home_server` with
//! `proto = tcp` and a `tls` block). Its configuration is written from
//! Debian's radiusd.conf into a temporary directory; the process is killed
//! by PID when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::poll;

pub struct FreeradiusProxy {
    child: Child,
    /// Where the NAS sends Access-Requests and Accounting-Requests.
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    pub dir: PathBuf,
}

/// The NAS side's secret (RADIUS/UDP to the proxy).
pub const NAS_SECRET: &str = "testing123";

impl FreeradiusProxy {
    /// Starts a proxy towards certgate's RadSec listener `server`,
    /// presenting `certificate` and `key`, trusting `ca` for the server's
    /// certificate (which must name radius.example.org); waits until it
    /// answers Status-Server.
    pub fn start(
        dir: &Path,
        server: SocketAddr,
        certificate: &Path,
        key: &Path,
        ca: &Path,
    ) -> FreeradiusProxy {
        let tag: u32 = rand::random();
        let fr = dir.join(format!("freeradius-{tag}"));
        for sub in ["sites-enabled", "mods-enabled", "run", "log"] {
            std::fs::create_dir_all(fr.join(sub)).expect("freeradius dirs");
        }
        let etc = Path::new("/etc/freeradius/3.0");
        let main =
            std::fs::read_to_string(etc.join("radiusd.conf")).expect("Debian's radiusd.conf");
        let main: String = main
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("user = freerad") || t.starts_with("group = freerad") {
                    String::new()
                } else if t.starts_with("logdir = ") {
                    format!("logdir = {}", fr.join("log").display())
                } else if t.starts_with("run_dir = ") {
                    format!("run_dir = {}", fr.join("run").display())
                } else if t.starts_with("$INCLUDE clients.conf") {
                    format!("$INCLUDE {}", fr.join("clients.conf").display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(fr.join("radiusd.conf"), main).expect("radiusd.conf");
        for shared in ["dictionary", "policy.d", "templates.conf", "trigger.conf"] {
            let status = Command::new("cp")
                .arg("-r")
                .arg(etc.join(shared))
                .arg(&fr)
                .status()
                .expect("cp");
            assert!(status.success(), "copy {shared}");
        }
        let (ip, port) = super::private_loopback(tag);
        let auth: SocketAddr = format!("{ip}:{port}").parse().expect("address");
        let acct: SocketAddr = format!("{ip}:{}", port + 1).parse().expect("address");
        std::fs::write(
            fr.join("clients.conf"),
            format!(
                "client loopback {{\n  ipaddr = 127.0.0.0/8\n  secret = {NAS_SECRET}\n  require_message_authenticator = no\n}}\n"
            ),
        )
        .expect("clients.conf");
        std::fs::write(
            fr.join("proxy.conf"),
            format!(
                "proxy server {{\n  default_fallback = no\n}}\n\
                 home_server certgate {{\n  type = auth+acct\n  ipaddr = {}\n  port = {}\n  proto = tcp\n  secret = radsec\n\
                 \x20 response_window = 10\n  status_check = none\n  tls {{\n    private_key_file = {}\n    certificate_file = {}\n\
                 \x20   ca_file = {}\n    check_cert_cn = radius.example.org\n    fragment_size = 8192\n    cipher_list = \"DEFAULT\"\n\
                 \x20   tls_min_version = \"1.2\"\n    tls_max_version = \"1.3\"\n  }}\n}}\n\
                 home_server_pool certgate {{\n  type = fail-over\n  home_server = certgate\n}}\n\
                 realm certgate {{\n  auth_pool = certgate\n  acct_pool = certgate\n  nostrip\n}}\n",
                server.ip(),
                server.port(),
                key.display(),
                certificate.display(),
                ca.display(),
            ),
        )
        .expect("proxy.conf");
        std::fs::write(
            fr.join("sites-enabled/proxy"),
            format!(
                "server proxy {{\n  listen {{\n    type = auth\n    ipaddr = {ip}\n    port = {port}\n  }}\n\
                 \x20 listen {{\n    type = acct\n    ipaddr = {ip}\n    port = {}\n  }}\n\
                 \x20 authorize {{\n    update control {{\n      &Proxy-To-Realm := \"certgate\"\n    }}\n  }}\n\
                 \x20 preacct {{\n    update control {{\n      &Proxy-To-Realm := \"certgate\"\n    }}\n  }}\n\
                 \x20 authenticate {{\n  }}\n  accounting {{\n  }}\n}}\n",
                port + 1
            ),
        )
        .expect("site");
        let child = Command::new("freeradius")
            .arg("-d")
            .arg(&fr)
            .args(["-f", "-l"])
            .arg(fr.join("log/radius.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("freeradius must be installed (apt-get install freeradius)");
        let proxy = FreeradiusProxy {
            child,
            auth,
            acct,
            dir: fr,
        };
        // Status-Server is answered by the proxy itself.
        poll::expect(Duration::from_secs(20), "freeradius answers on UDP", || {
            let (ok, _) =
                super::radclient(auth, "status", NAS_SECRET, "Message-Authenticator = 0x00\n");
            ok.then_some(())
        });
        proxy
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/radius.log")).unwrap_or_default()
    }
}

impl Drop for FreeradiusProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
