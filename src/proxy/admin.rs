//! The admin listener (管理端口): health, readiness and what the gateway has loaded. Keep it on a
//! private address.

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::Gateway;
use super::context::RequestContext;
use super::respond::{self, Reply};
use crate::problem::GatewayError;

/// Handles one admin request.
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Result<Reply, std::convert::Infallible> {
    let cx = RequestContext::from_headers(request.headers());
    let federation = gateway.federation();
    let reply = match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/healthz") => {
            respond::bytes(StatusCode::OK, "text/plain; charset=utf-8", b"ok\n".to_vec(), &cx)
        }
        (&http::Method::GET, "/readyz") => respond::json(
            StatusCode::OK,
            &json!({"ready": true, "config": federation.config_file, "adapters": federation.adapters.len()}),
            &cx,
        ),
        (&http::Method::GET, "/v1/adapters") => {
            let adapters: Vec<_> = federation
                .adapters
                .values()
                .map(|a| {
                    json!({
                        "name": a.name, "title": a.title, "regions": a.regions, "base_url": format!("{}{}", a.origin, a.base_path),
                        "format": a.format.name(), "charset": a.charset.label(),
                        "operations": crate::adapter::Operation::ALL.iter().filter(|op| a.operations.contains_key(op)).map(|op| op.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            respond::json(StatusCode::OK, &json!({ "adapters": adapters }), &cx)
        }
        (method, path) => {
            respond::problem(&GatewayError::NoEndpoint { method: method.to_string(), path: path.to_owned() }, &cx)
        }
    };
    Ok(reply)
}
