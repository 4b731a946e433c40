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
    /// Shipping the journal into PostgreSQL; None: the journal only.
    pub postgres: Option<PostgresConfig>,
}

/// `[accounting.postgres]`: where the shipper writes, as which node, in
/// what batches, and how long shipped journal files are kept.
#[derive(Clone, PartialEq)]
pub struct PostgresConfig {
    /// A tokio-postgres connection string (`host=… user=… dbname=…` or a
    /// `postgres://` URL).
    pub url: String,
    pub password: Option<String>,
    /// This node's name: its shipping position and the records it wrote.
    pub node: String,
    pub batch: usize,
    /// How soon a broken connection is tried again.
    pub retry: Duration,
    /// Shipped journal files older than this are deleted; None: kept.
    pub retention: Option<Duration>,
    /// Create the tables when missing.
    pub create_schema: bool,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.url)
            .field("node", &self.node)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
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
    postgres: Option<RawPostgres>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPostgres {
    url: String,
    password_file: Option<String>,
    password_env: Option<String>,
    node: String,
    batch: u64,
    retry: String,
    retention: String,
    create_schema: bool,
}

impl Default for RawPostgres {
    fn default() -> Self {
        RawPostgres {
            url: String::new(),
            password_file: None,
            password_env: None,
            node: String::new(),
            batch: 500,
            retry: "1s".into(),
            retention: String::new(),
            create_schema: true,
        }
    }
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
            postgres: None,
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
    let session_timeout = parse_duration(p, "accounting.session_timeout", &raw.session_timeout);
    let postgres = raw.postgres.as_ref().and_then(|pg| postgres(p, base, pg));
    if let Some(r) = postgres.as_ref().and_then(|pg| pg.retention)
        && r < session_timeout
    {
        p.warn(format!(
            "accounting.postgres.retention: {} is shorter than accounting.session_timeout ({}): a restart rebuilds live sessions from the journal, and deleted files take theirs with them",
            humantime::format_duration(r),
            humantime::format_duration(session_timeout)
        ));
    }
    Some(AccountingConfig {
        journal: JournalConfig {
            dir: resolve(base, &raw.journal_dir),
            rotate_bytes: raw.rotate_size,
            rotate_interval: parse_duration(p, "accounting.rotate_interval", &raw.rotate_interval),
            group,
        },
        session_timeout,
        duplicate_window: parse_duration(p, "accounting.duplicate_window", &raw.duplicate_window),
        max_sessions: usize::try_from(raw.max_sessions).unwrap_or(usize::MAX),
        postgres,
    })
}

fn postgres(p: &mut Problems, base: &Path, raw: &RawPostgres) -> Option<PostgresConfig> {
    if raw.url.trim().is_empty() {
        p.add(
            "accounting.postgres.url",
            "missing: e.g. \"host=127.0.0.1 user=certgate dbname=radius\"",
        );
        return None;
    }
    if let Err(e) = raw.url.parse::<tokio_postgres::Config>() {
        p.add(
            "accounting.postgres.url",
            format!("not a connection string: {e}"),
        );
    }
    let password = match (&raw.password_file, &raw.password_env) {
        (None, None) => None,
        given => super::read_secret(
            p,
            base,
            "accounting.postgres.password",
            (&None, given.0, given.1),
        ),
    };
    let node = if raw.node.is_empty() {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "certgate".into())
    } else {
        raw.node.clone()
    };
    if !(1..=10_000).contains(&raw.batch) {
        p.add(
            "accounting.postgres.batch",
            format!("{} is not 1..10000", raw.batch),
        );
    }
    Some(PostgresConfig {
        url: raw.url.clone(),
        password,
        node,
        batch: usize::try_from(raw.batch).unwrap_or(500).clamp(1, 10_000),
        retry: parse_duration(p, "accounting.postgres.retry", &raw.retry),
        retention: (!raw.retention.is_empty())
            .then(|| parse_duration(p, "accounting.postgres.retention", &raw.retention)),
        create_schema: raw.create_schema,
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
