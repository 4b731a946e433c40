//! The `[ocsp]` section: whether client certificates are checked with
//! their CA's OCSP responder, where it is, how long a query may take, how
//! long answers are kept, and what happens when none comes.
//!
//! Part of the configuration module: reads nothing but its values.

use serde::Deserialize;

use super::{Problems, parse_duration};
use crate::proto::ocsp::{OcspSettings, OnUnavailable};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOcsp {
    enabled: bool,
    url: String,
    timeout: String,
    cache_entries: u64,
    max_age: String,
    on_unavailable: String,
    unknown: String,
    nonce: bool,
    clock_skew: String,
    check_chain: bool,
}

impl Default for RawOcsp {
    fn default() -> Self {
        RawOcsp {
            enabled: false,
            url: String::new(),
            timeout: "2s".into(),
            cache_entries: 100_000,
            max_age: "1h".into(),
            on_unavailable: "reject".into(),
            unknown: "reject".into(),
            nonce: false,
            clock_skew: "5m".into(),
            check_chain: false,
        }
    }
}

pub(super) fn validate(p: &mut Problems, raw: &RawOcsp) -> Option<OcspSettings> {
    if !raw.enabled {
        return None;
    }
    let url = (!raw.url.is_empty()).then(|| raw.url.clone());
    if let Some(u) = &url
        && (!u.starts_with("http://") || u.len() <= "http://".len())
    {
        p.add(
            "ocsp.url",
            format!("{u:?} is not an http:// URL (OCSP runs over plain HTTP)"),
        );
    }
    let on_unavailable = match raw.on_unavailable.as_str() {
        "reject" => OnUnavailable::Reject,
        "crl" => OnUnavailable::Crl,
        "accept" => OnUnavailable::Accept,
        other => {
            p.add(
                "ocsp.on_unavailable",
                format!("{other:?} is not \"reject\", \"crl\" or \"accept\""),
            );
            OnUnavailable::Reject
        }
    };
    if raw.cache_entries == 0 {
        p.add("ocsp.cache_entries", "must be at least 1");
    }
    Some(OcspSettings {
        url,
        timeout: parse_duration(p, "ocsp.timeout", &raw.timeout),
        cache_entries: usize::try_from(raw.cache_entries)
            .unwrap_or(usize::MAX)
            .max(1),
        max_age: parse_duration(p, "ocsp.max_age", &raw.max_age),
        on_unavailable,
        unknown_rejects: super::either(p, "ocsp.unknown", &raw.unknown, "accept", "reject"),
        nonce: raw.nonce,
        clock_skew: parse_duration(p, "ocsp.clock_skew", &raw.clock_skew),
        check_chain: raw.check_chain,
    })
}
