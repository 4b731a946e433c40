//! The accounting shipper: reads the journal's durable records in write
//! order and writes them into PostgreSQL — every record as received
//! (`certgate_acct_records`) and its effect on FreeRADIUS's `radacct` — in
//! batches, each in one transaction with this node's position (journal
//! file and offset, `certgate_ship_position`). A crash of the node or of
//! the database at any moment leaves position and rows together: nothing
//! shipped twice, nothing skipped.
//!
//! The journal stays the point of durability: acknowledgements never wait
//! for the database. While PostgreSQL is down the shipper retries every
//! `accounting.postgres.retry` and catches up when it is back. It reads
//! only what the journal has synced (`journal::Durable`).
//!
//! I/O only: what a record does to `radacct` is `proto::accounting::radacct`.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Statement};

use super::journal::{Durable, named_files};
use crate::config::PostgresConfig;
use crate::metrics::ship::ShipMetrics;
use crate::proto::accounting::radacct::{Change, Row, change};
use crate::proto::accounting::record::Record;

#[derive(Debug, Error)]
pub enum ShipError {
    #[error("{kind}: {message}")]
    Db { kind: &'static str, message: String },
    #[error("journal: {0}")]
    Journal(String),
}

impl ShipError {
    fn kind(&self) -> &'static str {
        match self {
            ShipError::Db { kind, .. } => kind,
            ShipError::Journal(_) => "journal",
        }
    }
}

fn db(kind: &'static str) -> impl Fn(tokio_postgres::Error) -> ShipError {
    move |e| ShipError::Db {
        kind,
        message: e.to_string(),
    }
}

/// FreeRADIUS's `radacct` (its PostgreSQL schema, column for column), and
/// certgate's tables beside it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS radacct (
    RadAcctId bigserial PRIMARY KEY,
    AcctSessionId text NOT NULL,
    AcctUniqueId text NOT NULL UNIQUE,
    UserName text,
    Realm text,
    NASIPAddress inet NOT NULL,
    NASPortId text,
    NASPortType text,
    AcctStartTime timestamp with time zone,
    AcctUpdateTime timestamp with time zone,
    AcctStopTime timestamp with time zone,
    AcctInterval bigint,
    AcctSessionTime bigint,
    AcctAuthentic text,
    ConnectInfo_start text,
    ConnectInfo_stop text,
    AcctInputOctets bigint,
    AcctOutputOctets bigint,
    CalledStationId text,
    CallingStationId text,
    AcctTerminateCause text,
    ServiceType text,
    FramedProtocol text,
    FramedIPAddress inet,
    FramedIPv6Address inet,
    FramedIPv6Prefix inet,
    FramedInterfaceId text,
    DelegatedIPv6Prefix inet,
    Class text
);
CREATE INDEX IF NOT EXISTS radacct_active_session_idx ON radacct (AcctUniqueId) WHERE AcctStopTime IS NULL;
CREATE INDEX IF NOT EXISTS radacct_bulk_close ON radacct (NASIPAddress, AcctStartTime) WHERE AcctStopTime IS NULL;
CREATE INDEX IF NOT EXISTS radacct_start_user_idx ON radacct (AcctStartTime, UserName);
CREATE TABLE IF NOT EXISTS certgate_acct_records (
    node text NOT NULL,
    file text NOT NULL,
    file_offset bigint NOT NULL,
    received timestamp with time zone NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (node, file, file_offset)
);
CREATE TABLE IF NOT EXISTS certgate_ship_position (
    node text PRIMARY KEY,
    file text NOT NULL,
    file_offset bigint NOT NULL,
    shipped_at timestamp with time zone NOT NULL
);
";

/// The columns every radacct statement sets, in parameter order $1..$13.
const COLUMNS: &str = "AcctSessionId, AcctUniqueId, UserName, Realm, NASIPAddress, NASPortType, \
    CalledStationId, CallingStationId, FramedIPAddress, Class";

struct Statements {
    record: Statement,
    start: Statement,
    interim: Statement,
    stop: Statement,
    close_nas: Statement,
    position: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Self, ShipError> {
        let q = db("query");
        let values = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10";
        Ok(Statements {
            record: c
                .prepare(
                    "INSERT INTO certgate_acct_records (node, file, file_offset, received, record) \
                     VALUES ($1, $2, $3, to_timestamp($4::bigint), $5::text::jsonb)",
                )
                .await
                .map_err(&q)?,
            // A Start opens the row; one an Interim or Stop opened first
            // keeps the earliest start.
            start: c
                .prepare(&format!(
                    "INSERT INTO radacct ({COLUMNS}, AcctStartTime, AcctUpdateTime, AcctSessionTime, AcctInputOctets, AcctOutputOctets) \
                     VALUES ({values}, to_timestamp($11::bigint), to_timestamp($11::bigint), 0, 0, 0) \
                     ON CONFLICT (AcctUniqueId) DO UPDATE SET AcctStartTime = LEAST(radacct.AcctStartTime, EXCLUDED.AcctStartTime)"
                ))
                .await
                .map_err(&q)?,
            // Late records never win: an Interim updates only a row that is
            // open and last updated before it.
            interim: c
                .prepare(&format!(
                    "INSERT INTO radacct ({COLUMNS}, AcctStartTime, AcctUpdateTime, AcctSessionTime, AcctInputOctets, AcctOutputOctets) \
                     VALUES ({values}, to_timestamp($11::bigint - COALESCE($12::bigint, 0)), to_timestamp($11::bigint), $12, $13, $14) \
                     ON CONFLICT (AcctUniqueId) DO UPDATE SET AcctUpdateTime = EXCLUDED.AcctUpdateTime, \
                     AcctSessionTime = COALESCE(EXCLUDED.AcctSessionTime, radacct.AcctSessionTime), \
                     AcctInputOctets = COALESCE(EXCLUDED.AcctInputOctets, radacct.AcctInputOctets), \
                     AcctOutputOctets = COALESCE(EXCLUDED.AcctOutputOctets, radacct.AcctOutputOctets), \
                     FramedIPAddress = COALESCE(EXCLUDED.FramedIPAddress, radacct.FramedIPAddress) \
                     WHERE radacct.AcctStopTime IS NULL \
                     AND (radacct.AcctUpdateTime IS NULL OR radacct.AcctUpdateTime <= EXCLUDED.AcctUpdateTime)"
                ))
                .await
                .map_err(&q)?,
            // The first Stop closes the row; nothing reopens it.
            stop: c
                .prepare(&format!(
                    "INSERT INTO radacct ({COLUMNS}, AcctStartTime, AcctUpdateTime, AcctStopTime, AcctSessionTime, AcctInputOctets, AcctOutputOctets, AcctTerminateCause) \
                     VALUES ({values}, to_timestamp($11::bigint - COALESCE($12::bigint, 0)), to_timestamp($11::bigint), to_timestamp($11::bigint), $12, $13, $14, $15) \
                     ON CONFLICT (AcctUniqueId) DO UPDATE SET AcctStopTime = EXCLUDED.AcctStopTime, \
                     AcctUpdateTime = GREATEST(radacct.AcctUpdateTime, EXCLUDED.AcctUpdateTime), \
                     AcctSessionTime = COALESCE(EXCLUDED.AcctSessionTime, radacct.AcctSessionTime), \
                     AcctInputOctets = COALESCE(EXCLUDED.AcctInputOctets, radacct.AcctInputOctets), \
                     AcctOutputOctets = COALESCE(EXCLUDED.AcctOutputOctets, radacct.AcctOutputOctets), \
                     AcctTerminateCause = EXCLUDED.AcctTerminateCause \
                     WHERE radacct.AcctStopTime IS NULL"
                ))
                .await
                .map_err(&q)?,
            // radacct_bulk_close: Accounting-On/Off closes what was open.
            close_nas: c
                .prepare(
                    "UPDATE radacct SET AcctStopTime = to_timestamp($2::bigint), \
                     AcctUpdateTime = to_timestamp($2::bigint), \
                     AcctSessionTime = GREATEST(0, $2::bigint - EXTRACT(EPOCH FROM AcctStartTime)::bigint), \
                     AcctTerminateCause = 'NAS-Reboot' \
                     WHERE AcctStopTime IS NULL AND NASIPAddress = $1 AND AcctStartTime <= to_timestamp($2::bigint)",
                )
                .await
                .map_err(&q)?,
            position: c
                .prepare(
                    "INSERT INTO certgate_ship_position (node, file, file_offset, shipped_at) VALUES ($1, $2, $3, now()) \
                     ON CONFLICT (node) DO UPDATE SET file = EXCLUDED.file, file_offset = EXCLUDED.file_offset, shipped_at = now()",
                )
                .await
                .map_err(&q)?,
        })
    }
}

/// One journal line and where it ends.
struct Line {
    file: String,
    offset: u64,
    end: u64,
    text: String,
}

/// Up to `max` durable lines after `pos` (file name, offset), in order.
fn read_batch(
    dir: &Path,
    durable: &Durable,
    pos: &Option<(String, u64)>,
    max: usize,
) -> Result<Vec<Line>, ShipError> {
    let Some((last, last_len)) = durable.upto() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, path) in named_files(dir) {
        if name > last {
            break;
        }
        let start = match pos {
            Some((f, _)) if name < *f => continue,
            Some((f, o)) if name == *f => *o,
            _ => 0,
        };
        let limit = if name == last {
            last_len
        } else {
            std::fs::metadata(&path)
                .map_err(|e| ShipError::Journal(format!("{}: {e}", path.display())))?
                .len()
        };
        if start >= limit {
            continue;
        }
        let mut file = std::fs::File::open(&path)
            .map_err(|e| ShipError::Journal(format!("{}: {e}", path.display())))?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ShipError::Journal(e.to_string()))?;
        let mut reader = BufReader::new(file.take(limit - start));
        let mut offset = start;
        loop {
            let mut text = String::new();
            let n = reader
                .read_line(&mut text)
                .map_err(|e| ShipError::Journal(format!("{}: {e}", path.display())))?;
            if n == 0 || !text.ends_with('\n') {
                break;
            }
            let end = offset + n as u64;
            text.pop();
            out.push(Line {
                file: name.clone(),
                offset,
                end,
                text,
            });
            offset = end;
            if out.len() >= max {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Records on disk after `pos` (one pass over the backlog, at start).
fn count_after(dir: &Path, durable: &Durable, pos: &Option<(String, u64)>) -> u64 {
    let mut n = 0;
    let mut at = pos.clone();
    loop {
        let Ok(batch) = read_batch(dir, durable, &at, 10_000) else {
            return n;
        };
        let Some(last) = batch.last() else { return n };
        n += batch.len() as u64;
        at = Some((last.file.clone(), last.end));
    }
}

/// A statement's answer, boxed so a batch's statements can be pipelined.
type BoxFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>,
>;

async fn row_params<'a>(
    stmt: &Statement,
    tx: &tokio_postgres::Transaction<'a>,
    r: &Row,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &r.session_id,
        &r.unique_id,
        &r.user,
        &r.realm,
        &r.nas_ip,
        &r.nas_port_type,
        &r.called_station,
        &r.calling_station,
        &r.framed_ip,
        &r.class,
        &r.event,
    ];
    params.extend_from_slice(extra);
    tx.execute(stmt, &params).await
}

/// Ships until the connection breaks (Err) or shutdown (Ok).
async fn ship(
    client: &mut Client,
    config: &PostgresConfig,
    dir: &Path,
    durable: &Durable,
    metrics: &ShipMetrics,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ShipError> {
    if config.create_schema {
        client.batch_execute(SCHEMA).await.map_err(db("schema"))?;
    }
    let s = Statements::prepare(client).await?;
    let row = client
        .query_opt(
            "SELECT file, file_offset FROM certgate_ship_position WHERE node = $1",
            &[&config.node],
        )
        .await
        .map_err(db("query"))?;
    let mut pos: Option<(String, u64)> =
        row.map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64));
    tracing::info!(node = %config.node, position = ?pos, "shipping the journal into PostgreSQL");
    // Lag in records: the backlog counted once, then kept by arithmetic.
    let synced_then = durable.records.load(Ordering::Relaxed);
    let backlog = count_after(dir, durable, &pos);
    let mut shipped_since = 0u64;
    let mut last_retention = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        let synced = durable
            .records
            .load(Ordering::Relaxed)
            .saturating_sub(synced_then);
        metrics
            .lag_records
            .set((backlog + synced).saturating_sub(shipped_since) as i64);
        let batch = read_batch(dir, durable, &pos, config.batch)?;
        if batch.is_empty() {
            metrics.lag_seconds.set(0);
            // As often as the retention itself, at most once a second and
            // at least once a minute.
            let every = config
                .retention
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_secs(1), Duration::from_secs(60));
            if last_retention.elapsed() >= every {
                last_retention = std::time::Instant::now();
                retain(dir, durable, &pos, config.retention, metrics);
            }
            tokio::select! {
                _ = durable.synced.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return Ok(()),
            }
            continue;
        }
        let started = std::time::Instant::now();
        let records: Vec<Option<Record>> = batch
            .iter()
            .map(|l| serde_json::from_str::<Record>(&l.text).ok())
            .collect();
        if let Some(Some(first)) = records.first() {
            let now = super::time::now().unix_secs();
            metrics.lag_seconds.set((now - first.unix).max(0));
        }
        let changes: Vec<Change> = records
            .iter()
            .map(|r| r.as_ref().map_or(Change::None, change))
            .collect();
        let received: Vec<i64> = records
            .iter()
            .map(|r| r.as_ref().map_or(0, |r| r.unix))
            .collect();
        let offsets: Vec<i64> = batch.iter().map(|l| l.offset as i64).collect();
        for (line, record) in batch.iter().zip(&records) {
            if record.is_none() {
                tracing::warn!(file = %line.file, offset = line.offset, "journal line is not a record; stored as received only");
            }
        }
        let tx = client.transaction().await.map_err(db("query"))?;
        // Every statement of the batch is sent before the first answer is
        // awaited (tokio-postgres pipelines them), in journal order.
        let mut work: Vec<BoxFuture<'_>> = Vec::with_capacity(2 * batch.len());
        let (txr, st, node) = (&tx, &s, &config.node);
        let (offsets, received) = (&offsets, &received);
        for (i, line) in batch.iter().enumerate() {
            work.push(Box::pin(async move {
                txr.execute(
                    &st.record,
                    &[node, &line.file, &offsets[i], &received[i], &line.text],
                )
                .await
            }));
            match &changes[i] {
                Change::Start(r) => {
                    work.push(Box::pin(
                        async move { row_params(&st.start, txr, r, &[]).await },
                    ))
                }
                Change::Interim(r) => work.push(Box::pin(async move {
                    row_params(
                        &st.interim,
                        txr,
                        r,
                        &[&r.session_time, &r.input_octets, &r.output_octets],
                    )
                    .await
                })),
                Change::Stop(r) => work.push(Box::pin(async move {
                    row_params(
                        &st.stop,
                        txr,
                        r,
                        &[
                            &r.session_time,
                            &r.input_octets,
                            &r.output_octets,
                            &r.terminate_cause,
                        ],
                    )
                    .await
                })),
                Change::CloseNas { nas_ip, at } => work.push(Box::pin(async move {
                    txr.execute(&st.close_nas, &[nas_ip, at]).await
                })),
                Change::None => {}
            }
        }
        futures_util::future::try_join_all(work)
            .await
            .map_err(db("query"))?;
        let (last_file, last_end) = batch
            .last()
            .map(|l| (l.file.clone(), l.end))
            .unwrap_or_default();
        let q = db("query");
        tx.execute(&s.position, &[&config.node, &last_file, &(last_end as i64)])
            .await
            .map_err(&q)?;
        tx.commit().await.map_err(&q)?;
        pos = Some((last_file, last_end));
        shipped_since += batch.len() as u64;
        metrics.shipped.inc_by(batch.len() as u64);
        metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Deletes journal files wholly shipped (before the position's file) and
/// older than `retention`; never the newest (the writer's).
fn retain(
    dir: &Path,
    durable: &Durable,
    pos: &Option<(String, u64)>,
    retention: Option<Duration>,
    metrics: &ShipMetrics,
) {
    let (Some(retention), Some((shipped_file, _)), Some((newest, _))) =
        (retention, pos, durable.upto())
    else {
        return;
    };
    for (name, path) in named_files(dir) {
        if name >= *shipped_file || name >= newest {
            break;
        }
        let old = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= retention);
        if old && std::fs::remove_file(&path).is_ok() {
            metrics.files_deleted.inc();
            tracing::info!(file = %path.display(), "shipped journal file past its retention deleted");
        }
    }
}

/// Runs until shutdown: connects, ships, and on any failure tries again
/// after `retry`.
pub async fn run(
    config: PostgresConfig,
    dir: PathBuf,
    durable: Arc<Durable>,
    metrics: ShipMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut pg = match config.url.parse::<tokio_postgres::Config>() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "accounting.postgres.url does not parse; not shipping");
            return;
        }
    };
    if let Some(p) = &config.password {
        pg.password(p);
    }
    pg.connect_timeout(Duration::from_secs(5));
    pg.application_name("certgate");
    loop {
        let result = match pg.connect(NoTls).await {
            Ok((mut client, connection)) => {
                let task = tokio::spawn(async move {
                    let _ = connection.await;
                });
                metrics.connected.set(1);
                let r = ship(&mut client, &config, &dir, &durable, &metrics, &mut stop).await;
                metrics.connected.set(0);
                task.abort();
                r
            }
            Err(e) => Err(db("connect")(e)),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                metrics.errors.with_label_values(&[e.kind()]).inc();
                tracing::warn!(error = %e, retry_ms = config.retry.as_millis() as u64, "shipping to PostgreSQL paused");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retry) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The cluster's open sessions as every node shipped them (`certgate
/// sessions --cluster`): radacct rows without a stop, optionally of one
/// user (ASCII case aside) or station (any MAC notation), oldest first.
pub async fn cluster_sessions(
    config: &PostgresConfig,
    user: Option<&str>,
    station: Option<&str>,
    limit: i64,
) -> Result<Vec<serde_json::Value>, ShipError> {
    let mut pg: tokio_postgres::Config = config.url.parse().map_err(db("connect"))?;
    if let Some(p) = &config.password {
        pg.password(p);
    }
    pg.connect_timeout(Duration::from_secs(5));
    let (client, connection) = pg.connect(NoTls).await.map_err(db("connect"))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let station = station.map(crate::proto::accounting::auth::station_key);
    let rows = client
        .query(
            "SELECT AcctSessionId, UserName, host(NASIPAddress), CallingStationId, \
             EXTRACT(EPOCH FROM AcctStartTime)::bigint, EXTRACT(EPOCH FROM AcctUpdateTime)::bigint, \
             AcctInputOctets, AcctOutputOctets, Class \
             FROM radacct WHERE AcctStopTime IS NULL \
             AND ($1::text IS NULL OR lower(UserName) = lower($1::text)) \
             AND ($2::text IS NULL OR lower(regexp_replace(CallingStationId, '[^0-9A-Fa-f]', '', 'g')) = $2::text) \
             ORDER BY AcctStartTime LIMIT $3",
            &[&user, &station, &limit],
        )
        .await
        .map_err(db("query"))?;
    task.abort();
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "session_id": r.get::<_, String>(0),
                "user": r.get::<_, Option<String>>(1),
                "nas_ip": r.get::<_, Option<String>>(2),
                "calling_station": r.get::<_, Option<String>>(3),
                "started": r.get::<_, Option<i64>>(4),
                "updated": r.get::<_, Option<i64>>(5),
                "input_octets": r.get::<_, Option<i64>>(6),
                "output_octets": r.get::<_, Option<i64>>(7),
                "class": r.get::<_, Option<String>>(8),
            })
        })
        .collect())
}
