//! The real peers the integration tests drive, and what to do when one is
//! missing: `.ci/run` installs them all, and with `CI` set a missing peer
//! fails the test; a newcomer running `cargo test` without them sees which
//! package to install and the test is skipped.

use std::path::Path;

/// (program, Debian package that provides it).
const PEERS: &[(&str, &str)] = &[
    ("eapol_test", "eapoltest"),
    ("radclient", "freeradius-utils"),
    ("slapd", "slapd"),
    ("ldapadd", "ldap-utils"),
    ("promtool", "prometheus"),
    ("radsecproxy", "radsecproxy"),
    ("freeradius", "freeradius"),
    ("hostapd", "hostapd"),
    ("hostapd_cli", "hostapd"),
    ("wpa_supplicant", "wpasupplicant"),
    ("wpa_cli", "wpasupplicant"),
    ("openssl", "openssl"),
    ("psql", "postgresql"),
];

fn installed(program: &str) -> bool {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain([Path::new("/usr/sbin").to_path_buf()])
        .any(|d| d.join(program).is_file())
}

/// Whether every program in `programs` is installed. When one is not:
/// under CI a panic naming its package, else a line saying the test is
/// skipped and what to install.
pub fn available(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .filter(|p| !installed(p))
        .map(|p| {
            PEERS
                .iter()
                .find(|(name, _)| name == p)
                .map_or(*p, |(_, package)| *package)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let install = format!("apt-get install {}", missing.join(" "));
    if std::env::var_os("CI").is_some() {
        panic!("{test}: a peer this test needs is missing: {install}");
    }
    eprintln!("skipped {test}: a peer it needs is missing ({install}; .ci/run installs them)");
    false
}

/// Returns from the test (skipping it) unless the named programs are
/// installed; see `available`.
// Test binaries that gate through a helper (hostapd::available) use none.
#[allow(unused_macros)]
macro_rules! require {
    ($($program:expr),+ $(,)?) => {
        if !$crate::common::peers::available(module_path!(), &[$($program),+]) {
            return;
        }
    };
}
