//! The durable accounting journal: append-only JSON Lines files in one
//! directory, written by one thread with group commit — every batch of
//! waiting records is written and `fdatasync`ed once, and only then is each
//! record's writer told it is on disk (RFC 2866 §2: no storage, no
//! Accounting-Response).
//!
//! Files rotate by size and age; names (`acct-YYYYMMDDTHHMMSSZ-NNNNNN.jsonl`)
//! sort in write order. On start a torn last line (a crash mid-write) is cut
//! off. A write or sync failure fails the whole batch, trims the file back
//! to where the batch began, and the next batch tries again (a new file if
//! need be): nothing acknowledged is ever lost, nothing unacknowledged is
//! reported stored.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::oneshot;

use crate::metrics::AccountingMetrics;
use crate::proto::accounting::record::Record;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JournalError {
    #[error("journal {kind}: {message}")]
    Io { kind: &'static str, message: String },
    #[error("journal writer has stopped")]
    Stopped,
}

impl JournalError {
    pub fn kind(&self) -> &'static str {
        match self {
            JournalError::Io { kind, .. } => kind,
            JournalError::Stopped => "stopped",
        }
    }

    fn io(e: &std::io::Error, what: &str) -> Self {
        let kind = match e.kind() {
            ErrorKind::StorageFull => "no_space",
            ErrorKind::ReadOnlyFilesystem => "read_only",
            ErrorKind::PermissionDenied => "permission",
            // create_dir_all on a path that is a file reports AlreadyExists.
            ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::AlreadyExists => {
                "no_directory"
            }
            _ => "io",
        };
        JournalError::Io {
            kind,
            message: format!("{what}: {e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    pub rotate_bytes: u64,
    pub rotate_interval: Duration,
    /// Records name users, stations and addresses: files are 0600 and the
    /// directory 0700, or with a group (a reporting tool's), 0640 and 0750
    /// and owned by it.
    pub group: Option<u32>,
}

impl JournalConfig {
    fn file_mode(&self) -> u32 {
        if self.group.is_some() { 0o640 } else { 0o600 }
    }

    fn dir_mode(&self) -> u32 {
        if self.group.is_some() { 0o750 } else { 0o700 }
    }
}

/// Creates `dir` and any missing parents with `mode`, then syncs the
/// directory holding each one created, so the new entries survive a crash
/// like the files in them. Returns the directories synced.
pub fn create_durable_dir(dir: &Path, mode: u32) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    let mut synced = Vec::new();
    for created in missing.iter().rev() {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&parent).and_then(|d| d.sync_all())?;
        synced.push(parent);
    }
    Ok(synced)
}

struct Entry {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// The handle requests append through; cheap to share.
pub struct Journal {
    tx: mpsc::Sender<Entry>,
    /// How far the journal is on disk (what the shipper may read).
    pub durable: Arc<Durable>,
}

/// The durable end of the journal: the newest file and how many of its
/// octets are synced. Older files are whole; nothing newer exists. Readers
/// (the PostgreSQL shipper) must not read past it: a line written but not
/// yet synced can vanish in a crash, and a record shipped then re-sent by
/// the NAS would land twice.
#[derive(Debug, Default)]
pub struct Durable {
    upto: parking_lot::Mutex<Option<(String, u64)>>,
    /// Records synced since start (the shipper's lag counts from it).
    pub records: std::sync::atomic::AtomicU64,
    /// Woken after each synced batch.
    pub synced: tokio::sync::Notify,
}

impl Durable {
    /// The newest file's name and its synced length; None: no file yet.
    pub fn upto(&self) -> Option<(String, u64)> {
        self.upto.lock().clone()
    }

    fn set(&self, path: &Path, len: u64) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        *self.upto.lock() = Some((name, len));
        self.synced.notify_waiters();
    }

    /// At start: the journal as repaired is all on disk.
    fn from_dir(dir: &Path) -> Self {
        let d = Durable::default();
        if let Some(last) = files(dir).last() {
            let len = std::fs::metadata(last).map_or(0, |m| m.len());
            d.set(last, len);
        }
        d
    }
}

/// Most records and octets in one batch.
const BATCH_RECORDS: usize = 8192;
const BATCH_BYTES: usize = 8 << 20;

impl Journal {
    /// Starts the writer thread. Files are opened lazily, so a missing or
    /// unwritable directory fails appends (and is retried), not start-up.
    pub fn start(config: JournalConfig, metrics: Arc<AccountingMetrics>) -> Journal {
        let (tx, rx) = mpsc::channel::<Entry>();
        let durable = Arc::new(Durable::from_dir(&config.dir));
        let writer = Writer::new(config, metrics, durable.clone());
        let spawned = std::thread::Builder::new()
            .name("certgate-journal".into())
            .spawn(move || writer.run(rx));
        if let Err(e) = spawned {
            // Without the thread every append reports Stopped: no false acks.
            tracing::error!(error = %e, "cannot start the journal writer");
        }
        Journal { tx, durable }
    }

    /// Appends one JSON line (without its newline); resolves once it is on
    /// disk.
    pub async fn append(&self, mut line: Vec<u8>) -> Result<(), JournalError> {
        line.push(b'\n');
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry { line, done })
            .map_err(|_| JournalError::Stopped)?;
        wait.await.map_err(|_| JournalError::Stopped)?
    }
}

struct Open {
    file: File,
    path: PathBuf,
    len: u64,
    opened: Instant,
}

struct Writer {
    config: JournalConfig,
    metrics: Arc<AccountingMetrics>,
    open: Option<Open>,
    seq: u64,
    durable: Arc<Durable>,
}

impl Writer {
    fn new(config: JournalConfig, metrics: Arc<AccountingMetrics>, durable: Arc<Durable>) -> Self {
        // File names sort in write order across restarts too: a restart
        // within the same second goes on from the highest sequence number.
        let seq = files(&config.dir)
            .iter()
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?;
                name.rsplit('-').next()?.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        Writer {
            config,
            metrics,
            open: None,
            seq,
            durable,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Entry>) {
        let mut buf = Vec::with_capacity(1 << 20);
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let mut bytes = batch[0].line.len();
            while batch.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(e) => {
                        bytes += e.line.len();
                        batch.push(e);
                    }
                    Err(_) => break,
                }
            }
            buf.clear();
            for e in &batch {
                buf.extend_from_slice(&e.line);
            }
            let result = self.write(&buf);
            match &result {
                Ok(()) => self.metrics.batch_records.observe(batch.len() as f64),
                Err(e) => {
                    self.metrics
                        .journal_errors
                        .with_label_values(&[e.kind()])
                        .inc();
                    tracing::error!(error = %e, records = batch.len(), "journal write failed; no Accounting-Response for these records");
                }
            }
            for e in batch {
                let _ = e.done.send(result.clone());
            }
        }
        if let Some(open) = self.open.take() {
            let _ = open.file.sync_all();
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), JournalError> {
        let rotate = self.open.as_ref().is_some_and(|o| {
            o.len + data.len() as u64 > self.config.rotate_bytes && o.len > 0
                || o.opened.elapsed() >= self.config.rotate_interval
        });
        if rotate && let Some(o) = self.open.take() {
            let _ = o.file.sync_all();
            tracing::info!(file = %o.path.display(), octets = o.len, "journal file rotated");
        }
        if self.open.is_none() {
            self.open = Some(self.open_new()?);
        }
        let Some(open) = self.open.as_mut() else {
            return Err(JournalError::Stopped);
        };
        let started = Instant::now();
        let result = open
            .file
            .write_all(data)
            .map_err(|e| JournalError::io(&e, "write"))
            .and_then(|()| {
                open.file
                    .sync_data()
                    .map_err(|e| JournalError::io(&e, "fdatasync"))
            });
        match result {
            Ok(()) => {
                open.len += data.len() as u64;
                let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
                self.durable
                    .records
                    .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
                self.durable.set(&open.path, open.len);
                self.metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(e) => {
                // Trim what this batch may have left; if even that fails, the
                // file's tail is unknown: start a new file next time.
                let trimmed = open
                    .file
                    .set_len(open.len)
                    .and_then(|()| open.file.sync_all());
                if trimmed.is_err() {
                    self.open = None;
                }
                Err(e)
            }
        }
    }

    fn open_new(&mut self) -> Result<Open, JournalError> {
        let dir = &self.config.dir;
        let created = create_durable_dir(dir, self.config.dir_mode())
            .map_err(|e| JournalError::io(&e, "create directory"))?;
        if !created.is_empty()
            && let Some(gid) = self.config.group
        {
            std::os::unix::fs::chown(dir, None, Some(gid))
                .map_err(|e| JournalError::io(&e, "set the directory's group"))?;
        }
        let now = time::OffsetDateTime::now_utc();
        loop {
            self.seq += 1;
            let name = format!(
                "acct-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:06}.jsonl",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
                self.seq
            );
            let path = dir.join(name);
            let opened = OpenOptions::new()
                .append(true)
                .create_new(true)
                .mode(self.config.file_mode())
                .open(&path);
            match opened {
                Ok(file) => {
                    if let Some(gid) = self.config.group {
                        std::os::unix::fs::chown(&path, None, Some(gid))
                            .map_err(|e| JournalError::io(&e, "set the file's group"))?;
                    }
                    // The new directory entry must survive a crash too.
                    File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| JournalError::io(&e, "sync directory"))?;
                    tracing::info!(file = %path.display(), "journal file opened");
                    return Ok(Open {
                        file,
                        path,
                        len: 0,
                        opened: Instant::now(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(JournalError::io(&e, "create file")),
            }
        }
    }
}

/// Repairs a torn tail, then reads back the records of the journal files
/// modified within `horizon` (older ones hold no live session), in write
/// order, handing each to `apply`. Returns how many were read.
pub fn replay(dir: &Path, horizon: Duration, mut apply: impl FnMut(&Record)) -> u64 {
    if let Err(e) = repair(dir) {
        tracing::error!(error = %e, "journal repair failed");
    }
    let since = std::time::SystemTime::now()
        .checked_sub(horizon)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut replayed = 0;
    for file in files(dir) {
        let recent_enough = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if !recent_enough {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(r) = serde_json::from_str::<Record>(line) {
                apply(&r);
                replayed += 1;
            }
        }
    }
    replayed
}

/// Journal files in write order, with their names.
pub fn named_files(dir: &Path) -> Vec<(String, PathBuf)> {
    files(dir)
        .into_iter()
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect()
}

/// Journal files in write order.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("acct-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    files
}

/// Cuts a torn tail off the newest journal file: anything after the last
/// newline, and trailing lines that are not JSON (a crash can leave zeros).
/// Returns the number of octets removed.
pub fn repair(dir: &Path) -> Result<u64, JournalError> {
    let Some(last) = files(dir).pop() else {
        return Ok(0);
    };
    let data = std::fs::read(&last).map_err(|e| JournalError::io(&e, "read"))?;
    let mut keep = data.len();
    loop {
        let body = &data[..keep];
        let end = if body.ends_with(b"\n") {
            let line_start = body[..body.len() - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if serde_json::from_slice::<serde_json::Value>(&body[line_start..]).is_ok() {
                break;
            }
            line_start
        } else {
            body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        if end == keep {
            break;
        }
        keep = end;
    }
    let removed = (data.len() - keep) as u64;
    if removed > 0 {
        let f = OpenOptions::new()
            .write(true)
            .open(&last)
            .map_err(|e| JournalError::io(&e, "open for repair"))?;
        f.set_len(keep as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| JournalError::io(&e, "truncate"))?;
        tracing::warn!(file = %last.display(), octets = removed, "journal: cut a torn last line");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn writer(dir: &Path, group: Option<u32>) -> Writer {
        let metrics = crate::metrics::Metrics::new().expect("metrics");
        Writer::new(
            JournalConfig {
                dir: dir.to_path_buf(),
                rotate_bytes: 1 << 20,
                rotate_interval: Duration::from_secs(3600),
                group,
            },
            metrics.accounting.clone(),
            Arc::new(Durable::default()),
        )
    }

    /// The shipper's bound: after a synced write the durable end is the
    /// file and length written; a restart within the same second goes on
    /// with a higher sequence, so names keep sorting in write order.
    #[test]
    fn the_durable_end_follows_synced_writes_and_names_keep_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = writer(dir.path(), None);
        w.write(b"{\"a\":1}\n").expect("write");
        let (name, len) = w.durable.upto().expect("durable");
        assert_eq!(len, 8);
        assert!(name.ends_with("-000001.jsonl"), "{name}");
        drop(w);
        let mut again = writer(dir.path(), None);
        again.write(b"{}\n").expect("write");
        let (second, _) = again.durable.upto().expect("durable");
        assert!(second > name, "{second} sorts after {name}");
        assert_eq!(Durable::from_dir(dir.path()).upto(), Some((second, 3)));
    }

    /// Records name users and stations: the files and their directory are
    /// private to the server's user, or shared with one configured group.
    #[test]
    fn journal_files_are_private_or_group_readable() {
        let root = tempfile::tempdir().expect("tempdir");
        let mine = std::fs::metadata(root.path()).expect("meta").gid();
        for (group, file_mode, dir_mode) in [(None, 0o600, 0o700), (Some(mine), 0o640, 0o750)] {
            let dir = root.path().join(format!("j-{file_mode:o}")).join("acct");
            let mut w = writer(&dir, group);
            w.write(b"{\"a\":1}\n").expect("write");
            let file = files(&dir).pop().expect("a journal file");
            let meta = std::fs::metadata(&file).expect("meta");
            assert_eq!(meta.permissions().mode() & 0o777, file_mode, "{group:?}");
            assert_eq!(meta.gid(), mine);
            let dmeta = std::fs::metadata(&dir).expect("meta");
            assert_eq!(dmeta.permissions().mode() & 0o777, dir_mode, "{group:?}");
        }
    }

    /// A new journal directory's entry is synced into its parent, and so
    /// is each missing parent's.
    #[test]
    fn a_created_directory_is_synced_into_its_parent() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("b");
        let synced = create_durable_dir(&dir, 0o700).expect("create");
        assert_eq!(synced, [root.path().to_path_buf(), root.path().join("a")]);
        assert!(dir.is_dir());
        assert!(create_durable_dir(&dir, 0o700).expect("exists").is_empty());
    }

    #[test]
    fn repair_cuts_torn_and_garbage_tails_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("acct-20260101T000000Z-000001.jsonl");
        std::fs::write(&f, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").expect("write");
        assert_eq!(repair(dir.path()).expect("repair"), 5);
        assert_eq!(std::fs::read(&f).expect("read"), b"{\"a\":1}\n{\"b\":2}\n");
        std::fs::write(&f, b"{\"a\":1}\n\0\0\0\0\n").expect("write");
        assert_eq!(repair(dir.path()).expect("repair"), 5);
        assert_eq!(repair(dir.path()).expect("repair"), 0, "a clean file stays");
        assert_eq!(std::fs::read(&f).expect("read"), b"{\"a\":1}\n");
    }
}
