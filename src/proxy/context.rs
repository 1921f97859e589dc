//! Request context (请求上下文): the few facts every stage may read — the request id and the
//! trace headers to pass on.

use http::HeaderMap;

/// Header carrying the request id, generated when absent and sent upstream.
pub const REQUEST_ID: &str = "x-request-id";
/// W3C trace context headers, passed through untouched.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state.
pub const TRACESTATE: &str = "tracestate";

/// Longest request id accepted from a caller; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// What the stages know about the request beyond its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's `X-Request-Id` if sane, else a new UUIDv7.
    pub request_id: String,
    /// `traceparent`, if sent.
    pub traceparent: Option<String>,
    /// `tracestate`, if sent.
    pub tracestate: Option<String>,
}

impl RequestContext {
    /// The context of a delivery by the acceptance worker: a request id naming the receipt.
    pub fn for_delivery(receipt: &str) -> RequestContext {
        RequestContext {
            request_id: format!("delivery-{receipt}-{}", uuid::Uuid::now_v7()),
            traceparent: None,
            tracestate: None,
        }
    }

    /// Reads the context from request headers.
    pub fn from_headers(headers: &HeaderMap) -> RequestContext {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = text(REQUEST_ID)
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        RequestContext { request_id, traceparent: text(TRACEPARENT), tracestate: text(TRACESTATE) }
    }
}
