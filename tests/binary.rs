//! The `tongban` binary itself: it serves a configuration, reloads it on SIGHUP, and stops on
//! SIGTERM. Started on ephemeral ports and stopped by its PID; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![cfg(unix)]
// A synchronous test of a separate process: there is no async runtime here for a sleep to block.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::root;

/// Kills the child if the test fails half-way, so nothing is left running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn the_binary_reloads_on_sighup_and_stops_on_sigterm() {
    // A private configuration on ephemeral ports, without the demo's simulated platforms.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tongban.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[paths]\nadapters = \"{0}/adapters\"\nmappings = \"{0}/mappings\"\nmatters = \"{0}/config/matters.toml\"\n[observe]\nprobe_interval_ms = 0\n",
        root().display()
    );
    std::fs::write(&config, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tongban"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let pid = running.0.id();
    let mut lines = BufReader::new(running.0.stderr.take().unwrap()).lines();

    // "Gateway listening. public=127.0.0.1:p admin=127.0.0.1:q …", within 30 s.
    let started = Instant::now();
    let mut admin = None;
    while admin.is_none() && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("Gateway listening.") {
            admin = line.split_whitespace().find_map(|w| w.strip_prefix("admin=")).map(str::to_owned);
        }
    }
    let admin = admin.expect("the gateway announced its admin address");
    assert!(get(&admin, "/healthz").contains("200 OK"));

    signal(pid, "HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if get(&admin, "/metrics").contains("tongban_config_reloads_total{result=\"success\"} 1") {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // bounded: 100 polls at most
    }
    assert!(reloaded, "SIGHUP did not reload within 5 s");

    signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.is_some_and(|s| s.success()), "the gateway did not stop cleanly on SIGTERM: {status:?}");
}

#[test]
fn the_queue_commands_show_retry_and_list_the_dead_letter_queue() {
    use tongban::store::{AcceptanceStore, NewAcceptance, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tongban.toml");
    let text = format!(
        "[paths]\nadapters = \"{0}/adapters\"\nmappings = \"{0}/mappings\"\nmatters = \"{0}/config/matters.toml\"\n[acceptance]\nstore = \"queue.sqlite\"\n",
        root().display()
    );
    std::fs::write(&config, text).unwrap();
    // An acceptance that failed for good.
    let store = SqliteStore::open(&dir.path().join("queue.sqlite")).unwrap();
    let accepted = store
        .accept(NewAcceptance {
            application_id: "app-q-1".into(),
            idempotency_key: None,
            target: "guizhou".into(),
            matter_code: "000104001000".into(),
            window_id: "GD-TH-0007".into(),
            accepting_region: "440106".into(),
            handling_region: "520102".into(),
            document: "{}".into(),
            accepted_at: 1_795_312_800_000,
            partner: "guangdong-window".into(),
            joint: None,
        })
        .unwrap();
    let receipt = accepted.receipt;
    store.dead_letter(&receipt, "platform guizhou could not be reached", 1_795_312_900_000).unwrap();
    drop(store);

    let queue = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tongban"))
            .args(["--config", config.to_str().unwrap(), "queue"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = queue(&["dead"]);
    assert!(
        ok && out.contains(&receipt) && out.contains("dead_letter") && out.contains("could not be reached"),
        "{out}{err}"
    );
    let (ok, out, _) = queue(&["show", &receipt]);
    assert!(ok && out.contains("accepted") && out.contains("dead_letter"), "{out}");
    let (ok, out, _) = queue(&["retry", &receipt]);
    assert!(ok && out.contains("requeued"), "{out}");
    let (ok, out, _) = queue(&["list", "--state", "accepted"]);
    assert!(ok && out.contains(&receipt), "{out}");
    let (ok, out, _) = queue(&["dead"]);
    assert!(ok && out.trim().is_empty(), "the dead letter queue is empty now: {out}");
    let (ok, _, err) = queue(&["retry", &receipt]);
    assert!(!ok && err.contains("not in the dead letter queue"), "{err}");
}
