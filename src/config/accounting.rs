//! The `[accounting]` section: where the journal lives, how it rotates, and
//! how live sessions age. Accounting is on when `journal_dir` is set.
//!
//! Part of the configuration module.

use std::path::Path;

use serde::Deserialize;

use super::{Problems, parse_duration, resolve};
use crate::accounting::{AccountingConfig, JournalConfig};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAccounting {
    journal_dir: String,
    rotate_size: u64,
    rotate_interval: String,
    session_timeout: String,
    duplicate_window: String,
    max_sessions: u64,
}

impl Default for RawAccounting {
    fn default() -> Self {
        RawAccounting {
            journal_dir: String::new(),
            rotate_size: 64 << 20,
            rotate_interval: "1d".into(),
            session_timeout: "2h".into(),
            duplicate_window: "5m".into(),
            max_sessions: 1_000_000,
        }
    }
}

pub(super) fn validate(
    p: &mut Problems,
    base: &Path,
    raw: &RawAccounting,
) -> Option<AccountingConfig> {
    if raw.journal_dir.is_empty() {
        return None;
    }
    if raw.rotate_size < 4096 {
        p.add(
            "accounting.rotate_size",
            format!("{} is below 4096 octets", raw.rotate_size),
        );
    }
    if raw.max_sessions == 0 {
        p.add("accounting.max_sessions", "must be at least 1");
    }
    Some(AccountingConfig {
        journal: JournalConfig {
            dir: resolve(base, &raw.journal_dir),
            rotate_bytes: raw.rotate_size,
            rotate_interval: parse_duration(p, "accounting.rotate_interval", &raw.rotate_interval),
        },
        session_timeout: parse_duration(p, "accounting.session_timeout", &raw.session_timeout),
        duplicate_window: parse_duration(p, "accounting.duplicate_window", &raw.duplicate_window),
        max_sessions: usize::try_from(raw.max_sessions).unwrap_or(usize::MAX),
    })
}
