//! Stage: respond (响应) — canonical JSON, native bodies and problems, each with the request id.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::context::{REQUEST_ID, RequestContext};
use crate::problem::{GatewayError, PROBLEM_JSON};

/// The gateway's responses.
pub type Reply = Response<Full<Bytes>>;

/// A body with a content type and status.
pub fn bytes(status: StatusCode, content_type: &str, body: Vec<u8>, cx: &RequestContext) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&cx.request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Canonical JSON.
pub fn json(status: StatusCode, value: &Value, cx: &RequestContext) -> Reply {
    bytes(status, "application/json", value.to_string().into_bytes(), cx)
}

/// An RFC 9457 problem.
pub fn problem(error: &GatewayError, cx: &RequestContext) -> Reply {
    let status = StatusCode::from_u16(error.spec().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = bytes(status, PROBLEM_JSON, error.to_problem(&cx.request_id).to_string().into_bytes(), cx);
    if let GatewayError::MethodNotAllowed { allowed, .. } = error {
        reply.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allowed));
    }
    if let Some(after) = error.retry_after() {
        // HTTP's Retry-After is whole seconds; round up so a retry never comes early.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        reply.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if let GatewayError::RateLimited { headers: Some((policy, current)), .. } = error {
        add_rate_limit_headers(&mut reply, policy, current);
    }
    // The challenge names the API key only where a key is what identifies partners.
    if let GatewayError::Unauthorized { fix, .. } = error
        && fix.contains("X-Api-Key")
    {
        reply
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey header=\"X-Api-Key\""));
    }
    reply
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi rate-limit headers).
pub fn add_rate_limit_headers(reply: &mut Reply, policy: &str, current: &str) {
    if let (Ok(policy), Ok(current)) = (HeaderValue::from_str(policy), HeaderValue::from_str(current)) {
        reply.headers_mut().insert("ratelimit-policy", policy);
        reply.headers_mut().insert("ratelimit", current);
    }
}
