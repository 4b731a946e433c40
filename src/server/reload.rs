//! Replacing the running configuration while sockets stay open: SIGHUP
//! re-reads the whole file, the periodic CRL refresh re-reads the CRL files.
//!
//! Both build a new `Runtime` from the one running and swap it in with a
//! compare-and-swap: when the other replaced the runtime in the meantime,
//! the swap fails and the work is redone from the new one. So a CRL refresh
//! that started before a SIGHUP cannot put the old configuration back (it
//! used to store its copy of the old configuration with the new CRLs), and
//! a reload that read the CRL files before a refresh cannot put the old
//! CRLs back.
//!
//! Shell code: files and the clock are read here; nothing decides.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Shell;
use crate::config::{Config, load_crls};

/// How often a swap is retried when other reloads keep winning.
const ATTEMPTS: usize = 8;

/// Builds a replacement from the current value and swaps it in unless the
/// value changed meanwhile, in which case it builds again from the new
/// one. `build` returns Ok(None) when there is nothing to change. Returns
/// the value stored, if any.
pub fn swap_with<T, E>(
    cell: &ArcSwap<T>,
    mut build: impl FnMut(&Arc<T>) -> Result<Option<T>, E>,
) -> Result<Option<Arc<T>>, E> {
    for _ in 0..ATTEMPTS {
        let current = cell.load_full();
        let Some(new) = build(&current)? else {
            return Ok(None);
        };
        let new = Arc::new(new);
        let previous = cell.compare_and_swap(&current, new.clone());
        if Arc::ptr_eq(&previous, &current) {
            return Ok(Some(new));
        }
    }
    tracing::warn!(
        attempts = ATTEMPTS,
        "configuration kept changing during a reload; this one was dropped"
    );
    Ok(None)
}

/// Logs what the configuration's validation found weaker than it looks
/// (no CRLs, a cleartext directory bind), at every start and reload.
pub fn warn_about(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }
}

/// Re-reads the configuration file; a broken one leaves the running
/// configuration in place. Listener and metrics addresses need a restart.
/// The directory is opened anew (fresh LDAP connections).
pub fn reload(shell: &Shell) {
    let engine = &shell.engine;
    let result = swap_with(engine.runtime(), |current| {
        let path: &Path = &current.config.path;
        let new = Config::load_with_overrides(path, &current.config.overrides)
            .map_err(|e| e.to_string())?;
        let old = &current.config;
        if new.server.auth_listen != old.server.auth_listen
            || new.server.acct_listen != old.server.acct_listen
            || new.radsec.as_ref().map(|r| &r.listen) != old.radsec.as_ref().map(|r| &r.listen)
            || new.metrics.listen != old.metrics.listen
        {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        warn_about(&new);
        engine
            .build_runtime(Arc::new(new))
            .map(Some)
            .map_err(|e| e.to_string())
    });
    let m = &shell.metrics;
    match result {
        Ok(Some(runtime)) => {
            shell
                .directory
                .store(Shell::directory_for(&runtime.config, m));
            m.reloads.with_label_values(&["ok"]).inc();
            // New NAS CAs, clients and certificates apply to new RadSec
            // connections; a removed client loses its connections now.
            let closed = shell
                .radsec
                .close_removed(|name| shell.engine.radsec_has_client(name));
            revocations(shell);
            tracing::info!(
                clients = runtime.config.clients.len(),
                radsec_clients = runtime
                    .config
                    .radsec
                    .as_ref()
                    .map_or(0, |r| r.clients.len()),
                radsec_connections_closed = closed,
                "configuration reloaded"
            );
        }
        Ok(None) => m.reloads.with_label_values(&["failed"]).inc(),
        Err(e) => {
            m.reloads.with_label_values(&["failed"]).inc();
            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
        }
    }
}

/// New CRLs are in place: live sessions they revoke are disconnected.
fn revocations(shell: &Shell) {
    let n = shell.engine.check_revocations(super::time::now());
    if n > 0 {
        tracing::info!(
            sessions = n,
            "live sessions with a revoked certificate: disconnecting"
        );
    }
    shell.das.wake();
}

/// Re-reads the CRL files of EAP-TLS and RadSec; when they changed,
/// rebuilds the TLS configurations. Running conversations and established
/// RadSec connections keep the configuration they began with; new ones and
/// resumption re-checks use the new CRLs.
pub fn refresh_crls(shell: &Shell) {
    let m = &shell.metrics.eap;
    let engine = &shell.engine;
    let mut count = 0;
    let result = swap_with(engine.runtime(), |current| {
        let mut config = (*current.config).clone();
        let mut changed = false;
        count = 0;
        if let Some(eap) = &current.config.eap {
            let crls = load_crls(&eap.crl_files)?;
            count += crls.len();
            if crls != eap.material.crls {
                let mut eap = (**eap).clone();
                eap.material.crls = crls;
                config.eap = Some(Arc::new(eap));
                changed = true;
            }
        }
        if let Some(radsec) = &current.config.radsec {
            let crls = load_crls(&radsec.crl_files)?;
            count += crls.len();
            if crls != radsec.material.crls {
                let mut radsec = (**radsec).clone();
                radsec.material.crls = crls;
                config.radsec = Some(Arc::new(radsec));
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        // Only the CRLs change here; other edits wait for SIGHUP.
        engine
            .build_runtime(Arc::new(config))
            .map(Some)
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(Some(_)) => {
            m.crl_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(crls = count, "CRLs reloaded");
            revocations(shell);
        }
        Ok(None) => m.crl_reloads.with_label_values(&["unchanged"]).inc(),
        Err(e) => {
            m.crl_reloads.with_label_values(&["failed"]).inc();
            tracing::error!(error = %e, "CRL reload failed; keeping the loaded CRLs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (configuration version, CRL version).
    type Versions = (u32, u32);

    /// A CRL refresh that began before a SIGHUP must not put the old
    /// configuration back: its swap fails, and it builds again from the
    /// reloaded configuration.
    #[test]
    fn a_refresh_racing_a_reload_keeps_the_reloaded_configuration() {
        let cell = ArcSwap::from_pointee((1, 1));
        let mut calls = 0;
        let stored = swap_with::<Versions, ()>(&cell, |current| {
            calls += 1;
            if calls == 1 {
                // SIGHUP lands while this refresh builds.
                cell.store(Arc::new((2, 1)));
            }
            Ok(Some((current.0, 2)))
        })
        .expect("no error");
        assert_eq!(calls, 2, "rebuilt from the reloaded configuration");
        assert_eq!(stored.as_deref(), Some(&(2, 2)));
        assert_eq!(**cell.load(), (2, 2));
    }

    /// The other way round: a reload that read the old CRLs cannot put
    /// them back over a refresh that stored new ones meanwhile.
    #[test]
    fn a_reload_racing_a_refresh_keeps_the_refreshed_crls() {
        let cell = ArcSwap::from_pointee((1, 1));
        let mut crl_on_disk = 1;
        let mut calls = 0;
        swap_with::<Versions, ()>(&cell, |_| {
            calls += 1;
            // The reload reads the files...
            let read = (2, crl_on_disk);
            if calls == 1 {
                // ...and a refresh stores newer CRLs before it swaps.
                crl_on_disk = 2;
                cell.store(Arc::new((1, 2)));
            }
            Ok(Some(read))
        })
        .expect("no error");
        assert_eq!(**cell.load(), (2, 2));
    }

    #[test]
    fn nothing_to_change_stores_nothing_and_errors_pass_through() {
        let cell = ArcSwap::from_pointee((1, 1));
        let before = cell.load_full();
        assert_eq!(swap_with::<Versions, ()>(&cell, |_| Ok(None)), Ok(None));
        assert!(Arc::ptr_eq(&before, &cell.load_full()));
        assert_eq!(
            swap_with::<Versions, &str>(&cell, |_| Err("broken")),
            Err("broken")
        );
        assert!(Arc::ptr_eq(&before, &cell.load_full()));
    }
}
