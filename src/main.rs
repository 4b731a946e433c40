//! The `certgate` command line: parses arguments and calls the library.
//! Nothing else lives here.

// Memory safety is the compiler's job here: no unsafe code in this crate.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use certgate::config::Config;
use certgate::pki::{ClientOptions, KeyType, Pki};
use certgate::server::admin;

/// jemalloc rather than glibc's malloc: after a flood of abandoned
/// conversations is swept, glibc keeps the freed, fragmented heap resident
/// (261 MiB after 20 000 conversations, bench/memory.sh), while jemalloc's
/// background thread returns freed pages within its 10 s decay. jemalloc
/// also serves C's malloc (the `unprefixed_malloc_on_supported_platforms`
/// feature): aws-lc allocates each handshake's keys through malloc, and
/// with only Rust on jemalloc glibc still held 170 MiB after 100 000
/// conversations were swept; with both, 43 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "certgate",
    version,
    about = "RADIUS server for certificate-based network access"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGINT or SIGTERM (SIGHUP reloads the configuration).
    Serve {
        /// Configuration file (TOML); CERTGATE_… environment variables override it.
        #[arg(long, short, default_value = "conf/certgate.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0 if valid, 1 with every problem if not.
    CheckConfig {
        #[arg(long, short, default_value = "conf/certgate.toml")]
        config: PathBuf,
    },
    /// Demo: create a demo PKI when absent, print an eapol_test
    /// configuration for it, and serve on loopback with conf/demo.toml.
    Demo {
        #[arg(long, short, default_value = "conf/demo.toml")]
        config: PathBuf,
        /// PKI directory [default: demo/pki beside the configuration folder]
        #[arg(long)]
        pki: Option<PathBuf>,
    },
    /// List the running server's live sessions (through its admin socket).
    Sessions {
        #[arg(long, short, default_value = "conf/certgate.toml")]
        config: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        /// At most this many sessions.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Every node's open sessions, from PostgreSQL's radacct
        /// (accounting.postgres), instead of this server's (--user and
        /// --calling-station filter).
        #[arg(long)]
        cluster: bool,
    },
    /// Ask the running server to disconnect sessions (RFC 5176
    /// Disconnect-Request to their NAS). Exits 0 when every NAS
    /// acknowledged, 1 when nothing matched, 2 otherwise.
    Disconnect {
        #[arg(long, short, default_value = "conf/certgate.toml")]
        config: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        /// Seconds to wait for the server's answer.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// A small CA for labs and demos (use your organisation's CA in production).
    Pki {
        #[command(subcommand)]
        action: PkiAction,
    },
}

/// Which sessions (one of these).
#[derive(clap::Args)]
#[group(multiple = false)]
struct SelectArgs {
    /// The identity (certificate identity or User-Name).
    #[arg(long)]
    user: Option<String>,
    /// The client certificate's serial, hex.
    #[arg(long)]
    serial: Option<String>,
    /// The station's MAC address, any notation.
    #[arg(long)]
    calling_station: Option<String>,
    /// A NAS client's name.
    #[arg(long)]
    nas: Option<String>,
    /// A directory group the session was authorized with.
    #[arg(long)]
    group: Option<String>,
}

impl SelectArgs {
    fn select(self) -> admin::Select {
        admin::Select {
            user: self.user,
            serial: self.serial,
            calling_station: self.calling_station,
            nas: self.nas,
            group: self.group,
        }
    }
}

/// The admin socket `config` names, or why there is none.
fn admin_socket(config: &std::path::Path) -> Result<PathBuf, String> {
    let c = Config::load(config).map_err(|e| e.to_string())?;
    c.admin.socket.ok_or_else(|| {
        format!(
            "{}: admin.socket is not set: the server has no admin socket to reach",
            config.display()
        )
    })
}

/// One line of the sessions table.
fn row(cols: [String; 7]) {
    let [nas, session, user, station, group, serial, state] = cols;
    println!("{nas:<16} {session:<20} {user:<28} {station:<18} {group:<10} {serial:<12} {state}");
}

fn sessions(config: &std::path::Path, select: SelectArgs, limit: usize, json: bool) -> ExitCode {
    let request = admin::Request::Sessions {
        select: select.select(),
        limit,
    };
    let answer = admin_socket(config).and_then(|socket| {
        admin::call(&socket, &request, Duration::from_secs(30)).map_err(|e| e.to_string())
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("certgate sessions: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{answer}");
        return ExitCode::SUCCESS;
    }
    let field = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string()
    };
    row([
        "NAS", "SESSION", "USER", "STATION", "GROUP", "SERIAL", "STATE",
    ]
    .map(String::from));
    let empty = Vec::new();
    let list = answer
        .get("sessions")
        .and_then(|s| s.as_array())
        .unwrap_or(&empty);
    for s in list {
        let serial = s
            .get("auth")
            .and_then(|a| a.get("certificate"))
            .map_or_else(|| "-".into(), |c| field(c, "serial"));
        row([
            field(s, "client"),
            field(s, "session_id"),
            field(s, "user"),
            field(s, "calling_station"),
            field(s, "group"),
            serial,
            field(s, "disconnect"),
        ]);
    }
    let unclaimed = answer
        .get("unclaimed")
        .and_then(|s| s.as_array())
        .unwrap_or(&empty);
    for a in unclaimed {
        let group = a
            .get("groups")
            .and_then(|g| g.get(0))
            .and_then(|g| g.as_str());
        row([
            field(a, "nas"),
            "(no accounting)".into(),
            field(a, "identity"),
            field(a, "calling_station"),
            group.unwrap_or("-").into(),
            a.get("certificate")
                .map_or_else(|| "-".into(), |c| field(c, "serial")),
            "-".into(),
        ]);
    }
    println!(
        "{} of {} live sessions; {} authentications without accounting",
        list.len(),
        answer.get("total").and_then(|t| t.as_u64()).unwrap_or(0),
        answer
            .get("unclaimed_total")
            .and_then(|t| t.as_u64())
            .unwrap_or(0),
    );
    ExitCode::SUCCESS
}

fn cluster_sessions(
    config: &std::path::Path,
    select: SelectArgs,
    limit: usize,
    json: bool,
) -> ExitCode {
    let fail = |e: String| {
        eprintln!("certgate sessions --cluster: {e}");
        ExitCode::FAILURE
    };
    if select.serial.is_some() || select.nas.is_some() || select.group.is_some() {
        return fail("radacct knows users and stations: use --user or --calling-station".into());
    }
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let Some(pg) = c.accounting.as_ref().and_then(|a| a.postgres.clone()) else {
        return fail(format!(
            "{}: accounting.postgres is not set",
            config.display()
        ));
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match runtime.block_on(certgate::server::shipper::cluster_sessions(
        &pg,
        select.user.as_deref(),
        select.calling_station.as_deref(),
        limit,
    )) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return ExitCode::SUCCESS;
    }
    let text = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "-".into(),
    };
    println!(
        "{:<20} {:<28} {:<16} {:<18} {:>12} {:>12}",
        "SESSION", "USER", "NAS", "STATION", "IN", "OUT"
    );
    for r in &rows {
        println!(
            "{:<20} {:<28} {:<16} {:<18} {:>12} {:>12}",
            text(r, "session_id"),
            text(r, "user"),
            text(r, "nas_ip"),
            text(r, "calling_station"),
            text(r, "input_octets"),
            text(r, "output_octets")
        );
    }
    println!("{} open sessions in the cluster", rows.len());
    ExitCode::SUCCESS
}

fn disconnect(config: &std::path::Path, select: SelectArgs, wait: u64) -> ExitCode {
    let select = select.select();
    if select == admin::Select::default() {
        eprintln!(
            "certgate disconnect: say which sessions: --user, --serial, --calling-station, --nas or --group"
        );
        return ExitCode::from(2);
    }
    let request = admin::Request::Disconnect { select };
    let answer = admin_socket(config).and_then(|socket| {
        admin::call(&socket, &request, Duration::from_secs(wait)).map_err(|e| e.to_string())
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("certgate disconnect: {e}");
            return ExitCode::from(2);
        }
    };
    let empty = Vec::new();
    let reports = answer
        .get("reports")
        .and_then(|r| r.as_array())
        .unwrap_or(&empty);
    if reports.is_empty() {
        eprintln!("certgate disconnect: no live session matches");
        return ExitCode::FAILURE;
    }
    let mut all_done = true;
    for r in reports {
        let text = |k: &str| r.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string();
        let result = text("result");
        let mut line = format!(
            "{result:<8} nas={} session={} user={} station={} via={}",
            text("nas"),
            text("session_id"),
            text("user"),
            text("calling_station"),
            text("route")
        );
        if let Some(cause) = r.get("error_cause").and_then(|c| c.as_u64()) {
            line.push_str(&format!(" Error-Cause={cause} ({})", text("detail")));
        } else if result == "failed" {
            line.push_str(&format!(" ({})", text("detail")));
        }
        all_done &= result == "ack" || result == "dry_run";
        println!("{line}");
    }
    if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[derive(Subcommand)]
enum PkiAction {
    /// Create a root CA, a server certificate and an empty CRL in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name in the server certificate.
        #[arg(long, default_value = "radius.example.org")]
        server_name: String,
        /// Server key: ecdsa (P-256) or rsa (2048 bits).
        #[arg(long, default_value = "ecdsa")]
        key_type: String,
    },
    /// Issue a client certificate (CN, SAN email and UPN = NAME).
    Client {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Issue through the intermediate CA (created on first use).
        #[arg(long)]
        intermediate: bool,
        /// Days of validity from now.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// An OCSP responder URL to put in the certificate's AIA.
        #[arg(long)]
        ocsp_url: Option<String>,
    },
    /// Revoke every certificate of NAME and rewrite crl.pem.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
}

fn pki(action: PkiAction) -> ExitCode {
    let result = match action {
        PkiAction::Init {
            dir,
            server_name,
            key_type,
        } => match KeyType::parse(&key_type) {
            None => {
                eprintln!("--key-type {key_type:?}: use ecdsa or rsa");
                return ExitCode::FAILURE;
            }
            Some(kt) => Pki::open(&dir).init(&server_name, kt).map(|()| {
                format!(
                    "created CA, server certificate and CRL in {}",
                    dir.display()
                )
            }),
        },
        PkiAction::Client {
            dir,
            name,
            intermediate,
            days,
            ocsp_url,
        } => {
            let opts = ClientOptions {
                via_intermediate: intermediate,
                valid_until_days: days,
                ocsp_url,
                ..ClientOptions::default()
            };
            Pki::open(&dir).issue_client(&name, &opts).map(|f| {
                format!(
                    "issued {} (key {})",
                    f.certificate.display(),
                    f.key.display()
                )
            })
        }
        PkiAction::Revoke { dir, name } => Pki::open(&dir)
            .revoke(&name)
            .map(|n| format!("revoked {n} certificate(s) of {name}; crl.pem rewritten")),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("certgate pki: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the demo PKI when absent, prints how to try it, and returns the
/// configuration overrides that point `[tls]` at it.
fn prepare_demo(
    config: &std::path::Path,
    pki_dir: Option<PathBuf>,
) -> Result<Vec<(String, config::Value)>, String> {
    let base = config.parent().unwrap_or(std::path::Path::new("."));
    let dir = pki_dir.unwrap_or_else(|| base.join("../demo/pki"));
    let pki = Pki::open(&dir);
    let user = "alice@example.org";
    if !pki.exists() {
        pki.init("radius.example.org", KeyType::EcdsaP256)
            .map_err(|e| e.to_string())?;
        pki.issue_client(user, &ClientOptions::default())
            .map_err(|e| e.to_string())?;
        println!("created a demo PKI in {}", dir.display());
    }
    let abs = |name: &str| {
        let p = dir.join(name);
        std::fs::canonicalize(&p).unwrap_or(p)
    };
    let eapol = certgate::pki::eapol_test_conf(
        user,
        &abs("ca.pem"),
        &abs(&format!("clients/{user}.pem")),
        &abs(&format!("clients/{user}.key")),
        "",
    );
    let conf = dir.join("eapol_test.conf");
    std::fs::write(&conf, &eapol).map_err(|e| format!("{}: {e}", conf.display()))?;
    println!(
        "try it from another terminal (Debian package eapoltest):\n  eapol_test -c {} -a 127.0.0.1 -p 1812 -s testing123\n",
        conf.display()
    );
    let text = |name: &str| abs(name).display().to_string();
    Ok(vec![
        ("tls.certificate".into(), text("server.pem").into()),
        ("tls.private_key".into(), text("server.key").into()),
        ("tls.ca".into(), vec![text("ca.pem")].into()),
        ("tls.crls".into(), vec![text("crl.pem")].into()),
    ])
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    println!("warning: {w}");
                }
                let radsec = c.radsec.as_ref().map_or(String::new(), |r| {
                    format!(", {} RadSec clients", r.clients.len())
                });
                println!(
                    "{}: valid ({} clients{radsec}, {} dictionary attributes)",
                    config.display(),
                    c.clients.len(),
                    c.dictionary.attribute_count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Pki { action } => pki(action),
        Command::Demo { config, pki } => match prepare_demo(&config, pki) {
            Ok(overrides) => serve(&config, &overrides),
            Err(e) => {
                eprintln!("certgate demo: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => serve(&config, &[]),
        Command::Sessions {
            config,
            select,
            limit,
            json,
            cluster: true,
        } => cluster_sessions(&config, select, limit, json),
        Command::Sessions {
            config,
            select,
            limit,
            json,
            cluster: false,
        } => sessions(&config, select, limit, json),
        Command::Disconnect {
            config,
            select,
            wait,
        } => disconnect(&config, select, wait),
    }
}

fn serve(config: &std::path::Path, overrides: &[(String, config::Value)]) -> ExitCode {
    let config = match Config::load_with_overrides(config, overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    certgate::logging::init(&config.log);
    // Without its background thread jemalloc purges only when the arena
    // that freed is used again: an idle server would keep a flood's pages.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background thread not started; freed memory returns more slowly");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(certgate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "certgate stopped");
            eprintln!("certgate: {e}");
            ExitCode::FAILURE
        }
    }
}
