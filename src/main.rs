//! The `tongban` binary: see `tongban --help`.
#![forbid(unsafe_code)]

/// The hot path builds and drops many small documents; mimalloc makes that markedly cheaper
/// (measured: see README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tongban::cli::main()
}
