//! `tongban queue`: the proxy acceptance queue (异地代收代办队列) for operators. It opens the store
//! named by the configuration directly (SQLite in WAL mode lets it run beside a serving gateway),
//! so it works even when the admin listener cannot be reached.

use std::path::Path;
use std::process::ExitCode;

use crate::acceptance::clock::{Clock, rfc3339};
use crate::config::load;
use crate::store::{Acceptance, AcceptanceStore, SqliteStore};

/// `tongban queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Lists acceptances, newest last (optionally in one state).
    List {
        /// Only this state: accepted, delivering, delivered, in_review, approved, rejected, dead_letter.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Shows one acceptance and its timeline.
    Show {
        /// The receipt number (回执编号).
        receipt: String,
    },
    /// Sends a dead-lettered acceptance back to the delivery queue.
    Retry {
        /// The receipt number.
        receipt: String,
    },
    /// Lists the dead letter queue.
    Dead,
}

/// Runs a queue command.
pub fn run(config: &Path, command: QueueCommand) -> ExitCode {
    let path = match load(config) {
        Ok((federation, _)) => federation.acceptance.store,
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            eprintln!("the configuration has errors; fix them first (tongban check)");
            return ExitCode::FAILURE;
        }
    };
    let store = match SqliteStore::open(&path) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        QueueCommand::List { state, limit } => store.list(state.as_deref(), limit).map(|records| print_list(&records)),
        QueueCommand::Dead => store.list(Some("dead_letter"), 1_000).map(|records| print_list(&records)),
        QueueCommand::Show { receipt } => match store.get(&receipt) {
            Ok(Some(record)) => store.events(&receipt).map(|events| {
                print_list(std::slice::from_ref(&record));
                for event in events {
                    println!("  {}  {:<14} {}", rfc3339(event.at), event.kind, event.detail.unwrap_or_default());
                }
            }),
            Ok(None) => {
                eprintln!("error: no acceptance has receipt '{receipt}'");
                return ExitCode::FAILURE;
            }
            Err(err) => Err(err),
        },
        QueueCommand::Retry { receipt } => match store.requeue(&receipt, Clock::new().now_ms()) {
            Ok(true) => {
                println!("{receipt} requeued");
                Ok(())
            }
            Ok(false) => {
                eprintln!("error: {receipt} is unknown or not in the dead letter queue");
                return ExitCode::FAILURE;
            }
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_list(records: &[Acceptance]) {
    for r in records {
        println!(
            "{}  {:<12} {:<10} attempts={:<2} case={:<14} {}",
            r.receipt,
            r.state,
            r.target,
            r.attempts,
            r.province_case_id.as_deref().unwrap_or("-"),
            r.last_error.as_deref().unwrap_or("")
        );
    }
}
