//! Recovery of a torn accounting journal: whatever the newest file holds,
//! repair leaves only whole JSON lines and never cuts a whole line.
#![no_main]

use certgate::accounting::journal::{files, repair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
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
