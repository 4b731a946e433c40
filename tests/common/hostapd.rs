//! A wired 802.1X port for the tests: a veth pair whose one end is the
//! port of a real authenticator (hostapd, driver `wired`, its RADIUS and
//! its DAS server on loopback) and whose other end sits in a network
//! namespace of the test's own with a real supplicant (wpa_supplicant)
//! on it. The port's state is read from hostapd (`hostapd_cli all_sta`
//! and its event log). Everything started is stopped by PID, and the veth
//! pair and namespace are removed, when the lab is dropped.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lab::Lab;
use super::poll;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether a wired-port test can run here: the peers are installed
/// (`require!` semantics) and this process may create namespaces and links
/// (root; CI runs as root, so there a missing privilege fails the test).
pub fn available(test: &str) -> bool {
    if !super::peers::available(
        test,
        &["hostapd", "hostapd_cli", "wpa_supplicant", "wpa_cli"],
    ) {
        return false;
    }
    if !privileged() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped {test}: creating a veth pair and a namespace needs root");
        return false;
    }
    true
}

/// Whether this process may create namespaces and links (root).
pub fn privileged() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub struct WiredPort {
    pub dir: tempfile::TempDir,
    ns: String,
    /// The veth end hostapd serves (root namespace).
    port: String,
    /// The veth end in the namespace, where the supplicant runs.
    peer: String,
    hostapd: Child,
    supplicant: Option<Child>,
    /// hostapd's DAS server (127.0.0.1).
    pub das_port: u16,
    pub das_secret: String,
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {}", args.join(" "));
}

/// A UDP port free on loopback now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl WiredPort {
    /// hostapd on a fresh port, sending RADIUS to `auth` and `acct` with
    /// `secret`, its DAS server requiring Event-Timestamp and
    /// Message-Authenticator from 127.0.0.1 with `das_secret`.
    pub fn start(
        auth: std::net::SocketAddr,
        acct: std::net::SocketAddr,
        secret: &str,
        das_secret: &str,
    ) -> WiredPort {
        Self::start_with_servers(&[(auth, acct)], secret, das_secret)
    }

    /// `start` with several RADIUS servers, in hostapd's failover order.
    pub fn start_with_servers(
        servers: &[(std::net::SocketAddr, std::net::SocketAddr)],
        secret: &str,
        das_secret: &str,
    ) -> WiredPort {
        let radius: String = servers
            .iter()
            .map(|(auth, acct)| {
                format!(
                    "auth_server_addr={}\nauth_server_port={}\nauth_server_shared_secret={secret}\n\
                     acct_server_addr={}\nacct_server_port={}\nacct_server_shared_secret={secret}\n",
                    auth.ip(),
                    auth.port(),
                    acct.ip(),
                    acct.port()
                )
            })
            .collect();
        let n = std::process::id() % 100_000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let (ns, port, peer) = (format!("cg{n}"), format!("cg{n}a"), format!("cg{n}b"));
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &port, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["link", "set", &port, "up"]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", &peer, "up"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let das_port = free_udp_port();
        let conf = dir.path().join("hostapd.conf");
        std::fs::write(
            &conf,
            format!(
                "interface={port}\ndriver=wired\nieee8021x=1\neap_reauth_period=0\nuse_pae_group_addr=1\n\
                 own_ip_addr=127.0.0.1\nnas_identifier=port-{n}\n{radius}\
                 radius_das_port={das_port}\nradius_das_client=127.0.0.1 {das_secret}\n\
                 radius_das_require_event_timestamp=1\nradius_das_require_message_authenticator=1\n\
                 ctrl_interface={}\n",
                dir.path().join("hostapd-ctrl").display()
            ),
        )
        .expect("hostapd.conf");
        let log = std::fs::File::create(dir.path().join("hostapd.log")).expect("log");
        let hostapd = Command::new("hostapd")
            .arg("-t")
            .arg(&conf)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start hostapd (apt-get install hostapd)");
        let lab = WiredPort {
            dir,
            ns,
            port,
            peer,
            hostapd,
            supplicant: None,
            das_port,
            das_secret: das_secret.to_string(),
        };
        poll::expect(
            Duration::from_secs(10),
            "hostapd never enabled its port",
            || lab.events("AP-ENABLED").first().copied(),
        );
        lab
    }

    /// Starts (or replaces) the supplicant on the port with `name`'s
    /// certificate from `lab`'s PKI (EAP-TLS, TLS 1.2 as wpa_supplicant
    /// 2.10 offers by default). Each is a new device: a MAC address of its
    /// own (hostapd holds a station that failed in its quiet period).
    pub fn connect(&mut self, lab: &Lab, name: &str) {
        self.connect_with(lab, name, "");
    }

    /// `connect`, with extra network-block lines (e.g. a phase1 that
    /// offers TLS 1.3).
    pub fn connect_with(&mut self, lab: &Lab, name: &str, extra: &str) {
        self.disconnect_supplicant();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mac = format!(
            "02:c9:{:02x}:{:02x}:{:02x}:{:02x}",
            (n >> 8) as u8,
            n as u8,
            rand::random::<u8>(),
            rand::random::<u8>()
        );
        for args in [
            vec!["link", "set", "dev", &self.peer, "down"],
            vec!["link", "set", "dev", &self.peer, "address", &mac],
            vec!["link", "set", "dev", &self.peer, "up"],
        ] {
            let mut all = vec!["netns", "exec", &self.ns, "ip"];
            all.extend(args);
            ip(&all);
        }
        let (cert, key) = lab.client_files(&lab.pki, name);
        let conf = self.dir.path().join(format!("wpa-{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "ctrl_interface={}\nap_scan=0\neapol_version=2\nnetwork={{\n key_mgmt=IEEE8021X\n eap=TLS\n identity=\"{name}\"\n ca_cert=\"{}\"\n client_cert=\"{}\"\n private_key=\"{}\"\n eapol_flags=0\n{extra}\n}}\n",
                self.dir.path().join("wpa-ctrl").display(),
                lab.pki.path("ca.pem").display(),
                cert.display(),
                key.display()
            ),
        )
        .expect("wpa conf");
        let log =
            std::fs::File::create(self.dir.path().join(format!("wpa-{name}.log"))).expect("log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "wpa_supplicant",
                "-t",
                "-D",
                "wired",
                "-i",
                &self.peer,
                "-c",
            ])
            .arg(&conf)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start wpa_supplicant (apt-get install wpasupplicant)");
        self.supplicant = Some(child);
    }

    /// Stops the supplicant (its PID), if one runs.
    pub fn disconnect_supplicant(&mut self) {
        if let Some(mut c) = self.supplicant.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the running supplicant to authenticate again.
    pub fn reauthenticate(&self) {
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.ns, "wpa_cli", "-p"])
            .arg(self.dir.path().join("wpa-ctrl"))
            .arg("reauthenticate")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "wpa_cli reauthenticate");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hostapd.log")
    }

    /// The Unix times (hostapd's `-t` stamps) of every event line holding
    /// `needle`, in order.
    pub fn events(&self, needle: &str) -> Vec<f64> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split(':').next()?.trim().parse().ok())
            .collect()
    }

    /// Waits for the n-th (1-based) event line holding `needle`; its time.
    pub fn wait_event(&self, needle: &str, n: usize, timeout: Duration) -> f64 {
        poll::expect(
            timeout,
            &format!("hostapd logged fewer than {n} {needle:?}"),
            || self.events(needle).get(n - 1).copied(),
        )
    }

    /// Whether hostapd has an authorized station on the port now.
    pub fn authorized(&self) -> bool {
        Command::new("hostapd_cli")
            .arg("-p")
            .arg(self.dir.path().join("hostapd-ctrl"))
            .arg("all_sta")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("[AUTHORIZED]"))
    }
}

/// Now, as Unix seconds (to compare with hostapd's stamps).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Drop for WiredPort {
    fn drop(&mut self) {
        self.disconnect_supplicant();
        let _ = self.hostapd.kill();
        let _ = self.hostapd.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.port])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
