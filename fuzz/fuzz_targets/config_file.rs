//! The configuration loader on arbitrary TOML: it must accept or name the
//! problem, never panic.
#![no_main]

use std::sync::LazyLock;

use certgate::config::Config;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("temporary directory"));

fuzz_target!(|data: &[u8]| {
    let path = DIR.path().join("certgate.toml");
    std::fs::write(&path, data).expect("write");
    if let Err(e) = Config::load(&path) {
        assert!(!e.to_string().is_empty());
    }
});
