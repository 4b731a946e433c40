//! The HTTP endpoint on `metrics.listen`: `GET /metrics` (the Prometheus
//! text exposition) and, only when `metrics.sessions = true`, `GET
//! /sessions` (live accounting sessions: user names, MACs, addresses),
//! which then needs `Authorization: Bearer <token>`.
//!
//! Safe to expose: connections are capped (`metrics.max_connections`;
//! past it a connection is closed at once and counted), the request head
//! must arrive within `metrics.read_timeout` and the answer leave within
//! it, accept errors (EMFILE under a connection flood) back off instead of
//! spinning, and the Host header must be an IP literal, `localhost` or one
//! of `metrics.hosts` (a DNS-rebinding page in an operator's browser names
//! its own host). `/sessions` pages hold at most 1000 sessions.
//!
//! The head is parsed by `httparse` and the query by `form_urlencoded`;
//! the server is otherwise hand-written: one GET, one answer, close — not
//! worth hyper's build time on our 2-core builders. The routing decision
//! (`route`) is plain code, tested without sockets.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::accept::Acceptor;
use crate::metrics::Metrics;
use crate::proto::accounting::sessions::{Query, parse_cursor};

/// Largest request head read.
const MAX_HEAD: usize = 8192;
/// Sessions per `/sessions` page when the query names no `limit`, and the
/// most it may ask for.
pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1000;

/// A bearer token; compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Arc<[u8]>);

impl BearerToken {
    pub fn new(token: &str) -> Self {
        BearerToken(token.as_bytes().into())
    }

    fn admits(&self, presented: &[u8]) -> bool {
        bool::from(self.0.ct_eq(presented))
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// `[metrics]` beyond the listen address, as validated by the
/// configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// `/sessions` is served, behind this token, only when set.
    pub sessions_token: Option<BearerToken>,
    /// Host names (lower case, no port) accepted besides IP literals and
    /// `localhost`.
    pub hosts: Vec<String>,
    pub max_connections: usize,
    pub read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            sessions_token: None,
            hosts: Vec::new(),
            max_connections: 64,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Renders a page of live sessions (accounting's).
pub type SessionsPage = Arc<dyn Fn(&Query) -> String + Send + Sync>;

/// What the endpoint serves.
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    /// None when accounting is off.
    pub sessions: Option<SessionsPage>,
    /// Where `/sessions?cluster=1` reads every node's open sessions; None
    /// without `accounting.postgres`.
    pub cluster: Option<crate::config::PostgresConfig>,
    pub settings: HttpSettings,
}

/// The parts of a request head that routing looks at.
#[derive(Debug, Default)]
pub struct Head<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub host: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
}

/// An answer: status line, content type, body and extra header lines.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
    pub headers: &'static str,
    /// `/sessions?cluster=1`: the body comes from PostgreSQL, asked after
    /// routing (the only answer that waits on the outside world).
    pub cluster: Option<ClusterQuery>,
}

/// What `/sessions?cluster=1` asks the database for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterQuery {
    pub user: Option<String>,
    pub calling_station: Option<String>,
    pub limit: i64,
}

/// Parses `/sessions?cluster=1`'s query: `user`, `calling_station`,
/// `limit` (1..=1000, default 100).
pub fn cluster_query(query: &str) -> Result<ClusterQuery, String> {
    let mut q = ClusterQuery {
        limit: PAGE_DEFAULT as i64,
        ..ClusterQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "cluster" if value == "1" => {}
            "user" => q.user = Some(value.into_owned()),
            "calling_station" => q.calling_station = Some(value.into_owned()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => q.limit = n as i64,
                _ => return Err(format!("limit {value:?} is not 1..{PAGE_MAX}")),
            },
            other => return Err(format!("unknown parameter {other:?} (cluster view)")),
        }
    }
    Ok(q)
}

impl Answer {
    fn text(status: &'static str, body: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            headers: "",
            cluster: None,
        }
    }

    /// The path label for metrics: a fixed word, never the request's path.
    fn label(path: &str) -> &'static str {
        match path {
            "/metrics" => "metrics",
            "/sessions" => "sessions",
            _ => "other",
        }
    }
}

/// Whether a Host header names this endpoint: an IP literal (any: no DNS
/// rebinding goes through one), `localhost`, or a configured name.
fn host_allowed(host: &[u8], hosts: &[String]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Parses `/sessions`'s query: `user`, `nas`, `limit` (1..=1000, default
/// 100) and `after` (the `next` cursor of the previous page).
pub fn sessions_query(query: &str) -> Result<Query, String> {
    let mut q = Query {
        limit: PAGE_DEFAULT,
        ..Query::default()
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "user" => q.user = Some(value.into_owned()),
            "nas" => q.nas = Some(value.into_owned()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => q.limit = n,
                _ => return Err(format!("limit {value:?} is not 1..{PAGE_MAX}")),
            },
            "after" => match parse_cursor(&value) {
                Some(key) => q.after = Some(key),
                None => return Err(format!("after {value:?} is not a page cursor")),
            },
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(q)
}

/// Decides the answer to one request.
pub fn route(head: &Head<'_>, endpoint: &Endpoint) -> Answer {
    let settings = &endpoint.settings;
    if !head.host.is_some_and(|h| host_allowed(h, &settings.hosts)) {
        return Answer::text(
            "421 Misdirected Request",
            "Host is not an address or a name in metrics.hosts\n",
        );
    }
    if head.method != "GET" {
        return Answer {
            headers: "Allow: GET\r\n",
            ..Answer::text("405 Method Not Allowed", "")
        };
    }
    let (path, query) = head.target.split_once('?').unwrap_or((head.target, ""));
    match path {
        "/metrics" => Answer {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: endpoint.metrics.render(),
            headers: "",
            cluster: None,
        },
        "/sessions" => {
            let (Some(token), Some(page)) = (&settings.sessions_token, &endpoint.sessions) else {
                return Answer::text("404 Not Found", "not found\n");
            };
            let presented = head
                .authorization
                .and_then(|a| a.strip_prefix(b"Bearer "))
                .map(<[u8]>::trim_ascii);
            if !presented.is_some_and(|p| token.admits(p)) {
                return Answer {
                    headers: "WWW-Authenticate: Bearer realm=\"certgate\"\r\n",
                    ..Answer::text("401 Unauthorized", "a bearer token is required\n")
                };
            }
            let cluster = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "cluster");
            if cluster {
                if endpoint.cluster.is_none() {
                    return Answer::text(
                        "404 Not Found",
                        "no cluster view: accounting.postgres is not set\n",
                    );
                }
                return match cluster_query(query) {
                    Ok(q) => Answer {
                        status: "200 OK",
                        content_type: "application/json",
                        body: String::new(),
                        headers: "",
                        cluster: Some(q),
                    },
                    Err(e) => Answer::text("400 Bad Request", &format!("{e}\n")),
                };
            }
            match sessions_query(query) {
                Ok(q) => Answer {
                    status: "200 OK",
                    content_type: "application/json",
                    body: page(&q),
                    headers: "",
                    cluster: None,
                },
                Err(e) => Answer::text("400 Bad Request", &format!("{e}\n")),
            }
        }
        _ => Answer::text("404 Not Found", "not found\n"),
    }
}

/// Binds the endpoint; `serve` then answers on it.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>) {
    let slots = Arc::new(Semaphore::new(endpoint.settings.max_connections));
    let mut accept = Acceptor::new(listener, "metrics");
    loop {
        let (stream, _) = accept.next().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            endpoint.metrics.http_refused.inc();
            drop(stream);
            continue;
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            answer(stream, &endpoint).await;
            drop(slot);
        });
    }
}

async fn answer(mut stream: TcpStream, endpoint: &Endpoint) {
    let deadline = endpoint.settings.read_timeout;
    let mut buf = vec![0u8; MAX_HEAD];
    let answer = match tokio::time::timeout(deadline, read_head(&mut stream, &mut buf)).await {
        Ok(Ok(Some(len))) => {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&buf[..len]) {
                Ok(httparse::Status::Complete(_)) => {
                    let header = |name: &str| {
                        request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| h.value)
                    };
                    let head = Head {
                        method: request.method.unwrap_or(""),
                        target: request.path.unwrap_or(""),
                        host: header("host"),
                        authorization: header("authorization"),
                    };
                    let a = route(&head, endpoint);
                    endpoint
                        .metrics
                        .http_requests
                        .with_label_values(&[
                            Answer::label(head.target.split('?').next().unwrap_or("")),
                            &a.status[..3],
                        ])
                        .inc();
                    a
                }
                _ => Answer::text("400 Bad Request", "malformed request\n"),
            }
        }
        Ok(Ok(None)) => Answer::text("431 Request Header Fields Too Large", ""),
        // Closed, broken, or too slow: nothing to answer.
        Ok(Err(_)) | Err(_) => return,
    };
    let answer = match (&answer.cluster, &endpoint.cluster) {
        (Some(q), Some(pg)) => {
            let asked = super::shipper::cluster_sessions(
                pg,
                q.user.as_deref(),
                q.calling_station.as_deref(),
                q.limit,
            );
            match tokio::time::timeout(Duration::from_secs(10), asked).await {
                Ok(Ok(rows)) => Answer {
                    body: serde_json::json!({"count": rows.len(), "sessions": rows}).to_string(),
                    cluster: None,
                    ..answer
                },
                Ok(Err(e)) => Answer::text("503 Service Unavailable", &format!("{e}\n")),
                Err(_) => Answer::text(
                    "503 Service Unavailable",
                    "the database did not answer within 10 s\n",
                ),
            }
        }
        _ => answer,
    };
    let _ = tokio::time::timeout(deadline, write(&mut stream, &answer)).await;
}

/// Reads until the blank line ending the head; Some(length) when it came,
/// None when it outgrew the buffer.
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Ok(None);
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
    }
    Ok(Some(len))
}

async fn write(stream: &mut TcpStream, a: &Answer) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        a.status,
        a.content_type,
        a.body.len(),
        a.headers
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(a.body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_view_needs_postgres_and_takes_its_own_parameters() {
        assert_eq!(
            cluster_query("cluster=1&user=alice&calling_station=02-00&limit=5"),
            Ok(ClusterQuery {
                user: Some("alice".into()),
                calling_station: Some("02-00".into()),
                limit: 5
            })
        );
        assert!(cluster_query("cluster=1&nas=ap").is_err());
        assert!(cluster_query("cluster=1&limit=0").is_err());
        let e = endpoint(Some("0123456789abcdef0123"));
        let head = Head {
            method: "GET",
            target: "/sessions?cluster=1",
            host: Some(b"localhost"),
            authorization: Some(b"Bearer 0123456789abcdef0123"),
        };
        assert_eq!(
            route(&head, &e).status,
            "404 Not Found",
            "no accounting.postgres"
        );
    }

    fn endpoint(token: Option<&str>) -> Endpoint {
        Endpoint {
            metrics: Metrics::new().expect("metrics"),
            sessions: Some(Arc::new(|q: &Query| format!("{q:?}"))),
            cluster: None,
            settings: HttpSettings {
                sessions_token: token.map(BearerToken::new),
                hosts: vec!["radius1.example.org".into()],
                ..HttpSettings::default()
            },
        }
    }

    fn get<'a>(target: &'a str, host: &'a str, auth: Option<&'a str>) -> Head<'a> {
        Head {
            method: "GET",
            target,
            host: Some(host.as_bytes()),
            authorization: auth.map(str::as_bytes),
        }
    }

    #[test]
    fn hosts_must_be_addresses_localhost_or_configured() {
        let e = endpoint(None);
        for ok in [
            "127.0.0.1:9812",
            "10.1.2.3",
            "[::1]:9812",
            "[fe80::1]",
            "localhost:9812",
            "LOCALHOST",
            "radius1.example.org:9812",
            "Radius1.Example.org",
        ] {
            assert_eq!(
                route(&get("/metrics", ok, None), &e).status,
                "200 OK",
                "{ok}"
            );
        }
        for bad in [
            "evil.example:9812",
            "radius1.example.org.evil",
            "[::1",
            "",
            "a:b:c",
        ] {
            assert_eq!(
                route(&get("/metrics", bad, None), &e).status,
                "421 Misdirected Request",
                "{bad}"
            );
        }
        let no_host = Head {
            host: None,
            ..get("/metrics", "", None)
        };
        assert_eq!(route(&no_host, &e).status, "421 Misdirected Request");
    }

    #[test]
    fn sessions_are_off_unless_a_token_is_configured_and_then_need_it() {
        let off = endpoint(None);
        assert_eq!(
            route(&get("/sessions", "localhost", None), &off).status,
            "404 Not Found"
        );
        let on = endpoint(Some("s3cret-token-of-length"));
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-token-of-length"),
            Some("Bearer s3cret-token-of-lengt"),
        ] {
            let a = route(&get("/sessions", "localhost", auth), &on);
            assert_eq!(a.status, "401 Unauthorized", "{auth:?}");
            assert!(a.headers.starts_with("WWW-Authenticate: Bearer"));
        }
        let a = route(
            &get(
                "/sessions?user=alice%40example.org&limit=5",
                "localhost",
                Some("Bearer s3cret-token-of-length"),
            ),
            &on,
        );
        assert_eq!(a.status, "200 OK");
        assert!(
            a.body.contains("user: Some(\"alice@example.org\")") && a.body.contains("limit: 5"),
            "{}",
            a.body
        );
    }

    #[test]
    fn session_queries_are_bounded() {
        assert_eq!(sessions_query("").map(|q| q.limit), Ok(PAGE_DEFAULT));
        assert_eq!(sessions_query("limit=1000").map(|q| q.limit), Ok(1000));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=many",
            "after=zz",
            "colour=blue",
        ] {
            assert!(sessions_query(bad).is_err(), "{bad}");
        }
        let cursor = crate::proto::accounting::sessions::cursor("ap-1", "s 1");
        let q = sessions_query(&format!("nas=ap-1&after={cursor}")).expect("valid");
        assert_eq!(q.after, Some(("ap-1".into(), "s 1".into())));
        assert_eq!(q.nas.as_deref(), Some("ap-1"));
    }

    #[test]
    fn only_get_is_served() {
        let e = endpoint(None);
        let post = Head {
            method: "POST",
            ..get("/metrics", "localhost", None)
        };
        assert_eq!(route(&post, &e).status, "405 Method Not Allowed");
        assert_eq!(
            route(&get("/x", "localhost", None), &e).status,
            "404 Not Found"
        );
    }
}
