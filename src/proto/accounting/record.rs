//! One Accounting-Request (RFC 2866, RFC 2869) decoded into the record the
//! journal stores: the fields operators query (status, session, user, NAS,
//! stations, address, Class, time, 64-bit octet and packet totals, cause,
//! delay) plus every attribute by its dictionary name.
//!
//! Sans-I/O: a verified packet and the receive time in, a record out. It
//! must not write anything or keep state between requests.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::auth::{Authentication, token_of};
use crate::proto::dictionary::{DataType, Dictionary};
use crate::proto::wire::Packet;
use crate::proto::wire::attr::{
    ACCT_DELAY_TIME, ACCT_INPUT_GIGAWORDS, ACCT_INPUT_OCTETS, ACCT_INPUT_PACKETS,
    ACCT_OUTPUT_GIGAWORDS, ACCT_OUTPUT_OCTETS, ACCT_OUTPUT_PACKETS, ACCT_SESSION_ID,
    ACCT_SESSION_TIME, ACCT_STATUS_TYPE, ACCT_TERMINATE_CAUSE, CALLED_STATION_ID,
    CALLING_STATION_ID, CLASS, FRAMED_IP_ADDRESS, MESSAGE_AUTHENTICATOR, NAS_IDENTIFIER,
    NAS_IP_ADDRESS, USER_NAME,
};
use crate::proto::wire::packet::{value_u32, vendor_specific};

const NAS_IPV6_ADDRESS: u8 = 95;

/// Acct-Status-Type values (RFC 2866 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Start,
    Stop,
    #[serde(rename = "Interim-Update")]
    InterimUpdate,
    #[serde(rename = "Accounting-On")]
    AccountingOn,
    #[serde(rename = "Accounting-Off")]
    AccountingOff,
    Other(u32),
}

impl Status {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Status::Start,
            2 => Status::Stop,
            3 => Status::InterimUpdate,
            7 => Status::AccountingOn,
            8 => Status::AccountingOff,
            n => Status::Other(n),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Start => "start",
            Status::Stop => "stop",
            Status::InterimUpdate => "interim",
            Status::AccountingOn => "accounting_on",
            Status::AccountingOff => "accounting_off",
            Status::Other(_) => "other",
        }
    }
}

/// What the journal stores for one accepted Accounting-Request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Receive time, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Receive time, Unix seconds (for replay).
    pub unix: i64,
    pub client: String,
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nas_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nas_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_station: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_station: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framed_ip: Option<String>,
    /// The authorization Class echoed by the NAS, as text when printable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_time: Option<u32>,
    /// 64-bit totals: octets with Gigawords as the high 32 bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_octets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_octets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_packets: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_packets: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminate_cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_time: Option<u32>,
    /// The address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The server's token from a `certgate:…` Class, when the NAS echoed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The authentication the session began with, when known: written with
    /// every record of the session so the journal alone rebuilds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<Authentication>>,
    /// A resend with a new Acct-Delay-Time of a request already recorded.
    #[serde(default)]
    pub probable_duplicate: bool,
    /// Every attribute, named from the dictionaries.
    pub attributes: Attributes,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Octets as the `0x…` text FreeRADIUS prints for them.
fn hex(v: &[u8]) -> String {
    format!("0x{}", crate::proto::hex::encode(v))
}

/// Formats Unix milliseconds as RFC 3339 UTC.
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix_ms.to_string(),
    }
}

/// One attribute's value, before it is written as JSON.
#[derive(Debug)]
enum Rendered<'a> {
    Text(Cow<'a, str>),
    Number(u64),
}

/// One attribute's name and value, by its dictionary type.
fn render<'a>(
    dict: &'a Dictionary,
    vendor: u32,
    kind: u32,
    v: &'a [u8],
) -> (Cow<'a, str>, Rendered<'a>) {
    let Some(def) = dict.attribute_by_number(vendor, kind) else {
        let name = if vendor == 0 {
            format!("Attr-{kind}")
        } else {
            format!("Vendor-{vendor}-Attr-{kind}")
        };
        return (Cow::Owned(name), Rendered::Text(Cow::Owned(hex(v))));
    };
    let (tag, body) = if def.flags.has_tag && matches!(def.data_type, DataType::String) {
        match v.first() {
            Some(&t) if (1..=31).contains(&t) => (t, &v[1..]),
            _ => (0, v),
        }
    } else {
        (0, v)
    };
    let owned = |s: String| Rendered::Text(Cow::Owned(s));
    let value = match def.data_type {
        DataType::String => match std::str::from_utf8(body) {
            Ok(s) => Rendered::Text(Cow::Borrowed(s)),
            Err(_) => owned(hex(v)),
        },
        DataType::Integer | DataType::Date | DataType::Signed if v.len() == 4 => {
            let mut n = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            if def.flags.has_tag {
                n &= 0x00ff_ffff;
            }
            match dict.value_name(def, u64::from(n)) {
                Some(name) => Rendered::Text(Cow::Borrowed(name)),
                None => Rendered::Number(u64::from(n)),
            }
        }
        DataType::Integer64 if v.len() == 8 => {
            Rendered::Number(u64::from_be_bytes(v.try_into().unwrap_or([0; 8])))
        }
        DataType::Short if v.len() == 2 => {
            Rendered::Number(u64::from(u16::from_be_bytes([v[0], v[1]])))
        }
        DataType::Byte if v.len() == 1 => Rendered::Number(u64::from(v[0])),
        DataType::IpAddr if v.len() == 4 => {
            owned(Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string())
        }
        DataType::Ipv6Addr if v.len() == 16 => {
            let a: [u8; 16] = v.try_into().unwrap_or([0; 16]);
            owned(Ipv6Addr::from(a).to_string())
        }
        _ => owned(hex(v)),
    };
    let name = if tag != 0 {
        Cow::Owned(format!("{}:{tag}", def.name))
    } else {
        Cow::Borrowed(def.name.as_str())
    };
    (name, value)
}

fn write_value(out: &mut Vec<u8>, value: &Rendered<'_>) {
    match value {
        // Writing a str into a Vec cannot fail.
        Rendered::Text(s) => {
            let _ = serde_json::to_writer(&mut *out, s.as_ref());
        }
        Rendered::Number(n) => {
            let _ = write!(out, "{n}");
        }
    }
}

/// Every attribute except Message-Authenticator as one JSON object, keyed by
/// dictionary name in byte order; a name that occurs more than once holds
/// an array of its values in packet order.
///
/// Written straight from the packet rather than through a `serde_json`
/// map: building the map (a key and a value allocated per attribute, a
/// tree insert each) was most of the cost of storing a record.
fn attributes_json(packet: &Packet<'_>, dict: &Dictionary) -> Attributes {
    let mut entries = Vec::with_capacity(24);
    for (kind, value) in packet.attributes() {
        if kind == MESSAGE_AUTHENTICATOR {
            continue;
        }
        // Each Vendor-Specific attribute on its own: a NAS sends one per
        // Cisco-AVPair, and each must be stored once.
        if kind == crate::proto::wire::attr::VENDOR_SPECIFIC
            && let Some((vendor, subs)) = vendor_specific(value)
        {
            let before = entries.len();
            entries.extend(subs.map(|(sub, v)| render(dict, vendor, u32::from(sub), v)));
            if entries.len() > before {
                continue;
            }
        }
        entries.push(render(dict, 0, u32::from(kind), value));
    }
    // Stable: values of one name keep their packet order.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let mut rest = entries.as_slice();
    while let Some((name, _)) = rest.first() {
        let run = rest.iter().take_while(|(n, _)| n == name).count();
        if out.len() > 1 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, name.as_ref());
        out.push(b':');
        if run == 1 {
            write_value(&mut out, &rest[0].1);
        } else {
            out.push(b'[');
            for (i, (_, value)) in rest[..run].iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(&mut out, value);
            }
            out.push(b']');
        }
        rest = &rest[run..];
    }
    out.push(b'}');
    Attributes::from_json(out)
}

/// The attributes of a record as the JSON object the journal stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(Box<RawValue>);

impl Attributes {
    fn from_json(json: Vec<u8>) -> Attributes {
        // The writer above only emits valid JSON; should that ever be
        // wrong, `null` is stored rather than a broken line.
        let parsed = String::from_utf8(json)
            .ok()
            .and_then(|s| RawValue::from_string(s).ok());
        Attributes(parsed.unwrap_or_default())
    }

    /// The JSON text, e.g. for parsing it back into values.
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl Default for Attributes {
    /// No attributes: `{}`.
    fn default() -> Self {
        Attributes::from_json(b"{}".to_vec())
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Record {
    /// Decodes a verified Accounting-Request received at `unix_ms`.
    pub fn decode(packet: &Packet<'_>, client: &str, dict: &Dictionary, unix_ms: i64) -> Record {
        let u32_of = |k: u8| packet.attribute(k).and_then(value_u32);
        let text_of = |k: u8| packet.attribute(k).map(text);
        let total = |low: u8, high: u8| {
            u32_of(low).map(|l| (u64::from(u32_of(high).unwrap_or(0)) << 32) | u64::from(l))
        };
        let attributes = attributes_json(packet, dict);
        let terminate_cause = u32_of(ACCT_TERMINATE_CAUSE).map(|n| {
            dict.attribute("Acct-Terminate-Cause")
                .and_then(|d| dict.value_name(d, u64::from(n)))
                .map_or_else(|| n.to_string(), str::to_string)
        });
        let nas_ip = packet
            .attribute(NAS_IP_ADDRESS)
            .filter(|v| v.len() == 4)
            .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string())
            .or_else(|| {
                let v: [u8; 16] = packet.attribute(NAS_IPV6_ADDRESS)?.try_into().ok()?;
                Some(Ipv6Addr::from(v).to_string())
            });
        Record {
            time: rfc3339(unix_ms),
            unix: unix_ms.div_euclid(1000),
            client: client.to_string(),
            status: u32_of(ACCT_STATUS_TYPE).map(Status::from_u32),
            session_id: text_of(ACCT_SESSION_ID),
            user: text_of(USER_NAME),
            nas_ip,
            nas_identifier: text_of(NAS_IDENTIFIER),
            calling_station: text_of(CALLING_STATION_ID),
            called_station: text_of(CALLED_STATION_ID),
            framed_ip: packet
                .attribute(FRAMED_IP_ADDRESS)
                .filter(|v| v.len() == 4)
                .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string()),
            source: None,
            token: packet
                .attributes_of(CLASS)
                .find_map(token_of)
                .map(str::to_string),
            auth: None,
            class: packet
                .attributes_of(CLASS)
                .find(|v| token_of(v).is_none())
                .map(|v| match std::str::from_utf8(v) {
                    Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
                    _ => hex(v),
                }),
            session_time: u32_of(ACCT_SESSION_TIME),
            input_octets: total(ACCT_INPUT_OCTETS, ACCT_INPUT_GIGAWORDS),
            output_octets: total(ACCT_OUTPUT_OCTETS, ACCT_OUTPUT_GIGAWORDS),
            input_packets: u32_of(ACCT_INPUT_PACKETS),
            output_packets: u32_of(ACCT_OUTPUT_PACKETS),
            terminate_cause,
            delay_time: u32_of(ACCT_DELAY_TIME),
            probable_duplicate: false,
            attributes,
        }
    }
}

/// A fingerprint of a request's content without Acct-Delay-Time and
/// Message-Authenticator: a resend with only a new delay has the same one.
pub fn content_fingerprint(packet: &Packet<'_>, client: &str) -> u64 {
    let mut h = DefaultHasher::new();
    client.hash(&mut h);
    for (kind, value) in packet.attributes() {
        if kind != ACCT_DELAY_TIME && kind != MESSAGE_AUTHENTICATOR {
            kind.hash(&mut h);
            value.hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::PacketBuilder;
    use crate::proto::wire::crypto::Secret;

    #[test]
    fn decodes_totals_with_gigawords_and_names() {
        let dict = Dictionary::shipped();
        let mut b = PacketBuilder::new(crate::proto::wire::Code::AccountingRequest, 1, false);
        b.push_u32(ACCT_STATUS_TYPE, 2).expect("push");
        b.push(ACCT_SESSION_ID, b"s-1").expect("push");
        b.push(USER_NAME, b"alice@example.org").expect("push");
        b.push_u32(ACCT_INPUT_OCTETS, 5).expect("push");
        b.push_u32(ACCT_INPUT_GIGAWORDS, 2).expect("push");
        b.push_u32(ACCT_OUTPUT_OCTETS, 7).expect("push");
        b.push_u32(ACCT_TERMINATE_CAUSE, 1).expect("push");
        b.push(CLASS, b"group=staff").expect("push");
        b.push_u32(ACCT_DELAY_TIME, 3).expect("push");
        let bytes = b.finish_accounting_request(&Secret::new(b"s"));
        let p = Packet::decode(&bytes).expect("decode");
        let r = Record::decode(&p, "nas", &dict, 1_700_000_000_123);
        assert_eq!(r.status, Some(Status::Stop));
        assert_eq!(r.input_octets, Some((2u64 << 32) + 5));
        assert_eq!(r.output_octets, Some(7));
        assert_eq!(r.terminate_cause.as_deref(), Some("User-Request"));
        assert_eq!(r.class.as_deref(), Some("group=staff"));
        assert_eq!(r.time, "2023-11-14T22:13:20.123Z");
        let attributes: serde_json::Value =
            serde_json::from_str(r.attributes.json()).expect("attributes");
        assert_eq!(attributes["Acct-Status-Type"], "Stop");
        assert_eq!(attributes["User-Name"], "alice@example.org");
        let json = serde_json::to_string(&r).expect("json");
        let back: Record = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);

        // Only Acct-Delay-Time differs: same fingerprint.
        let mut b2 = PacketBuilder::new(crate::proto::wire::Code::AccountingRequest, 2, false);
        for (k, v) in p.attributes() {
            if k == ACCT_DELAY_TIME {
                b2.push_u32(k, 9).expect("push");
            } else {
                b2.push(k, v).expect("push");
            }
        }
        let bytes2 = b2.finish_accounting_request(&Secret::new(b"s"));
        let p2 = Packet::decode(&bytes2).expect("decode");
        assert_eq!(
            content_fingerprint(&p, "nas"),
            content_fingerprint(&p2, "nas")
        );
        assert_ne!(
            content_fingerprint(&p, "nas"),
            content_fingerprint(&p, "other")
        );
    }

    #[test]
    fn attributes_are_one_sorted_object_with_repeats_as_arrays() {
        let dict = Dictionary::shipped();
        let mut b = PacketBuilder::new(crate::proto::wire::Code::AccountingRequest, 1, false);
        b.push_u32(ACCT_STATUS_TYPE, 1).expect("push");
        b.push(USER_NAME, "al\u{1}ice".as_bytes()).expect("push");
        b.push_vendor(9, 1, b"x=1").expect("push");
        b.push(CLASS, b"a").expect("push");
        b.push_tagged(81, 1, b"20").expect("push");
        b.push_tagged_u32(64, 1, 13).expect("push");
        b.push_vendor(9, 1, b"y=\"2\"").expect("push");
        b.push(CLASS, b"b").expect("push");
        b.push(191, &[0xff, 0x00]).expect("push");
        b.push(NAS_IP_ADDRESS, &[192, 0, 2, 1]).expect("push");
        let bytes = b.finish_accounting_request(&Secret::new(b"s"));
        let p = Packet::decode(&bytes).expect("decode");
        let r = Record::decode(&p, "nas", &dict, 0);
        assert_eq!(
            r.attributes.json(),
            concat!(
                r#"{"Acct-Status-Type":"Start","Attr-191":"0xff00","#,
                r#""Cisco-AVPair":["x=1","y=\"2\""],"Class":["0x61","0x62"],"#,
                r#""NAS-IP-Address":"192.0.2.1","Tunnel-Private-Group-Id:1":"20","#,
                r#""Tunnel-Type":"VLAN","User-Name":"al\u0001ice"}"#
            )
        );
    }

    #[test]
    fn attributes_that_are_not_json_are_stored_as_null() {
        assert_eq!(Attributes::from_json(b"{\"a\":".to_vec()).json(), "null");
        assert_eq!(Attributes::from_json(vec![b'"', 0xff, b'"']).json(), "null");
        assert_eq!(Attributes::default().json(), "{}");
    }
}
