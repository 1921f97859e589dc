//! The request pipeline (请求处理流程), read top to bottom:
//!
//! ```text
//! accept ─▶ context (request id, trace) ─▶ identify (X-Api-Key) ─▶ body limit ─▶ endpoint
//!   canonical:  decode ─▶ validate ─▶ route (region → platform, kind, matter list)
//!               ─▶ admit (rate limits) ─▶ cache? (status, matters) ─▶ bulkhead
//!               ─▶ forward (encode ─▶ upstream ─▶ envelope ─▶ decode answer) ─▶ respond
//!   native:     decode with the caller's adapter and mapping ─▶ the canonical flow
//!               ─▶ encode the answer with the caller's mapping ─▶ respond
//! then: metrics and the log line, from the facts the stages recorded in [`Exchange`].
//! ```
//! Every stage lives in its own module and returns a typed [`GatewayError`]; [`respond::problem`]
//! turns any of them into a problem response through the one table in [`crate::problem`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::context::RequestContext;
use super::respond::{self, Reply};
use super::{Gateway, admit, body, decode, forward, route};
use crate::access::{Call, Right};
use crate::adapter::{Adapter, Operation, UsccCheck};
use crate::cache::{CacheKey, StaleOnError};
use crate::canonical::State;
use crate::config::Federation;
use crate::identity::Caller;
use crate::mapping::MessageKind;
use crate::problem::GatewayError;
use crate::routing::RouteKind;
use crate::wire;

/// What the stages learn about one request: for metrics, the log line and extra headers.
pub struct Exchange {
    /// Request id and trace headers.
    pub cx: RequestContext,
    /// Who called, once identified.
    pub caller: Option<Caller>,
    /// The handling platform, once routed.
    pub target: Option<String>,
    /// The operation.
    pub operation: Option<Operation>,
    /// The kind of exchange, for submissions.
    pub kind: Option<RouteKind>,
    /// Headers to add to the answer (RateLimit, Cache-Status).
    pub headers: Vec<(&'static str, String)>,
    /// Where the exchange comes from: the accepting region, when the call names one.
    pub from_region: Option<String>,
    /// The target region, once routed.
    pub to_region: Option<String>,
    /// The matter, when the call names one.
    pub matter: Option<String>,
    /// Digest of the request body, for the audit log (when it is on).
    pub request_digest: Option<String>,
}

impl Exchange {
    fn routed(&mut self, adapter: &Adapter, operation: Operation) {
        self.target = Some(adapter.name.clone());
        self.operation = Some(operation);
    }
}

/// Handles one request end to end; never fails: errors become problems.
pub async fn handle(
    gateway: Arc<Gateway>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Reply, std::convert::Infallible> {
    let started = Instant::now();
    let cx = RequestContext::from_headers(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut pending = Unanswered {
        gateway: &gateway,
        method: &method,
        path: &path,
        started,
        answered: false,
        x: Exchange {
            cx,
            caller: None,
            target: None,
            operation: None,
            kind: None,
            headers: Vec::new(),
            from_region: None,
            to_region: None,
            matter: None,
            request_digest: None,
        },
    };
    let dispatched = dispatch(&gateway, request, peer, &mut pending.x).await;
    // From here on nothing waits on the caller: the exchange is answered.
    pending.answered = true;
    let x = &pending.x;
    let mut problem_slug = None;
    let mut reply = match dispatched {
        Ok(reply) => reply,
        Err(error) => {
            let spec = error.spec();
            problem_slug = Some(spec.slug);
            // The detail may quote what the caller sent (names, id numbers): it goes to the caller
            // only; the log keeps the problem type, the field path and the platform's code.
            let problem = error.to_problem(&x.cx.request_id);
            tracing::info!(
                request_id = %x.cx.request_id,
                %method,
                %path,
                status = spec.status,
                problem = spec.slug,
                side = ?spec.side,
                source = x.caller.as_ref().map(Caller::name).unwrap_or(""),
                field = problem["field"].as_str().unwrap_or(""),
                platform = problem["adapter"].as_str().unwrap_or(""),
                upstream_code = problem["upstream"]["code"].as_str().unwrap_or(""),
                "Request refused."
            );
            respond::problem(&error, &x.cx)
        }
    };
    for (name, value) in &x.headers {
        // A refusal's own headers (the limit that refused) win over the admission's.
        if reply.headers().contains_key(*name) {
            continue;
        }
        if let Ok(value) = http::HeaderValue::from_str(value) {
            reply.headers_mut().insert(*name, value);
        }
    }
    record(&gateway, x, reply.status(), started);
    if let Some(audit) = &gateway.audit {
        reply = audited(audit, x, reply, &method, endpoint(&path), problem_slug, started).await;
    }
    tracing::debug!(request_id = %x.cx.request_id, %method, %path, status = reply.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "Request answered.");
    Ok(reply)
}

/// Records the exchange in the audit log: who, from where, to which platform and region, what,
/// digests of both bodies (never the bodies), the outcome and the latency. Never blocks.
async fn audited(
    audit: &crate::audit::AuditLog,
    x: &Exchange,
    reply: Reply,
    method: &Method,
    endpoint: String,
    problem: Option<&'static str>,
    started: Instant,
) -> Reply {
    use http_body_util::BodyExt;
    let (parts, body) = reply.into_parts();
    // A full body is already in memory: collecting it is immediate and copies nothing.
    let bytes = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let response_digest = (!bytes.is_empty()).then(|| audit.algorithm().digest_hex(&bytes));
    audit.record(audit_entry(x, method, endpoint, parts.status.as_u16(), problem, response_digest, started));
    Reply::from_parts(parts, http_body_util::Full::new(bytes))
}

/// The audit record of one exchange, from what the stages learnt about it.
fn audit_entry(
    x: &Exchange,
    method: &Method,
    endpoint: String,
    status: u16,
    problem: Option<&'static str>,
    response_digest: Option<String>,
    started: Instant,
) -> crate::audit::AuditEntry {
    let from = x.from_region.clone().or_else(|| match &x.caller {
        Some(Caller::Partner(partner)) => partner.province.clone(),
        _ => None,
    });
    crate::audit::AuditEntry {
        time: chrono::Utc::now(),
        request_id: x.cx.request_id.clone(),
        partner: caller_name(x).to_owned(),
        from,
        to: x.target.clone(),
        to_region: x.to_region.clone(),
        route_kind: x.kind.map(|kind| kind.as_str().to_owned()),
        matter: x.matter.clone(),
        operation: x.operation.map(|operation| operation.as_str().to_owned()),
        method: method.to_string(),
        path_kind: endpoint,
        request_digest: x.request_digest.clone(),
        response_digest,
        status,
        problem: problem.map(str::to_owned),
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

/// The audit record of a request the framing guard refused before it was parsed (smuggling
/// shapes, oversize or malformed heads): nobody is identified yet and nothing was routed; the
/// digest is over the bytes the guard held (the head and whatever came with it in the same reads).
pub(crate) fn refused_framing_entry(
    algorithm: crate::audit::Algorithm,
    request_id: &str,
    violation: &super::framing::FramingViolation,
    held: &[u8],
) -> crate::audit::AuditEntry {
    let mut request_line = held.split(|byte| *byte == b'\n').next().unwrap_or_default().split(|byte| *byte == b' ');
    // Only a method-shaped token is kept: the bytes are whatever the client sent.
    let method = request_line.next().filter(|m| (1..=16).contains(&m.len()) && m.iter().all(u8::is_ascii_uppercase));
    let target = request_line.next().and_then(|target| std::str::from_utf8(target).ok()).unwrap_or_default();
    crate::audit::AuditEntry {
        time: chrono::Utc::now(),
        request_id: request_id.to_owned(),
        partner: "unidentified".to_owned(),
        from: None,
        to: None,
        to_region: None,
        route_kind: None,
        matter: None,
        operation: None,
        method: method.map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_else(|| "-".to_owned()),
        path_kind: endpoint(target),
        request_digest: (!held.is_empty()).then(|| algorithm.digest_hex(held)),
        response_digest: None,
        status: violation.status(),
        problem: Some(violation.slug().to_owned()),
        latency_us: 0,
    }
}

/// The status recorded for an exchange the caller abandoned (nginx's "client closed request"):
/// never sent, only counted and audited.
pub const CLIENT_CLOSED: u16 = 499;

/// An exchange still being handled. When the caller closes its connection before the answer,
/// hyper drops the handler future mid-stage; this guard's drop still counts the request and
/// writes its audit record (`499`, `client-closed`), with what the stages had learnt by then —
/// an application may already have reached the platform or the acceptance store.
struct Unanswered<'a> {
    gateway: &'a Gateway,
    method: &'a Method,
    path: &'a str,
    started: Instant,
    answered: bool,
    x: Exchange,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Unwinding from a bug in a stage is the gateway's fault, not a caller that left.
        if std::thread::panicking() {
            record(self.gateway, &self.x, StatusCode::INTERNAL_SERVER_ERROR, self.started);
            if let Some(audit) = &self.gateway.audit {
                let endpoint = endpoint(self.path);
                audit.record(audit_entry(&self.x, self.method, endpoint, 500, Some("internal"), None, self.started));
            }
            return;
        }
        let status = StatusCode::from_u16(CLIENT_CLOSED).unwrap_or(StatusCode::BAD_REQUEST);
        record(self.gateway, &self.x, status, self.started);
        tracing::info!(
            request_id = %self.x.cx.request_id,
            method = %self.method,
            path = %self.path,
            source = self.x.caller.as_ref().map(Caller::name).unwrap_or(""),
            platform = self.x.target.as_deref().unwrap_or(""),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "Request abandoned: the caller closed the connection before the answer."
        );
        if let Some(audit) = &self.gateway.audit {
            let endpoint = endpoint(self.path);
            let entry =
                audit_entry(&self.x, self.method, endpoint, CLIENT_CLOSED, Some("client-closed"), None, self.started);
            audit.record(entry);
        }
    }
}

/// The endpoint a path names, with ids and tokens left out (they may be personal).
fn endpoint(path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "native", _, _] => "/v1/native/{adapter}/{operation}".into(),
        // Only the API's own resource names: anything else a caller sends may be personal.
        [
            "v1",
            resource @ ("applications" | "matters" | "acceptances" | "certificates" | "print-jobs" | "verify"),
            rest @ ..,
        ] if rest.len() <= 2 => {
            let mut out = format!("/v1/{resource}");
            for (i, segment) in rest.iter().enumerate() {
                match (i, *segment) {
                    (1, "events" | "document" | "printed") => out.push_str(&format!("/{segment}")),
                    (0, _) => out.push_str("/{id}"),
                    _ => out.push_str("/{other}"),
                }
            }
            out
        }
        _ => "other".into(),
    }
}

/// Counts the request and its latency.
fn record(gateway: &Gateway, x: &Exchange, status: StatusCode, started: Instant) {
    let kind = x.kind.map(RouteKind::as_str).unwrap_or("none");
    let source = x.caller.as_ref().map(Caller::name).unwrap_or("unidentified");
    let target = x.target.as_deref().unwrap_or("none");
    let operation = x.operation.map(Operation::as_str).unwrap_or("none");
    let metrics = &gateway.metrics;
    metrics.requests.with_label_values(&[kind, source, target, operation, status.as_str()]).inc();
    metrics.request_duration.with_label_values(&[kind, target, operation]).observe(started.elapsed().as_secs_f64());
}

/// Picks the endpoint.
async fn dispatch(
    gateway: &Gateway,
    request: Request<Incoming>,
    peer: SocketAddr,
    x: &mut Exchange,
) -> Result<Reply, GatewayError> {
    let federation = gateway.federation();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Identified on the same segments that route, so `//v1/…` cannot slip past.
    match segments.as_slice() {
        // Anyone who scans a printed QR code may verify it: a partner key is used when sent,
        // otherwise the caller counts as anonymous for the rate limit.
        ["v1", "verify", ..] => {
            let identified = admit::identify(&federation, &request, peer);
            x.caller = Some(identified.unwrap_or(Caller::Anonymous { address: peer.ip() }));
        }
        ["v1", ..] => x.caller = Some(admit::identify(&federation, &request, peer)?),
        _ => {}
    }
    let not_allowed = |allowed: &'static str| GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: path.clone(),
        allowed,
    };
    match (segments.as_slice(), &method) {
        (["v1", "applications"], &Method::POST) => {
            let bytes = read_body(gateway, &federation, request, x).await?;
            let mut doc = decode::json(&bytes, federation.server.max_json_depth)?;
            let answer = submit(gateway, &federation, &mut doc, x).await?;
            Ok(respond::json(StatusCode::CREATED, &answer, &x.cx))
        }
        (["v1", "applications"], _) => Err(not_allowed("POST")),
        (["v1", "applications", raw_id], &Method::GET) => {
            let id = percent_decode(raw_id);
            let shaped = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if id.is_empty() || id.len() > 64 || !shaped {
                return Err(GatewayError::BadApplicationId { id });
            }
            let region = query_param(query.as_deref(), "region");
            let case_id = query_param(query.as_deref(), "case_id");
            let mut doc = json!({ "application_id": id, "handling_region": region });
            if let Some(case_id) = case_id {
                doc["province_case_id"] = Value::String(case_id);
            }
            let answer = status(gateway, &federation, &doc, x).await?;
            Ok(respond::json(StatusCode::OK, &answer, &x.cx))
        }
        (["v1", "applications", _], _) => Err(not_allowed("GET")),
        (["v1", "matters"], &Method::GET) => {
            let doc = json!({ "region": query_param(query.as_deref(), "region") });
            let answer = matters(gateway, &federation, &doc, x).await?;
            Ok(respond::json(StatusCode::OK, &answer, &x.cx))
        }
        (["v1", "matters"], _) => Err(not_allowed("GET")),
        (["v1", "native", adapter, operation], &Method::POST) => {
            let bytes = read_body(gateway, &federation, request, x).await?;
            native(gateway, &federation, adapter, operation, &bytes, x).await
        }
        (["v1", "native", _, _], _) => Err(not_allowed("POST")),
        (["v1", "acceptances"], &Method::POST) => {
            // Before any upload reaches the material store; regions and matters once decoded.
            admit::authorize(x, Call::operation(Right::Accept))?;
            let key = idempotency_key(request.headers())?;
            let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let multipart = content_type.filter(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/"));
            if let Some(content_type) = multipart.map(str::to_owned) {
                // Materials as parts: streamed to the material store, never held in memory.
                let upload =
                    crate::acceptance::upload(gateway, &federation, &content_type, request.into_body()).await?;
                let document = upload.document.clone();
                // The materials are stored by their own digests and referenced in the document.
                if let Some(audit) = &gateway.audit {
                    x.request_digest = Some(audit.algorithm().digest_hex(&document));
                }
                crate::acceptance::accept(gateway, x, &document, key, Some(upload)).await
            } else {
                let bytes = read_body(gateway, &federation, request, x).await?;
                crate::acceptance::accept(gateway, x, &bytes, key, None).await
            }
        }
        (["v1", "acceptances"], _) => Err(not_allowed("POST")),
        (["v1", "acceptances", receipt], &Method::GET) => {
            admit::authorize(x, Call::operation(Right::Accept))?;
            crate::acceptance::show(gateway, x, receipt).await
        }
        (["v1", "acceptances", receipt, "events"], &Method::POST) => {
            admit::authorize(x, Call::operation(Right::Accept))?;
            let receipt = receipt.to_string();
            let bytes = read_body(gateway, &federation, request, x).await?;
            crate::acceptance::event(gateway, x, &receipt, &bytes).await
        }
        (["v1", "acceptances", _, "events"], _) => Err(not_allowed("POST")),
        (["v1", "acceptances", _], _) => Err(not_allowed("GET")),
        (["v1", "certificates", raw_id], &Method::GET) => {
            let id = percent_decode(raw_id);
            let region = query_param(query.as_deref(), "issuer_region");
            crate::certificate::print::show_certificate(gateway, &federation, x, &id, region.as_deref()).await
        }
        (["v1", "certificates", _], _) => Err(not_allowed("GET")),
        (["v1", "print-jobs"], &Method::POST) => {
            let bytes = read_body(gateway, &federation, request, x).await?;
            crate::certificate::print::create(gateway, &federation, x, &bytes).await
        }
        (["v1", "print-jobs"], &Method::GET) => {
            admit::authorize(x, Call::operation(Right::Print))?;
            let site = query_param(query.as_deref(), "site");
            let state = query_param(query.as_deref(), "state");
            crate::certificate::print::list(gateway, &federation, x, site, state).await
        }
        (["v1", "print-jobs"], _) => Err(not_allowed("GET, POST")),
        (["v1", "print-jobs", job], &Method::GET) => {
            admit::authorize(x, Call::operation(Right::Print))?;
            crate::certificate::print::show(gateway, &federation, x, job).await
        }
        (["v1", "print-jobs", _], _) => Err(not_allowed("GET")),
        (["v1", "print-jobs", job, "document"], &Method::GET) => {
            admit::authorize(x, Call::operation(Right::Print))?;
            crate::certificate::print::document(gateway, &federation, x, job).await
        }
        (["v1", "print-jobs", _, "document"], _) => Err(not_allowed("GET")),
        (["v1", "print-jobs", job, "printed"], &Method::POST) => {
            admit::authorize(x, Call::operation(Right::Print))?;
            let job = job.to_string();
            let bytes = read_body(gateway, &federation, request, x).await?;
            crate::certificate::print::printed(gateway, &federation, x, &job, &bytes).await
        }
        (["v1", "print-jobs", _, "printed"], _) => Err(not_allowed("POST")),
        (["v1", "verify", token], &Method::GET) => {
            crate::certificate::print::check(gateway, &federation, x, token).await
        }
        (["v1", "verify", _], _) => Err(not_allowed("GET")),
        _ => Err(GatewayError::NoEndpoint { method: method.to_string(), path }),
    }
}

/// `Idempotency-Key`: absent, or 1–255 visible ASCII characters (it names a stored acceptance).
fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, GatewayError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    let bytes = value.as_bytes();
    let detail = if values.next().is_some() {
        "more than one Idempotency-Key was sent; send one"
    } else if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        "an Idempotency-Key is 1–255 visible ASCII characters, e.g. a UUID"
    } else {
        return Ok(Some(String::from_utf8_lossy(bytes).into_owned()));
    };
    Err(GatewayError::BadIdempotencyKey { detail })
}

/// Reads a whole request body within the limit; its digest goes to the audit log.
async fn read_body(
    gateway: &Gateway,
    federation: &Federation,
    request: Request<Incoming>,
    x: &mut Exchange,
) -> Result<bytes::Bytes, GatewayError> {
    let bytes = body::read(request.into_body(), federation.server.body_limit).await?;
    if let Some(audit) = &gateway.audit {
        x.request_digest = Some(audit.algorithm().digest_hex(&bytes));
    }
    Ok(bytes)
}

/// 全程网办 submit: validate, route, forward, answer.
async fn submit(
    gateway: &Gateway,
    federation: &Federation,
    doc: &mut Value,
    x: &mut Exchange,
) -> Result<Value, GatewayError> {
    let (app, validation) = decode::validated(doc, federation.regions)?;
    let (Some(accepting), Some(handling)) = (validation.accepting, validation.handling) else {
        return Err(GatewayError::Internal("validated regions missing".into()));
    };
    x.operation = Some(Operation::Submit);
    let route = route::application(federation, &app.matter.code, app.mode, accepting, handling)?;
    x.routed(&route.adapter, Operation::Submit);
    x.kind = route.kind;
    let from = route.from.as_ref().map(|from| from.code.as_str());
    let call = Call::to(Right::Submit, &route.to.code, Some(&app.matter.code)).from(from);
    x.from_region = from.map(str::to_owned);
    admit(gateway, federation, x, &route.adapter, Operation::Submit, Some(call))
        .map_err(|error| error.from_field("/accepting_region"))?;
    // Platforms validate against today's division table: send the current codes; the answer's
    // route.retired_codes tells the caller which codes were replaced.
    doc["handling_region"] = Value::String(route.to.code.clone());
    if let Some(from) = &route.from {
        doc["accepting_region"] = Value::String(from.code.clone());
    }
    let warnings = uscc_policy(validation.uscc_check_failures, &route, x)?;
    // Submissions are writes: never cached.
    let answer = call_platform(gateway, &route.adapter, Operation::Submit, doc, &x.cx, caller_name(x)).await?;
    let (case_id, state) = case_and_state(&route.adapter.name, &answer)?;
    tracing::info!(
        request_id = %x.cx.request_id,
        application_id = app.application_id.as_deref().unwrap_or(""),
        platform = %route.adapter.name,
        kind = route.kind.map(|k| k.as_str()).unwrap_or(""),
        province_case_id = %case_id,
        "Application submitted."
    );
    let mut out = json!({
        "application_id": app.application_id,
        "province_case_id": case_id,
        "state": state,
        "route": route.to_json(),
    });
    copy_optional(&answer, &mut out, &["accepted_at", "message"]);
    if !warnings.is_empty() {
        out["warnings"] = Value::Array(warnings);
    }
    Ok(out)
}

/// 办件查询: the handling platform's view of an application.
async fn status(
    gateway: &Gateway,
    federation: &Federation,
    doc: &Value,
    x: &mut Exchange,
) -> Result<Value, GatewayError> {
    let handling = route::query_region(federation, doc["handling_region"].as_str(), "region")?;
    let route = route::platform(federation, handling)?;
    let mut request = doc.clone();
    request["handling_region"] = Value::String(route.to.code.clone());
    x.routed(&route.adapter, Operation::Status);
    let call = Call::to(Right::Status, &route.to.code, None);
    admit(gateway, federation, x, &route.adapter, Operation::Status, Some(call))?;
    let answer = lookup(gateway, x, &route.adapter, Operation::Status, &request, status_answer).await?;
    let (case_id, state) = case_and_state(&route.adapter.name, &answer)?;
    let mut out = json!({
        "application_id": doc["application_id"],
        "province_case_id": case_id,
        "state": state,
        "route": route.to_json(),
    });
    copy_optional(&answer, &mut out, &["updated_at", "message", "certificate_id"]);
    Ok(out)
}

/// 事项目录: the matters a region's platform handles, marked when on the matter list.
async fn matters(
    gateway: &Gateway,
    federation: &Federation,
    doc: &Value,
    x: &mut Exchange,
) -> Result<Value, GatewayError> {
    let region = route::query_region(federation, doc["region"].as_str(), "region")?;
    let route = route::platform(federation, region)?;
    let request = json!({ "region": route.to.code });
    x.routed(&route.adapter, Operation::Matters);
    let call = Call::to(Right::Matters, &route.to.code, None);
    admit(gateway, federation, x, &route.adapter, Operation::Matters, Some(call))?;
    let answer = lookup(gateway, x, &route.adapter, Operation::Matters, &request, matters_answer).await?;
    let listed: Vec<Value> = answer["matters"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let mut item = item.clone();
                    let code = item["code"].as_str().unwrap_or_default().to_owned();
                    item["on_matter_list"] = Value::Bool(federation.matters.name_of(&code).is_some());
                    item
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({ "region": route.to.code, "route": route.to_json(), "matters": listed }))
}

/// Native ingress: a platform speaks its own format; the gateway translates both ways.
async fn native(
    gateway: &Gateway,
    federation: &Federation,
    adapter: &str,
    operation: &str,
    bytes: &[u8],
    x: &mut Exchange,
) -> Result<Reply, GatewayError> {
    let caller =
        federation.adapters.get(adapter).ok_or_else(|| GatewayError::UnknownAdapter { name: adapter.to_owned() })?;
    let unsupported =
        || GatewayError::UnsupportedOperation { adapter: adapter.to_owned(), operation: operation.to_owned() };
    let op = Operation::parse(operation).ok_or_else(unsupported)?;
    let spec = caller.operations.get(&op).filter(|s| s.mapping.request.is_some()).ok_or_else(unsupported)?;
    let mapping = &spec.mapping;
    let doc = wire::decode(bytes, caller.format, caller.charset, &mapping.namespaces).map_err(|err| {
        GatewayError::Unparseable {
            detail: format!("{err}; send the {} format of adapter {adapter}", caller.content_type()),
            field: None,
        }
    })?;
    let mut canonical = mapping
        .to_canonical(MessageKind::Request, &doc)
        .map_err(|error| GatewayError::NativeUntranslatable { adapter: adapter.to_owned(), error })?;
    let (status, answer) = match op {
        Operation::Submit => (StatusCode::CREATED, submit(gateway, federation, &mut canonical, x).await?),
        Operation::Status => (StatusCode::OK, status(gateway, federation, &canonical, x).await?),
        Operation::Matters => (StatusCode::OK, matters(gateway, federation, &canonical, x).await?),
        // Certificates are fetched by the gateway, never pushed to it.
        Operation::Certificate => return Err(unsupported()),
    };
    let native = mapping.to_native(MessageKind::Response, &answer).map_err(|err| {
        GatewayError::Internal(format!(
            "the answer cannot be expressed in {adapter}'s format (mapping {}): {err}",
            mapping.name
        ))
    })?;
    let body = wire::encode(&native, caller.charset, &mapping.namespaces)
        .map_err(|err| GatewayError::Internal(format!("cannot encode the answer for {adapter}: {err}")))?;
    Ok(respond::bytes(status, caller.content_type(), body, &x.cx))
}

/// Credit codes failing only their check character: refused, or forwarded with warnings, as the
/// handling platform's adapter says (`uscc_check`).
pub(crate) fn uscc_policy(
    failures: Vec<crate::canonical::validate::FieldError>,
    route: &route::Route,
    x: &Exchange,
) -> Result<Vec<Value>, GatewayError> {
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    match route.adapter.uscc_check {
        UsccCheck::Enforce => Err(GatewayError::Invalid { errors: failures }),
        UsccCheck::Warn => Ok(failures
            .into_iter()
            .map(|failure| {
                tracing::warn!(request_id = %x.cx.request_id, platform = %route.adapter.name, field = %failure.field, "A credit code failing its check character is forwarded (uscc_check = warn).");
                json!({"field": failure.field, "detail": failure.detail})
            })
            .collect()),
    }
}

/// The caller's rights for the call (when it needs any), then its rate limits; an admitted
/// request carries the rate-limit headers.
pub(crate) fn admit(
    gateway: &Gateway,
    federation: &Federation,
    x: &mut Exchange,
    target: &Adapter,
    operation: Operation,
    call: Option<Call<'_>>,
) -> Result<(), GatewayError> {
    if let Some(call) = call {
        x.to_region = call.region.map(str::to_owned);
        x.matter = call.matter.map(str::to_owned);
        admit::authorize(x, call)?;
    }
    let Some(caller) = &x.caller else { return Ok(()) };
    if let Some(headers) = admit::rate_limits(gateway, federation, caller, target, operation)? {
        x.headers.push(("ratelimit-policy", headers.policy));
        x.headers.push(("ratelimit", headers.current));
    }
    Ok(())
}

/// An idempotent lookup: from the cache when the adapter caches the operation, else the platform.
pub(crate) async fn lookup(
    gateway: &Gateway,
    x: &mut Exchange,
    adapter: &Arc<Adapter>,
    operation: Operation,
    request: &Value,
    check: fn(&str, &Value) -> Result<(), GatewayError>,
) -> Result<Value, GatewayError> {
    // An unusable answer is an error before the cache sees it: never stored, always counted.
    let checked = |answer: Value| {
        check(&adapter.name, &answer).map(|()| answer).inspect_err(|error| {
            gateway.metrics.upstream_errors.with_label_values(&[adapter.name.as_str(), error.spec().slug]).inc();
        })
    };
    let Some(policy) = adapter.cache.get(&operation).copied() else {
        return call_platform(gateway, adapter, operation, request, &x.cx, caller_name(x)).await.and_then(checked);
    };
    let partner = if adapter.cache_caller_scoped { x.caller.as_ref().map(|c| c.name().to_owned()) } else { None };
    // Object keys serialise sorted, so equal requests make equal keys.
    let key = CacheKey {
        target: adapter.name.clone(),
        operation: operation.as_str().to_owned(),
        request: request.to_string(),
        partner,
    };
    let cx = x.cx.clone();
    let source = caller_name(x).to_owned();
    let (result, outcome) = gateway
        .cache
        .get_or_fetch_with(key, policy, stale_on_error, || async move {
            call_platform(gateway, adapter, operation, request, &cx, &source).await.and_then(checked)
        })
        .await;
    gateway
        .metrics
        .cache_requests
        .with_label_values(&[adapter.name.as_str(), operation.as_str(), outcome.label()])
        .inc();
    x.headers.push(("cache-status", outcome.header_value()));
    result
}

/// Failures of the platform itself allow a stale answer; refusals of the request do not.
fn stale_on_error(error: &GatewayError) -> StaleOnError {
    let platform_failed = matches!(
        error,
        GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::UpstreamBadAnswer { .. }
            | GatewayError::BulkheadFull { .. }
            | GatewayError::UpstreamBusiness { outcome: crate::adapter::envelope::Outcome::Unavailable, .. }
    );
    if platform_failed { StaleOnError::Serve { fwd_status: Some(error.spec().status) } } else { StaleOnError::Refuse }
}

/// One call to a platform inside its bulkhead, timed and counted.
pub(crate) async fn call_platform(
    gateway: &Gateway,
    adapter: &Adapter,
    operation: Operation,
    request: &Value,
    cx: &RequestContext,
    source: &str,
) -> Result<Value, GatewayError> {
    admit::platform_limit(gateway, source, adapter)?;
    let _slot = admit::bulkhead(gateway, adapter).await?;
    let metrics = &gateway.metrics;
    let _in_flight = InFlight::enter(metrics.upstream_in_flight.with_label_values(&[adapter.name.as_str()]));
    let started = Instant::now();
    let result = forward::call(&gateway.upstream, adapter, operation, request, cx, metrics).await;
    metrics
        .upstream_duration
        .with_label_values(&[adapter.name.as_str(), operation.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = &result
        && error.spec().side == crate::problem::Side::Upstream
    {
        metrics.upstream_errors.with_label_values(&[adapter.name.as_str(), error.spec().slug]).inc();
    }
    result
}

/// The calling partner's name; `anonymous` (the demo) or `unidentified` before identification.
pub(crate) fn caller_name(x: &Exchange) -> &str {
    x.caller.as_ref().map(Caller::name).unwrap_or("unidentified")
}

/// Counts a call in flight until dropped, so a cancelled request (caller gone) is uncounted too.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn enter(gauge: prometheus::IntGauge) -> InFlight {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A status answer is usable when it has a case number and a canonical state.
fn status_answer(adapter: &str, answer: &Value) -> Result<(), GatewayError> {
    case_and_state(adapter, answer).map(|_| ())
}

/// A catalogue answer is usable when its matters (if any) are a list.
fn matters_answer(adapter: &str, answer: &Value) -> Result<(), GatewayError> {
    match answer.get("matters") {
        None | Some(Value::Array(_)) => Ok(()),
        Some(_) => Err(GatewayError::UpstreamBadAnswer {
            adapter: adapter.to_owned(),
            detail: "the catalogue's matters are not a list".into(),
            status: 200,
        }),
    }
}

/// A platform's answer must carry its case number and a known state.
fn case_and_state(adapter: &str, answer: &Value) -> Result<(String, State), GatewayError> {
    let bad = |detail: String| GatewayError::UpstreamBadAnswer { adapter: adapter.to_owned(), detail, status: 200 };
    let case_id = match &answer["province_case_id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return Err(bad("the answer carries no case number (province_case_id)".into())),
    };
    let state = serde_json::from_value::<State>(answer["state"].clone())
        .map_err(|_| bad(format!("the answer's state {} is not a canonical state", answer["state"])))?;
    Ok((case_id, state))
}

fn copy_optional(from: &Value, to: &mut Value, keys: &[&str]) {
    for key in keys {
        if let Some(value) = from.get(*key).filter(|v| !v.is_null()) {
            to[*key] = value.clone();
        }
    }
}

/// One query parameter, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        assert_eq!(query_param(Some("region=520102&case_id=GZ%2D1"), "case_id").as_deref(), Some("GZ-1"));
        assert_eq!(query_param(Some("region=%E5%BC%A0+x"), "region").as_deref(), Some("张 x"));
        assert_eq!(query_param(Some("region=%"), "region").as_deref(), Some("%"));
        assert_eq!(query_param(None, "region"), None);
    }
}
