//! `tongban certs init`: a demo PKI (演示证书) so the demo federation runs with mutual TLS on a
//! fresh machine — a CA, the gateway's server and client certificates, one client certificate
//! per demo partner, a server certificate for a demo platform and the CA's (empty) revocation
//! list. `tongban certs revoke` rewrites that list (吊销) to try revocation out.

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
    /// Rewrite the demo CA's revocation list (crl.pem) so that it revokes exactly these
    /// partners' certificates; with no names, nothing is revoked.
    Revoke {
        /// The demo PKI's directory.
        #[arg(long, default_value = "config/tls")]
        out: std::path::PathBuf,
        /// Partner names, as in partner-<name>.pem.
        partners: Vec<String>,
    },
}

/// Runs a `certs` command.
pub fn run(command: CertsCommand) -> ExitCode {
    match command {
        CertsCommand::Init { out, force } => init(&out, force),
        CertsCommand::Revoke { out, partners } => revoke(&out, &partners),
    }
}

fn revoke(out: &Path, partners: &[String]) -> ExitCode {
    let names: Vec<&str> = partners.iter().map(String::as_str).collect();
    match crate::tls::revoke_demo_partners(out, &names) {
        Ok(path) => {
            let revoked = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            println!(
                "{} now revokes: {revoked}. A gateway whose [server.tls] client_crl lists it reads it at the next reload (at once with watch = true).",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
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
