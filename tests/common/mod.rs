//! Test harness: starts the real `certgate` binary on ephemeral loopback
//! ports, learns the ports from its JSON "listening" log lines (readiness,
//! not sleeps), and offers helpers to talk to it with radclient, raw UDP and
//! HTTP. The process is killed when the harness is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

#[macro_use]
pub mod peers;
pub mod freeradius;
pub mod hostapd;
pub mod lab;
pub mod latency;
pub mod load;
pub mod ocsp;
pub mod poll;
pub mod postgres;
pub mod radsec;
pub mod slapd;

pub const SECRET: &str = "testing123";

/// A loopback address and port of a peer's own, from `tag` (random): no
/// port to pick and race for, and clear of a system RADIUS server bound
/// to *:1812.
pub fn private_loopback(tag: u32) -> (String, u16) {
    let ip = format!(
        "127.{}.{}.{}",
        1 + tag % 250,
        (tag >> 8) % 250,
        1 + (tag >> 16) % 250
    );
    (ip, 21000 + (tag >> 24) as u16 * 32)
}

/// A client block for the loopback address the tests send from.
pub fn loopback_client(extra: &str) -> String {
    format!("[[clients]]\nname = \"lo\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n{extra}\n")
}

pub struct TestServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    pub metrics: SocketAddr,
    /// The RadSec listener, when the configuration has one.
    pub radsec: Option<SocketAddr>,
    lines: Mutex<(Receiver<String>, Vec<Value>)>,
}

pub fn dictionary_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary")
}

pub fn config_text(clients: &str) -> String {
    format!(
        "[server]\nauth_listen = [\"127.0.0.1:0\"]\nacct_listen = [\"127.0.0.1:0\"]\ndictionary = {:?}\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n{clients}",
        dictionary_path().display().to_string()
    )
}

impl TestServer {
    pub fn start(clients: &str) -> TestServer {
        Self::start_with_env(clients, &[])
    }

    /// `start`, with extra environment (e.g. `CERTGATE_…` overrides).
    pub fn start_with_env(clients: &str, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("certgate.toml");
        std::fs::write(&config, config_text(clients)).expect("write config");
        let args = [
            "serve".to_string(),
            "--config".into(),
            config.display().to_string(),
        ];
        Self::spawn(dir, &args, env)
    }

    /// Runs the binary with `args` and extra environment, on ephemeral
    /// ports the caller arranged; waits until it listens.
    pub fn spawn(dir: tempfile::TempDir, args: &[String], env: &[(&str, &str)]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certgate"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start certgate");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = TestServer {
            child,
            dir,
            auth: "0.0.0.0:0".parse().expect("addr"),
            acct: "0.0.0.0:0".parse().expect("addr"),
            metrics: "0.0.0.0:0".parse().expect("addr"),
            radsec: None,
            lines: Mutex::new((rx, Vec::new())),
        };
        for (listener, slot) in [("auth", 0), ("acct", 1), ("metrics", 2)] {
            let line = server
                .wait_log(
                    |v| v["message"] == "listening" && v["listener"] == listener,
                    Duration::from_secs(30),
                )
                .unwrap_or_else(|| panic!("certgate never logged listening on {listener}"));
            let addr: SocketAddr = line["address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .expect("address");
            match slot {
                0 => server.auth = addr,
                1 => server.acct = addr,
                _ => server.metrics = addr,
            }
        }
        // RadSec listeners are bound before the metrics endpoint: logged
        // by now when configured.
        server.radsec = server
            .logs()
            .iter()
            .find(|v| v["message"] == "listening" && v["listener"] == "radsec")
            .and_then(|v| v["address"].as_str()?.parse().ok());
        server
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("certgate.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors (sockets included): a leak shows here.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits for a log line (parsed JSON) matching `pred`, searching lines
    /// already seen first.
    pub fn wait_log(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lines.lock().expect("lines");
        let (rx, seen) = &mut *guard;
        if let Some(v) = seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = rx.recv_timeout(left).ok()?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                eprintln!("certgate: {line}");
                continue;
            };
            seen.push(v.clone());
            if pred(&v) {
                return Some(v);
            }
        }
    }

    /// Waits until `n` log lines match `pred` and returns the n-th.
    pub fn wait_nth(
        &self,
        pred: impl Fn(&Value) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lines.lock().expect("lines");
        let (rx, seen) = &mut *guard;
        loop {
            if let Some(v) = seen.iter().filter(|v| pred(v)).nth(n.checked_sub(1)?) {
                return Some(v.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = rx.recv_timeout(left).ok()?;
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => seen.push(v),
                Err(_) => eprintln!("certgate: {line}"),
            }
        }
    }

    /// Every log line received so far.
    pub fn logs(&self) -> Vec<Value> {
        let mut guard = self.lines.lock().expect("lines");
        let (rx, seen) = &mut *guard;
        while let Ok(line) = rx.try_recv() {
            if let Ok(v) = serde_json::from_str(&line) {
                seen.push(v);
            }
        }
        seen.clone()
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit and returns how it ended; None if it
    /// is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll::until(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Polls a series until it has `want`: counters bumped after a reply is
    /// sent and gauges refreshed every second may lag what a client saw.
    pub fn wait_metric(&self, series: &str, want: f64) {
        self.wait_metric_within(series, want, Duration::from_secs(5))
    }

    pub fn wait_metric_within(&self, series: &str, want: f64, timeout: Duration) {
        let mut got = 0.0;
        let reached = poll::until(timeout, || {
            got = self.metric(series);
            (got == want).then_some(())
        });
        assert!(reached.is_some(), "{series} = {got}, want {want}");
    }

    /// Polls a series until it reaches at least `min`; returns its value.
    pub fn wait_metric_at_least(&self, series: &str, min: f64, timeout: Duration) -> f64 {
        let mut got = 0.0;
        poll::until(timeout, || {
            got = self.metric(series);
            (got >= min).then_some(())
        });
        got
    }

    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").1
    }

    /// The value of the series `series` (name with labels in the order the
    /// exposition prints them), 0 when absent.
    /// The sum of every series of a family, whatever their labels.
    pub fn metric_total(&self, family: &str) -> f64 {
        self.metrics_text()
            .lines()
            .filter(|l| {
                l.strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics_text(), series)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A minimal HTTP GET returning (status line, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    http_get_with(addr, path, &format!("Host: {addr}\r\n"))
}

/// `http_get` with the given header lines (each ending in CRLF).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\n{headers}\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Runs Debian's radclient (package freeradius-utils); returns whether a
/// reply arrived and everything it printed.
pub fn radclient(addr: SocketAddr, command: &str, secret: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("radclient")
        .args([
            "-x",
            "-r",
            "1",
            "-t",
            "1",
            &addr.to_string(),
            command,
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient must be installed (apt-get install freeradius-utils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input");
    let out = child.wait_with_output().expect("radclient");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "Received packet from … invalid Message-Authenticator" is radclient
    // refusing a reply: only a verified reply counts as an answer.
    let answered = text
        .lines()
        .any(|l| l.starts_with("Received ") && !l.starts_with("Received packet from"))
        && !text.contains("verification failed");
    (answered, text)
}

/// Sends `packet` from `socket` and waits up to `timeout` for one datagram.
pub fn exchange(
    socket: &UdpSocket,
    to: SocketAddr,
    packet: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    socket.send_to(packet, to).expect("send");
    receive(socket, timeout)
}

pub fn receive(socket: &UdpSocket, timeout: Duration) -> Option<Vec<u8>> {
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = vec![0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// `exchange` on a tokio socket: sends `packet` and waits up to `timeout`
/// for a datagram.
pub async fn exchange_async(
    socket: &tokio::net::UdpSocket,
    to: SocketAddr,
    packet: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    socket.send_to(packet, to).await.expect("send");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(timeout, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Fails the test unless `promtool check metrics` (Debian package
/// prometheus) accepts `exposition`.
pub fn promtool_check(exposition: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind test socket")
}

/// The certgate command line, as an operator runs it.
pub fn certgate(args: &[&str], config: &Path) -> (i32, String) {
    certgate_with_env(args, config, &[])
}

/// `certgate`, with the environment the server was given.
pub fn certgate_with_env(args: &[&str], config: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .envs(env.iter().copied())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run certgate");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
