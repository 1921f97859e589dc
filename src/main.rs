//! The `tongban` binary: see `tongban --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tongban::cli::main()
}
