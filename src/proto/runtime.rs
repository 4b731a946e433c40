//! What one configuration gives the engine: the client table, the TLS
//! context (certificates, CA bundles, CRLs), and the authorization policy
//! with its cache. A reload builds a new one and swaps it in; requests in
//! flight keep the one they started with.
//!
//! Building only: it reads no file (the configuration already did).

use std::sync::Arc;

use super::authz::decide::Authorization;
use super::clients::ClientTable;
use super::radsec::RadsecClients;
use super::tls::health::{self, Deadline};
use super::tls::revoked::Revoked;
use super::tls::{SessionStore, TlsContext, TlsError};
use crate::config::{Config, EapConfig, RadsecConfig};
use crate::metrics::Metrics;

pub struct Runtime {
    pub config: Arc<Config>,
    pub clients: ClientTable,
    /// None when EAP-TLS is not configured.
    pub eap: Option<EapRuntime>,
    /// None when RadSec is not configured.
    pub radsec: Option<RadsecRuntime>,
    /// When certificates expire and CRLs go stale (health gauges).
    pub deadlines: Vec<Deadline>,
}

/// RadSec's part: its settings, the TLS context NAS connections are
/// accepted with (NAS CAs and CRLs), and the clients by certificate.
pub struct RadsecRuntime {
    pub config: Arc<RadsecConfig>,
    pub tls: TlsContext,
    pub clients: RadsecClients,
}

/// The TLS session stores a reload keeps: EAP-TLS's and RadSec's.
#[derive(Debug, Clone)]
pub struct SessionStores {
    pub eap: Arc<SessionStore>,
    pub radsec: Arc<SessionStore>,
}

/// EAP-TLS's part: its settings, the TLS context, and the policy with a
/// fresh cache. They come and go together.
pub struct EapRuntime {
    pub config: Arc<EapConfig>,
    pub tls: TlsContext,
    pub authz: Authorization,
    /// What the CRLs revoke, to find live sessions they now cover.
    pub revoked: Revoked,
}

impl Runtime {
    /// Builds the TLS configuration around the engine's session store, so
    /// reloads keep resumption working.
    pub fn new(
        config: Arc<Config>,
        sessions: &SessionStores,
        metrics: &Metrics,
    ) -> Result<Self, TlsError> {
        let clients = ClientTable::new(&config.clients);
        let eap = match &config.eap {
            Some(eap) => Some(EapRuntime {
                tls: TlsContext::build(&eap.material, &eap.tls_policy, &sessions.eap)?,
                authz: Authorization::new(eap.authz.decision.clone(), metrics.authz.clone()),
                revoked: Revoked::from_crls(&eap.material.crls),
                config: eap.clone(),
            }),
            None => None,
        };
        let radsec = match &config.radsec {
            Some(r) => Some(RadsecRuntime {
                tls: TlsContext::build(&r.material, &r.tls_policy, &sessions.radsec)?,
                clients: RadsecClients::new(&r.clients),
                config: r.clone(),
            }),
            None => None,
        };
        let mut deadlines = Vec::new();
        if let Some(e) = &config.eap {
            health::deadlines("eap", &e.material, &mut deadlines);
        }
        if let Some(r) = &config.radsec {
            health::deadlines("radsec", &r.material, &mut deadlines);
        }
        Ok(Runtime {
            config,
            clients,
            eap,
            radsec,
            deadlines,
        })
    }
}
