//! Writes seed corpora for the fuzz targets into fuzz/corpus/<target>/ from
//! valid inputs made by certgate's own code: packets the tests send, a real
//! EAP-TLS opening from the test supplicant, the shipped dictionaries and
//! configuration, and a journal with a torn tail.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::path::Path;

use certgate::proto::eap::packet::{EapCode, build, method, push_eap_message};
use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::proto::wire::crypto::Secret;
use certgate::proto::wire::{Code, PacketBuilder};
use certgate::supplicant::{EapTlsPeer, PeerStep, Versions, client_config};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), data).expect("seed");
}

fn main() {
    let secret = Secret::new(b"testing123");
    let identity = build(
        EapCode::Response,
        1,
        Some(method::IDENTITY),
        b"alice@example.org",
    );
    let mut access = PacketBuilder::new(Code::AccessRequest, 1, true);
    access.push(1, b"alice@example.org").expect("user");
    access.push(31, b"02-00-00-00-00-01").expect("station");
    push_eap_message(&mut access, &identity).expect("eap");
    let access = access.finish_access_request(&[7; 16], &secret);
    let status =
        PacketBuilder::new(Code::StatusServer, 2, true).finish_access_request(&[8; 16], &secret);
    let mut acct = PacketBuilder::new(Code::AccountingRequest, 3, false);
    acct.push_u32(40, 3).expect("status");
    acct.push(44, b"session-1").expect("session");
    acct.push(1, b"bob").expect("user");
    acct.push_u32(42, 1000).expect("octets");
    acct.push_u32(52, 1).expect("gigawords");
    acct.push_u32(4, 0x7f00_0001).expect("nas ip");
    acct.push_vendor(14823, 1, b"employee").expect("vsa");
    acct.push_tagged_u32(64, 1, 13).expect("tunnel type");
    let acct = acct.finish_accounting_request(&secret);
    for (name, p) in [("access", &access), ("status", &status), ("acct", &acct)] {
        write("packet", name, p);
        write("accounting_record", name, p);
    }

    // An EAP-TLS opening: Identity, then the peer's ClientHello fragments.
    let dir = tempfile::tempdir().expect("temporary directory");
    let pki = Pki::open(dir.path());
    pki.init("radius.example.org", KeyType::EcdsaP256)
        .expect("pki");
    let files = pki
        .issue_client("alice@example.org", &ClientOptions::default())
        .expect("client");
    let config = client_config(
        &pki.path("ca.pem"),
        &files.certificate,
        &files.key,
        Versions::Both,
        false,
    )
    .expect("client config");
    let server_name = rustls::pki_types::ServerName::try_from("radius.example.org").expect("name");
    let mut peer = EapTlsPeer::new(config, server_name, "alice@example.org", 300).expect("peer");
    let start = build(EapCode::Request, 2, Some(method::TLS), &[0x20]);
    let mut seq = Vec::new();
    let mut record = |flags: u8, eap: &[u8]| {
        seq.push(flags);
        seq.extend_from_slice(&(eap.len() as u16).to_be_bytes());
        seq.extend_from_slice(eap);
    };
    record(4, &peer.identity_response(1));
    if let Ok(PeerStep::Respond(hello)) = peer.on_request(&start) {
        record(5, &hello);
    }
    write("eap_engine", "opening", &seq);

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for entry in std::fs::read_dir(root.join("dictionaries")).expect("dictionaries") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("d")
            .to_string();
        write(
            "dictionary_file",
            &name,
            &std::fs::read(&path).expect("dictionary"),
        );
    }
    write(
        "config_file",
        "certgate.toml",
        &std::fs::read(root.join("conf/certgate.toml")).expect("conf"),
    );
    write(
        "journal_repair",
        "torn",
        b"{\"a\":1}\n{\"b\":[1,2]}\n{\"c\":\"x\"",
    );
    write("journal_repair", "zeros", b"{\"a\":1}\n\0\0\0\0\n");
    println!(
        "seeds written to {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .display()
    );
}
