//! The `certgate` command line: parses arguments and calls the library.
//! Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use certgate::config::Config;

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} clients, {} dictionary attributes)",
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
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            certgate::logging::init(&config.log);
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
    }
}
