//! Command line (命令行): `serve`, `check`, `map`, `queue`, `mock`, `certs`, `audit`.

mod audit;
mod certs;
mod check;
mod map;
mod mock;
mod queue;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default config: the demo federation with in-process simulated platforms.
pub const DEFAULT_CONFIG: &str = "config/tongban.toml";

/// tongban (通办): a gateway between provincial government-service platforms.
#[derive(Debug, Parser)]
#[command(name = "tongban", version, about)]
struct Cli {
    /// The gateway config file (for every command that loads one).
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gateway (the default command).
    Serve,
    /// Validate config, adapters, mappings and the matter list, and run every mapping's tests.
    Check,
    /// Translate one sample document with an adapter's mapping (partner onboarding).
    Map {
        /// Adapter name (file stem under adapters/).
        #[arg(long)]
        adapter: String,
        /// Operation: submit, status or matters.
        #[arg(long)]
        operation: String,
        /// to-native (canonical JSON in) or to-canonical (native document in).
        #[arg(long)]
        direction: map::DirectionArg,
        /// Which message: request (default) or response.
        #[arg(long, default_value = "request")]
        message: map::MessageArg,
        /// Write native output in the adapter's own encoding (e.g. GBK) instead of UTF-8.
        #[arg(long)]
        raw: bool,
        /// The sample document.
        file: PathBuf,
    },
    /// The proxy acceptance queue: list, show, retry, dead.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// The audit log: verify its hash chain.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Demo certificates for mutual TLS.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Run simulated provincial platforms standalone.
    Mock {
        /// Platforms to run (default: all), e.g. --adapter guizhou --adapter hunan.
        #[arg(long)]
        adapter: Vec<String>,
        /// Listen address, for a single platform (default: the platform's own address).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// List the simulated platforms and exit.
        #[arg(long)]
        list: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    let command = cli.command.unwrap_or(Command::Serve);
    // `serve` installs logging itself, in the format its configuration asks for.
    if !matches!(command, Command::Serve) {
        init_logging();
    }
    match command {
        Command::Check => check::run(&config),
        Command::Map { adapter, operation, direction, message, raw, file } => {
            map::run(&config, &adapter, &operation, direction, message, raw, &file)
        }
        Command::Serve => runtime(|| serve::run(config)),
        Command::Queue { command } => queue::run(&config, command),
        Command::Mock { adapter, listen, list } => runtime(|| mock::run(adapter, listen, list)),
        Command::Certs { command } => certs::run(command),
        Command::Audit { command } => audit::run(&config, command),
    }
}

fn runtime<F, Fut>(body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(body()),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    crate::observe::logging::init(crate::observe::logging::LogFormat::Text);
}

/// Prints diagnostics the way `check`, `serve` and `map` all do.
fn print_diagnostics(diagnostics: &crate::config::diagnostic::Diagnostics) {
    for diagnostic in diagnostics.iter() {
        eprintln!("{diagnostic}");
    }
}
