//! Dictionary-driven decoding of every attribute of an Accounting-Request
//! into its journal record, on arbitrary packets: the record must always
//! serialise, and read back as the same record (journal recovery reads it).
#![no_main]

use std::sync::LazyLock;

use certgate::proto::accounting::record::Record;
use certgate::proto::dictionary::Dictionary;
use certgate::proto::wire::Packet;
use libfuzzer_sys::fuzz_target;

static DICTIONARY: LazyLock<Dictionary> = LazyLock::new(|| {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dictionaries/dictionary");
    Dictionary::load(&path, &|p| std::fs::read_to_string(p)).expect("the shipped dictionaries load")
});

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let record = Record::decode(&packet, "nas", &DICTIONARY, 1_700_000_000_000);
    let line = serde_json::to_vec(&record).expect("a record always serialises");
    assert!(!line.contains(&b'\n'), "one record, one line");
    let back: Record = serde_json::from_slice(&line).expect("a record reads back");
    assert_eq!(serde_json::to_vec(&back).expect("again"), line);
});
