//! The `certgate` command line: parses arguments and calls the library.
//! Nothing else lives here.

// Memory safety is the compiler's job here: no unsafe code in this crate.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use certgate::config::Config;
use certgate::pki::{ClientOptions, KeyType, Pki};

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
    /// A small CA for labs and demos (use your organisation's CA in production).
    Pki {
        #[command(subcommand)]
        action: PkiAction,
    },
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
        } => {
            let opts = ClientOptions {
                via_intermediate: intermediate,
                valid_until_days: days,
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
