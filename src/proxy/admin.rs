//! The admin listener (管理端口): health, readiness with each platform's last probe, metrics,
//! what is loaded, reload, cache purge, the acceptance queue and the audit head. Keep it on a
//! private address. With `[server] admin_token_file`, everything but health, readiness and
//! metrics (what orchestrators and Prometheus scrape) needs `Authorization: Bearer <token>`.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::Gateway;
use super::context::RequestContext;
use super::respond::{self, Reply};
use crate::adapter::Operation;
use crate::cache::{CacheKey, Purge};
use crate::problem::GatewayError;

/// Largest admin request body (purge requests are small).
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

/// A purge request: every key optional, unknown keys refused.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    target: Option<String>,
    operation: Option<String>,
    request: Option<Value>,
    partner: Option<String>,
}

/// Handles one admin request.
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Result<Reply, std::convert::Infallible> {
    let cx = RequestContext::from_headers(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let open = matches!((&method, path.as_str()), (&Method::GET, "/healthz" | "/readyz" | "/metrics"));
    if !open && let Some(token) = &gateway.federation().server.admin_token {
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            // The scheme name is case-insensitive (RFC 9110).
            .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token));
        if !presented.is_some_and(|presented| token.matches(presented)) {
            let reason = if presented.is_some() { "the admin token is wrong" } else { "no admin token was sent" };
            let error = GatewayError::Unauthorized {
                reason: reason.into(),
                fix: "send Authorization: Bearer <the token in [server] admin_token_file>",
            };
            let mut reply = respond::problem(&error, &cx);
            reply.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            return Ok(reply);
        }
    }
    let reply = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            respond::bytes(StatusCode::OK, "text/plain; charset=utf-8", b"ok\n".to_vec(), &cx)
        }
        (&Method::GET, "/readyz") => readyz(&gateway, &cx),
        (&Method::GET, "/metrics") => {
            audit_gauges(&gateway);
            respond::bytes(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                gateway.metrics.render().into_bytes(),
                &cx,
            )
        }
        (&Method::GET, "/admin/audit") => audit_head(&gateway, &cx),
        (&Method::GET, "/v1/adapters") => adapters(&gateway, &cx),
        (&Method::POST, "/admin/reload") => reload(&gateway, &cx).await,
        (&Method::POST, "/admin/cache/purge") => purge(&gateway, request, &cx).await,
        (&Method::GET, "/admin/acceptances") => {
            let state = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("state=")))
                .map(str::to_owned);
            list_acceptances(&gateway, state, &cx).await
        }
        (&Method::POST, path) if path.starts_with("/admin/acceptances/") && path.ends_with("/retry") => {
            let receipt = path.trim_start_matches("/admin/acceptances/").trim_end_matches("/retry").to_owned();
            retry_acceptance(&gateway, receipt, &cx).await
        }
        (method, path) => {
            respond::problem(&GatewayError::NoEndpoint { method: method.to_string(), path: path.to_owned() }, &cx)
        }
    };
    Ok(reply)
}

/// The audit log's counters, read at scrape time (the writer keeps them without locks).
fn audit_gauges(gateway: &Gateway) {
    if let Some(audit) = &gateway.audit {
        let stats = audit.stats();
        let gauge = |outcome: &str, value: u64| {
            gateway.metrics.audit_records.with_label_values(&[outcome]).set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge("written", stats.written);
        gauge("dropped_queue_full", stats.dropped_queue_full);
        gauge("dropped_write_failed", stats.dropped_write_failed);
    }
}

/// `GET /admin/audit`: the chain's head (ship it off the machine: a rewritten log no longer
/// contains it) and the counters.
fn audit_head(gateway: &Gateway, cx: &RequestContext) -> Reply {
    let Some(audit) = &gateway.audit else {
        let error =
            GatewayError::NoEndpoint { method: "GET".into(), path: "/admin/audit (no [audit] configured)".into() };
        return respond::problem(&error, cx);
    };
    let (seq, hash) = audit.head();
    let stats = audit.stats();
    let body = serde_json::json!({
        "algorithm": audit.algorithm().as_str(),
        "seq": seq,
        "hash": hash,
        "written": stats.written,
        "dropped_queue_full": stats.dropped_queue_full,
        "dropped_write_failed": stats.dropped_write_failed,
    });
    respond::json(StatusCode::OK, &body, cx)
}

/// Ready once a configuration is loaded (always, while serving); reports each platform's health.
fn readyz(gateway: &Gateway, cx: &RequestContext) -> Reply {
    let federation = gateway.federation();
    let platforms = gateway.health.snapshot();
    let body = json!({
        "ready": true,
        "config": federation.config_file,
        "adapters": federation.adapters.len(),
        "platforms": platforms,
    });
    respond::json(StatusCode::OK, &body, cx)
}

fn adapters(gateway: &Gateway, cx: &RequestContext) -> Reply {
    let federation = gateway.federation();
    let adapters: Vec<Value> = federation
        .adapters
        .values()
        .map(|a| {
            json!({
                "name": a.name, "title": a.title, "regions": a.regions, "base_url": format!("{}{}", a.origin, a.base_path),
                "format": a.format.name(), "charset": a.charset.label(),
                "operations": Operation::ALL.iter().filter(|op| a.operations.contains_key(op)).map(|op| op.as_str()).collect::<Vec<_>>(),
                "cached": Operation::ALL.iter().filter(|op| a.cache.contains_key(op)).map(|op| op.as_str()).collect::<Vec<_>>(),
                "max_concurrency": a.max_concurrency,
            })
        })
        .collect();
    respond::json(StatusCode::OK, &json!({ "adapters": adapters }), cx)
}

/// Validates and swaps in the configuration on disk; on error the old one keeps serving.
async fn reload(gateway: &Gateway, cx: &RequestContext) -> Reply {
    match gateway.reload("admin request").await {
        Ok(warnings) => {
            let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
            respond::json(StatusCode::OK, &json!({ "reloaded": true, "warnings": warnings }), cx)
        }
        Err(diagnostics) => {
            let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
            let body = json!({
                "type": "urn:tongban:problem:reload-refused",
                "title": "Configuration refused",
                "status": 422,
                "detail": format!("{} error(s); the previous configuration keeps serving", errors.len()),
                "errors": errors,
                "request_id": cx.request_id,
            });
            respond::bytes(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::problem::PROBLEM_JSON,
                body.to_string().into_bytes(),
                cx,
            )
        }
    }
}

/// `{"target": "guizhou", "operation": "status", "request": {…}, "partner": "…"}`, every key
/// optional: a target and/or operation purges those entries, with `request` the one entry, and
/// an empty object everything.
async fn purge(gateway: &Gateway, request: Request<Incoming>, cx: &RequestContext) -> Reply {
    let body = match http_body_util::Limited::new(request.into_body(), ADMIN_BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return respond::problem(&GatewayError::BodyTooLarge { limit: ADMIN_BODY_LIMIT }, cx),
    };
    // Strict: a mistyped key must not widen a purge to the whole cache.
    let spec: PurgeRequest = if body.is_empty() {
        PurgeRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(spec) => spec,
            Err(err) => {
                return respond::problem(
                    &GatewayError::Unparseable {
                        detail: format!(
                            "the purge request is not valid: {err}; send {{\"target\", \"operation\", \"request\", \"partner\"}}, each optional"
                        ),
                        field: None,
                    },
                    cx,
                );
            }
        }
    };
    let purge = match (spec.target, spec.operation, spec.request) {
        (Some(target), Some(operation), Some(request)) => {
            Purge::Key(CacheKey { target, operation, request: request.to_string(), partner: spec.partner })
        }
        (target, Some(operation), None) => Purge::Operation { target, operation },
        (Some(target), None, None) => Purge::Target(target),
        (None, None, None) if spec.partner.is_none() => Purge::All,
        _ => {
            return respond::problem(
                &GatewayError::BadQuery {
                    name: "request",
                    detail: "needs both target and operation to name one entry (and partner only with request)".into(),
                },
                cx,
            );
        }
    };
    let purged = gateway.cache.purge(&purge).await;
    tracing::info!(purged, "Cache entries purged.");
    respond::json(StatusCode::OK, &json!({ "purged": purged }), cx)
}

/// `GET /admin/acceptances[?state=dead_letter]`: the newest acceptances, optionally in one state.
async fn list_acceptances(gateway: &Gateway, state: Option<String>, cx: &RequestContext) -> Reply {
    let listed =
        crate::acceptance::blocking(&gateway.acceptances.store, move |store| store.list(state.as_deref(), 500)).await;
    match listed {
        Ok(records) => {
            let items: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({
                        "receipt": r.receipt, "application_id": r.application_id, "state": r.state,
                        "platform": r.target, "attempts": r.attempts, "last_error": r.last_error,
                        "province_case_id": r.province_case_id,
                    })
                })
                .collect();
            respond::json(StatusCode::OK, &json!({ "acceptances": items }), cx)
        }
        Err(error) => respond::problem(&error, cx),
    }
}

/// `POST /admin/acceptances/{receipt}/retry`: a dead-lettered acceptance goes back to the queue.
async fn retry_acceptance(gateway: &Gateway, receipt: String, cx: &RequestContext) -> Reply {
    let now = gateway.acceptances.clock.now_ms();
    let id = receipt.clone();
    match crate::acceptance::blocking(&gateway.acceptances.store, move |store| store.requeue(&id, now)).await {
        Ok(true) => {
            gateway.acceptances.wake.notify_one();
            tracing::info!(receipt = %receipt, "Acceptance requeued from the dead letter queue.");
            respond::json(StatusCode::OK, &json!({ "receipt": receipt, "requeued": true }), cx)
        }
        Ok(false) => {
            // Not requeued: unknown, or not in the dead letter queue (say which).
            let id = receipt.clone();
            match crate::acceptance::blocking(&gateway.acceptances.store, move |store| store.get(&id)).await {
                Ok(Some(record)) => respond::problem(
                    &GatewayError::AcceptanceConflict {
                        detail: format!(
                            "acceptance {receipt} is {}, not in the dead letter queue; only dead-lettered acceptances are requeued",
                            record.state
                        ),
                    },
                    cx,
                ),
                Ok(None) => respond::problem(&GatewayError::UnknownReceipt { receipt }, cx),
                Err(error) => respond::problem(&error, cx),
            }
        }
        Err(error) => respond::problem(&error, cx),
    }
}
