//! Starting and stopping a gateway for a run: a private configuration in a temporary directory,
//! the `tongban` binary as a child process on ephemeral ports, and a guard that stops it by its
//! PID (SIGTERM, a bounded wait, then SIGKILL) however the run ends.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::scenario::GatewayNeeds;

/// How long the gateway may take to announce its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines kept to explain a failure.
const TAIL_LINES: usize = 40;
/// A rate no load run reaches: limits stay configured (their code runs) but never refuse.
const UNREACHED_RATE: u32 = 1_000_000;
/// Calls in flight to one platform, raised above any connection count a run uses.
const UNREACHED_CONCURRENCY: i64 = 100_000;
/// The log line the gateway writes once both listeners are bound.
const LISTENING: &str = "Gateway listening.";

/// The gateway's stderr, drained by a thread so the pipe never fills.
#[derive(Debug, Default)]
pub struct LogTail {
    /// The last lines, oldest first.
    pub lines: VecDeque<String>,
    /// Lines at level WARN.
    pub warnings: u64,
    /// Lines at level ERROR.
    pub errors: u64,
}

/// A running gateway; dropping it stops it.
pub struct Gateway {
    child: Option<Child>,
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin: SocketAddr,
    /// The temporary directory with the configuration and the store.
    pub dir: PathBuf,
    log: Arc<Mutex<LogTail>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes the configuration and starts `bin` on it; returns once the gateway listens.
    pub fn start(bin: &Path, repo: &Path, work_dir: Option<&Path>, needs: GatewayNeeds) -> anyhow::Result<Gateway> {
        if !bin.is_file() {
            bail!(
                "the gateway binary {} does not exist; build it first with `cargo build --release` \
                 in the workspace, or name one with --gateway-bin, or aim at a running gateway with --target",
                bin.display()
            );
        }
        let repo = repo
            .canonicalize()
            .with_context(|| format!("the repository {} (adapters/, mappings/, config/)", repo.display()))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("tongban-load-");
        let dir = match work_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("cannot create the run's temporary directory")?;
        let adapters = dir.path().join("adapters");
        copy_adapters(&repo.join("adapters"), &adapters)?;
        let config = dir.path().join("tongban.toml");
        std::fs::write(&config, config_text(&repo, dir.path(), needs))
            .with_context(|| format!("cannot write {}", config.display()))?;

        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .current_dir(dir.path())
            // Warnings and errors only, and the one line that says where it listens.
            .env("RUST_LOG", "warn,tongban::cli::serve=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let log = Arc::new(Mutex::new(LogTail::default()));
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || drain(BufReader::new(stderr), &log, &tx));
        }
        let mut gateway = Gateway {
            child: Some(child),
            public: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.path().to_path_buf(),
            log,
            _dir: dir,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok((public, admin)) => {
                gateway.public = public;
                gateway.admin = admin;
                Ok(gateway)
            }
            Err(waited) => {
                let status = gateway.stop();
                let what = match waited {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not announce its listeners within {} s", START_TIMEOUT.as_secs())
                    }
                    mpsc::RecvTimeoutError::Disconnected => "stopped before it listened".to_owned(),
                };
                bail!(
                    "the gateway {what} ({}); its last log lines:\n{}",
                    status.map_or_else(|e| format!("could not be stopped: {e}"), |s| format!("it exited with {s}")),
                    gateway.tail().join("\n")
                )
            }
        }
    }

    /// The last log lines.
    pub fn tail(&self) -> Vec<String> {
        self.log.lock().map(|log| log.lines.iter().cloned().collect()).unwrap_or_default()
    }

    /// Warning and error lines logged so far.
    pub fn log_counts(&self) -> (u64, u64) {
        self.log.lock().map(|log| (log.warnings, log.errors)).unwrap_or_default()
    }

    /// Stops the gateway: SIGTERM, up to [`STOP_TIMEOUT`] for it to finish, then SIGKILL.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("the gateway was already stopped") };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        // Our own child, by its PID; `kill` keeps this crate free of unsafe code.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stderr(Stdio::null()).status();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            (child, status)
        });
        if rx.recv_timeout(STOP_TIMEOUT).is_err() {
            eprintln!(
                "tongban-load: the gateway (pid {pid}) did not stop within {} s; killing it",
                STOP_TIMEOUT.as_secs()
            );
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
        match waiter.join() {
            Ok((_, status)) => Ok(status?),
            Err(_) => bail!("the thread waiting for the gateway failed"),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(err) = self.stop() {
                eprintln!("tongban-load: stopping the gateway: {err}");
            }
        }
    }
}

/// Reads the gateway's stderr to its end: sends the listener addresses once, keeps the tail.
fn drain(reader: impl BufRead, log: &Mutex<LogTail>, announce: &mpsc::Sender<(SocketAddr, SocketAddr)>) {
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.contains(LISTENING) {
            if let Some(addrs) = listeners(&line) {
                let _ = announce.send(addrs);
            }
        }
        if let Ok(mut log) = log.lock() {
            if line.contains(" WARN ") || line.contains("\"level\":\"WARN\"") {
                log.warnings += 1;
            } else if line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"") {
                log.errors += 1;
            }
            if log.lines.len() == TAIL_LINES {
                log.lines.pop_front();
            }
            log.lines.push_back(line);
        }
    }
}

/// `… Gateway listening. public=127.0.0.1:p admin=127.0.0.1:q adapters=n`.
fn listeners(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name)).and_then(|a| a.parse().ok());
    Some((field("public=")?, field("admin=")?))
}

/// The run's configuration: ephemeral ports, the repository's mappings and matter list, the
/// copied adapters, the scenario's simulated platforms, anonymous access, limits that never
/// refuse, gauges refreshed every second, no probes, no file watching, and a fresh acceptance store.
pub fn config_text(repo: &Path, dir: &Path, needs: GatewayNeeds) -> String {
    let quote = |path: &Path| toml::Value::String(path.display().to_string()).to_string();
    let mocks: Vec<String> = needs.mocks.iter().map(|m| toml::Value::String((*m).to_owned()).to_string()).collect();
    let rate = format!("{{ per_second = {UNREACHED_RATE}, burst = {UNREACHED_RATE} }}");
    format!(
        "# Written by tongban-load for one run; removed with its directory.\n\
         [server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [paths]\nadapters = {adapters}\nmappings = {mappings}\nmatters = {matters}\n\n\
         [demo]\nmocks = [{mocks}]\n\n\
         [access]\nanonymous = true\n\n\
         [limits]\npartner_default = {rate}\nanonymous = {rate}\n\
         # The gauges (acceptance queue depth among them) are refreshed at this interval.\n\
         prune_interval_ms = 1000\n\n\
         [observe]\nlog_format = \"text\"\nprobe_interval_ms = 0\nwatch = false\n\n\
         [acceptance]\nstore = {store}\n",
        adapters = quote(&dir.join("adapters")),
        mappings = quote(&repo.join("mappings")),
        matters = quote(&repo.join("config/matters.toml")),
        mocks = mocks.join(", "),
        store = quote(&dir.join("acceptances.sqlite")),
    )
}

/// Copies every adapter file, raising any platform `[limits]` so that it never refuses.
fn copy_adapters(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries = std::fs::read_dir(from).with_context(|| format!("cannot read the adapters in {}", from.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = raise_limits(&text).with_context(|| format!("{}", path.display()))?;
        let Some(name) = path.file_name() else { continue };
        std::fs::write(to.join(name), text)?;
    }
    Ok(())
}

/// The adapter file with its `[limits]` rate and bulkhead raised; unchanged text without `[limits]`.
pub fn raise_limits(adapter: &str) -> anyhow::Result<String> {
    let mut doc: toml::Table = adapter.parse()?;
    let Some(toml::Value::Table(limits)) = doc.get_mut("limits") else { return Ok(adapter.to_owned()) };
    if limits.contains_key("rate") {
        let mut rate = toml::Table::new();
        rate.insert("per_second".into(), i64::from(UNREACHED_RATE).into());
        rate.insert("burst".into(), i64::from(UNREACHED_RATE).into());
        limits.insert("rate".into(), rate.into());
    }
    limits.insert("max_concurrency".into(), UNREACHED_CONCURRENCY.into());
    Ok(toml::to_string(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_everything_absolutely() {
        let text =
            config_text(Path::new("/repo"), Path::new("/tmp/run"), GatewayNeeds { mocks: &["guizhou", "guangdong"] });
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["server"]["listen"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(doc["paths"]["adapters"].as_str(), Some("/tmp/run/adapters"));
        assert_eq!(doc["paths"]["matters"].as_str(), Some("/repo/config/matters.toml"));
        assert_eq!(doc["demo"]["mocks"].as_array().unwrap().len(), 2);
        assert_eq!(doc["access"]["anonymous"].as_bool(), Some(true));
        assert_eq!(doc["limits"]["anonymous"]["per_second"].as_integer(), Some(1_000_000));
        assert_eq!(doc["limits"]["prune_interval_ms"].as_integer(), Some(1000));
        assert_eq!(doc["observe"]["probe_interval_ms"].as_integer(), Some(0));
        assert_eq!(doc["acceptance"]["store"].as_str(), Some("/tmp/run/acceptances.sqlite"));
    }

    #[test]
    fn adapter_limits_are_raised_and_the_rest_kept() {
        let adapter = "name = \"x\"\nbase_url = \"http://127.0.0.1:1\"\n\n[limits]\nrate = { per_second = 200, burst = 400 }\nmax_concurrency = 32\nqueue_timeout_ms = 100\n";
        let doc: toml::Table = raise_limits(adapter).unwrap().parse().unwrap();
        assert_eq!(doc["base_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(doc["limits"]["rate"]["per_second"].as_integer(), Some(1_000_000));
        assert_eq!(doc["limits"]["max_concurrency"].as_integer(), Some(100_000));
        assert_eq!(doc["limits"]["queue_timeout_ms"].as_integer(), Some(100));
        let plain = "name = \"y\"\n";
        assert_eq!(raise_limits(plain).unwrap(), plain);
    }

    #[test]
    fn every_shipped_adapter_survives_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        copy_adapters(&crate::cli::workspace_root().join("adapters"), dir.path()).unwrap();
        let guizhou: toml::Table = std::fs::read_to_string(dir.path().join("guizhou.toml")).unwrap().parse().unwrap();
        assert_eq!(guizhou["limits"]["rate"]["burst"].as_integer(), Some(1_000_000));
    }

    #[test]
    fn the_listening_line_gives_both_addresses() {
        let line = "2026-11-22T10:00:00.000000Z  INFO Gateway listening. public=127.0.0.1:40001 admin=127.0.0.1:40002 adapters=12";
        assert_eq!(listeners(line), Some(("127.0.0.1:40001".parse().unwrap(), "127.0.0.1:40002".parse().unwrap())));
        assert_eq!(listeners("Gateway listening. public=nowhere"), None);
    }
}
