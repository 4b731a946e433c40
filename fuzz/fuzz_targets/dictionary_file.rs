//! The FreeRADIUS-format dictionary parser on arbitrary file contents.
#![no_main]

use std::sync::LazyLock;

use certgate::proto::dictionary::Dictionary;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("temporary directory"));

fuzz_target!(|data: &[u8]| {
    let path = DIR.path().join("dictionary");
    std::fs::write(&path, data).expect("write");
    if let Ok(d) = Dictionary::load(&path, &|p| std::fs::read_to_string(p)) {
        let _ = d.attribute("User-Name");
        let _ = d.attribute_count();
    }
});
