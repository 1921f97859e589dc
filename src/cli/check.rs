//! `tongban check`: the same load as `serve`, reported in full.

use std::path::Path;
use std::process::ExitCode;

use crate::config::load;

/// Runs the check; exit code 1 on any error.
pub fn run(config: &Path) -> ExitCode {
    match load(config) {
        Ok((federation, warnings)) => {
            super::print_diagnostics(&warnings);
            println!(
                "ok: {} adapters, {} mappings, {} mapping tests passed, {} region prefixes routed ({})",
                federation.adapters.len(),
                federation.mappings.len(),
                federation.mapping_tests,
                federation.router.table().len(),
                federation.config_file,
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            let errors = diagnostics.errors().count();
            eprintln!("{errors} error{} found; nothing was started", if errors == 1 { "" } else { "s" });
            ExitCode::FAILURE
        }
    }
}
