//! tongban-load: load scenarios against the tongban gateway, in closed loop, with latency
//! histograms and a Markdown report. See load-tests/README.md.
//!
//! - [`cli`]: the command line and its checks;
//! - [`scenario`]: what one request is, and what the gateway needs for it;
//! - [`gateway`]: starting and stopping a private gateway for a run;
//! - [`run`]: closed-loop execution over keep-alive connections;
//! - [`report`]: the terminal table and the Markdown file; [`machine`]: where it was measured.

mod cli;
mod gateway;
mod machine;
mod report;
mod run;
mod scenario;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::gateway::Gateway;
use crate::machine::Machine;
use crate::report::Report;
use crate::run::Plan;
use crate::scenario::Scenario;

/// How long the pre-flight request and the `/metrics` fetch may take.
const SIDE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tongban-load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tongban-load run`: start the gateway unless --target names one, load it, report, stop it.
fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let scenario = args.scenario.build(scenario::random_run_id())?;
    // Dropped on every way out of this function (error, panic, Ctrl-C): the gateway is stopped.
    let mut gateway = match &args.target {
        Some(_) => None,
        None => {
            let bin = args.gateway_bin();
            eprintln!("tongban-load: starting {} for scenario {}", bin.display(), scenario.name());
            Some(Gateway::start(&bin, &args.repo(), args.work_dir.as_deref(), scenario.needs())?)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut report = runtime.block_on(measure(args, scenario, gateway.as_ref()))?;
    drop(runtime);

    let machine = Machine::describe(gateway.as_ref().map(|g| g.dir.as_path()), &args.repo());
    if machine.store_in_memory() {
        report.notes.push(
            "the acceptance store was on a tmpfs, where a synchronous commit costs nothing; use --work-dir on a disk"
                .into(),
        );
    }
    if let Some(running) = gateway.as_mut() {
        let (warnings, errors) = running.log_counts();
        if warnings + errors > 0 {
            let last = running.tail().last().cloned().unwrap_or_default();
            report
                .notes
                .push(format!("the gateway logged {warnings} warnings and {errors} errors; the last line: {last}"));
        }
        match running.stop() {
            Ok(status) if status.success() => {}
            Ok(status) => report.notes.push(format!("the gateway exited with {status} when stopped")),
            Err(err) => report.notes.push(format!("stopping the gateway: {err:#}")),
        }
    }
    print!("{}", report.terminal());
    if let Some(path) = &args.report {
        std::fs::write(path, report.markdown(&machine)).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tongban-load: report written to {}", path.display());
    }
    Ok(if report.outcome.successes > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Pre-flight request, the closed loop (Ctrl-C stops it early), then the gateway's metrics.
async fn measure(args: &RunArgs, scenario: Arc<dyn Scenario>, gateway: Option<&Gateway>) -> anyhow::Result<Report> {
    let (target, authority, addr) = match (&args.target, gateway) {
        (Some(target), _) => {
            let uri = cli::check_target(target, args.allow_remote)?;
            let Some(authority) = uri.authority().map(|a| a.to_string()) else { bail!("--target names no host") };
            let lookup = if uri.port().is_some() { authority.clone() } else { format!("{authority}:80") };
            let addr = tokio::net::lookup_host(&lookup)
                .await
                .with_context(|| format!("cannot resolve {authority}"))?
                .next()
                .with_context(|| format!("{authority} resolves to no address"))?;
            (target.trim_end_matches('/').to_owned(), authority, addr)
        }
        (None, Some(gateway)) => (format!("http://{}", gateway.public), gateway.public.to_string(), gateway.public),
        (None, None) => bail!("no --target and no gateway started"),
    };

    // Request 0: one answer before the run, so a wrong setup fails with its reason, not with a
    // table of errors.
    let (status, body) = run::fetch(addr, scenario.request(0), SIDE_REQUEST_TIMEOUT)
        .await
        .with_context(|| format!("the pre-flight request to {target} failed"))?;
    if !http::StatusCode::from_u16(status).is_ok_and(|s| scenario.is_success(s)) {
        bail!(
            "the pre-flight request to {target} got {status}, not what scenario {} expects; nothing was measured. The answer:\n{body}",
            scenario.name()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("tongban-load: interrupted; finishing the requests in flight");
            on_signal.store(true, Ordering::Relaxed);
        }
    });
    let plan = Plan {
        addr,
        authority,
        connections: args.connections,
        duration: args.duration,
        max_requests: args.max_requests,
        timeout: args.timeout,
    };
    eprintln!(
        "tongban-load: {} for {:.1} s (at most {} requests) on {} connections against {target}",
        scenario.name(),
        plan.duration.as_secs_f64(),
        plan.max_requests,
        plan.connections
    );
    let outcome = run::closed_loop(plan, scenario.clone(), stop).await?;
    watcher.abort();

    let gateway_metrics = match gateway {
        Some(gateway) => metrics(gateway, scenario.gateway_metrics()).await,
        None => Vec::new(),
    };
    let mut notes = Vec::new();
    if outcome.interrupted {
        notes.push("the run was interrupted (Ctrl-C); the figures cover the part that ran".to_owned());
    }
    Ok(Report {
        scenario: scenario.name().to_owned(),
        description: scenario.describe().to_owned(),
        target,
        gateway: match gateway {
            Some(_) => format!("started by tongban-load: {}", args.gateway_bin().display()),
            None => "already running (--target)".to_owned(),
        },
        connections: args.connections,
        duration_limit: args.duration,
        max_requests: args.max_requests,
        outcome,
        gateway_metrics,
        notes,
    })
}

/// The samples of the named metrics from the gateway's admin `/metrics`; empty if it cannot be read.
async fn metrics(gateway: &Gateway, prefixes: &[&str]) -> Vec<String> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.uri_mut() = http::Uri::from_static("/metrics");
    match run::fetch(gateway.admin, request, SIDE_REQUEST_TIMEOUT).await {
        Ok((200, text)) => text
            .lines()
            .filter(|line| !line.starts_with('#') && prefixes.iter().any(|p| line.starts_with(p)))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
