//! `certgate-bench`: the load generator's command line. Everything it does
//! lives in `certgate::bench`; this parses arguments and prints reports.

// Memory safety is the compiler's job here: no unsafe code in this crate.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use certgate::bench::{self, Load};
use certgate::proto::wire::crypto::Secret;
use certgate::supplicant::{Supplicant, Versions, client_config_with};
use rustls::pki_types::ServerName;

#[derive(Parser)]
#[command(
    name = "certgate-bench",
    about = "RADIUS load generator (EAP-TLS, accounting, Status-Server)"
)]
struct Cli {
    /// Server auth address.
    #[arg(long, default_value = "127.0.0.1:1812")]
    target: SocketAddr,
    #[arg(long, default_value = "testing123")]
    secret: String,
    /// Conversations in flight at once.
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many operations.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Stop after this long (e.g. 10s); with neither, 10s.
    #[arg(long, short = 'd')]
    duration: Option<humantime::Duration>,
    /// Operations run first and not counted.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// The server's pid, to report its CPU time per operation.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    radsec: Radsec,
    #[command(subcommand)]
    mode: Mode,
}

/// RadSec (RADIUS over TLS) instead of UDP: --target is then the server's
/// RadSec port and --secret usually `radsec`.
#[derive(Args)]
struct Radsec {
    /// Speak RadSec with this NAS certificate (PEM; chain after the leaf).
    #[arg(long, requires_all = ["radsec_key", "radsec_ca"])]
    radsec_cert: Option<PathBuf>,
    #[arg(long)]
    radsec_key: Option<PathBuf>,
    /// The CA(s) the server's certificate must chain to.
    #[arg(long)]
    radsec_ca: Option<PathBuf>,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = "radius.example.org")]
    radsec_server_name: String,
    /// TLS connections the workers share (each carries up to 256 requests
    /// at once).
    #[arg(long, default_value_t = 1)]
    radsec_connections: usize,
    /// Full handshakes only: no TLS session resumption on RadSec
    /// connections.
    #[arg(long)]
    radsec_no_resume: bool,
}

impl Radsec {
    fn via(&self) -> Result<bench::Via, String> {
        let (Some(cert), Some(key), Some(ca)) =
            (&self.radsec_cert, &self.radsec_key, &self.radsec_ca)
        else {
            return Ok(bench::Via::Udp);
        };
        let config =
            client_config_with(ca, cert, key, Versions::Both, !self.radsec_no_resume, true)
                .map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(self.radsec_server_name.clone())
            .map_err(|e| format!("--radsec-server-name: {e}"))?;
        Ok(bench::Via::Radsec {
            config,
            server_name,
            connections: self.radsec_connections,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Tls {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

/// Which client certificate, and which TLS version it speaks.
#[derive(Args)]
struct Client {
    /// A PKI directory made by `certgate pki`.
    #[arg(long)]
    pki: PathBuf,
    /// Client name under PKI/clients.
    #[arg(long, default_value = "alice@example.org")]
    name: String,
    #[arg(long, value_enum, default_value = "1.3")]
    tls: Tls,
}

#[derive(Subcommand)]
enum Mode {
    /// Whole EAP-TLS conversations with a client certificate from a PKI
    /// directory made by `certgate pki`.
    EapTls {
        #[command(flatten)]
        client: Client,
        /// Resume TLS sessions (otherwise every handshake is full).
        #[arg(long)]
        resume: bool,
        #[arg(long, default_value_t = 1000)]
        fragment_size: usize,
        /// Offer classic key exchange only (no X25519MLKEM768), like
        /// OpenSSL 3.0 supplicants.
        #[arg(long)]
        no_pq: bool,
    },
    /// Opens conversations and abandons them mid-handshake (after the
    /// ClientHello); with --server-pid, reports the server's memory per
    /// conversation held. Use --count for how many.
    HalfOpen {
        #[command(flatten)]
        client: Client,
        /// Requests per conversation before abandoning it (1: Identity
        /// only; 2: Identity and ClientHello).
        #[arg(long, default_value_t = 2)]
        round_trips: u32,
    },
    /// Accounting-Requests (Start / Interim-Update / Stop mix, unique
    /// session ids) to the accounting port given as --target.
    Acct,
    /// Status-Server requests with Message-Authenticator.
    Status,
    /// RadSec only: opens --count connections (each proven by one
    /// Status-Server) and holds them; with --server-pid, reports the
    /// server's memory per idle connection.
    Connections,
}

/// The supplicant for a client certificate from a PKI directory.
fn supplicant(client: &Client, resume: bool, post_quantum: bool) -> Result<Supplicant, String> {
    let Client { pki, name, tls } = client;
    let versions = match tls {
        Tls::V12 => Versions::Tls12,
        Tls::V13 => Versions::Tls13,
    };
    let clients = pki.join("clients");
    let config = client_config_with(
        &pki.join("ca.pem"),
        &clients.join(format!("{name}.pem")),
        &clients.join(format!("{name}.key")),
        versions,
        resume,
        post_quantum,
    )
    .map_err(|e| e.to_string())?;
    let mut sup = Supplicant::new(config, name);
    // A load generator for any server: Message-Authenticator must be
    // present and valid, not necessarily first.
    sup.message_authenticator_first = false;
    Ok(sup)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let duration = match (cli.duration, cli.count) {
        (Some(d), _) => Some(Duration::from(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let via = match cli.radsec.via() {
        Ok(via) => via,
        Err(e) => {
            eprintln!("certgate-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let load = Load {
        via,
        target: cli.target,
        secret: Secret::new(cli.secret.as_bytes()),
        concurrency: cli.concurrency,
        count: cli.count,
        duration,
        server_pid: cli.server_pid,
    };
    let result = rt.block_on(async {
        match &cli.mode {
            Mode::EapTls {
                client,
                resume,
                fragment_size,
                no_pq,
            } => {
                let mut sup = supplicant(client, *resume, !*no_pq)?;
                sup.fragment_size = *fragment_size;
                if cli.warmup > 0 {
                    let warm = Load {
                        count: Some(cli.warmup),
                        duration: None,
                        server_pid: None,
                        ..load.clone()
                    };
                    bench::eap_tls(&warm, sup.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                bench::eap_tls(&load, sup).await.map_err(|e| e.to_string())
            }
            Mode::HalfOpen {
                client,
                round_trips,
            } => {
                let sup = supplicant(client, false, false)?;
                let before = load.server_pid.and_then(bench::rss_kib);
                let report = bench::half_open(&load, sup, *round_trips)
                    .await
                    .map_err(|e| e.to_string())?;
                let after = load.server_pid.and_then(bench::rss_kib);
                if let (Some(b), Some(a)) = (before, after) {
                    let held = report.completed.max(1);
                    eprintln!(
                        "server RSS       {:.1} MiB before, {:.1} MiB after: {:.2} KiB per conversation held",
                        b as f64 / 1024.0,
                        a as f64 / 1024.0,
                        a.saturating_sub(b) as f64 / held as f64
                    );
                }
                Ok(report)
            }
            Mode::Acct => bench::acct(&load).await.map_err(|e| e.to_string()),
            Mode::Status => bench::status(&load).await.map_err(|e| e.to_string()),
            Mode::Connections => {
                let before = load.server_pid.and_then(bench::rss_kib);
                let pid = load.server_pid;
                bench::hold_connections(&load, load.count.unwrap_or(1000), |open| {
                    if let (Some(b), Some(a)) = (before, pid.and_then(bench::rss_kib)) {
                        eprintln!(
                            "server RSS       {:.1} MiB before, {:.1} MiB with {open} connections open: {:.2} KiB per connection",
                            b as f64 / 1024.0,
                            a as f64 / 1024.0,
                            a.saturating_sub(b) as f64 / open.max(1) as f64
                        );
                    }
                })
                .await
                .map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(report) => {
            if cli.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            if report.completed == 0 {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("certgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
