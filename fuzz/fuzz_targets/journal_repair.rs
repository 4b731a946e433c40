//! Recovery of a torn accounting journal: whatever the newest file holds,
//! repair leaves only whole JSON lines and never cuts a whole line.
#![no_main]

use std::sync::LazyLock;

use certgate::server::journal::{files, repair};
use libfuzzer_sys::fuzz_target;

// One directory for the whole run: a fresh one per execution made this
// target spend most of its time creating and removing directories.
static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("temporary directory"));

fuzz_target!(|data: &[u8]| {
    let dir = &*DIR;
    let path = dir.path().join("acct-20260101T000000Z-000001.jsonl");
    std::fs::write(&path, data).expect("write");
    assert_eq!(
        files(dir.path()),
        vec![path.clone()],
        "the file is a journal file"
    );
    let cut = repair(dir.path()).expect("repair");
    let kept = std::fs::read(&path).expect("read");
    assert_eq!(kept.len() as u64 + cut, data.len() as u64);
    assert_eq!(&data[..kept.len()], &kept[..], "repair only cuts the tail");
    if !kept.is_empty() {
        assert!(kept.ends_with(b"\n"));
        let last = kept[..kept.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&kept[last..]).is_ok(),
            "the last kept line is JSON"
        );
    }
});
