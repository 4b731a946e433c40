//! The `[accounting]` section: where the journal lives, how it rotates, and
//! how live sessions age. Accounting is on when `journal_dir` is set.
//!
//! Part of the configuration module.

use std::path::Path;

use serde::Deserialize;

use super::{Problems, parse_duration, resolve};
use std::time::Duration;

use crate::server::journal::JournalConfig;

/// `[accounting]` as checked: where the journal lives (the shell's) and how
/// live sessions age (the engine's).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountingConfig {
    pub journal: JournalConfig,
    pub session_timeout: Duration,
    pub duplicate_window: Duration,
    pub max_sessions: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAccounting {
    journal_dir: String,
    rotate_size: u64,
    rotate_interval: String,
    session_timeout: String,
    duplicate_window: String,
    max_sessions: u64,
    file_group: String,
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
            file_group: String::new(),
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
    let group = file_group(p, "accounting.file_group", &raw.file_group);
    Some(AccountingConfig {
        journal: JournalConfig {
            dir: resolve(base, &raw.journal_dir),
            rotate_bytes: raw.rotate_size,
            rotate_interval: parse_duration(p, "accounting.rotate_interval", &raw.rotate_interval),
            group,
        },
        session_timeout: parse_duration(p, "accounting.session_timeout", &raw.session_timeout),
        duplicate_window: parse_duration(p, "accounting.duplicate_window", &raw.duplicate_window),
        max_sessions: usize::try_from(raw.max_sessions).unwrap_or(usize::MAX),
    })
}

/// A `key` naming a group by name or number: its id, None when empty; a
/// name that is not in /etc/group is a problem.
pub(super) fn file_group(p: &mut Problems, key: &str, group: &str) -> Option<u32> {
    if group.is_empty() {
        return None;
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let gid = group_id(&groups, group);
    if gid.is_none() {
        p.add(
            key,
            format!("{group:?} is neither a group in /etc/group nor a number"),
        );
    }
    gid
}

/// The id of a group given by name (looked up in `/etc/group`'s text) or
/// as a number. Read by hand: std has no group database, and a crate for
/// one line of a colon-separated file would be more than the job.
fn group_id(etc_group: &str, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let gid = fields.nth(1)?;
        (name == group).then(|| gid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_by_name_or_number() {
        let etc = "root:x:0:\nadm:x:4:syslog,alice\nbroken\nreports:x:1002:\n";
        assert_eq!(super::group_id(etc, "adm"), Some(4));
        assert_eq!(super::group_id(etc, "reports"), Some(1002));
        assert_eq!(super::group_id(etc, "1234"), Some(1234));
        assert_eq!(super::group_id(etc, "nobody-here"), None);
        assert_eq!(super::group_id(etc, "broken"), None);
    }
}
