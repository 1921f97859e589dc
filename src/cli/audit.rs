//! `tongban audit verify [PATH]`: checks the audit log's hash chain (审计日志校验) and says where
//! it was changed, cut or reordered.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

/// `tongban audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 1 when any record was changed, removed or reordered.
    Verify {
        /// The log file (default: `[audit] path` of the config).
        path: Option<PathBuf>,
    },
}

/// Runs an `audit` command.
pub fn run(config: &Path, command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { path } => {
            let Some(path) = path.or_else(|| configured(config)) else {
                eprintln!(
                    "error: no log given and {} has no [audit] path; run tongban audit verify <file>",
                    config.display()
                );
                return ExitCode::FAILURE;
            };
            verify(&path)
        }
    }
}

/// The configured log, read leniently: verifying must work even when other settings are broken.
fn configured(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let path = table.get("audit")?.get("path")?.as_str()?;
    Some(config.parent().unwrap_or(Path::new(".")).join(path))
}

fn verify(path: &Path) -> ExitCode {
    match crate::audit::verify(path) {
        Ok(report) => {
            println!("{report}");
            if report.is_intact() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
