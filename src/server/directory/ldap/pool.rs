//! LDAP connections: an ordered list of servers, each with a few
//! multiplexed connections opened on first use (so certgate starts and
//! serves while LDAP is down), bound with the service account, replaced
//! when they fail, and an exponential backoff per server so a dead server
//! costs a look-up nothing until it is due for another try.
//!
//! I/O edge. It must not interpret entries (that is `ldap::query`).

use parking_lot::Mutex as SyncMutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::LdapSettings;
use crate::metrics::AuthzMetrics;
use crate::proto::authz::DirectoryError;

/// One open connection; its driver task ends with it.
struct Live {
    id: u64,
    ldap: Ldap,
    driver: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

pub struct Server {
    pub url: String,
    slots: Vec<Mutex<Option<Live>>>,
    next: AtomicUsize,
    backoff: SyncMutex<Backoff>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("url", &self.url).finish()
    }
}

/// A connection checked out for one look-up: the handle is a clone, the
/// slot and id let a failure retire exactly this connection.
pub struct Checkout {
    pub ldap: Ldap,
    slot: usize,
    id: u64,
}

/// Maps an ldap3 error to a metric kind; transport kinds make the look-up
/// move to the next server.
pub fn classify(e: &LdapError) -> &'static str {
    match e {
        LdapError::Timeout { .. } => "timeout",
        // busy, unavailable, unwillingToPerform: the server cannot serve now.
        LdapError::LdapResult { result } if matches!(result.rc, 51..=53) => "unavailable",
        LdapError::LdapResult { .. } => "result",
        LdapError::FilterParsing => "filter",
        _ => "connection",
    }
}

pub fn is_transport(kind: &str) -> bool {
    matches!(
        kind,
        "connect" | "bind" | "timeout" | "connection" | "unavailable"
    )
}

#[derive(Debug)]
pub struct Pool {
    pub servers: Vec<Server>,
    settings: Arc<LdapSettings>,
    ids: AtomicU64,
}

impl Pool {
    pub fn new(settings: Arc<LdapSettings>) -> Self {
        let servers = settings
            .urls
            .iter()
            .map(|url| Server {
                url: url.clone(),
                slots: (0..settings.connections.max(1))
                    .map(|_| Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
                backoff: SyncMutex::new(Backoff::default()),
            })
            .collect();
        Pool {
            servers,
            settings,
            ids: AtomicU64::new(1),
        }
    }

    /// When the server may be tried again; None when it is not backing off.
    pub fn backing_off(&self, server: &Server, now: Instant) -> Option<Instant> {
        let b = server.backoff.lock();
        b.until.filter(|u| *u > now)
    }

    /// Records a transport failure: the next try waits 0.5 s, 1 s, 2 s, …
    /// up to `backoff_max`.
    pub fn failed(&self, server: &Server, now: Instant) {
        let mut b = server.backoff.lock();
        b.failures = b.failures.saturating_add(1);
        let step =
            Duration::from_millis(500).saturating_mul(1 << b.failures.min(16).saturating_sub(1));
        b.until = Some(now + step.min(self.settings.backoff_max));
    }

    fn succeeded(&self, server: &Server) {
        let mut b = server.backoff.lock();
        *b = Backoff::default();
    }

    /// A bound connection to `server`, opening one if the slot is empty or
    /// its connection has closed.
    pub async fn checkout(
        &self,
        server: &Server,
        metrics: &AuthzMetrics,
    ) -> Result<Checkout, DirectoryError> {
        let slot = server.next.fetch_add(1, Ordering::Relaxed) % server.slots.len();
        let mut guard = server.slots[slot].lock().await;
        if let Some(live) = guard.as_mut() {
            if !live.ldap.is_closed() {
                return Ok(Checkout {
                    ldap: live.ldap.clone(),
                    slot,
                    id: live.id,
                });
            }
            tracing::info!(server = %server.url, "LDAP connection closed; reconnecting");
        }
        *guard = None;
        let live = self.open(server, metrics).await?;
        self.succeeded(server);
        let out = Checkout {
            ldap: live.ldap.clone(),
            slot,
            id: live.id,
        };
        *guard = Some(live);
        Ok(out)
    }

    /// Retires the connection a failed operation used (unless another task
    /// already replaced it).
    pub async fn retire(&self, server: &Server, checkout: &Checkout) {
        let mut guard = server.slots[checkout.slot].lock().await;
        if guard.as_ref().is_some_and(|l| l.id == checkout.id) {
            *guard = None;
        }
    }

    async fn open(&self, server: &Server, metrics: &AuthzMetrics) -> Result<Live, DirectoryError> {
        let s = &self.settings;
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(s.connect_timeout)
            .set_starttls(s.starttls);
        if let Some(tls) = &s.tls_config {
            conn_settings = conn_settings.set_config(tls.clone());
        }
        let started = Instant::now();
        let connected = LdapConnAsync::with_settings(conn_settings, &server.url).await;
        metrics
            .ldap_seconds
            .with_label_values(&[&server.url, "connect"])
            .observe(started.elapsed().as_secs_f64());
        let (conn, mut ldap) = connected.map_err(|e| {
            let kind = match classify(&e) {
                "timeout" => "timeout",
                _ => "connect",
            };
            DirectoryError::new(kind, format!("{}: connect: {e}", server.url))
        })?;
        let url = server.url.clone();
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(server = %url, error = %e, "LDAP connection ended");
            }
        });
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            id,
            ldap: ldap.clone(),
            driver,
        };
        if !s.bind_dn.is_empty() {
            let started = Instant::now();
            let bound = ldap
                .with_timeout(s.operation_timeout)
                .simple_bind(&s.bind_dn, &s.bind_password)
                .await
                .and_then(|r| r.success());
            metrics
                .ldap_seconds
                .with_label_values(&[&server.url, "bind"])
                .observe(started.elapsed().as_secs_f64());
            bound.map_err(|e| {
                let kind = match classify(&e) {
                    "timeout" => "timeout",
                    _ => "bind",
                };
                DirectoryError::new(kind, format!("{}: bind as {}: {e}", server.url, s.bind_dn))
            })?;
        }
        tracing::info!(server = %server.url, "LDAP connection open");
        Ok(live)
    }
}
