//! `tongban map`: translate one sample document, for partners writing a mapping.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::adapter::Operation;
use crate::config::load;
use crate::mapping::MessageKind;
use crate::wire::{self, NativeDoc};

/// `--direction`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DirectionArg {
    /// Canonical JSON → native.
    ToNative,
    /// Native → canonical JSON.
    ToCanonical,
}

/// `--message`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MessageArg {
    /// The request.
    Request,
    /// The answer.
    Response,
}

/// Runs one translation and prints the result.
pub fn run(
    config: &Path,
    adapter: &str,
    operation: &str,
    direction: DirectionArg,
    message: MessageArg,
    raw: bool,
    file: &Path,
) -> ExitCode {
    let federation = match load(config) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            eprintln!("the configuration has errors; fix them first (tongban check)");
            return ExitCode::FAILURE;
        }
    };
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    let Some(found) = federation.adapters.get(adapter) else {
        let known: Vec<&str> = federation.adapters.keys().map(String::as_str).collect();
        return fail(format!("no adapter named '{adapter}'; known: {}", known.join(", ")));
    };
    let Some(spec) = Operation::parse(operation).and_then(|op| found.operations.get(&op)) else {
        return fail(format!("adapter '{adapter}' has no operation '{operation}'"));
    };
    let kind = match message {
        MessageArg::Request => MessageKind::Request,
        MessageArg::Response => MessageKind::Response,
    };
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(err) => return fail(format!("cannot read {}: {err}", file.display())),
    };
    let mapping = &spec.mapping;
    let output = match direction {
        DirectionArg::ToNative => {
            let canonical = match serde_json::from_slice(&bytes) {
                Ok(value) => value,
                Err(err) => return fail(format!("{} is not JSON: {err}", file.display())),
            };
            let native = match mapping.to_native(kind, &canonical) {
                Ok(native) => native,
                Err(err) => return fail(format!("mapping {}: {err}", mapping.name)),
            };
            let charset = if raw { found.charset } else { crate::wire::charset::Charset::Utf8 };
            match (&native, wire::encode(&native, charset, &mapping.namespaces)) {
                (NativeDoc::Json(value), _) if !raw => serde_json::to_vec_pretty(value).unwrap_or_default(),
                (_, Ok(bytes)) => bytes,
                (_, Err(err)) => return fail(err.to_string()),
            }
        }
        DirectionArg::ToCanonical => {
            let native = match wire::decode(&bytes, found.format, found.charset, &mapping.namespaces) {
                Ok(native) => native,
                Err(err) => return fail(format!("{}: {err}", file.display())),
            };
            match mapping.to_canonical(kind, &native) {
                Ok(canonical) => serde_json::to_vec_pretty(&canonical).unwrap_or_default(),
                Err(err) => return fail(format!("mapping {}: {err}", mapping.name)),
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&output);
    let _ = stdout.write_all(b"\n");
    ExitCode::SUCCESS
}
