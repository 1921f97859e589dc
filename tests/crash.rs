//! Crash safety of proxy acceptance (异地代收代办): the gateway process is killed with SIGKILL while
//! a few hundred acceptances are arriving and being delivered, then restarted on the same store.
//!
//! What it proves:
//! - every acknowledged receipt (a complete `202` carrying a receipt number) survives the crash and
//!   reaches the handling platform exactly once: one case per application id at the platform, and
//!   the gateway records that very case number;
//! - nothing reaches the platform that was not committed: no case for an id never sent, nor for
//!   one the gateway never stored;
//! - no unacknowledged request left a half-written record: right after the kill the store passes
//!   `PRAGMA integrity_check`, and every row has its whole JSON document and its `accepted` event.
//!   A row whose answer the kill swallowed is allowed (committed, then killed before answering),
//!   and it is delivered exactly once too;
//! - the restarted gateway makes no new record (nothing is resent) and records each delivery once.
//!
//! The simulated Guizhou platform is a separate `tongban mock` process, so it outlives the
//! gateway, and it answers after 500 ms so that deliveries are in flight at the kill. Eight
//! windows send over slow lines (each request pauses half-way), so requests are always arriving.
//! The gateway is killed once 100 acceptances are acknowledged, some are delivered, and the
//! platform holds submissions that arrived since the last look, so they are early in their 500 ms
//! and their outcome cannot be recorded before the kill lands. Those stay claimed in the store
//! until their lease runs out (22 s with this test's platform timeouts), so the test takes about
//! half a minute.
//! Both processes use ephemeral ports of 127.0.0.1 and are stopped by their PIDs; every wait is
//! bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![cfg(unix)]
// A synchronous test of separate processes: there is no async runtime here for a sleep to block.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{canonical, root};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Value, json};

/// Windows sending at the same time.
const SENDERS: usize = 8;
/// Application ids available to send; the kill comes long before they run out.
const BUDGET: usize = 400;
/// Each request pauses this long half-way through its body (a slow line), so every window always
/// has a request in flight and the kill cuts some off.
const PACE: Duration = Duration::from_millis(100);
/// The gateway is killed once this many acceptances are acknowledged.
const KILL_AFTER_ACKS: usize = 100;
/// The platform's answer time, so deliveries are in flight when the gateway dies.
const PLATFORM_DELAY_MS: u64 = 500;
/// The kill waits for this many deliveries that reached the platform and have no recorded outcome.
const INTERRUPTED_AT_PLATFORM: usize = 4;

/// A child process, killed if the test fails half-way so nothing is left running.
struct Running {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the end of the log if the process is gone.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited unexpectedly ({status}); its log ends:\n{}", self.name, tail(&self.log));
        }
    }

    /// Sends a signal and waits (at most 30 s) for the process to end.
    fn stop(&mut self, signal: &str) -> Option<std::process::ExitStatus> {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Waits (at most 60 s) for a line containing `needle` in `path`, the process's output.
fn wait_for_line(running: &mut Running, path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        running.assert_alive();
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not print {needle:?} within 60 s; its log ends:\n{}", running.name, tail(&running.log));
}

/// `tongban mock --adapter guizhou` on an ephemeral port; its address.
fn start_mock(dir: &Path) -> (Running, String) {
    let out = dir.join("mock.out");
    let log = dir.join("mock.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tongban"))
        .args(["mock", "--adapter", "guizhou", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut running = Running { child, name: "the simulated Guizhou platform", log };
    // "guizhou (贵州政务服务网) listening on http://127.0.0.1:p"
    let line = wait_for_line(&mut running, &out, "listening on http://");
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    (running, addr)
}

/// `tongban serve` on the private configuration; its public address.
fn start_gateway(config: &Path, log: PathBuf, name: &'static str) -> (Running, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_tongban"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut running = Running { child, name, log: log.clone() };
    // "Gateway listening. public=127.0.0.1:p admin=127.0.0.1:q …"
    let line = wait_for_line(&mut running, &log, "Gateway listening.");
    let public = line.split_whitespace().find_map(|w| w.strip_prefix("public=")).map(str::to_owned);
    (running, public.unwrap_or_else(|| panic!("no public address in {line:?}")))
}

/// A private configuration: the shipped adapters, Guizhou's pointed at the mock (the others are
/// never called); the store in `dir`.
fn write_config(dir: &Path, mock: &str) -> PathBuf {
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    for entry in std::fs::read_dir(root().join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, adapters.join(path.file_name().unwrap())).unwrap();
        }
    }
    let shipped = std::fs::read_to_string(root().join("adapters/guizhou.toml")).unwrap();
    let mut rewritten = 0;
    let adapter: Vec<String> = shipped
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("base_url") {
                rewritten += 1;
                format!("base_url = \"http://{mock}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(rewritten, 1, "adapters/guizhou.toml has one base_url line");
    std::fs::write(adapters.join("guizhou.toml"), adapter.join("\n") + "\n").unwrap();
    let config = dir.join("tongban.toml");
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[paths]
adapters = "{adapters}"
mappings = "{root}/mappings"
matters = "{root}/config/matters.toml"

# Short platform timeouts keep the delivery lease short: claims the crash interrupted are taken
# again once it runs out (2 × (connect + request timeout) + 10 s = 22 s).
[upstream]
connect_timeout_ms = 1000
request_timeout_ms = 5000

[access]
anonymous = true

[limits]
anonymous = {{ per_second = 100000, burst = 100000 }}

[observe]
probe_interval_ms = 0
watch = false

[acceptance]
store = "{store}"
max_attempts = 1000
backoff_ms = 50
backoff_max_ms = 1000
poll_interval_ms = 20
batch = 32
"#,
        adapters = adapters.display(),
        root = root().display(),
        store = dir.join("acceptances.sqlite").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// Why an exchange produced no answer.
enum Failure {
    /// The connection was never made (nobody listening): nothing reached the gateway.
    NotConnected(String),
    /// Connected, but writing or reading failed before any byte came back.
    Broken(String),
}

/// One HTTP/1.1 exchange on a fresh connection: the raw answer, however much of it arrived.
fn exchange(addr: &str, request: &[u8]) -> Result<Vec<u8>, Failure> {
    exchange_paced(addr, request, Duration::ZERO)
}

/// [`exchange`], pausing half-way through the request as a window on a slow line does.
fn exchange_paced(addr: &str, request: &[u8], pause: Duration) -> Result<Vec<u8>, Failure> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| Failure::NotConnected(e.to_string()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let (first, rest) = request.split_at(if pause.is_zero() { request.len() } else { request.len() / 2 });
    stream.write_all(first).map_err(|e| Failure::Broken(e.to_string()))?;
    if !rest.is_empty() {
        std::thread::sleep(pause);
        stream.write_all(rest).map_err(|e| Failure::Broken(e.to_string()))?;
    }
    let mut answer = Vec::new();
    // Bytes read before an error (a reset by the dying gateway) stay in `answer`.
    let read = stream.read_to_end(&mut answer);
    match read {
        Err(e) if answer.is_empty() => Err(Failure::Broken(e.to_string())),
        _ => Ok(answer),
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: tongban\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The status and body of a complete answer; `None` when the answer was cut short.
fn parse(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    if chunked {
        return dechunk(body).map(|body| (status, body));
    }
    let length = length?;
    (body.len() >= length).then(|| (status, body[..length].to_vec()))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..end]).ok()?.split(';').next()?.trim().to_owned();
        let size = usize::from_str_radix(&size, 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A GET answered completely with JSON, or `None`.
fn get_json(addr: &str, path: &str) -> Option<(u16, Value)> {
    let raw = exchange(addr, &request("GET", path, &[], b"")).ok()?;
    let (status, body) = parse(&raw)?;
    Some((status, serde_json::from_slice(&body).ok()?))
}

fn application_id(index: usize) -> String {
    format!("0194f3a0-7c00-7000-8000-0000000c{:04}", index + 1)
}

/// What became of one `POST /v1/acceptances`.
#[derive(Debug)]
enum Outcome {
    /// A complete 202 with a receipt number: acknowledged.
    Acked { receipt: String },
    /// A complete answer of another kind (a test or gateway fault).
    Answered { status: u16, body: String },
    /// Sent, but no complete answer came back (the gateway died meanwhile).
    NoAnswer(String),
    /// No connection: nothing reached the gateway.
    NotConnected(String),
}

/// One acceptance request and its outcome.
#[derive(Debug)]
struct Sent {
    index: usize,
    outcome: Outcome,
    /// The outcome was seen after the gateway was being killed.
    after_kill: bool,
}

fn post_acceptance(addr: &str, template: &Value, index: usize) -> Outcome {
    let mut body = template.clone();
    body["application"]["application_id"] = application_id(index).into();
    let key = format!("crash-window-key-{index:04}");
    let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key.as_str())];
    let request = request("POST", "/v1/acceptances", &headers, body.to_string().as_bytes());
    let raw = match exchange_paced(addr, &request, PACE) {
        Ok(raw) => raw,
        Err(Failure::NotConnected(e)) => return Outcome::NotConnected(e),
        Err(Failure::Broken(e)) => return Outcome::NoAnswer(e),
    };
    match parse(&raw) {
        None => Outcome::NoAnswer(format!("an incomplete answer of {} bytes", raw.len())),
        Some((202, body)) => {
            let receipt =
                serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["receipt"].as_str().map(str::to_owned));
            match receipt {
                Some(receipt) => Outcome::Acked { receipt },
                None => Outcome::Answered { status: 202, body: String::from_utf8_lossy(&body).into_owned() },
            }
        }
        Some((status, body)) => Outcome::Answered { status, body: String::from_utf8_lossy(&body).into_owned() },
    }
}

fn open_read_only(store: &Path) -> Connection {
    let conn = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", store.display()));
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// One acceptances row as the store holds it.
#[derive(Debug)]
struct Row {
    receipt: String,
    application_id: String,
    state: String,
    province_case_id: Option<String>,
    /// The document parses as JSON and names the row's application id.
    document_whole: bool,
    accepted_events: i64,
    delivered_events: i64,
}

/// The store, read without changing it.
#[derive(Debug)]
struct Snapshot {
    integrity: Vec<String>,
    foreign_key_violations: usize,
    orphan_events: i64,
    rows: Vec<Row>,
}

impl Snapshot {
    fn by_state(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for row in &self.rows {
            *counts.entry(row.state.as_str()).or_default() += 1;
        }
        counts
    }

    /// The store is whole and every row is complete; rows name only ids that were sent.
    fn assert_whole(&self, when: &str, sent: &BTreeSet<String>) {
        assert_eq!(self.integrity, ["ok"], "{when}: PRAGMA integrity_check");
        assert_eq!(self.foreign_key_violations, 0, "{when}: PRAGMA foreign_key_check found violations");
        assert_eq!(self.orphan_events, 0, "{when}: events without their acceptance");
        let mut ids = BTreeSet::new();
        for row in &self.rows {
            assert!(sent.contains(&row.application_id), "{when}: a row for an id never sent: {row:?}");
            assert!(ids.insert(&row.application_id), "{when}: two rows for one application: {row:?}");
            assert!(row.document_whole, "{when}: the row's document is not its whole application: {row:?}");
            assert_eq!(row.accepted_events, 1, "{when}: one `accepted` event per row: {row:?}");
            assert!(
                ["accepted", "delivering", "delivered"].contains(&row.state.as_str()) || row.province_case_id.is_some(),
                "{when}: a row neither waiting, in delivery, nor delivered: {row:?}"
            );
            if row.province_case_id.is_some() {
                assert_eq!(row.delivered_events, 1, "{when}: a delivered row has one `delivered` event: {row:?}");
            } else {
                assert_eq!(row.delivered_events, 0, "{when}: a `delivered` event without a case number: {row:?}");
            }
        }
    }
}

fn inspect(store: &Path) -> Snapshot {
    let conn = open_read_only(store);
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let foreign_key_violations =
        conn.prepare("PRAGMA foreign_key_check").unwrap().query_map([], |_| Ok(())).unwrap().count();
    let orphan_events: i64 = conn
        .query_row("SELECT count(*) FROM events WHERE acceptance_id NOT IN (SELECT id FROM acceptances)", [], |row| {
            row.get(0)
        })
        .unwrap();
    let mut select = conn
        .prepare(
            "SELECT a.receipt, a.application_id, a.state, a.province_case_id, a.document,
                    (SELECT count(*) FROM events e WHERE e.acceptance_id = a.id AND e.kind = 'accepted'),
                    (SELECT count(*) FROM events e WHERE e.acceptance_id = a.id AND e.kind = 'delivered')
             FROM acceptances a ORDER BY a.id",
        )
        .unwrap();
    let rows = select
        .query_map([], |row| {
            let application_id: String = row.get(1)?;
            let document: String = row.get(4)?;
            let document_whole = serde_json::from_str::<Value>(&document)
                .is_ok_and(|doc| doc["application_id"].as_str() == Some(application_id.as_str()));
            Ok(Row {
                receipt: row.get(0)?,
                application_id,
                state: row.get(2)?,
                province_case_id: row.get(3)?,
                document_whole,
                accepted_events: row.get(5)?,
                delivered_events: row.get(6)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    Snapshot { integrity, foreign_key_violations, orphan_events, rows }
}

/// How many times the platform received a submission, per application id (its 外部编号 `wbbh`).
fn submissions(platform: &str) -> BTreeMap<String, usize> {
    let (status, received) = get_json(platform, "/_mock/received").expect("the platform lists what it received");
    assert_eq!(status, 200, "{received}");
    let mut submissions = BTreeMap::new();
    for request in received.as_array().unwrap().iter().filter(|r| r["path"].as_str() == Some("/api/sb/tj")) {
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        *submissions.entry(body["wbbh"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    submissions
}

/// Deliveries the kill would interrupt: claimed in the store with no outcome recorded.
#[derive(Debug, Default)]
struct InFlight {
    /// Acceptances delivered so far.
    delivered: i64,
    /// The platform received them and has not answered yet.
    unanswered: BTreeSet<String>,
    /// The platform made the case and answered; the gateway has not recorded it yet.
    answered: usize,
}

/// What the kill would interrupt now. The platform is asked first, so every delivery counted is
/// at the platform and still unrecorded when the store is read.
fn in_flight(conn: &Connection, platform: &str) -> InFlight {
    let received = submissions(platform);
    let (status, cases) = get_json(platform, "/_mock/cases").expect("the platform lists its cases");
    assert_eq!(status, 200, "{cases}");
    let cases: BTreeSet<&str> = cases.as_array().unwrap().iter().filter_map(|c| c["external_id"].as_str()).collect();
    let delivered: i64 = conn
        .query_row("SELECT count(*) FROM acceptances WHERE province_case_id IS NOT NULL", [], |row| row.get(0))
        .unwrap();
    let dead: Option<(String, Option<String>)> = conn
        .query_row("SELECT receipt, last_error FROM acceptances WHERE state = 'dead_letter' LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .unwrap();
    if let Some((receipt, error)) = dead {
        panic!("the platform refused a delivery before the crash: {receipt} was dead-lettered: {error:?}");
    }
    let mut select = conn.prepare_cached("SELECT application_id FROM acceptances WHERE state = 'delivering'").unwrap();
    let delivering: Vec<String> = select.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    let mut found = InFlight { delivered, ..InFlight::default() };
    for id in &delivering {
        if cases.contains(id.as_str()) {
            found.answered += 1;
        } else if received.contains_key(id) {
            found.unanswered.insert(id.clone());
        }
    }
    found
}

#[test]
fn a_gateway_killed_mid_flight_loses_no_acknowledged_acceptance_and_delivers_each_once() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acceptances.sqlite");

    // The platform runs apart from the gateway, answering slowly so deliveries are in flight.
    let (mut mock, platform) = start_mock(dir.path());
    let fault = json!({ "mode": "slow", "delay_ms": PLATFORM_DELAY_MS }).to_string();
    let raw = exchange(&platform, &request("POST", "/_mock/fault", &[], fault.as_bytes())).ok().unwrap();
    assert_eq!(parse(&raw).map(|(status, _)| status), Some(200), "{}", String::from_utf8_lossy(&raw));
    let config = write_config(dir.path(), &platform);
    let (mut first, public) = start_gateway(&config, dir.path().join("gateway-1.log"), "gateway #1");

    // A Guangdong window (天河区) accepts a Guizhou matter (handled in 南明区), from 8 windows at once.
    let mut application = canonical("natural_person");
    application["mode"] = "proxy_acceptance".into();
    let template = Arc::new(json!({
        "accepting_site": { "window_id": "GD-TH-0007", "region": "440106" },
        "application": application,
    }));
    let next = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (public, template) = (public.clone(), Arc::clone(&template));
            let (next, acks, finished, killed) =
                (Arc::clone(&next), Arc::clone(&acks), Arc::clone(&finished), Arc::clone(&killed));
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= BUDGET {
                        break;
                    }
                    let outcome = post_acceptance(&public, &template, index);
                    let after_kill = killed.load(Ordering::SeqCst);
                    let acked = matches!(outcome, Outcome::Acked { .. });
                    if acked {
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.push(Sent { index, outcome, after_kill });
                    if !acked {
                        break; // the gateway is gone (or broken): this window stops
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
                sent
            })
        })
        .collect();

    // SIGKILL once enough is acknowledged and deliveries are in flight at the platform (within 120 s).
    // The kill waits for deliveries that reached the platform since the previous look: they are
    // early in the platform's 500 ms, so the gateway cannot record their outcome (a worker round
    // records its outcomes together, as soon as the platform answers) before the kill lands.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reader = None;
    let mut seen = BTreeSet::new();
    let interrupted = loop {
        let found = in_flight(reader.get_or_insert_with(|| open_read_only(&store)), &platform);
        let fresh = found.unanswered.difference(&seen).count();
        if acks.load(Ordering::SeqCst) >= KILL_AFTER_ACKS && found.delivered > 0 && fresh >= INTERRUPTED_AT_PLATFORM {
            break Some(found);
        }
        seen.extend(found.unanswered);
        if finished.load(Ordering::SeqCst) == SENDERS || Instant::now() > deadline {
            break None;
        }
        first.assert_alive();
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(reader);
    killed.store(true, Ordering::SeqCst);
    first.child.kill().unwrap(); // SIGKILL
    let status = first.child.wait().unwrap();
    let killed_at = started.elapsed();
    assert_eq!(status.signal(), Some(9), "gateway #1 died of SIGKILL, not on its own: {status}");
    let sent: Vec<Sent> = senders.into_iter().flat_map(|s| s.join().unwrap()).collect();

    // Every complete answer was a receipt, and nothing failed before the kill.
    for s in &sent {
        if let Outcome::Answered { status, body } = &s.outcome {
            panic!("acceptance #{} was answered {status} instead of 202: {body}", s.index);
        }
        assert!(s.after_kill || matches!(s.outcome, Outcome::Acked { .. }), "failed before the kill: {s:?}");
    }
    let Some(interrupted) = interrupted else {
        panic!(
            "no moment with 100 acknowledged and deliveries in flight ({} acknowledged, {} sent); \
             gateway #1's log ends:\n{}",
            acks.load(Ordering::SeqCst),
            sent.len(),
            tail(&first.log),
        );
    };
    let attempted: BTreeSet<String> = sent.iter().map(|s| application_id(s.index)).collect();
    let acked: BTreeMap<String, String> = sent
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Acked { receipt } => Some((application_id(s.index), receipt.clone())),
            _ => None,
        })
        .collect();
    // Why the unacknowledged failed, e.g. {"Connection refused (os error 111)": 7}.
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        if let Outcome::NoAnswer(why) | Outcome::NotConnected(why) = &s.outcome {
            *failures.entry(why.clone()).or_default() += 1;
        }
    }
    let cut_off = sent.iter().filter(|s| matches!(s.outcome, Outcome::NoAnswer(_))).count();
    assert!(cut_off > 0, "the kill cut off no request in flight: {failures:?}");

    // Right after the crash: the store is whole, and every acknowledged receipt is in it.
    let crashed = inspect(&store);
    crashed.assert_whole("after the crash", &attempted);
    let rows: HashMap<&str, &Row> = crashed.rows.iter().map(|row| (row.application_id.as_str(), row)).collect();
    for (id, receipt) in &acked {
        let row = rows.get(id.as_str()).unwrap_or_else(|| panic!("acknowledged {id} ({receipt}) is not in the store"));
        assert_eq!(&row.receipt, receipt, "the stored receipt of {id} is the acknowledged one");
    }
    let in_delivery = crashed.rows.iter().filter(|row| row.state == "delivering").count();
    assert!(in_delivery > 0, "the kill found no delivery in flight: {:?}", crashed.by_state());
    let unacked_rows: Vec<&Row> = crashed.rows.iter().filter(|row| !acked.contains_key(&row.application_id)).collect();

    // Restart on the same store; resend nothing. Wait (at most 240 s) until every row is delivered:
    // deliveries the crash interrupted wait for their lease (22 s here) to run out.
    let restarted_at = Instant::now();
    let (mut second, public) = start_gateway(&config, dir.path().join("gateway-2.log"), "gateway #2");
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut pending: BTreeSet<&str> = crashed.rows.iter().map(|row| row.receipt.as_str()).collect();
    let mut delivered: HashMap<String, String> = HashMap::new(); // receipt → province case id
    let mut last = BTreeMap::new();
    while !pending.is_empty() && Instant::now() < deadline {
        second.assert_alive();
        for receipt in pending.clone() {
            let Some((200, answer)) = get_json(&public, &format!("/v1/acceptances/{receipt}")) else { continue };
            let state = answer["state"].as_str().unwrap_or_default().to_owned();
            assert_ne!(state, "dead_letter", "acceptance {receipt} was dead-lettered: {answer:#}");
            if let Some(case) = answer["province_case_id"].as_str().filter(|c| !c.is_empty())
                && !["accepted", "delivering"].contains(&state.as_str())
            {
                delivered.insert(receipt.to_owned(), case.to_owned());
                pending.remove(receipt);
                continue;
            }
            last.insert(receipt, answer);
        }
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let recovered_in = restarted_at.elapsed();
    if let Some(receipt) = pending.first() {
        panic!(
            "{} acceptances were not delivered within 240 s of the restart, e.g. {receipt}: {:#}\n\
             gateway #2's log ends:\n{}",
            pending.len(),
            last.get(receipt).cloned().unwrap_or_default(),
            tail(&second.log),
        );
    }

    // At the platform: exactly one case per stored application, none for anything else, and the
    // gateway recorded that case's number.
    let (status, cases) = get_json(&platform, "/_mock/cases").expect("the platform lists its cases");
    assert_eq!(status, 200);
    let mut cases_by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for case in cases.as_array().unwrap() {
        let id = case["external_id"].as_str().unwrap().to_owned();
        cases_by_id.entry(id).or_default().push(case["case_number"].as_str().unwrap().to_owned());
    }
    for row in &crashed.rows {
        let cases = cases_by_id.get(&row.application_id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(cases.len(), 1, "one case at the platform for {} ({}): {cases:?}", row.application_id, row.receipt);
        assert_eq!(delivered[&row.receipt], cases[0], "the gateway recorded the platform's case for {}", row.receipt);
    }
    for id in cases_by_id.keys() {
        assert!(rows.contains_key(id.as_str()), "the platform has a case for {id}, which the gateway never stored");
    }
    // Deliveries the crash interrupted at the platform were submitted again, and still made one case.
    let resubmitted = submissions(&platform).values().filter(|&&n| n > 1).count();
    assert!(resubmitted > 0, "no delivery interrupted at the platform was submitted again after the restart");

    // A clean stop, then the store once more: nothing new was recorded and each delivery once.
    let status = second.stop("TERM");
    assert!(status.is_some_and(|s| s.success()), "gateway #2 did not stop cleanly on SIGTERM: {status:?}");
    let _ = mock.stop("INT");
    let after = inspect(&store);
    after.assert_whole("after the restart", &attempted);
    assert_eq!(after.rows.len(), crashed.rows.len(), "the restarted gateway made new records");
    assert!(after.rows.iter().all(|row| row.province_case_id.is_some()), "{:?}", after.by_state());

    eprintln!(
        "crash: sent {} ({} acknowledged, the rest {failures:?}); killed after {:.1?} with {interrupted:?}; \
         rows at the crash {} {:?}, {} of them unacknowledged; all delivered {:.1?} after the restart; \
         {} applications submitted more than once to the platform, each one case",
        sent.len(),
        acked.len(),
        killed_at,
        crashed.rows.len(),
        crashed.by_state(),
        unacked_rows.len(),
        recovered_in,
        resubmitted,
    );
}
