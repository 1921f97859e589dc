//! tongban-load: load scenarios against the tongban gateway, in closed or open loop, alone or side
//! by side with the platform itself and nginx, with latency histograms, Markdown reports and SVG
//! plots. See load-tests/README.md.
//!
//! - [`cli`]: the command line and its checks;
//! - [`scenario`]: what one request is, and what the gateway needs for it;
//! - [`process`], [`gateway`], [`nginx`]: starting and stopping what a run loads;
//! - [`run`]: closed- and open-loop execution over keep-alive connections;
//! - [`compare`]: legs and rounds; [`idle`]: memory held by idle connections;
//! - [`report`], [`plot`], [`progress`]: the terminal table, the Markdown file, the SVG plots and
//!   the progress bar; [`machine`]: where it was measured.

mod cli;
mod compare;
mod gateway;
mod idle;
mod machine;
mod nginx;
mod plot;
mod process;
mod progress;
mod report;
mod run;
mod scenario;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::compare::{Leg, Measured, Shape};
use crate::gateway::{Gateway, Platforms};
use crate::machine::Machine;
use crate::nginx::Nginx;
use crate::report::{Comparison, Report};
use crate::scenario::Scenario;
use crate::scenario::replay::Replay;

/// How long a setup request, a pre-flight request or a `/metrics` fetch may take.
const SIDE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_command(&args),
        Command::Idle(args) => idle::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tongban-load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `run` started; dropped on every way out (error, panic, Ctrl-C), which stops each process.
#[derive(Default)]
struct Started {
    // Field order is drop order: the gateway and nginx before the platforms they call.
    gateway: Option<Gateway>,
    nginx: Option<Nginx>,
    platforms: Option<Platforms>,
}

/// `tongban-load run`: start what the scenario needs unless --target names a gateway, load it
/// (with --compare: and the platform directly, and nginx), report, stop everything.
fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let scenario = args.scenario.build(scenario::random_run_id())?;
    if args.compare && scenario.platform().is_none() {
        bail!(
            "scenario {} cannot be compared: its requests do not reach a platform as one native request \
             (refusals, or acceptances answered before delivery); run it without --compare",
            scenario.name()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // From here on a signal stops the run in order, and the guards stop every child.
    let stop = process::stop_on_signals(&runtime)?;
    let mut notes = Vec::new();
    let mut started = Started::default();
    if args.target.is_none() {
        let bin = args.gateway.bin();
        let needs = scenario.needs();
        eprintln!(
            "tongban-load: starting {} for scenario {} (platforms: {:?})",
            bin.display(),
            scenario.name(),
            needs.mocks
        );
        let platforms = Platforms::start(&bin, needs.mocks)?;
        started.gateway =
            Some(Gateway::start(&bin, &args.gateway.repo(), args.gateway.work_dir.as_deref(), needs, &platforms)?);
        started.platforms = Some(platforms);
    }
    if args.compare {
        match (nginx::find(args.nginx.as_deref()), args.no_nginx) {
            (_, true) => notes.push("nginx was left out (--no-nginx)".to_owned()),
            (None, false) => notes.push(
                "nginx is not installed, so the nginx leg was left out (Debian: apt-get install nginx-light)"
                    .to_owned(),
            ),
            (Some(bin), false) => {
                let upstream = platform_addr(&started, scenario.as_ref())?;
                started.nginx = Some(Nginx::start(&bin, upstream, args.gateway.work_dir.as_deref())?);
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        bail!("stopped by a signal before the run began; nothing was measured");
    }
    let measured = runtime.block_on(measure(args, scenario.clone(), &started, stop))?;
    drop(runtime);

    let machine = Machine::describe(started.gateway.as_ref().map(|g| g.dir.as_path()), &args.gateway.repo());
    if machine.store_in_memory() && scenario.name() == "acceptance" {
        notes.push(
            "the acceptance store was on a tmpfs, where a synchronous commit costs nothing; use --work-dir on a disk"
                .into(),
        );
    }
    if measured.iter().any(|leg| leg.total.interrupted) {
        notes.push("the run was interrupted (Ctrl-C); the figures cover the part that ran".to_owned());
    }
    let gateway_metrics = measured_metrics(&started, scenario.as_ref())?;
    notes.extend(stop_all(&mut started));

    let plots = match &args.plots {
        Some(dir) => write_plots(dir, scenario.name(), &measured)?,
        None => Vec::new(),
    };
    // Every leg must have done what it measures at least once.
    let all_succeeded = measured.iter().all(|leg| leg.total.successes > 0);
    let (terminal, markdown) = if args.compare {
        let comparison = Comparison {
            scenario: scenario.name().to_owned(),
            description: scenario.describe().to_owned(),
            shape: shape(args),
            nginx_version: started.nginx.as_ref().map(|n| n.version.clone()),
            legs: measured,
            gateway_metrics,
            notes,
        };
        (comparison.terminal(), comparison.markdown(&machine))
    } else {
        let Some(leg) = measured.into_iter().next() else { bail!("the run measured nothing") };
        let report = Report {
            scenario: scenario.name().to_owned(),
            description: scenario.describe().to_owned(),
            target: leg.target,
            gateway: match &started.gateway {
                Some(_) => format!("started by tongban-load: {}", args.gateway.bin().display()),
                None => "already running (--target)".to_owned(),
            },
            connections: args.connections,
            duration_limit: args.duration,
            max_requests: args.max_requests,
            rate: args.rate,
            outcome: leg.total,
            gateway_metrics,
            notes,
        };
        (report.terminal(), report.markdown(&machine))
    };
    print!("{terminal}");
    if let Some(path) = &args.report {
        let mut markdown = markdown;
        for plot in &plots {
            let name = plot.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Relative to the report when the plots are beside it or below it.
            let link = path.parent().and_then(|dir| plot.strip_prefix(dir).ok()).unwrap_or(plot);
            markdown.push_str(&format!("\n![{name}]({})\n", link.display()));
        }
        std::fs::write(path, markdown).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tongban-load: report written to {}", path.display());
    }
    for plot in &plots {
        eprintln!("tongban-load: plot written to {}", plot.display());
    }
    Ok(if all_succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn shape(args: &RunArgs) -> Shape {
    Shape {
        connections: args.connections,
        duration: args.duration,
        max_requests: args.max_requests,
        timeout: args.timeout,
        rate: args.rate,
        rounds: if args.compare { args.rounds } else { 1 },
    }
}

/// The address of the platform whose native request a side-by-side run replays.
fn platform_addr(started: &Started, scenario: &dyn Scenario) -> anyhow::Result<SocketAddr> {
    let Some(name) = scenario.platform() else { bail!("scenario {} names no platform", scenario.name()) };
    let Some(platforms) = &started.platforms else { bail!("--compare needs the platforms the tool starts") };
    platforms.addr(name)
}

/// Setup, the pre-flight checks of every leg, then the legs in rounds (Ctrl-C stops early).
async fn measure(
    args: &RunArgs,
    scenario: Arc<dyn Scenario>,
    started: &Started,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Measured>> {
    let gateway_leg = match (&args.target, &started.gateway) {
        (Some(target), _) => {
            let uri = cli::check_target(target, args.allow_remote)?;
            let Some(authority) = uri.authority().map(|a| a.to_string()) else { bail!("--target names no host") };
            let lookup = if uri.port().is_some() { authority.clone() } else { format!("{authority}:80") };
            let addr = tokio::net::lookup_host(&lookup)
                .await
                .with_context(|| format!("cannot resolve {authority}"))?
                .next()
                .with_context(|| format!("{authority} resolves to no address"))?;
            leg(compare::TONGBAN, addr, Some(authority), scenario.clone())
        }
        (None, Some(gateway)) => leg(compare::TONGBAN, gateway.public, None, scenario.clone()),
        (None, None) => bail!("no --target and no gateway started"),
    };

    for (i, request) in scenario.setup().into_iter().enumerate() {
        let (status, body) = run::fetch(gateway_leg.addr, request, SIDE_REQUEST_TIMEOUT)
            .await
            .with_context(|| format!("setup request {} to {} failed", i + 1, gateway_leg.target))?;
        if !(200..300).contains(&status) {
            bail!(
                "setup request {} to {} got {status}; nothing was measured. The answer:\n{body}",
                i + 1,
                gateway_leg.target
            );
        }
    }
    let platform = if args.compare { Some(platform_addr(started, scenario.as_ref())?) } else { None };
    if let Some(addr) = platform {
        // Cleared, so that what the pre-flight check makes the gateway send is the last entry.
        control(addr, http::Method::DELETE, "/_mock/received").await?;
    }
    // Request 0: one answer before the run, so a wrong setup fails with its reason, not with a
    // table of errors.
    preflight(&gateway_leg, 0).await?;

    let mut legs = Vec::new();
    if let Some(addr) = platform {
        let (_, received) = control(addr, http::Method::GET, "/_mock/received").await?;
        let received: serde_json::Value =
            serde_json::from_str(&received).context("the platform's /_mock/received is not JSON")?;
        let replay: Arc<dyn Scenario> = Arc::new(Replay::from_received(&received, scenario.clone())?);
        legs.push(leg(compare::DIRECT, addr, None, replay.clone()));
        if let Some(nginx) = &started.nginx {
            legs.push(leg(compare::NGINX, nginx.addr, None, replay));
        }
    }
    // Each leg's own pre-flight check, with ids no run uses (the top of the id space).
    for (k, leg) in legs.iter().enumerate() {
        preflight(leg, 0xffff_ffff_ff00 + k as u64).await?;
    }
    legs.push(gateway_leg);

    let shape = shape(args);
    eprintln!(
        "tongban-load: {} for {:.1} s per leg and round (at most {} requests) on {} connections, {}; legs: {}",
        scenario.name(),
        shape.duration.as_secs_f64(),
        shape.max_requests,
        shape.connections,
        args.rate.map_or_else(|| "closed loop".to_owned(), |r| format!("open loop at {r:.0}/s")),
        legs.iter().map(|leg| format!("{} ({})", leg.label, leg.target)).collect::<Vec<_>>().join(", ")
    );
    compare::alternate(&legs, shape, &stop).await
}

fn leg(label: &'static str, addr: SocketAddr, authority: Option<String>, scenario: Arc<dyn Scenario>) -> Leg {
    let authority = authority.unwrap_or_else(|| addr.to_string());
    Leg { label, target: format!("http://{authority}"), addr, authority, scenario }
}

/// Sends request `seq` of a leg once and insists on a success.
async fn preflight(leg: &Leg, seq: u64) -> anyhow::Result<()> {
    let (status, body) = run::fetch(leg.addr, leg.scenario.request(seq), SIDE_REQUEST_TIMEOUT)
        .await
        .with_context(|| format!("the pre-flight request to {} ({}) failed", leg.target, leg.label))?;
    if !http::StatusCode::from_u16(status).is_ok_and(|s| leg.scenario.is_success(s)) {
        bail!(
            "the pre-flight request to {} ({}) got {status}, not what scenario {} expects; nothing was measured. The answer:\n{body}",
            leg.target,
            leg.label,
            leg.scenario.name()
        );
    }
    Ok(())
}

/// A simulated platform's control endpoint.
async fn control(addr: SocketAddr, method: http::Method, path: &'static str) -> anyhow::Result<(u16, String)> {
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.method_mut() = method;
    *request.uri_mut() = http::Uri::from_static(path);
    let answer = run::fetch(addr, request, SIDE_REQUEST_TIMEOUT).await?;
    if !(200..300).contains(&answer.0) {
        bail!("the simulated platform at {addr} answered {path} with {}: {}", answer.0, answer.1);
    }
    Ok(answer)
}

/// The scenario's lines from the started gateway's `/metrics`.
fn measured_metrics(started: &Started, scenario: &dyn Scenario) -> anyhow::Result<Vec<String>> {
    let Some(gateway) = &started.gateway else { return Ok(Vec::new()) };
    let prefixes = scenario.gateway_metrics();
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.uri_mut() = http::Uri::from_static("/metrics");
    Ok(match runtime.block_on(run::fetch(gateway.admin, request, SIDE_REQUEST_TIMEOUT)) {
        Ok((200, text)) => text
            .lines()
            .filter(|line| !line.starts_with('#') && prefixes.iter().any(|p| line.starts_with(p)))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    })
}

/// Stops what was started; what went wrong becomes notes.
fn stop_all(started: &mut Started) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(gateway) = started.gateway.as_mut() {
        let (warnings, errors) = gateway.log_counts();
        if warnings + errors > 0 {
            let last = gateway.tail().last().cloned().unwrap_or_default();
            notes.push(format!("the gateway logged {warnings} warnings and {errors} errors; the last line: {last}"));
        }
        match gateway.stop() {
            Ok(status) if status.success() => {}
            Ok(status) => notes.push(format!("the gateway exited with {status} when stopped")),
            Err(err) => notes.push(format!("stopping the gateway: {err:#}")),
        }
    }
    if let Some(nginx) = started.nginx.as_mut()
        && let Err(err) = nginx.stop()
    {
        notes.push(format!("stopping nginx: {err:#}"));
    }
    if let Some(platforms) = started.platforms.as_mut()
        && let Err(err) = platforms.stop()
    {
        notes.push(format!("stopping the simulated platforms: {err:#}"));
    }
    notes
}

/// `DIR/<scenario>-latency.svg` and `DIR/<scenario>-throughput.svg`: every leg over all its rounds
/// (latency), and its last round (answers over time).
fn write_plots(dir: &Path, scenario: &str, measured: &[Measured]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let empty = Vec::new();
    let series: Vec<plot::Series<'_>> = measured
        .iter()
        .map(|leg| plot::Series {
            label: leg.label,
            latency: &leg.total.latency,
            timeline: leg.rounds.last().map_or(&empty, |o| &o.timeline),
            bucket: run::BUCKET,
        })
        .collect();
    let latency = dir.join(format!("{scenario}-latency.svg"));
    let throughput = dir.join(format!("{scenario}-throughput.svg"));
    let svg = plot::latency_svg(&format!("{scenario}: latency by percentile"), &series)?;
    std::fs::write(&latency, svg).with_context(|| format!("cannot write {}", latency.display()))?;
    let svg = plot::throughput_svg(&format!("{scenario}: answers per second (last round)"), &series)?;
    std::fs::write(&throughput, svg).with_context(|| format!("cannot write {}", throughput.display()))?;
    Ok(vec![latency, throughput])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::tests::{Alternating, server};

    /// A short side-by-side run against an in-process server, through to the reports and plots.
    #[tokio::test]
    async fn a_short_run_gives_every_report_and_plot() {
        let addr = server().await;
        let scenario: Arc<dyn Scenario> = Arc::new(Alternating);
        let legs =
            [leg(compare::DIRECT, addr, None, scenario.clone()), leg(compare::TONGBAN, addr, None, scenario.clone())];
        let shape = Shape {
            connections: 2,
            duration: Duration::from_secs(5),
            max_requests: 100,
            timeout: Duration::from_secs(1),
            rate: None,
            rounds: 2,
        };
        let measured = compare::alternate(&legs, shape, &Arc::default()).await.unwrap();
        assert_eq!(measured.len(), 2);
        for leg in &measured {
            assert_eq!(leg.rounds.len(), 2);
            assert_eq!(leg.total.requests(), 200, "{}: 100 per round", leg.label);
            assert_eq!(leg.total.successes, 100, "even sequence numbers are 202");
        }

        let dir = tempfile::tempdir().unwrap();
        let plots = write_plots(dir.path(), "alternating", &measured).unwrap();
        assert_eq!(plots.len(), 2);
        for plot in &plots {
            let svg = std::fs::read_to_string(plot).unwrap();
            assert!(svg.contains("<svg") && svg.contains("direct") && svg.contains("tongban"), "{}", plot.display());
        }

        let comparison = Comparison {
            scenario: "alternating".into(),
            description: "test".into(),
            shape,
            legs: measured,
            nginx_version: None,
            gateway_metrics: Vec::new(),
            notes: vec!["nginx was left out (--no-nginx)".into()],
        };
        let (low, high) = (0.01, 100.0);
        let (ratio, _, _) = comparison.ratio(compare::TONGBAN, compare::DIRECT).unwrap();
        assert!(ratio > low && ratio < high, "{ratio}");
        assert!(comparison.ratio(compare::TONGBAN, compare::NGINX).is_none(), "no nginx leg");
        let terminal = comparison.terminal();
        assert!(terminal.contains("throughput tongban ÷ direct"), "{terminal}");
        assert!(terminal.contains("202: 100, 429: 100"), "{terminal}");
        let markdown = comparison.markdown(&Machine::describe(None, dir.path()));
        for expected in [
            "# tongban-load: alternating side by side",
            "| leg | answers/s | successes | p50 | p90 | p99 | p99.9 | max | statuses | errors |",
            "| throughput tongban ÷ direct |",
            "| p99 added by tongban over direct |",
            "## Rounds (answers/s)",
            "| round | direct | tongban |",
            "- nginx was left out (--no-nginx)",
            "## Machine",
        ] {
            assert!(markdown.contains(expected), "missing {expected:?} in:\n{markdown}");
        }
    }
}
