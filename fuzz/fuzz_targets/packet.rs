//! RADIUS decode and every authenticity check on arbitrary datagrams.
#![no_main]

use certgate::proto::wire::Packet;
use certgate::proto::wire::crypto::{
    Secret, verify_message_authenticator, verify_request_authenticator,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let secret = Secret::new(b"testing123");
    let _ = verify_message_authenticator(&packet, &secret);
    let _ = verify_request_authenticator(&packet, &secret);
    let total: usize = packet.attributes().map(|(_, v)| v.len() + 2).sum();
    assert_eq!(total + certgate::proto::wire::HEADER_LEN, packet.bytes().len());
    for vendor in [9, 311, 14122, 14823] {
        for (_, v) in packet.vendor_attributes(vendor) {
            assert!(v.len() <= 253);
        }
    }
});
