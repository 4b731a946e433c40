//! An OCSP responder for the tests: `openssl ocsp` answers each request
//! (`-reqin`/`-respout`, signed by a delegated responder certificate the
//! lab's CA issued for OCSP signing), behind a small HTTP server of the
//! test's own on 127.0.0.1 — `openssl ocsp -port` binds every address.
//! It can be told to accept connections and never answer (a hung
//! responder), or be stopped (connection refused). Its index is written
//! from the lab PKI's, with the certificates the test marks revoked: a
//! certificate can be revoked here and in no CRL.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certgate::pki::{ClientOptions, Pki};

pub const SIGNER: &str = "ocsp-signer";

pub struct Responder {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// Accept and never answer.
    pub hang: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Requests answered.
    pub answered: Arc<AtomicUsize>,
    revoked: Arc<Mutex<HashSet<String>>>,
    pki_index: PathBuf,
    /// The responder certificate and key `openssl ocsp` signs with.
    signer: Arc<Mutex<(PathBuf, PathBuf)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    /// Binds the port (so certificates can name it in their AIA) and
    /// issues the responder's certificate from `pki`.
    pub fn start(pki: &Pki) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let signing = ClientOptions {
            ocsp_signing: true,
            sans: false,
            ..ClientOptions::default()
        };
        pki.issue_client(SIGNER, &signing)
            .expect("responder certificate");
        let dir = pki.dir().join("ocsp");
        std::fs::create_dir_all(&dir).expect("dir");
        let mut r = Responder {
            addr,
            dir: dir.clone(),
            hang: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            answered: Arc::new(AtomicUsize::new(0)),
            revoked: Arc::new(Mutex::new(HashSet::new())),
            pki_index: pki.path("index.txt"),
            signer: Arc::new(Mutex::new((
                pki.dir().join(format!("clients/{SIGNER}.pem")),
                pki.dir().join(format!("clients/{SIGNER}.key")),
            ))),
            thread: None,
        };
        let (hang, stop, answered) = (r.hang.clone(), r.stop.clone(), r.answered.clone());
        let ca = pki.path("ca.pem");
        let signer = r.signer.clone();
        let index = dir.join("index.txt");
        r.write_index();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                if hang.load(Ordering::Relaxed) {
                    held.push(stream);
                    continue;
                }
                let (cert, key) = signer.lock().expect("lock").clone();
                if serve(stream, &dir, &index, &ca, &cert, &key) {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        r.thread = Some(thread);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Marks `name`'s certificates revoked in the responder's index only.
    pub fn revoke(&self, name: &str) {
        self.revoked.lock().expect("lock").insert(name.to_string());
        self.write_index();
    }

    /// The index `openssl ocsp` reads, from the PKI's (`serial issuer
    /// status name` lines): V, or R for what the test revoked here.
    fn write_index(&self) {
        let text = std::fs::read_to_string(&self.pki_index).unwrap_or_default();
        let revoked = self.revoked.lock().expect("lock");
        let mut out = String::new();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(4, ' ').collect();
            let [serial, _, status, name] = f[..] else {
                continue;
            };
            let r = status == "revoked" || revoked.contains(name);
            out.push_str(&format!(
                "{}\t301231235959Z\t{}\t{}\tunknown\t/CN={name}\n",
                if r { "R" } else { "V" },
                if r { "261101000000Z" } else { "" },
                serial.to_ascii_uppercase()
            ));
        }
        std::fs::write(self.dir.join("index.txt"), out).expect("index");
    }

    /// Signs from now on with a responder certificate of `other`, a CA
    /// that did not issue the client certificates: a forged answer.
    pub fn forge_with(&self, other: &Pki) {
        let signing = ClientOptions {
            ocsp_signing: true,
            sans: false,
            ..ClientOptions::default()
        };
        let files = other.issue_client(SIGNER, &signing).expect("forger");
        *self.signer.lock().expect("lock") = (files.certificate, files.key);
    }

    /// Stops answering: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP exchange answered by `openssl ocsp`; false if it failed.
fn serve(
    mut s: TcpStream,
    dir: &std::path::Path,
    index: &std::path::Path,
    ca: &std::path::Path,
    signer: &std::path::Path,
    key: &std::path::Path,
) -> bool {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default().to_string();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let request = if first.starts_with("GET ") {
        use base64::Engine as _;
        let path = first.split(' ').nth(1).unwrap_or("/");
        let b64 = path.rsplit('/').next().unwrap_or("");
        let b64: String =
            form_urlencoded::parse(format!("x={}", b64.replace('+', "%2B")).as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default();
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(r) => r,
            Err(_) => return false,
        }
    } else {
        body
    };
    let (req, resp) = (dir.join("req.der"), dir.join("resp.der"));
    std::fs::write(&req, &request).expect("req");
    let ok = Command::new("openssl")
        .arg("ocsp")
        .arg("-index")
        .arg(index)
        .arg("-CA")
        .arg(ca)
        .arg("-rsigner")
        .arg(signer)
        .arg("-rkey")
        .arg(key)
        .arg("-reqin")
        .arg(&req)
        .arg("-respout")
        .arg(&resp)
        .args(["-ndays", "1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return false;
    }
    let answer = std::fs::read(&resp).expect("resp");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    s.write_all(head.as_bytes()).is_ok() && s.write_all(&answer).is_ok()
}
