//! `tongban-load idle`: how much memory a gateway holds for idle keep-alive connections. It starts
//! a gateway (and the Guizhou platform for its one lookup), opens N connections that each make
//! one request (a matter catalogue lookup, answered from the cache after the first) and then stay
//! open and silent, and reads the gateway's resident memory (VmRSS) before, once all are open, and
//! after holding them. Last, every connection sends a second request, to show they were really
//! still open.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::HOST;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::task::JoinSet;

use crate::cli::IdleArgs;
use crate::gateway::{Gateway, Platforms};
use crate::machine::Machine;
use crate::process;
use crate::run::connect;
use crate::scenario::GatewayNeeds;

/// Connections being opened at once.
const OPENING_AT_ONCE: usize = 256;
/// File descriptors the tool needs besides the connections.
const SPARE_FILES: u64 = 256;
/// The most one request of the run may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The target: this many connections in at most this much resident memory.
pub const TARGET_CONNECTIONS: usize = 10_000;
pub const TARGET_BYTES: u64 = 64 * 1024 * 1024;
const LOOKUP: &str = "/v1/matters?region=520102";

/// What was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub asked: usize,
    pub opened: usize,
    /// Resident memory after one request on one connection.
    pub baseline: u64,
    /// Once every connection is open and has had its answer.
    pub all_open: u64,
    /// After the hold.
    pub after_hold: u64,
    pub hold: Duration,
    /// Connections that answered a second request after the hold.
    pub alive_after_hold: usize,
}

impl Figures {
    /// The memory the connections added, per connection, in bytes.
    pub fn per_connection(&self) -> u64 {
        let added = self.all_open.max(self.after_hold).saturating_sub(self.baseline);
        added / self.opened.max(1) as u64
    }

    /// A Markdown table (also readable on a terminal).
    pub fn markdown(&self) -> String {
        let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0);
        let mut out = String::new();
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| connections asked / opened | {} / {} |", self.asked, self.opened);
        let _ = writeln!(out, "| gateway RSS after one request | {} |", mib(self.baseline));
        let _ = writeln!(out, "| gateway RSS with all open | {} |", mib(self.all_open));
        let _ = writeln!(out, "| gateway RSS after {:.0} s idle | {} |", self.hold.as_secs_f64(), mib(self.after_hold));
        let _ = writeln!(out, "| added per connection | {:.1} KiB |", self.per_connection() as f64 / 1024.0);
        let _ = writeln!(out, "| still open after the hold | {} of {} |", self.alive_after_hold, self.opened);
        out
    }
}

/// Runs the measurement and prints (and writes) its report.
pub fn run(args: &IdleArgs) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let limit = open_files_limit().unwrap_or(u64::MAX);
    if (args.connections as u64).saturating_add(SPARE_FILES) > limit {
        bail!(
            "{} connections need more open files than this shell allows ({limit}); raise the limit first, \
             e.g. `ulimit -n {}` (the started gateway inherits it)",
            args.connections,
            args.connections as u64 + SPARE_FILES * 2
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = process::stop_on_signals(&runtime)?;
    let bin = args.gateway.bin();
    let needs = GatewayNeeds::platforms(&["guizhou"]);
    let mut platforms = Platforms::start(&bin, needs.mocks)?;
    let mut gateway = Gateway::start(&bin, &args.gateway.repo(), args.gateway.work_dir.as_deref(), needs, &platforms)?;
    let Some(pid) = gateway.pid() else { bail!("the gateway has no process id") };
    eprintln!(
        "tongban-load: opening {} idle connections to the gateway (pid {pid}) at {}",
        args.connections, gateway.public
    );
    let figures = runtime.block_on(async {
        tokio::select! {
            figures = measure(gateway.public, pid, args.connections, args.hold) => figures,
            _ = process::stopped(&stop) => Err(anyhow::anyhow!("stopped by a signal; nothing is reported")),
        }
    });
    drop(runtime);
    let machine = Machine::describe(Some(gateway.dir.as_path()), &args.gateway.repo());
    let _ = gateway.stop();
    let _ = platforms.stop();
    let figures = figures?;

    let mut text = format!(
        "# tongban-load: idle keep-alive connections\n\nThe gateway's resident memory (VmRSS) with {} idle \
         HTTP/1.1 keep-alive connections open (each made one request, then kept silent).\n\n",
        args.connections
    );
    text.push_str(&figures.markdown());
    let verdict = if figures.opened >= TARGET_CONNECTIONS {
        let met = figures.after_hold.max(figures.all_open) <= TARGET_BYTES;
        format!(
            "\nTarget: {TARGET_CONNECTIONS} idle connections in at most {} MiB resident: {}.\n",
            TARGET_BYTES / 1024 / 1024,
            if met { "met" } else { "NOT met" }
        )
    } else {
        format!("\nFewer than {TARGET_CONNECTIONS} connections were open, so the target was not measured.\n")
    };
    text.push_str(&verdict);
    print!("{text}");
    if let Some(path) = &args.report {
        let mut markdown = text.clone();
        markdown.push_str(&format!(
            "\nMachine: {}, {} cores, {}, {}.\n",
            machine.cpu, machine.cores, machine.memory, machine.kernel
        ));
        std::fs::write(path, markdown).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tongban-load: report written to {}", path.display());
    }
    Ok(if figures.opened == args.connections { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn measure(addr: SocketAddr, pid: u32, connections: usize, hold: Duration) -> anyhow::Result<Figures> {
    // One request first: the catalogue is fetched once and cached, the pools are warm.
    let mut first = connect(addr).await.context("the first connection")?;
    request(&mut first, addr).await.context("the first lookup")?;
    let baseline = process::resident_bytes(pid)?;

    let mut open_ones: Vec<SendRequest<Full<Bytes>>> = vec![first];
    let mut failures: Vec<String> = Vec::new();
    while open_ones.len() + failures.len() < connections {
        let batch = OPENING_AT_ONCE.min(connections - open_ones.len() - failures.len());
        let mut tasks = JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(async move {
                let mut sender = connect(addr).await?;
                request(&mut sender, addr).await?;
                Ok::<_, anyhow::Error>(sender)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(sender)) => open_ones.push(sender),
                Ok(Err(err)) => failures.push(format!("{err:#}")),
                Err(err) => failures.push(err.to_string()),
            }
        }
        if failures.len() > connections / 10 {
            bail!("{} connections failed; the first: {}", failures.len(), failures[0]);
        }
    }
    let all_open = process::resident_bytes(pid)?;
    tokio::time::sleep(hold).await;
    let after_hold = process::resident_bytes(pid)?;

    // A second request on every connection, a batch at a time.
    let opened = open_ones.len();
    let mut alive = 0;
    while !open_ones.is_empty() {
        let batch: Vec<_> = open_ones.drain(..OPENING_AT_ONCE.min(open_ones.len())).collect();
        let mut tasks = JoinSet::new();
        for mut sender in batch {
            tasks.spawn(async move { request(&mut sender, addr).await.is_ok() });
        }
        while let Some(joined) = tasks.join_next().await {
            alive += usize::from(joined.unwrap_or(false));
        }
    }
    Ok(Figures { asked: connections, opened, baseline, all_open, after_hold, hold, alive_after_hold: alive })
}

/// One catalogue lookup on `sender`; an error unless it is answered 200.
async fn request(sender: &mut SendRequest<Full<Bytes>>, addr: SocketAddr) -> anyhow::Result<()> {
    let mut request = http::Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = http::Uri::from_static(LOOKUP);
    request.headers_mut().insert(HOST, http::HeaderValue::from_str(&addr.to_string())?);
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status != http::StatusCode::OK {
            bail!("{LOOKUP} answered {status}");
        }
        Ok(())
    })
    .await
    .context("no answer in time")?
}

/// The soft limit on open files, from /proc/self/limits (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_memory_is_the_growth_over_the_baseline() {
        let figures = Figures {
            asked: 10_000,
            opened: 10_000,
            baseline: 20 * 1024 * 1024,
            all_open: 40 * 1024 * 1024,
            after_hold: 39 * 1024 * 1024,
            hold: Duration::from_secs(10),
            alive_after_hold: 10_000,
        };
        assert_eq!(figures.per_connection(), 20 * 1024 * 1024 / 10_000);
        let table = figures.markdown();
        assert!(table.contains("| gateway RSS with all open | 40.0 MiB |"), "{table}");
        assert!(table.contains("| still open after the hold | 10000 of 10000 |"), "{table}");
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
