//! OCSP queries over HTTP (hyper's HTTP/1.1 client on a tokio TCP
//! stream): POST of the DER request, or RFC 5019's GET when the engine
//! gives one, under one hard deadline that covers name resolution,
//! connect, send and a responder that accepts and never answers. Queries
//! for the same certificate in flight share one exchange.
//!
//! Moves bytes only: the engine builds the request and checks the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::sync::watch;

/// The largest answer read (responses are a few KB).
const MAX_ANSWER: usize = 64 * 1024;

type Outcome = Option<Result<Arc<[u8]>, String>>;

#[derive(Default)]
pub struct OcspClient {
    in_flight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

impl OcspClient {
    /// The responder's answer to `request` (POST to `url`, or GET of
    /// `get`), within `deadline`.
    pub async fn fetch(
        self: &Arc<Self>,
        key: &str,
        url: &str,
        get: Option<&str>,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, String> {
        let mut rx = {
            let mut map = self.in_flight.lock();
            match map.get(key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key.to_string(), rx.clone());
                    let (this, key, url, get) = (
                        self.clone(),
                        key.to_string(),
                        url.to_string(),
                        get.map(str::to_string),
                    );
                    tokio::spawn(async move {
                        let result = match tokio::time::timeout(
                            deadline,
                            exchange(&url, get.as_deref(), request),
                        )
                        .await
                        {
                            Ok(r) => r.map(Arc::from),
                            Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
                        };
                        this.in_flight.lock().remove(&key);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let wait = async {
            loop {
                if let Some(result) = rx.borrow_and_update().clone() {
                    return result.map(|b| b.to_vec());
                }
                if rx.changed().await.is_err() {
                    return Err("the query was abandoned".into());
                }
            }
        };
        // The exchange has its own deadline; this one bounds a follower
        // that joined late.
        tokio::time::timeout(deadline, wait)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", deadline.as_millis())))
    }
}

/// One HTTP/1.1 exchange with the responder.
async fn exchange(url: &str, get: Option<&str>, request: Vec<u8>) -> Result<Vec<u8>, String> {
    let target: hyper::Uri = get
        .unwrap_or(url)
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    let host = target
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_string();
    let port = target.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = target
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let authority = match target.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let builder = hyper::Request::builder()
        .uri(path)
        .header(hyper::header::HOST, authority);
    let req = match get {
        Some(_) => builder
            .method(hyper::Method::GET)
            .body(Full::new(Bytes::new())),
        None => builder
            .method(hyper::Method::POST)
            .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
            .body(Full::new(Bytes::from(request))),
    }
    .map_err(|e| e.to_string())?;
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}
