//! Test harness: the demo federation with every simulated platform on an ephemeral port of
//! 127.0.0.1, and the gateway on ephemeral ports too. Tests read like scenarios: start, submit,
//! look at what the platform received.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;

use tongban::config::{Federation, load};
use tongban::mock::{MockServer, demo_platforms};
use tongban::proxy::Running;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo federation as shipped.
pub fn demo_federation() -> Federation {
    match load(&root().join("config/tongban.toml")) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("the shipped config must load, but:\n{diagnostics}"),
    }
}

/// The demo federation, loaded once per test binary (property tests run many cases).
pub fn shared_federation() -> &'static Federation {
    static LOADED: std::sync::OnceLock<Federation> = std::sync::OnceLock::new();
    LOADED.get_or_init(demo_federation)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON, got {:?}: {e}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text, for assertion messages.
    #[allow(dead_code)]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The gateway and its simulated platforms.
pub struct Harness {
    pub running: Running,
    pub mocks: HashMap<String, MockServer>,
    /// Holds this harness's acceptance store; removed when the harness is dropped.
    pub store_dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    /// The demo federation, all platforms up.
    pub async fn start() -> Harness {
        Harness::start_with(demo_federation(), |_| {}).await
    }

    /// A federation, with a chance to adjust it (and every reloaded one) after the mocks'
    /// origins are set. File watching and health probes are off unless a test turns them on.
    pub async fn start_with(
        federation: Federation,
        adjust: impl Fn(&mut Federation) + Send + Sync + 'static,
    ) -> Harness {
        let mut mocks = HashMap::new();
        let mut origins = HashMap::new();
        for platform in demo_platforms() {
            if !federation.adapters.contains_key(platform.name) {
                continue;
            }
            let server = MockServer::start(platform, "127.0.0.1:0".parse().unwrap()).await.expect("mock starts");
            origins.insert(platform.name.to_owned(), format!("http://{}", server.local_addr()));
            mocks.insert(platform.name.to_owned(), server);
        }
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        let store = store_dir.path().join("acceptances.sqlite");
        let verify_url = format!("http://{}/v1/verify/", public.local_addr().unwrap());
        let adjust_all: tongban::proxy::Adjust = Box::new(move |federation| {
            let mut federation = federation.with_origins(&origins);
            federation.acceptance.store = store.clone();
            federation.acceptance.materials = store.with_file_name("materials");
            if let Some(audit) = &mut federation.audit {
                audit.path = store.with_file_name("audit.log");
            }
            if let Some(printing) = &mut federation.printing {
                printing.store = store.with_file_name("prints.sqlite");
                printing.token_key = store.with_file_name("print-token.key");
                printing.verify_url = verify_url.clone();
            }
            federation.observe.watch = false;
            federation.observe.probe_interval = None;
            adjust(&mut federation);
            federation
        });
        let running = tongban::proxy::start_with(federation, public, admin, adjust_all).await.unwrap();
        // Idle connections expire on tokio's clock, before the gateway's 30 s header timeout
        // closes them, so tests that advance paused time never reuse a closed connection.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build_http();
        Harness { running, mocks, client, store_dir }
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
        for (_, mock) in self.mocks {
            mock.shutdown().await;
        }
    }

    pub async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response =
            self.client.request(request.body(Full::new(Bytes::from(body))).unwrap()).await.expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    /// A request to the admin listener.
    pub async fn admin(&self, method: &str, path: &str, body: Vec<u8>) -> Answer {
        let url = format!("http://{}{}", self.running.admin, path);
        self.send(method, &url, &[], body).await
    }

    /// A request to the gateway's public listener.
    pub async fn gateway(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let url = format!("http://{}{}", self.running.public, path);
        self.send(method, &url, headers, body).await
    }

    pub async fn submit(&self, application: &Value) -> Answer {
        self.gateway(
            "POST",
            "/v1/applications",
            &[("content-type", "application/json")],
            application.to_string().into_bytes(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.gateway("GET", path, &[], Vec::new()).await
    }

    fn mock_url(&self, platform: &str, path: &str) -> String {
        let mock = self.mocks.get(platform).unwrap_or_else(|| panic!("no mock {platform}"));
        format!("http://{}{}", mock.local_addr(), path)
    }

    /// Everything a platform received on its business API.
    pub async fn received(&self, platform: &str) -> Vec<Value> {
        let answer = self.send("GET", &self.mock_url(platform, "/_mock/received"), &[], Vec::new()).await;
        match answer.json() {
            Value::Array(items) => items,
            other => panic!("expected a list from /_mock/received, got {other}"),
        }
    }

    /// The raw bytes of the last business request a platform received.
    pub async fn last_body(&self, platform: &str) -> Vec<u8> {
        use base64::Engine as _;
        let received = self.received(platform).await;
        let last = received.last().unwrap_or_else(|| panic!("{platform} received nothing"));
        base64::engine::general_purpose::STANDARD.decode(last["body_base64"].as_str().unwrap()).unwrap()
    }

    /// Tells a platform to misbehave: none, down, slow, http_500, business_error.
    pub async fn fault(&self, platform: &str, mode: &str) {
        let body = serde_json::json!({ "mode": mode, "delay_ms": 60_000 }).to_string().into_bytes();
        let answer = self
            .send("POST", &self.mock_url(platform, "/_mock/fault"), &[("content-type", "application/json")], body)
            .await;
        assert!(answer.status < 300, "fault {mode} on {platform} not set: {}", answer.status);
    }

    /// Moves a case to a state, in the platform's own codes.
    pub async fn set_state(&self, platform: &str, case_number: &str, state: &str) {
        let body = serde_json::json!({ "case_number": case_number, "state": state }).to_string().into_bytes();
        let answer = self
            .send("POST", &self.mock_url(platform, "/_mock/state"), &[("content-type", "application/json")], body)
            .await;
        assert!(answer.status < 300, "state {state} on {platform} not set: {} {:?}", answer.status, answer.body);
    }
}

/// A canonical fixture.
pub fn canonical(name: &str) -> Value {
    read_json(&root().join(format!("tests/fixtures/canonical/{name}.json")))
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The canonical input for a platform's golden test.
pub fn golden_input(platform: &str) -> Value {
    let overrides = read_json(&root().join("tests/fixtures/golden/overrides.json"));
    let o = &overrides[platform];
    let mut doc = canonical(o["base"].as_str().unwrap());
    for key in ["application_id", "handling_region", "accepting_region", "mode"] {
        doc[key] = o[key].clone();
    }
    doc
}

/// A resident ID number with a correct GB 11643 check digit.
pub fn resident_id(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}
