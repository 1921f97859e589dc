//! The command line: `tongban-load run --scenario NAME …`, parsed with clap and checked before
//! anything starts (bounds, loopback-only targets).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::scenario::ScenarioName;

/// The workspace root, where `target/release/tongban`, `adapters/`, `mappings/` and `config/` are:
/// the parent of this crate's directory, as built.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The most connections one run may open.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The most idle connections `idle` may open.
pub const MAX_IDLE_CONNECTIONS: usize = 50_000;
/// The most rounds of a side-by-side run.
pub const MAX_ROUNDS: usize = 20;
/// The highest open-loop rate, requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Load tool for the tongban gateway.
#[derive(Debug, Parser)]
#[command(name = "tongban-load", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one scenario: in closed loop (every connection sends its next request as soon as the
    /// previous answer is read) or at a constant rate (--rate), until the duration or the request
    /// count runs out; with --compare, side by side with the platform alone and nginx.
    Run(RunArgs),
    /// Opens many idle keep-alive connections to a started gateway and reports its resident memory.
    Idle(IdleArgs),
}

/// Where the started gateway and simulated platforms come from.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The gateway binary to start when no --target is given [default: target/release/tongban in the workspace].
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,

    /// The repository whose adapters/, mappings/ and config/matters.toml the started gateway
    /// reads [default: this workspace]; e.g. a checkout of the commit the gateway was built from.
    #[arg(long)]
    pub repo: Option<PathBuf>,

    /// Where the started gateway's temporary directory (configuration, acceptance store) goes
    /// [default: the system's temporary directory]. Put it on the disk you mean to measure: on a
    /// tmpfs a synchronous commit costs nothing.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

impl GatewayArgs {
    /// The repository the started gateway reads its files from: --repo, or this workspace.
    pub fn repo(&self) -> PathBuf {
        self.repo.clone().unwrap_or_else(workspace_root)
    }

    /// The gateway binary: --gateway-bin, or target/release/tongban in the workspace.
    pub fn bin(&self) -> PathBuf {
        self.gateway_bin.clone().unwrap_or_else(|| workspace_root().join("target/release/tongban"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle keep-alive connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,

    /// How long to hold them open before measuring again.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,

    #[command(flatten)]
    pub gateway: GatewayArgs,

    /// Also write the report as Markdown to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl IdleArgs {
    /// Checks the bounds.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.connections == 0 || self.connections > MAX_IDLE_CONNECTIONS {
            bail!("--connections must be 1 to {MAX_IDLE_CONNECTIONS}");
        }
        if self.hold > MAX_DURATION {
            bail!("--hold must be at most {} s", MAX_DURATION.as_secs());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// What to send.
    #[arg(long, value_enum)]
    pub scenario: ScenarioName,

    /// How long to send, e.g. `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Connections (HTTP/1.1 keep-alive), each sending back to back.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,

    /// The most requests to send in all; the run stops at whichever of this and --duration comes first.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,

    /// A gateway that is already running, e.g. `http://127.0.0.1:8080`. Without it the tool starts
    /// its own gateway with the scenario's configuration, and stops it afterwards.
    #[arg(long)]
    pub target: Option<String>,

    /// Allow a --target that is not a loopback address. Never aim this at a production platform.
    #[arg(long)]
    pub allow_remote: bool,

    #[command(flatten)]
    pub gateway: GatewayArgs,

    /// Open loop: send this many requests a second, each counted from when it was due.
    /// Without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Side by side, alternating in rounds: the scenario's native request straight to the
    /// simulated platform (the physical limit), through nginx proxy_pass (when nginx is
    /// installed), and through tongban. Needs a started gateway (no --target).
    #[arg(long)]
    pub compare: bool,

    /// Rounds of a side-by-side run; each leg runs --duration per round.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// The nginx binary for --compare [default: nginx on $PATH, /usr/sbin/nginx, …].
    #[arg(long)]
    pub nginx: Option<PathBuf>,

    /// Leave nginx out of --compare even when it is installed.
    #[arg(long)]
    pub no_nginx: bool,

    /// Also write the report as Markdown to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Also write SVG plots (latency by percentile, answers over time) into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,

    /// Give up on one request after this long (counted as a `timeout` error).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Worker threads of the load generator. It shares the machine with the gateway, so the
    /// default is small.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl RunArgs {
    /// Checks the bounds and the target; the first problem found is the error.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            bail!("--duration must be more than 0 and at most {} s", MAX_DURATION.as_secs());
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            bail!("--connections must be 1 to {MAX_CONNECTIONS}");
        }
        if self.max_requests == 0 {
            bail!("--max-requests must be at least 1");
        }
        if self.timeout.is_zero() || self.timeout > MAX_DURATION {
            bail!("--timeout must be more than 0 and at most {} s", MAX_DURATION.as_secs());
        }
        if self.threads == 0 || self.threads > 256 {
            bail!("--threads must be 1 to 256");
        }
        if let Some(target) = &self.target {
            check_target(target, self.allow_remote)?;
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate <= MAX_RATE)
        {
            bail!("--rate must be more than 0 and at most {MAX_RATE} requests a second");
        }
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            bail!("--rounds must be 1 to {MAX_ROUNDS}");
        }
        if self.compare && self.target.is_some() {
            bail!(
                "--compare loads the simulated platform directly, so it starts its own gateway and platforms; \
                 leave out --target"
            );
        }
        Ok(())
    }
}

/// A target is `http://HOST:PORT` with no path; HOST must be loopback unless `allow_remote`.
pub fn check_target(target: &str, allow_remote: bool) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = target.parse().with_context(|| format!("--target {target:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--target must start with http:// (TLS is not supported), got {target:?}");
    }
    let Some(host) = uri.host() else { bail!("--target {target:?} names no host") };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("--target is the gateway's base address without a path, e.g. http://127.0.0.1:8080");
    }
    if !allow_remote && !is_loopback(host) {
        bail!(
            "--target {target} is not a loopback address; load tests run against a local gateway. \
             Pass --allow-remote if you really mean to load another machine"
        );
    }
    Ok(uri)
}

/// `localhost`, `127.0.0.0/8` and `[::1]`.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `250ms`, `10s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}; use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let full: Vec<&str> = ["tongban-load", "run"].iter().chain(args).copied().collect();
        Cli::try_parse_from(full).map(|cli| match cli.command {
            Command::Run(run) => run,
            Command::Idle(_) => unreachable!("parsed as run"),
        })
    }

    #[test]
    fn defaults_are_bounded() {
        let run = parse(&["--scenario", "acceptance"]).unwrap();
        assert_eq!(run.scenario, ScenarioName::Acceptance);
        assert_eq!(run.duration, Duration::from_secs(10));
        assert_eq!(run.connections, 64);
        assert_eq!(run.max_requests, 1_000_000);
        assert!(run.target.is_none());
        assert!(run.gateway.bin().ends_with("target/release/tongban"));
        assert_eq!((run.rate, run.compare, run.rounds), (None, false, 3));
        run.validate().unwrap();
    }

    #[test]
    fn every_option_parses() {
        let run = parse(&[
            "--scenario",
            "acceptance",
            "--duration",
            "1500ms",
            "--connections",
            "16",
            "--max-requests",
            "500",
            "--target",
            "http://127.0.0.1:8080",
            "--gateway-bin",
            "/opt/tongban",
            "--report",
            "out.md",
            "--work-dir",
            "/var/tmp",
            "--repo",
            "/srv/tongban",
            "--threads",
            "2",
            "--rate",
            "2500",
            "--plots",
            "plots",
            "--nginx",
            "/opt/nginx/sbin/nginx",
        ])
        .unwrap();
        assert_eq!(run.rate, Some(2500.0));
        assert_eq!(run.plots, Some(PathBuf::from("plots")));
        assert_eq!(run.nginx, Some(PathBuf::from("/opt/nginx/sbin/nginx")));
        assert_eq!(run.duration, Duration::from_millis(1500));
        assert_eq!((run.connections, run.max_requests, run.threads), (16, 500, 2));
        assert_eq!(run.gateway.bin(), PathBuf::from("/opt/tongban"));
        assert_eq!(run.report, Some(PathBuf::from("out.md")));
        assert_eq!(run.gateway.work_dir, Some(PathBuf::from("/var/tmp")));
        assert_eq!(run.gateway.repo(), PathBuf::from("/srv/tongban"));
        run.validate().unwrap();
    }

    #[test]
    fn bad_arguments_are_refused_by_clap() {
        for args in [
            &["--duration", "10s"][..],                                 // no scenario
            &["--scenario", "nonesuch"],                                // unknown scenario
            &["--scenario", "acceptance", "--duration", "ten seconds"], // not a duration
            &["--scenario", "acceptance", "--duration", "10 parsecs"],  // unknown unit
            &["--scenario", "acceptance", "--connections", "-1"],       // not a count
            &["--scenario", "acceptance", "--bogus"],                   // unknown flag
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn out_of_bounds_values_are_refused_by_validate() {
        for args in [
            &["--scenario", "acceptance", "--duration", "0s"][..],
            &["--scenario", "acceptance", "--duration", "2h"],
            &["--scenario", "acceptance", "--connections", "0"],
            &["--scenario", "acceptance", "--connections", "10001"],
            &["--scenario", "acceptance", "--max-requests", "0"],
            &["--scenario", "acceptance", "--threads", "0"],
            &["--scenario", "acceptance", "--timeout", "2h"],
            &["--scenario", "acceptance", "--rate", "0"],
            &["--scenario", "acceptance", "--rate", "NaN"],
            &["--scenario", "acceptance", "--rate", "2000000"],
            &["--scenario", "passthrough", "--compare", "--rounds", "0"],
            &["--scenario", "passthrough", "--compare", "--rounds", "21"],
            &["--scenario", "passthrough", "--compare", "--target", "http://127.0.0.1:8080"],
        ] {
            assert!(parse(args).unwrap().validate().is_err(), "{args:?} passed validation");
        }
    }

    #[test]
    fn only_loopback_targets_without_allow_remote() {
        for ok in ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080/", "http://127.1.2.3:80"] {
            check_target(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for remote in ["http://10.0.0.5:8080", "http://gateway.example.gov.cn", "http://[2001:db8::1]:8080"] {
            let err = check_target(remote, false).unwrap_err().to_string();
            assert!(err.contains("--allow-remote"), "{remote}: {err}");
            check_target(remote, true).unwrap();
        }
        for bad in ["https://127.0.0.1:8443", "127.0.0.1:8080", "http://127.0.0.1:8080/v1", "not a url"] {
            assert!(check_target(bad, true).is_err(), "{bad} was accepted");
        }
        let run = parse(&["--scenario", "acceptance", "--target", "http://192.168.1.9:8080"]).unwrap();
        assert!(run.validate().unwrap_err().to_string().contains("not a loopback address"));
        let run =
            parse(&["--scenario", "acceptance", "--target", "http://192.168.1.9:8080", "--allow-remote"]).unwrap();
        run.validate().unwrap();
    }

    #[test]
    fn every_scenario_has_a_command_line_name() {
        for name in ["acceptance", "passthrough", "translate", "native-ingress", "cached-status", "rate-limited"] {
            parse(&["--scenario", name]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn idle_has_bounded_defaults() {
        let cli = Cli::try_parse_from(["tongban-load", "idle", "--hold", "2s"]).unwrap();
        let Command::Idle(idle) = cli.command else { panic!("not idle") };
        assert_eq!((idle.connections, idle.hold), (10_000, Duration::from_secs(2)));
        idle.validate().unwrap();
        let cli = Cli::try_parse_from(["tongban-load", "idle", "--connections", "50001"]).unwrap();
        let Command::Idle(idle) = cli.command else { panic!("not idle") };
        assert!(idle.validate().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
