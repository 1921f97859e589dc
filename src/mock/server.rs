//! The HTTP side of every mock (模拟平台服务): a hyper 1 HTTP/1.1 server with keep-alive, the
//! test-only control endpoints, fault injection, and dispatch to the platform's style.
//!
//! Control endpoints (never recorded, never subject to faults):
//!
//! - `GET /_mock/received` — the business requests, oldest first (the newest 10,000, so a load
//!   run does not grow the mock without bound); `DELETE` clears the list.
//! - `POST /_mock/fault` `{"mode":"none"|"down"|"slow"|"http_500"|"business_error","delay_ms":N}`.
//! - `POST /_mock/state` `{"case_number","state","opinion"?}` — moves a case (own state codes);
//!   approving a case on a `pinyin-json` platform may issue a certificate (办结出证).
//! - `POST /_mock/certificate` `{"zzbh","zzzt"}` — changes a certificate's status (证照状态), e.g.
//!   to cancel it after it was printed; only `pinyin-json` platforms hold certificates.
//! - `GET /_mock/cases` — `[{"case_number","external_id","state","opinion"}]`.
//! - `GET /_mock/connections` — `{"accepted": N}`, TCP connections accepted so far.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::certificate::{CertStatus, Certificate, CertificateStore};
use super::state::{Case, CaseState, CaseStore, now_beijing};
use super::validate::Reject;
use super::{MockPlatform, Style};
use super::{envelope_json, gbk_xml, ns_xml, pinyin_json, snake_json, upper_xml};

/// Largest body accepted (8 MiB).
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Default wait of the `slow` fault.
const DEFAULT_DELAY_MS: u64 = 30_000;

/// A request as the style handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// An answer from a style handler.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What a style handler may use of the running mock.
pub(crate) struct Ctx<'a> {
    pub platform: &'static MockPlatform,
    store: &'a Mutex<CaseStore>,
    certificates: &'a Mutex<CertificateStore>,
}

impl Ctx<'_> {
    /// The case store, locked.
    pub(crate) fn store(&self) -> MutexGuard<'_, CaseStore> {
        lock(self.store)
    }

    /// The certificate library (证照库), locked; never lock the case store while holding it.
    pub(crate) fn certificates(&self) -> MutexGuard<'_, CertificateStore> {
        lock(self.certificates)
    }
}

// A poisoned lock only means another request panicked mid-update; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultMode {
    None,
    Down,
    Slow,
    Http500,
    BusinessError,
}

impl FaultMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => FaultMode::None,
            "down" => FaultMode::Down,
            "slow" => FaultMode::Slow,
            "http_500" => FaultMode::Http500,
            "business_error" => FaultMode::BusinessError,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            FaultMode::None => "none",
            FaultMode::Down => "down",
            FaultMode::Slow => "slow",
            FaultMode::Http500 => "http_500",
            FaultMode::BusinessError => "business_error",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    mode: FaultMode,
    delay_ms: u64,
}

/// Business requests kept for `GET /_mock/received`.
const RECEIVED_KEPT: usize = 10_000;

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    request_id: Option<String>,
    traceparent: Option<String>,
    /// Every header name received, in order, so tests can see what was (not) forwarded.
    header_names: Vec<String>,
    body: Bytes,
}

struct Shared {
    platform: &'static MockPlatform,
    store: Mutex<CaseStore>,
    certificates: Mutex<CertificateStore>,
    /// The newest [`RECEIVED_KEPT`] business requests, oldest first.
    received: Mutex<VecDeque<Received>>,
    fault: Mutex<Fault>,
    /// TCP connections accepted so far, so tests can see whether callers reuse connections.
    connections: std::sync::atomic::AtomicUsize,
}

/// The `down` fault: the service fails, so hyper closes the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection: down)")]
struct Dropped;

/// A running mock platform (运行中的模拟平台).
pub struct MockServer {
    addr: SocketAddr,
    platform: &'static MockPlatform,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds `listen` (port 0 picks a free port) and serves `platform` until shut down.
    pub async fn start(platform: &'static MockPlatform, listen: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            platform,
            store: Mutex::new(CaseStore::default()),
            certificates: Mutex::new(CertificateStore::for_platform(platform.name)),
            received: Mutex::new(VecDeque::new()),
            connections: std::sync::atomic::AtomicUsize::new(0),
            fault: Mutex::new(Fault { mode: FaultMode::None, delay_ms: DEFAULT_DELAY_MS }),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        tracing::info!(
            platform = platform.name,
            title = platform.title,
            style = platform.style.as_str(),
            %addr,
            "Mock platform is listening."
        );
        Ok(MockServer { addr, platform, stop: Some(stop), task: Some(task) })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The platform this server simulates.
    pub fn platform(&self) -> &'static MockPlatform {
        self.platform
    }

    /// Stops accepting, ends every open connection and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The loop may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        let outcome = match self.task.take() {
            Some(task) => task.await,
            None => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!(platform = self.platform.name, error = %e, "Mock server task ended abnormally.");
        }
        tracing::info!(platform = self.platform.name, addr = %self.addr, "Mock platform shut down.");
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // Dropping without `shutdown` must not leave the server running.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = Arc::clone(&shared);
                            async move { handle(shared, req).await }
                        });
                        if let Err(e) = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%peer, error = %e, "Mock connection ended with an error.");
                        }
                    });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "Mock server could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_reply(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json; charset=utf-8", value.to_string().into_bytes())
}

enum BodyError {
    TooLarge,
    Broken(String),
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let path_and_query = req.uri().path_and_query().map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Broken(e.to_string())),
    };
    let platform = shared.platform;

    if path == "/_mock" || path.starts_with("/_mock/") {
        let reply = match body {
            Ok(body) => control(&shared, &method, &path, &body),
            Err(BodyError::TooLarge) => json_reply(StatusCode::PAYLOAD_TOO_LARGE, &json!({"error": "body over 8 MiB"})),
            Err(BodyError::Broken(_)) => return Err(Dropped),
        };
        return Ok(reply);
    }

    let content_type = header(&headers, "content-type");
    {
        let mut received = lock(&shared.received);
        if received.len() == RECEIVED_KEPT {
            received.pop_front();
        }
        received.push_back(Received {
            method: method.to_string(),
            path: path_and_query.clone(),
            content_type: content_type.clone(),
            request_id: header(&headers, "x-request-id"),
            traceparent: header(&headers, "traceparent"),
            header_names: headers.keys().map(|name| name.as_str().to_owned()).collect(),
            body: body.as_ref().map(Bytes::clone).unwrap_or_default(),
        });
    }
    tracing::info!(
        platform = platform.name,
        %method,
        path = %path_and_query,
        "Mock platform received a business request."
    );

    let fault = *lock(&shared.fault);
    match fault.mode {
        FaultMode::None => {}
        FaultMode::Down => {
            tracing::info!(platform = platform.name, "Fault `down`: closing the connection unanswered.");
            return Err(Dropped);
        }
        FaultMode::Slow => {
            tracing::info!(platform = platform.name, delay_ms = fault.delay_ms, "Fault `slow`: delaying the answer.");
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        FaultMode::Http500 => {
            return Ok(respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                b"Internal Server Error".to_vec(),
            ));
        }
        FaultMode::BusinessError => {
            let r = busy(platform.style);
            return Ok(respond(r.status, r.content_type, r.body));
        }
    }

    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let r = reject(platform.style, &Reject::too_large());
            return Ok(respond(r.status, r.content_type, r.body));
        }
        Err(BodyError::Broken(e)) => {
            tracing::debug!(platform = platform.name, error = %e, "Request body could not be read.");
            return Err(Dropped);
        }
    };
    let req = Req { method, path, query, content_type, body };
    let ctx = Ctx { platform, store: &shared.store, certificates: &shared.certificates };
    let reply = dispatch(&ctx, &req);
    tracing::info!(platform = platform.name, status = reply.status.as_u16(), "Mock platform answered.");
    Ok(respond(reply.status, reply.content_type, reply.body))
}

fn dispatch(ctx: &Ctx<'_>, req: &Req) -> Reply {
    match ctx.platform.style {
        Style::PinyinJson => pinyin_json::handle(ctx, req),
        Style::EnvelopeJson => envelope_json::handle(ctx, req),
        Style::UpperXml => upper_xml::handle(ctx, req),
        Style::GbkXml => gbk_xml::handle(ctx, req),
        Style::SnakeJson => snake_json::handle(ctx, req),
        Style::NsXml => ns_xml::handle(ctx, req),
    }
}

fn busy(style: Style) -> Reply {
    match style {
        Style::PinyinJson => pinyin_json::busy(),
        Style::EnvelopeJson => envelope_json::busy(),
        Style::UpperXml => upper_xml::busy(),
        Style::GbkXml => gbk_xml::busy(),
        Style::SnakeJson => snake_json::busy(),
        Style::NsXml => ns_xml::busy(),
    }
}

fn reject(style: Style, r: &Reject) -> Reply {
    match style {
        Style::PinyinJson => pinyin_json::reject(r),
        Style::EnvelopeJson => envelope_json::reject(r),
        Style::UpperXml => upper_xml::reject(r),
        Style::GbkXml => gbk_xml::reject(r),
        Style::SnakeJson => snake_json::reject(r),
        Style::NsXml => ns_xml::reject(r),
    }
}

/// The platform's own state codes.
fn states(style: Style) -> &'static [(&'static str, CaseState)] {
    match style {
        Style::PinyinJson => pinyin_json::STATES,
        Style::EnvelopeJson => envelope_json::STATES,
        Style::UpperXml => upper_xml::STATES,
        Style::GbkXml => gbk_xml::STATES,
        Style::SnakeJson => snake_json::STATES,
        Style::NsXml => ns_xml::STATES,
    }
}

/// The certificate status codes (证照状态) of a style; empty for styles without certificates.
fn certificate_states(style: Style) -> &'static [(&'static str, CertStatus)] {
    match style {
        Style::PinyinJson => pinyin_json::CERT_STATES,
        _ => &[],
    }
}

/// The certificate a style's platform issues when a case is approved (办结出证), if any.
fn issue_on_approval(platform: &'static MockPlatform, case: &Case) -> Option<Certificate> {
    match platform.style {
        Style::PinyinJson => pinyin_json::issue(platform, case, now_beijing().date_naive()),
        _ => None,
    }
}

/// A state's code on a style's platforms.
pub(crate) fn state_code(table: &[(&'static str, CaseState)], state: CaseState) -> &'static str {
    table.iter().find(|(_, s)| *s == state).map_or("", |(c, _)| c)
}

fn decode_body(style: Style, body: &[u8]) -> String {
    match style {
        Style::GbkXml => encoding_rs::GBK.decode(body).0.into_owned(),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    mode: String,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRequest {
    case_number: String,
    state: String,
    opinion: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateRequest {
    zzbh: String,
    zzzt: String,
}

fn bad_request(message: String) -> Response<Full<Bytes>> {
    json_reply(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

fn control(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let style = shared.platform.style;
    match (method.as_str(), path) {
        ("GET", "/_mock/received") => {
            let list: Vec<Value> = lock(&shared.received)
                .iter()
                .map(|r| {
                    json!({
                        "method": r.method,
                        "path": r.path,
                        "headers": {
                            "content-type": r.content_type,
                            "x-request-id": r.request_id,
                            "traceparent": r.traceparent,
                        },
                        "header_names": r.header_names,
                        "body": decode_body(style, &r.body),
                        "body_base64": STANDARD.encode(&r.body),
                    })
                })
                .collect();
            json_reply(StatusCode::OK, &Value::Array(list))
        }
        ("DELETE", "/_mock/received") => {
            lock(&shared.received).clear();
            respond(StatusCode::NO_CONTENT, "application/json; charset=utf-8", Vec::new())
        }
        ("POST", "/_mock/fault") => {
            let req: FaultRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(format!("invalid fault request: {e}")),
            };
            let Some(mode) = FaultMode::parse(&req.mode) else {
                return bad_request(format!("unknown fault mode {:?}", req.mode));
            };
            let fault = Fault { mode, delay_ms: req.delay_ms.unwrap_or(DEFAULT_DELAY_MS) };
            *lock(&shared.fault) = fault;
            tracing::info!(
                platform = shared.platform.name,
                mode = mode.as_str(),
                delay_ms = fault.delay_ms,
                "Mock fault mode set."
            );
            json_reply(StatusCode::OK, &json!({"mode": mode.as_str(), "delay_ms": fault.delay_ms}))
        }
        ("POST", "/_mock/state") => {
            let req: StateRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(format!("invalid state request: {e}")),
            };
            let table = states(style);
            let Some(state) = table.iter().find(|(c, _)| *c == req.state).map(|(_, s)| *s) else {
                let codes: Vec<&str> = table.iter().map(|(c, _)| *c).collect();
                return bad_request(format!("state {:?} is not one of this platform's codes {codes:?}", req.state));
            };
            let mut store = lock(&shared.store);
            let moved = store.set_state(&req.case_number, state, req.opinion);
            // Issued once, on the first approval; later moves keep the certificate.
            let issued = moved
                .as_ref()
                .filter(|c| c.state == CaseState::Approved && c.certificate_id.is_none())
                .and_then(|c| issue_on_approval(shared.platform, c));
            if let Some(cert) = issued {
                tracing::info!(
                    platform = shared.platform.name,
                    certificate = %cert.id,
                    "Certificate issued on approval."
                );
                store.set_certificate(&req.case_number, &cert.id);
                lock(&shared.certificates).insert(cert);
            }
            drop(store);
            match moved {
                Some(case) => json_reply(
                    StatusCode::OK,
                    &json!({
                        "case_number": case.case_number,
                        "external_id": case.external_id,
                        "state": state_code(table, case.state),
                        "opinion": case.opinion,
                    }),
                ),
                None => {
                    json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("unknown case {}", req.case_number)}))
                }
            }
        }
        ("POST", "/_mock/certificate") => {
            let req: CertificateRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(format!("invalid certificate request: {e}")),
            };
            let table = certificate_states(style);
            let Some(status) = table.iter().find(|(c, _)| *c == req.zzzt).map(|(_, s)| *s) else {
                let codes: Vec<&str> = table.iter().map(|(c, _)| *c).collect();
                return bad_request(format!("zzzt {:?} is not one of this platform's codes {codes:?}", req.zzzt));
            };
            match lock(&shared.certificates).set_status(&req.zzbh, status) {
                Some(cert) => {
                    tracing::info!(
                        platform = shared.platform.name,
                        certificate = %cert.id,
                        zzzt = %req.zzzt,
                        "Certificate status set."
                    );
                    json_reply(StatusCode::OK, &json!({"zzbh": cert.id, "zzzt": req.zzzt}))
                }
                None => {
                    json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("unknown certificate {}", req.zzbh)}))
                }
            }
        }
        ("GET", "/_mock/connections") => json_reply(
            StatusCode::OK,
            &json!({"accepted": shared.connections.load(std::sync::atomic::Ordering::Relaxed)}),
        ),
        ("GET", "/_mock/cases") => {
            let table = states(style);
            let list: Vec<Value> = lock(&shared.store)
                .all()
                .iter()
                .map(|c| {
                    json!({
                        "case_number": c.case_number,
                        "external_id": c.external_id,
                        "state": state_code(table, c.state),
                        "opinion": c.opinion,
                    })
                })
                .collect();
            json_reply(StatusCode::OK, &Value::Array(list))
        }
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("unknown control endpoint {method} {path}")})),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mock::testutil::{Client, control, must, start};

    #[tokio::test]
    async fn control_endpoints_refuse_bad_input() {
        let server = start("guizhou").await;
        let addr = server.local_addr();
        assert_eq!(must(addr, "GET", "/_mock/nothing", &[], b"").await.status, 404);
        assert_eq!(must(addr, "POST", "/_mock/fault", &[], b"{").await.status, 400);
        let r = control(addr, "POST", "/_mock/fault", json!({"mode": "down", "extra": 1})).await;
        assert_eq!(r.status, 400);
        let r = control(addr, "POST", "/_mock/state", json!({"case_number": "x"})).await;
        assert_eq!(r.status, 400);
        // Control requests are never recorded.
        let list = must(addr, "GET", "/_mock/received", &[], b"").await.json();
        assert_eq!(list, json!([]));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let server = start("guizhou").await;
        let addr = server.local_addr();
        let body = vec![b' '; super::BODY_LIMIT + 1];
        let r = must(addr, "POST", "/api/sb/tj", &[("Content-Type", "application/json")], &body).await;
        assert_eq!(r.status, 413);
        assert_eq!(r.json()["cwdm"], "E413");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_ends_open_connections() {
        let server = start("hunan").await;
        let addr = server.local_addr();
        let mut idle = Client::connect(addr).await;
        let r = idle.send("GET", "/zwfw/sxlb.do?qh=430000", &[], b"").await;
        assert_eq!(r.map(|r| r.status), Some(200));
        assert_eq!(server.platform().name, "hunan");
        server.shutdown().await;
        // The keep-alive connection was closed by the shutdown.
        assert!(idle.send("GET", "/zwfw/sxlb.do?qh=430000", &[], b"").await.is_none());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn garbage_never_breaks_a_mock() {
        let paths = [
            "/api/sb/tj",
            "/api/sb/cx?wbbh=%ZZ",
            "/open/api/v1/apply/submit",
            "/ws/sbjk/submit",
            "/zwfw/sbjs.do",
            "/zwfw/cx.do?slbh=%E4",
            "/gateway/v3/applications",
            "/gateway/v3/applications/by-ref/%FF",
            "/jq/api/applications",
        ];
        let deep = "<a>".repeat(5000);
        let bodies: [&[u8]; 6] = [b"", b"<", b"{", b"\xff\xfe\x81", deep.as_bytes(), b"[[[[[[]]]]]]"];
        for name in ["guizhou", "sichuan", "anhui", "hunan", "gansu", "jiuquan"] {
            let server = start(name).await;
            let addr = server.local_addr();
            for path in paths {
                for body in bodies {
                    for ct in ["application/json", "text/xml; charset=GBK", "application/xml"] {
                        let r = must(addr, "POST", path, &[("Content-Type", ct)], body).await;
                        assert!(r.status < 500, "{name} {path}: {}", r.status);
                    }
                }
                let r = must(addr, "GET", path, &[], b"").await;
                assert!(r.status < 500, "{name} {path}: {}", r.status);
            }
            server.shutdown().await;
        }
    }

    #[tokio::test]
    async fn every_demo_platform_starts() {
        for p in crate::mock::demo_platforms() {
            let server = super::MockServer::start(p, "127.0.0.1:0".parse().expect("address")).await.expect("starts");
            assert_eq!(server.platform(), p);
            drop(server);
        }
    }
}
