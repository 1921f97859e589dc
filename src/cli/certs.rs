//! `tongban certs init`: a demo PKI (演示证书) so the demo federation runs with mutual TLS on a
//! fresh machine — a CA, the gateway's server and client certificates, one client certificate
//! per demo partner and a server certificate for a demo platform.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

/// The partners of config/tongban-mtls.toml.
const DEMO_PARTNERS: &[&str] = &["guangdong-window", "hunan-window"];
/// A platform host, for trying outbound TLS (an adapter's `[tls]`).
const DEMO_PLATFORMS: &[&str] = &["guizhou.platform.tongban.test"];

/// `tongban certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate a demo CA with gateway, partner and platform certificates.
    Init {
        /// Where to write them.
        #[arg(long, default_value = "config/tls")]
        out: std::path::PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `certs` command.
pub fn run(command: CertsCommand) -> ExitCode {
    match command {
        CertsCommand::Init { out, force } => init(&out, force),
    }
}

fn init(out: &Path, force: bool) -> ExitCode {
    match crate::tls::generate_demo_pki(out, DEMO_PARTNERS, DEMO_PLATFORMS, force) {
        Ok(pki) => {
            println!("Demo certificates written to {} (for trying tongban out, never for production):", out.display());
            for file in &pki.files {
                println!("  {}", file.display());
            }
            println!(
                "Serve with mutual TLS: tongban --config config/tongban-mtls.toml\n\
                 Call as a partner:     curl --cacert {dir}/ca.pem --cert {dir}/partner-guangdong-window.pem --key {dir}/partner-guangdong-window.key https://127.0.0.1:8443/v1/matters?region=520102",
                dir = out.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
