//! Stage: forward (转发) — encode for the target platform with its mapping, call it, and decode
//! its answer: charset, format, business envelope, then the answer mapping back to canonical.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

use super::context::{REQUEST_ID, RequestContext, TRACEPARENT, TRACESTATE};
use super::upstream::Upstream;
use crate::adapter::template::MissingField;
use crate::adapter::{Adapter, Operation};
use crate::mapping::MessageKind;
use crate::metrics::Metrics;
use crate::problem::GatewayError;
use crate::wire;

/// Sent to platforms so their logs name the caller.
const USER_AGENT: &str = concat!("tongban/", env!("CARGO_PKG_VERSION"));

/// Calls `operation` on `adapter` with a canonical request; returns the canonical answer.
pub async fn call(
    upstream: &Upstream,
    adapter: &Adapter,
    operation: Operation,
    canonical: &Value,
    cx: &RequestContext,
    metrics: &Metrics,
) -> Result<Value, GatewayError> {
    let Some(spec) = adapter.operations.get(&operation) else {
        return Err(GatewayError::UnsupportedOperation {
            adapter: adapter.name.clone(),
            operation: operation.as_str().into(),
        });
    };
    let path = spec.path.render(canonical).map_err(|MissingField(field)| GatewayError::MissingLookupField {
        adapter: adapter.name.clone(),
        hint: lookup_hint(&field),
        field,
    })?;
    let body = match (&spec.mapping.request, spec.method == http::Method::GET) {
        (Some(_), false) => {
            let started = std::time::Instant::now();
            let native = spec
                .mapping
                .to_native(MessageKind::Request, canonical)
                .map_err(|error| GatewayError::TargetUntranslatable { adapter: adapter.name.clone(), error })?;
            let bytes = wire::encode(&native, adapter.charset, &spec.mapping.namespaces).map_err(|err| {
                GatewayError::TargetUntranslatable {
                    adapter: adapter.name.clone(),
                    error: crate::mapping::MapError::Shape { path: "/".into(), detail: err.to_string() },
                }
            })?;
            translation(metrics, adapter, "to_native", started);
            bytes
        }
        _ => Vec::new(),
    };
    let uri = format!("{}{}{}", adapter.origin, adapter.base_path, path);
    let mut request = http::Request::builder()
        .method(spec.method.clone())
        .uri(&uri)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header(http::header::ACCEPT, adapter.content_type())
        .header(REQUEST_ID, &cx.request_id);
    if !body.is_empty() {
        request = request.header(http::header::CONTENT_TYPE, adapter.content_type());
    }
    if let Some(traceparent) = &cx.traceparent {
        request = request.header(TRACEPARENT, traceparent);
    }
    if let Some(tracestate) = &cx.tracestate {
        request = request.header(TRACESTATE, tracestate);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| GatewayError::Internal(format!("cannot build the request to {uri}: {err}")))?;

    let answer = upstream.send(adapter, request).await?;
    let bad = |detail: String| GatewayError::UpstreamBadAnswer {
        adapter: adapter.name.clone(),
        detail,
        status: answer.status.as_u16(),
    };
    let doc = match wire::decode(&answer.body, adapter.format, adapter.charset, &spec.mapping.namespaces) {
        Ok(doc) => doc,
        Err(_) if !answer.status.is_success() => {
            return Err(bad(format!("HTTP {}: {}", answer.status, snippet(&answer.body))));
        }
        Err(err) => return Err(bad(err.to_string())),
    };
    if let Some(envelope) = &adapter.envelope
        && let Some(business) = envelope.check(&doc)
    {
        return Err(GatewayError::UpstreamBusiness {
            adapter: adapter.name.clone(),
            outcome: business.outcome,
            code: business.code,
            message: business.message,
        });
    }
    if !answer.status.is_success() {
        return Err(bad(format!("HTTP {}: {}", answer.status, snippet(&answer.body))));
    }
    let started = std::time::Instant::now();
    let canonical = spec
        .mapping
        .to_canonical(MessageKind::Response, &doc)
        .map_err(|err| bad(format!("the answer does not fit mapping {}: {err}", spec.mapping.name)));
    translation(metrics, adapter, "to_canonical", started);
    canonical
}

fn translation(metrics: &Metrics, adapter: &Adapter, direction: &str, started: std::time::Instant) {
    metrics
        .translation_duration
        .with_label_values(&[adapter.name.as_str(), direction])
        .observe(started.elapsed().as_secs_f64());
}

fn lookup_hint(field: &str) -> String {
    match field {
        "province_case_id" => "pass ?case_id=<province_case_id from the submit answer>".into(),
        other => format!("supply '{other}'"),
    }
}

/// The start of a body, for error messages: platforms' error pages are short and telling.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".into(),
        None => text.to_owned(),
    }
}
