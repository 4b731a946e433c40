//! Reply attributes written by people — `"Filter-Id = employee"`,
//! `"Tunnel-Private-Group-Id:1 = 20"`, `"Cisco-AVPair = shell:priv-lvl=15"`
//! — checked against the dictionaries once, at configuration time, and
//! encoded per request (string values may hold `{identity}`, `{group}` and
//! `{attr:NAME}`, the first value of a directory attribute).
//!
//! Sans-I/O. It must not decide which attributes apply (policy does).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::proto::dictionary::{DataType, Dictionary};
use crate::proto::wire::attr::{MAX_VALUE_LEN, VENDOR_SPECIFIC};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReplyError {
    #[error("{0:?} is not `Name = value`")]
    Syntax(String),
    #[error("unknown attribute {0:?}")]
    Unknown(String),
    #[error("{0}: {1}")]
    Value(String, String),
}

/// One compiled reply attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAttribute {
    pub name: String,
    kind: u8,
    vendor: Option<(u32, u8)>,
    value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Fixed(Vec<u8>),
    /// A string with `{…}` placeholders, tag octet prepended when non-zero.
    Template {
        parts: Vec<Part>,
        tag: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Identity,
    Group,
    /// Lower-cased attribute name.
    Attr(String),
}

/// Splits a template into parts; unknown placeholders are configuration
/// errors, caught before the first request.
fn parse_template(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed {{ in {text:?}"))?;
        let name = &rest[open + 1..open + close];
        parts.push(match name {
            "identity" => Part::Identity,
            "group" => Part::Group,
            _ => match name.strip_prefix("attr:") {
                Some(a) if !a.is_empty() => Part::Attr(a.to_ascii_lowercase()),
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{name}}}: use {{identity}}, {{group}} or {{attr:NAME}}"
                    ));
                }
            },
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Values for placeholders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub identity: &'a str,
    pub group: &'a str,
    /// Directory attributes by lower-cased name.
    pub attributes: Option<&'a HashMap<String, Vec<String>>>,
}

impl Vars<'_> {
    fn render(&self, parts: &[Part]) -> String {
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Identity => out.push_str(self.identity),
                Part::Group => out.push_str(self.group),
                Part::Attr(name) => {
                    if let Some(v) = self
                        .attributes
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.first())
                    {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

impl ReplyAttribute {
    /// Parses `Name[:tag] = value` against the dictionary.
    pub fn parse(dict: &Dictionary, line: &str) -> Result<Self, ReplyError> {
        let (lhs, rhs) = line
            .split_once('=')
            .ok_or_else(|| ReplyError::Syntax(line.to_string()))?;
        let lhs = lhs.trim();
        let value = rhs.trim().trim_matches('"');
        let (name, tag) = match lhs.split_once(':') {
            Some((n, t)) => {
                let tag: u8 = t.parse().ok().filter(|t| *t <= 31).ok_or_else(|| {
                    ReplyError::Value(n.into(), format!("tag {t:?} is not 0..31"))
                })?;
                (n, tag)
            }
            None => (lhs, 0),
        };
        let def = dict
            .attribute(name)
            .ok_or_else(|| ReplyError::Unknown(name.to_string()))?;
        let bad = |m: String| ReplyError::Value(def.name.clone(), m);
        if def.flags.encrypt != 0 {
            return Err(bad(
                "encrypted attributes are not supported in replies".into()
            ));
        }
        if tag != 0 && !def.flags.has_tag {
            return Err(bad("this attribute takes no tag".into()));
        }
        if def.oid.len() != 1 {
            return Err(bad(
                "TLV and extended attributes are not supported in replies".into(),
            ));
        }
        let number = u8::try_from(def.number()).map_err(|_| bad("number above 255".into()))?;
        let vendor = if def.vendor == 0 {
            None
        } else {
            let v = dict
                .vendor(def.vendor)
                .ok_or_else(|| bad("vendor not defined".into()))?;
            if (v.type_size, v.length_size) != (1, 1) {
                return Err(bad(
                    "only vendors with 1-octet type and length are supported".into(),
                ));
            }
            Some((def.vendor, number))
        };
        let kind = if vendor.is_some() {
            VENDOR_SPECIFIC
        } else {
            number
        };
        let integer = |max: u64| -> Result<u64, ReplyError> {
            let n = value
                .parse::<u64>()
                .ok()
                .or_else(|| dict.value(&def.name, value))
                .ok_or_else(|| bad(format!("{value:?} is neither a number nor a named value")))?;
            if n > max {
                return Err(bad(format!("{n} is above {max}")));
            }
            Ok(n)
        };
        let encoded = match def.data_type {
            DataType::String | DataType::Octets
                if value.contains('{') && !value.starts_with("0x") =>
            {
                return Ok(ReplyAttribute {
                    name: def.name.clone(),
                    kind,
                    vendor,
                    value: Value::Template {
                        parts: parse_template(value).map_err(bad)?,
                        tag,
                    },
                });
            }
            DataType::String => with_tag(tag, value.as_bytes()),
            DataType::Octets => match value.strip_prefix("0x") {
                Some(h) => crate::proto::hex::decode(h)
                    .ok_or_else(|| bad(format!("{value:?} is not hex")))?,
                None => value.as_bytes().to_vec(),
            },
            DataType::Byte => vec![integer(0xff)? as u8],
            DataType::Short => (integer(0xffff)? as u16).to_be_bytes().to_vec(),
            DataType::Integer | DataType::Date => {
                let n = integer(if tag != 0 { 0xff_ffff } else { 0xffff_ffff })? as u32;
                let mut b = n.to_be_bytes();
                if def.flags.has_tag {
                    b[0] = tag;
                }
                b.to_vec()
            }
            DataType::Integer64 => integer(u64::MAX)?.to_be_bytes().to_vec(),
            DataType::IpAddr => value
                .parse::<Ipv4Addr>()
                .map_err(|_| bad(format!("{value:?} is not an IPv4 address")))?
                .octets()
                .to_vec(),
            DataType::Ipv6Addr => value
                .parse::<Ipv6Addr>()
                .map_err(|_| bad(format!("{value:?} is not an IPv6 address")))?
                .octets()
                .to_vec(),
            other => return Err(bad(format!("type {other:?} is not supported in replies"))),
        };
        let a = ReplyAttribute {
            name: def.name.clone(),
            kind,
            vendor,
            value: Value::Fixed(encoded),
        };
        a.encode(&Vars::default())
            .map_err(|m| ReplyError::Value(def.name.clone(), m))?;
        Ok(a)
    }

    /// The attribute's (type, value) for a reply, vendor ones wrapped in
    /// Vendor-Specific.
    pub fn encode(&self, vars: &Vars<'_>) -> Result<(u8, Vec<u8>), String> {
        let value = match &self.value {
            Value::Fixed(v) => v.clone(),
            Value::Template { parts, tag } => with_tag(*tag, vars.render(parts).as_bytes()),
        };
        let value = match self.vendor {
            None => value,
            Some((vendor, sub)) => {
                let mut v = Vec::with_capacity(6 + value.len());
                v.extend_from_slice(&vendor.to_be_bytes());
                v.push(sub);
                v.push(u8::try_from(2 + value.len()).map_err(|_| "value too long".to_string())?);
                v.extend_from_slice(&value);
                v
            }
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(format!("{} octets is above {MAX_VALUE_LEN}", value.len()));
        }
        Ok((self.kind, value))
    }
}

/// The three RFC 3580 §3.31 attributes that put a port in a VLAN.
pub fn vlan(dict: &Dictionary, vlan: u16) -> Result<Vec<ReplyAttribute>, ReplyError> {
    [
        "Tunnel-Type:1 = VLAN".to_string(),
        "Tunnel-Medium-Type:1 = IEEE-802".to_string(),
        format!("Tunnel-Private-Group-Id:1 = {vlan}"),
    ]
    .iter()
    .map(|l| ReplyAttribute::parse(dict, l))
    .collect()
}

fn with_tag(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + value.len());
    if tag != 0 {
        v.push(tag);
    }
    v.extend_from_slice(value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        Dictionary::shipped()
    }

    #[test]
    fn encodes_standard_tagged_and_vendor_attributes() {
        let d = dict();
        let attrs = HashMap::from([("department".to_string(), vec!["R&D".to_string()])]);
        let v = Vars {
            identity: "alice",
            group: "staff",
            attributes: Some(&attrs),
        };
        let enc = |l: &str| {
            ReplyAttribute::parse(&d, l)
                .expect(l)
                .encode(&v)
                .expect("encodes")
        };
        assert_eq!(enc("Filter-Id = employee"), (11, b"employee".to_vec()));
        assert_eq!(
            enc("Session-Timeout = 3600"),
            (27, 3600u32.to_be_bytes().to_vec())
        );
        assert_eq!(enc("Tunnel-Type:1 = VLAN"), (64, vec![1, 0, 0, 13]));
        assert_eq!(
            enc("Tunnel-Private-Group-Id:1 = 20"),
            (81, b"\x0120".to_vec())
        );
        assert_eq!(
            enc("Class = \"user={identity}\""),
            (25, b"user=alice".to_vec())
        );
        assert_eq!(
            enc("Filter-Id = {group}/{attr:Department}/{attr:missing}"),
            (11, b"staff/R&D/".to_vec())
        );
        let (kind, value) = enc("Cisco-AVPair = shell:priv-lvl=15");
        assert_eq!(kind, 26);
        assert_eq!(&value[..6], &[0, 0, 0, 9, 1, 19]);
        assert_eq!(&value[6..], b"shell:priv-lvl=15");
        assert_eq!(vlan(&d, 20).expect("vlan").len(), 3);
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        let d = dict();
        for (line, needle) in [
            ("No-Such = 1", "unknown attribute"),
            ("Filter-Id", "is not `Name = value`"),
            ("Session-Timeout = soon", "neither a number"),
            ("Framed-IP-Address = 300.1.1.1", "not an IPv4"),
            ("Filter-Id:3 = x", "takes no tag"),
            ("Tunnel-Password:1 = x", "encrypted"),
            ("Filter-Id = {nope}", "unknown placeholder {nope}"),
            ("Filter-Id = {identity", "unclosed"),
        ] {
            let e = ReplyAttribute::parse(&d, line).expect_err(line).to_string();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }
}
