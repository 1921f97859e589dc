//! Starting and stopping what a run loads: the simulated platforms a scenario needs, each as its
//! own `tongban mock` process on an ephemeral port, and a gateway on a private configuration in a
//! temporary directory, its adapters pointed at those platforms. Every process is stopped by its
//! PID however the run ends (see [`crate::process`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::Supervised;
use crate::scenario::GatewayNeeds;

/// How long the gateway or a simulated platform may take to announce its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A rate no load run reaches: limits stay configured (their code runs) but never refuse.
const UNREACHED_RATE: u32 = 1_000_000;
/// Calls in flight to one platform, raised above any connection count a run uses.
const UNREACHED_CONCURRENCY: i64 = 100_000;
/// The log line the gateway writes once both listeners are bound.
const LISTENING: &str = "Gateway listening.";

/// The simulated platforms of a run, each its own `tongban mock` process, so that a run can
/// load a platform directly (the physical limit) and the gateway's figures are its own.
pub struct Platforms {
    /// Where each listens, by name (the adapter's file stem).
    pub addrs: BTreeMap<String, SocketAddr>,
    processes: Vec<Supervised>,
}

impl Platforms {
    /// Starts `tongban mock --adapter NAME --listen 127.0.0.1:0` for each name.
    pub fn start(bin: &Path, names: &[&str]) -> anyhow::Result<Platforms> {
        check_binary(bin)?;
        let mut platforms = Platforms { addrs: BTreeMap::new(), processes: Vec::new() };
        for name in names {
            let mut command = Command::new(bin);
            command.args(["mock", "--adapter", name, "--listen", "127.0.0.1:0"]).env("RUST_LOG", "warn");
            // `guizhou (贵州政务服务网) listening on http://127.0.0.1:40123`
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(tx);
            let mut process = Supervised::spawn(format!("simulated platform {name}"), command, move |line| {
                if let Some(addr) = line.split_once("listening on http://").and_then(|(_, a)| a.trim().parse().ok()) {
                    let _ = tx.lock().map(|tx| tx.send(addr));
                }
            })?;
            match rx.recv_timeout(START_TIMEOUT) {
                Ok(addr) => {
                    platforms.addrs.insert((*name).to_owned(), addr);
                    platforms.processes.push(process);
                }
                Err(_) => return Err(process.failed_to_start("did not say where it listens")),
            }
        }
        Ok(platforms)
    }

    /// The address of platform `name`.
    pub fn addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        self.addrs.get(name).copied().with_context(|| format!("no simulated platform {name} was started"))
    }

    /// Stops every platform; the first failure is the error.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        for process in &mut self.processes {
            if let Err(err) = process.stop()
                && first.is_ok()
            {
                first = Err(err);
            }
        }
        first
    }
}

/// A running gateway; dropping it stops it.
pub struct Gateway {
    process: Supervised,
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin: SocketAddr,
    /// The temporary directory with the configuration and the store.
    pub dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes the configuration and starts `bin` on it, its adapters aimed at `platforms`;
    /// returns once the gateway listens.
    pub fn start(
        bin: &Path,
        repo: &Path,
        work_dir: Option<&Path>,
        needs: GatewayNeeds,
        platforms: &Platforms,
    ) -> anyhow::Result<Gateway> {
        check_binary(bin)?;
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
        copy_adapters(&repo.join("adapters"), &adapters, &platforms.addrs)?;
        let config = dir.path().join("tongban.toml");
        std::fs::write(&config, config_text(&repo, dir.path(), needs))
            .with_context(|| format!("cannot write {}", config.display()))?;

        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .current_dir(dir.path())
            // Warnings and errors only, and the one line that says where it listens.
            .env("RUST_LOG", "warn,tongban::cli::serve=info");
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let mut process = Supervised::spawn("gateway", command, move |line| {
            if line.contains(LISTENING)
                && let Some(addrs) = listeners(line)
            {
                let _ = tx.lock().map(|tx| tx.send(addrs));
            }
        })?;
        match rx.recv_timeout(START_TIMEOUT) {
            Ok((public, admin)) => Ok(Gateway { process, public, admin, dir: dir.path().to_path_buf(), _dir: dir }),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(process
                .failed_to_start(&format!("did not announce its listeners within {} s", START_TIMEOUT.as_secs()))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(process.failed_to_start("stopped before it listened")),
        }
    }

    /// The gateway's process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The last log lines.
    pub fn tail(&self) -> Vec<String> {
        self.process.tail()
    }

    /// Warning and error lines logged so far.
    pub fn log_counts(&self) -> (u64, u64) {
        self.process.log_counts()
    }

    /// Stops the gateway: SIGTERM, a bounded wait, then SIGKILL.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.process.stop()
    }
}

/// A clear error before anything starts when the binary is missing.
fn check_binary(bin: &Path) -> anyhow::Result<()> {
    if !bin.is_file() {
        bail!(
            "the gateway binary {} does not exist; build it first with `cargo build --release` \
             in the workspace, or name one with --gateway-bin, or aim at a running gateway with --target",
            bin.display()
        );
    }
    Ok(())
}

/// `… Gateway listening. public=127.0.0.1:p admin=127.0.0.1:q adapters=n`.
fn listeners(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name)).and_then(|a| a.parse().ok());
    Some((field("public=")?, field("admin=")?))
}

/// The run's configuration: ephemeral ports, the repository's mappings and matter list, the
/// copied adapters, no in-process platforms (they run as their own processes), anonymous access,
/// limits that never refuse, the scenario's partners, gauges refreshed every second, no probes,
/// no file watching, and a fresh acceptance store.
pub fn config_text(repo: &Path, dir: &Path, needs: GatewayNeeds) -> String {
    let quote = |path: &Path| toml::Value::String(path.display().to_string()).to_string();
    let rate = format!("{{ per_second = {UNREACHED_RATE}, burst = {UNREACHED_RATE} }}");
    format!(
        "# Written by tongban-load for one run; removed with its directory.\n\
         [server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [paths]\nadapters = {adapters}\nmappings = {mappings}\nmatters = {matters}\n\n\
         [access]\nanonymous = true\n\n\
         [limits]\npartner_default = {rate}\nanonymous = {rate}\n\
         # The gauges (acceptance queue depth among them) are refreshed at this interval.\n\
         prune_interval_ms = 1000\n\n\
         [observe]\nlog_format = \"text\"\nprobe_interval_ms = 0\nwatch = false\n\n\
         [acceptance]\nstore = {store}\n\n{partners}",
        adapters = quote(&dir.join("adapters")),
        mappings = quote(&repo.join("mappings")),
        matters = quote(&repo.join("config/matters.toml")),
        partners = needs.partners,
        store = quote(&dir.join("acceptances.sqlite")),
    )
}

/// Copies every adapter file, raising any platform `[limits]` so that it never refuses, and aiming
/// the adapters of started platforms at them.
fn copy_adapters(from: &Path, to: &Path, platforms: &BTreeMap<String, SocketAddr>) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries = std::fs::read_dir(from).with_context(|| format!("cannot read the adapters in {}", from.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let text = raise_limits(&text, platforms.get(stem).copied()).with_context(|| format!("{}", path.display()))?;
        let Some(name) = path.file_name() else { continue };
        std::fs::write(to.join(name), text)?;
    }
    Ok(())
}

/// The adapter file with its `[limits]` rate and bulkhead raised and, for a started platform, its
/// `base_url` aimed at it; unchanged text otherwise.
pub fn raise_limits(adapter: &str, platform: Option<SocketAddr>) -> anyhow::Result<String> {
    let mut doc: toml::Table = adapter.parse()?;
    if let Some(addr) = platform {
        doc.insert("base_url".into(), format!("http://{addr}").into());
    }
    let Some(toml::Value::Table(limits)) = doc.get_mut("limits") else {
        return Ok(if platform.is_some() { toml::to_string(&doc)? } else { adapter.to_owned() });
    };
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
        let needs = GatewayNeeds { mocks: &["guizhou", "guangdong"], partners: "[[partner]]\nname = \"p\"\n" };
        let text = config_text(Path::new("/repo"), Path::new("/tmp/run"), needs);
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["server"]["listen"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(doc["paths"]["adapters"].as_str(), Some("/tmp/run/adapters"));
        assert_eq!(doc["paths"]["matters"].as_str(), Some("/repo/config/matters.toml"));
        assert!(doc.get("demo").is_none(), "platforms run as their own processes");
        assert_eq!(doc["partner"][0]["name"].as_str(), Some("p"));
        assert_eq!(doc["access"]["anonymous"].as_bool(), Some(true));
        assert_eq!(doc["limits"]["anonymous"]["per_second"].as_integer(), Some(1_000_000));
        assert_eq!(doc["limits"]["prune_interval_ms"].as_integer(), Some(1000));
        assert_eq!(doc["observe"]["probe_interval_ms"].as_integer(), Some(0));
        assert_eq!(doc["acceptance"]["store"].as_str(), Some("/tmp/run/acceptances.sqlite"));
    }

    #[test]
    fn adapter_limits_are_raised_and_the_rest_kept() {
        let adapter = "name = \"x\"\nbase_url = \"http://127.0.0.1:1\"\n\n[limits]\nrate = { per_second = 200, burst = 400 }\nmax_concurrency = 32\nqueue_timeout_ms = 100\n";
        let doc: toml::Table = raise_limits(adapter, None).unwrap().parse().unwrap();
        assert_eq!(doc["base_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(doc["limits"]["rate"]["per_second"].as_integer(), Some(1_000_000));
        assert_eq!(doc["limits"]["max_concurrency"].as_integer(), Some(100_000));
        assert_eq!(doc["limits"]["queue_timeout_ms"].as_integer(), Some(100));
        let plain = "name = \"y\"\n";
        assert_eq!(raise_limits(plain, None).unwrap(), plain);
        let aimed: toml::Table = raise_limits(plain, Some("127.0.0.1:4000".parse().unwrap())).unwrap().parse().unwrap();
        assert_eq!(aimed["base_url"].as_str(), Some("http://127.0.0.1:4000"));
    }

    #[test]
    fn every_shipped_adapter_survives_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let platforms = BTreeMap::from([("hunan".to_owned(), "127.0.0.1:4000".parse().unwrap())]);
        copy_adapters(&crate::cli::workspace_root().join("adapters"), dir.path(), &platforms).unwrap();
        let guizhou: toml::Table = std::fs::read_to_string(dir.path().join("guizhou.toml")).unwrap().parse().unwrap();
        assert_eq!(guizhou["limits"]["rate"]["burst"].as_integer(), Some(1_000_000));
        let hunan: toml::Table = std::fs::read_to_string(dir.path().join("hunan.toml")).unwrap().parse().unwrap();
        assert_eq!(hunan["base_url"].as_str(), Some("http://127.0.0.1:4000"));
    }

    #[test]
    fn the_listening_line_gives_both_addresses() {
        let line = "2026-11-22T10:00:00.000000Z  INFO Gateway listening. public=127.0.0.1:40001 admin=127.0.0.1:40002 adapters=12";
        assert_eq!(listeners(line), Some(("127.0.0.1:40001".parse().unwrap(), "127.0.0.1:40002".parse().unwrap())));
        assert_eq!(listeners("Gateway listening. public=nowhere"), None);
    }
}
