//! Child processes the tool starts (the gateway, simulated platforms, nginx): their stderr kept as
//! a short tail, and a guard that stops each by its PID (SIGTERM, a bounded wait, then SIGKILL)
//! however the run ends.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines kept to explain a failure.
const TAIL_LINES: usize = 40;

/// A child's output, drained by a thread so the pipe never fills.
#[derive(Debug, Default)]
pub struct LogTail {
    /// The last lines, oldest first.
    pub lines: VecDeque<String>,
    /// Lines at level WARN.
    pub warnings: u64,
    /// Lines at level ERROR.
    pub errors: u64,
}

/// A running child process; dropping it stops it.
pub struct Supervised {
    /// What it is, for messages: `gateway`, `simulated platform guizhou`, `nginx`.
    pub what: String,
    child: Option<Child>,
    log: Arc<Mutex<LogTail>>,
}

impl Supervised {
    /// Starts `command` with stdin closed and stdout and stderr piped. Every output line goes to
    /// the tail, and to `on_line` (from the draining threads) so a caller can wait for one.
    pub fn spawn(
        what: impl Into<String>,
        mut command: Command,
        on_line: impl Fn(&str) + Send + Sync + 'static,
    ) -> anyhow::Result<Supervised> {
        let what = what.into();
        let mut child = command
            // Its own process group: a Ctrl-C at the terminal reaches the tool, which finishes
            // the requests in flight and then stops its children, not the children at once.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {what} ({:?})", command.get_program()))?;
        let log = Arc::new(Mutex::new(LogTail::default()));
        let on_line = Arc::new(on_line);
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let (log, on_line) = (log.clone(), on_line.clone());
            std::thread::spawn(move || drain(BufReader::new(stream), &log, &*on_line));
        }
        Ok(Supervised { what, child: Some(child), log })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last output lines.
    pub fn tail(&self) -> Vec<String> {
        self.log.lock().map(|log| log.lines.iter().cloned().collect()).unwrap_or_default()
    }

    /// Warning and error lines so far.
    pub fn log_counts(&self) -> (u64, u64) {
        self.log.lock().map(|log| (log.warnings, log.errors)).unwrap_or_default()
    }

    /// The failure message for a child that did not come up: what happened and its last lines.
    pub fn failed_to_start(&mut self, what_happened: &str) -> anyhow::Error {
        let status = self.stop();
        anyhow::anyhow!(
            "the {} {what_happened} ({}); its last output lines:\n{}",
            self.what,
            status.map_or_else(|e| format!("could not be stopped: {e}"), |s| format!("it exited with {s}")),
            self.tail().join("\n")
        )
    }

    /// Stops the child: SIGTERM, up to [`STOP_TIMEOUT`] for it to finish, then SIGKILL.
    /// Called from synchronous code only (the runtime is gone by then), so it may sleep.
    #[allow(clippy::disallowed_methods)]
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("the {} was already stopped", self.what) };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        // SIGTERM to our own child by its PID (`kill` keeps this crate free of unsafe code; the
        // child is not reaped before we wait, so the PID is still its own). Without `kill`,
        // straight to SIGKILL.
        let pid = child.id();
        let termed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + if termed { STOP_TIMEOUT } else { Duration::ZERO };
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                if termed {
                    eprintln!(
                        "tongban-load: the {} (pid {pid}) did not stop within {} s; killing it",
                        self.what,
                        STOP_TIMEOUT.as_secs()
                    );
                }
                child.kill()?;
                return Ok(child.wait()?);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(err) = self.stop()
        {
            eprintln!("tongban-load: stopping the {}: {err}", self.what);
        }
    }
}

/// A flag set by Ctrl-C, SIGTERM or SIGHUP from now on, instead of the tool dying at once: the
/// run finishes its requests in flight and the guards stop every child (a closed terminal or a
/// cancelled job would otherwise leave them running).
pub fn stop_on_signals(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = runtime.enter();
    let mut signals = Vec::new();
    for (kind, name) in [
        (SignalKind::interrupt(), "interrupted"),
        (SignalKind::terminate(), "terminated"),
        (SignalKind::hangup(), "hung up"),
    ] {
        signals.push((signal(kind).context("cannot listen for signals")?, name));
    }
    for (mut signal, name) in signals {
        let stop = stop.clone();
        runtime.spawn(async move {
            if signal.recv().await.is_some() {
                eprintln!("tongban-load: {name}; finishing the requests in flight, then stopping what was started");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    Ok(stop)
}

/// Resolves once `stop` is set (checked every 100 ms).
pub async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads one output stream to its end into the tail.
fn drain(reader: impl BufRead, log: &Mutex<LogTail>, on_line: &dyn Fn(&str)) {
    for line in reader.lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        if let Ok(mut log) = log.lock() {
            if line.contains(" WARN ") || line.contains("\"level\":\"WARN\"") || line.contains("[warn]") {
                log.warnings += 1;
            } else if line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"") || line.contains("[error]") {
                log.errors += 1;
            }
            if log.lines.len() == TAIL_LINES {
                log.lines.pop_front();
            }
            log.lines.push_back(line);
        }
    }
}

/// The resident memory of a process in bytes (`VmRSS` in /proc/PID/status), on Linux.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (resident memory is read on Linux only)"))?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_child_is_stopped_by_its_pid_and_its_output_kept() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo ready; echo ' WARN slow' >&2; exec sleep 30"]);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let mut child = Supervised::spawn("test child", command, move |line| {
            if line == "ready" {
                let _ = tx.lock().map(|tx| tx.send(()));
            }
        })
        .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let pid = child.pid().unwrap();
        assert!(resident_bytes(pid).unwrap() > 0);
        let status = child.stop().unwrap();
        assert!(!status.success(), "stopped by SIGTERM, not finished");
        assert!(child.tail().contains(&"ready".to_owned()));
        assert!(child.stop().is_err(), "stopped once");
        assert!(resident_bytes(pid).is_err(), "the process is gone");
    }
}
