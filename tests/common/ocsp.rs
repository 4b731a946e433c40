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
use rustls::pki_types::pem::PemObject;

pub const SIGNER: &str = "ocsp-signer";

pub struct Responder {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// Accept and never answer.
    pub hang: Arc<AtomicBool>,
    /// Wait this many milliseconds before answering.
    pub delay_ms: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Requests answered.
    pub answered: Arc<AtomicUsize>,
    revoked: Arc<Mutex<HashSet<String>>>,
    pki_index: PathBuf,
    /// Per CA: (issuer key hash, CA certificate, responder certificate,
    /// responder key); `openssl ocsp` answers for the CA a request names.
    cas: Arc<Mutex<Vec<Ca>>>,
    /// Serials outside the PKI's index (the intermediate CA's), revoked or not.
    extra: Arc<Mutex<Vec<(String, bool)>>>,
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
            delay_ms: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            answered: Arc::new(AtomicUsize::new(0)),
            revoked: Arc::new(Mutex::new(HashSet::new())),
            pki_index: pki.path("index.txt"),
            cas: Arc::new(Mutex::new(vec![Ca::new(
                pki.path("ca.pem"),
                pki.dir().join(format!("clients/{SIGNER}.pem")),
                pki.dir().join(format!("clients/{SIGNER}.key")),
            )])),
            extra: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        let (hang, stop, answered) = (r.hang.clone(), r.stop.clone(), r.answered.clone());
        let delay = r.delay_ms.clone();
        let cas = r.cas.clone();
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
                std::thread::sleep(Duration::from_millis(delay.load(Ordering::Relaxed) as u64));
                if serve(stream, &dir, &index, &cas) {
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

    /// Re-reads the PKI's index: certificates issued since are known.
    pub fn reindex(&self) {
        self.write_index();
    }

    /// The index `openssl ocsp` reads, from the PKI's (`serial issuer
    /// status name` lines): V, or R for what the test revoked here.
    fn write_index(&self) {
        let text = std::fs::read_to_string(&self.pki_index).unwrap_or_default();
        let revoked = self.revoked.lock().expect("lock");
        let mut out = String::new();
        for (serial, r) in self.extra.lock().expect("lock").iter() {
            out.push_str(&format!(
                "{}\t301231235959Z\t{}\t{serial}\tunknown\t/CN=intermediate\n",
                if *r { "R" } else { "V" },
                if *r { "261101000000Z" } else { "" },
            ));
        }
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
        for ca in self.cas.lock().expect("lock").iter_mut() {
            ca.signer = files.certificate.clone();
            ca.key = files.key.clone();
        }
    }

    /// Also answers for `pki`'s intermediate CA (signing with a responder
    /// certificate it issued), and lists the intermediate's own serial
    /// (good) for questions about it.
    pub fn add_intermediate(&self, pki: &Pki) {
        let signing = ClientOptions {
            ocsp_signing: true,
            sans: false,
            via_intermediate: true,
            ..ClientOptions::default()
        };
        let files = pki
            .issue_client("ocsp-signer-int", &signing)
            .expect("signer");
        // The issued file holds the responder certificate, then the
        // intermediate: keep the first only.
        let pem = std::fs::read_to_string(&files.certificate).expect("pem");
        let end = pem.find("-----END CERTIFICATE-----").expect("pem")
            + "-----END CERTIFICATE-----\n".len();
        let signer = self.dir.join("signer-int.pem");
        std::fs::write(&signer, &pem[..end.min(pem.len())]).expect("signer");
        self.cas.lock().expect("lock").push(Ca::new(
            pki.path("intermediate.pem"),
            signer,
            files.key,
        ));
        let serial = serial_of(&pki.path("intermediate.pem"));
        self.extra.lock().expect("lock").push((serial, false));
        self.write_index();
    }

    /// Marks the intermediate CA revoked at the responder (in no CRL).
    pub fn revoke_intermediate(&self, pki: &Pki) {
        let serial = serial_of(&pki.path("intermediate.pem"));
        for e in self.extra.lock().expect("lock").iter_mut() {
            if e.0 == serial {
                e.1 = true;
            }
        }
        self.write_index();
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

/// A CA the responder answers for.
struct Ca {
    key_hash: Vec<u8>,
    cert: PathBuf,
    signer: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(cert: PathBuf, signer: PathBuf, key: PathBuf) -> Ca {
        use der::Decode;
        use sha1::Digest;
        let der = rustls::pki_types::CertificateDer::from_pem_file(&cert).expect("ca pem");
        let c = x509_cert::Certificate::from_der(&der).expect("ca der");
        let bits = c
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        Ca {
            key_hash: sha1::Sha1::digest(&bits).to_vec(),
            cert,
            signer,
            key,
        }
    }
}

/// A certificate's serial as `openssl ca` indexes write it.
fn serial_of(path: &std::path::Path) -> String {
    use der::Decode;
    let der = rustls::pki_types::CertificateDer::from_pem_file(path).expect("pem");
    let c = x509_cert::Certificate::from_der(&der).expect("der");
    certgate::proto::hex::encode(c.tbs_certificate.serial_number.as_bytes()).to_ascii_uppercase()
}

/// One HTTP exchange answered by `openssl ocsp` for the CA the request
/// names; false if it failed.
fn serve(
    mut s: TcpStream,
    dir: &std::path::Path,
    index: &std::path::Path,
    cas: &Mutex<Vec<Ca>>,
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
    let (ca, signer, key) = {
        use der::Decode;
        let hash = x509_ocsp::OcspRequest::from_der(&request)
            .ok()
            .and_then(|r| {
                r.tbs_request
                    .request_list
                    .first()
                    .map(|q| q.req_cert.issuer_key_hash.as_bytes().to_vec())
            });
        let cas = cas.lock().expect("lock");
        let Some(ca) = cas
            .iter()
            .find(|c| Some(&c.key_hash) == hash.as_ref())
            .or(cas.first())
        else {
            return false;
        };
        (ca.cert.clone(), ca.signer.clone(), ca.key.clone())
    };
    let (req, resp) = (dir.join("req.der"), dir.join("resp.der"));
    std::fs::write(&req, &request).expect("req");
    let ok = Command::new("openssl")
        .arg("ocsp")
        .arg("-index")
        .arg(index)
        .arg("-CA")
        .arg(&ca)
        .arg("-rsigner")
        .arg(&signer)
        .arg("-rkey")
        .arg(&key)
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
