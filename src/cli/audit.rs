//! `tongban audit verify [PATH…]`: checks the audit log's hash chain (审计日志校验) and says where
//! it was changed, cut or reordered; given rotated files oldest first, also that each one begins
//! where the one before ended.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

/// `tongban audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 1 when any record was changed, removed or reordered, or
    /// when rotated files given in order do not follow on from each other.
    Verify {
        /// The log files, oldest first (default: `[audit] path` of the config).
        paths: Vec<PathBuf>,
    },
}

/// Runs an `audit` command.
pub fn run(config: &Path, command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { mut paths } => {
            if paths.is_empty() {
                let Some(path) = configured(config) else {
                    eprintln!(
                        "error: no log given and {} has no [audit] path; run tongban audit verify <file>",
                        config.display()
                    );
                    return ExitCode::FAILURE;
                };
                paths.push(path);
            }
            verify(&paths)
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

fn verify(paths: &[PathBuf]) -> ExitCode {
    let mut intact = true;
    let mut previous: Option<crate::audit::VerifyReport> = None;
    for path in paths {
        let report = match crate::audit::verify(path) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        println!("{report}");
        intact &= report.is_intact();
        if let Some(before) = &previous {
            if crate::audit::continues_from(&report, before) {
                println!("{} continues {}: linked", path.display(), before.path.display());
            } else {
                intact = false;
                println!(
                    "{} does NOT continue {}: its first record does not name that file's last record (seq {}); a file is missing between them, or they are out of order (give them oldest first)",
                    path.display(),
                    before.path.display(),
                    before.last_seq.map_or_else(|| "none".to_owned(), |seq| seq.to_string()),
                );
            }
        }
        previous = Some(report);
    }
    if intact { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
