//! Test helpers: a minimal HTTP/1.1 client over a raw TCP stream, and checks every style shares.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{MockServer, find};

/// The demo public keys (standard base64) as `docs/platforms/pinyin-json.md` §7.3 prints them.
pub(crate) const ED25519_2026: &str = "cl4ZVqKYntABkyJlG2ANjAyGSB4aQDWPt+yke61y62c=";
pub(crate) const SM2_2026: &str =
    "BDji6HvqGA+rM2oez/qwt9aUM/RhjpP6QqyMUug0Cfw4g8+xLbMCV8ha2i0P74TfpPYqh1AMfTcq1wKbq+sYrq8=";
pub(crate) const ED25519_2019: &str = "DquLFFg53LAcLWmeHv/klwB8QOLgyBBXI5dPHCgWxW8=";

/// An answer as read off the wire.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("answer is JSON")
    }
}

/// One keep-alive connection.
pub(crate) struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.expect("connect"), buf: Vec::new() }
    }

    /// Sends one request; `None` when the server closed the connection without answering.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Resp> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: mock\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.stream.write_all(head.as_bytes()).await.ok()?;
        self.stream.write_all(body).await.ok()?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < len {
            if !self.fill().await {
                return None;
            }
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Some(Resp { status, headers, body })
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// One request on a fresh connection.
pub(crate) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Resp> {
    Client::connect(addr).await.send(method, path, headers, body).await
}

/// A request that must be answered.
pub(crate) async fn must(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    call(addr, method, path, headers, body).await.expect("the mock answers")
}

/// Starts a demo platform on an ephemeral port.
pub(crate) async fn start(name: &str) -> MockServer {
    let platform = find(name).expect("demo platform");
    MockServer::start(platform, "127.0.0.1:0".parse().expect("address")).await.expect("mock starts")
}

/// Posts JSON to a control endpoint.
pub(crate) async fn control(addr: SocketAddr, method: &str, path: &str, body: Value) -> Resp {
    let bytes = body.to_string().into_bytes();
    must(addr, method, path, &[("Content-Type", "application/json")], &bytes).await
}

pub(crate) async fn set_fault(addr: SocketAddr, mode: &str) {
    let r = control(addr, "POST", "/_mock/fault", json!({ "mode": mode })).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `GET /_mock/received`.
pub(crate) async fn received(addr: SocketAddr) -> Vec<Value> {
    let r = must(addr, "GET", "/_mock/received", &[], b"").await;
    match r.json() {
        Value::Array(list) => list,
        other => panic!("received is not a list: {other}"),
    }
}

/// A business request used by the shared fault checks.
pub(crate) struct Probe<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Exercises `down`, `http_500`, `business_error` (checked by `busy`) and back to `none`.
pub(crate) async fn check_faults(server: &MockServer, probe: &Probe<'_>, busy: impl Fn(&Resp)) {
    let addr = server.local_addr();
    let send = || call(addr, probe.method, probe.path, probe.headers, probe.body);

    set_fault(addr, "down").await;
    assert!(send().await.is_none(), "down closes without an answer");
    // Control endpoints keep working while down.
    assert!(!received(addr).await.is_empty());

    set_fault(addr, "http_500").await;
    let r = send().await.expect("answer");
    assert_eq!(r.status, 500);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/plain"));

    set_fault(addr, "business_error").await;
    busy(&send().await.expect("answer"));

    let bad = control(addr, "POST", "/_mock/fault", json!({"mode": "sideways"})).await;
    assert_eq!(bad.status, 400);

    set_fault(addr, "none").await;
    let r = send().await.expect("answer");
    assert_ne!(r.status, 500);
}

/// `slow` waits `delay_ms` of (paused) tokio time, then answers normally.
pub(crate) async fn check_slow(server: &MockServer, probe: &Probe<'_>) {
    let addr = server.local_addr();
    let r = control(addr, "POST", "/_mock/fault", json!({"mode": "slow", "delay_ms": 45_000})).await;
    assert_eq!(r.json()["delay_ms"], 45_000);
    let r = call(addr, probe.method, probe.path, probe.headers, probe.body).await.expect("slow still answers");
    assert_ne!(r.status, 500);
    set_fault(addr, "slow").await;
    let r = control(addr, "POST", "/_mock/fault", json!({"mode": "none"})).await;
    assert_eq!(r.json()["mode"], "none");
}

/// Moves a case with `/_mock/state`.
pub(crate) async fn set_state(addr: SocketAddr, case_number: &str, state: &str, opinion: Option<&str>) -> Resp {
    control(addr, "POST", "/_mock/state", json!({"case_number": case_number, "state": state, "opinion": opinion})).await
}
