//! Stage: route (路由) — handling region → platform by longest prefix, the exchange's kind, and
//! the matter list's permission.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::adapter::Adapter;
use crate::canonical::Mode;
use crate::config::Federation;
use crate::problem::GatewayError;
use crate::regions::Resolved;
use crate::routing::matters::Exchange;
use crate::routing::{RouteKind, classify};

/// Where an exchange goes and what kind it is.
#[derive(Debug, Clone)]
pub struct Route {
    /// The handling platform.
    pub adapter: Arc<Adapter>,
    /// The kind of exchange, when the accepting region is known.
    pub kind: Option<RouteKind>,
    /// Accepting region (current code), when known.
    pub from: Option<Resolved>,
    /// Handling region (current code).
    pub to: Resolved,
}

impl Route {
    /// The `route` object of answers.
    pub fn to_json(&self) -> Value {
        let mut route = json!({
            "to": self.to.code,
            "platform": self.adapter.name,
            "platform_title": self.adapter.title,
        });
        // Kind and origin are known for submissions only (a status query names no accepting region).
        if let (Some(kind), Some(from)) = (self.kind, &self.from) {
            route["kind"] = Value::from(kind.as_str());
            route["from"] = Value::from(from.code.as_str());
        }
        let retired: Vec<Value> = [("/accepting_region", self.from.as_ref()), ("/handling_region", Some(&self.to))]
            .into_iter()
            .filter_map(|(field, region)| {
                let region = region?;
                let retirement = region.retired.as_ref()?;
                Some(json!({"field": field, "code": region.requested, "successor": region.code, "year": retirement.year, "note": retirement.note}))
            })
            .collect();
        if !retired.is_empty() {
            route["retired_codes"] = Value::Array(retired);
        }
        route
    }
}

/// The platform serving a region.
pub fn platform(federation: &Federation, handling: Resolved) -> Result<Route, GatewayError> {
    match federation.router.route(&handling.code) {
        Some(adapter) => Ok(Route { adapter: adapter.clone(), kind: None, from: None, to: handling }),
        None => Err(GatewayError::NoRoute { region: handling.requested }),
    }
}

/// Routes an application and checks the matter list.
pub fn application(
    federation: &Federation,
    matter: &str,
    mode: Mode,
    accepting: Resolved,
    handling: Resolved,
) -> Result<Route, GatewayError> {
    let kind = classify(&accepting.code, &handling.code);
    let mut route = platform(federation, handling)?;
    federation
        .matters
        .permit(&Exchange { matter, mode, accepting: &accepting.code, handling: &route.to.code, kind })
        .map_err(|refusal| GatewayError::OutsideMatterList { detail: refusal.detail, rule: refusal.rule })?;
    route.kind = Some(kind);
    route.from = Some(accepting);
    Ok(route)
}

/// Resolves a region code given in a query string.
pub fn query_region(federation: &Federation, code: Option<&str>, name: &'static str) -> Result<Resolved, GatewayError> {
    let Some(code) = code else {
        return Err(GatewayError::BadQuery {
            name,
            detail: format!("is required: give the 6-digit region code (GB/T 2260), e.g. ?{name}=520102"),
        });
    };
    federation
        .regions
        .resolve(code)
        .map_err(|err| GatewayError::BadQuery { name, detail: format!("is invalid: {err}") })
}
