//! Stage: admit (准入) — who is calling, whether their quotas and the target platform's quota
//! admit one more request, and a slot in the platform's concurrency cap.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Gateway;
use super::pipeline::Exchange;
use crate::access::Call;
use crate::adapter::{Adapter, Operation};
use crate::config::Federation;
use crate::identity::{Caller, ClientCertificate};
use crate::limit::{BulkheadPermit, LimitSpec, RateLimitHeaders};
use crate::metrics::Metrics;
use crate::problem::GatewayError;

/// Identifies the caller: by API key, or by the connection's client certificate under mutual TLS.
pub fn identify<B>(
    federation: &Federation,
    request: &http::Request<B>,
    peer: SocketAddr,
) -> Result<Caller, GatewayError> {
    let certificate = request.extensions().get::<Arc<ClientCertificate>>().map(|c| c.as_ref());
    federation.identities.identify(request.headers(), certificate, peer.ip())
}

/// Checks the caller's rights (访问权限) for one call; anonymous callers are only ever admitted
/// where the configuration allows them (the demo, and QR verification).
pub fn authorize(x: &Exchange, call: Call<'_>) -> Result<(), GatewayError> {
    match &x.caller {
        Some(Caller::Partner(partner)) => partner.rights.check(&partner.name, call),
        _ => Ok(()),
    }
}

/// Checks the caller's limits for this operation: its own (or the default partner / anonymous
/// limit) and its per-operation limit. Admitted requests get the tightest limit's headers.
/// The platform's own limit is checked only when a call actually goes to it ([`platform_limit`]),
/// because a cache hit costs the platform nothing.
pub fn rate_limits(
    gateway: &Gateway,
    federation: &Federation,
    caller: &Caller,
    target: &Adapter,
    operation: Operation,
) -> Result<Option<RateLimitHeaders>, GatewayError> {
    let mut checks: Vec<(&LimitSpec, String)> = Vec::new();
    match caller {
        Caller::Partner(partner) => {
            if let Some(spec) = partner.rate.as_ref().or(federation.partner_default.as_ref()) {
                checks.push((spec, partner.name.clone()));
            }
            if let Some(spec) = partner.operations.get(&operation) {
                checks.push((spec, partner.name.clone()));
            }
        }
        Caller::Anonymous { address } => {
            if let Some(spec) = &federation.anonymous_limit {
                checks.push((spec, address.to_string()));
            }
        }
    }
    check(gateway, &checks, caller.name(), target)
}

/// The platform's own limit (all callers together), checked before each call to it.
pub fn platform_limit(gateway: &Gateway, source: &str, target: &Adapter) -> Result<(), GatewayError> {
    match &target.rate {
        Some(spec) => check(gateway, &[(spec, target.name.clone())], source, target).map(|_| ()),
        None => Ok(()),
    }
}

fn check(
    gateway: &Gateway,
    checks: &[(&LimitSpec, String)],
    source: &str,
    target: &Adapter,
) -> Result<Option<RateLimitHeaders>, GatewayError> {
    if checks.is_empty() {
        return Ok(None);
    }
    let keyed: Vec<(&LimitSpec, &str)> = checks.iter().map(|(spec, key)| (*spec, key.as_str())).collect();
    let verdict = gateway.limits.check(&keyed);
    let policy_of = |id: &str| checks.iter().find(|(spec, _)| spec.id == id).map(|(spec, _)| spec.policy.clone());
    for id in &verdict.shadow_refusals {
        count(&gateway.metrics, &policy_of(id).unwrap_or_default(), source, target, "shadow");
        tracing::info!(limit = %id, source, platform = %target.name, "A shadow limit would have refused this request.");
    }
    if let Some(id) = verdict.refused_by {
        let policy = policy_of(&id).unwrap_or_default();
        count(&gateway.metrics, &policy, source, target, "enforced");
        return Err(GatewayError::RateLimited {
            limit: id,
            policy,
            retry_after: verdict.retry_after.unwrap_or(std::time::Duration::from_secs(1)),
            headers: verdict.headers.map(|h| (h.policy, h.current)),
        });
    }
    Ok(verdict.headers)
}

fn count(metrics: &Metrics, policy: &str, source: &str, target: &Adapter, mode: &str) {
    metrics.rate_limited.with_label_values(&[policy, source, target.name.as_str(), mode]).inc();
}

/// A slot in the platform's concurrency cap (bulkhead), or a 503 after a short wait.
pub async fn bulkhead(gateway: &Gateway, target: &Adapter) -> Result<BulkheadPermit, GatewayError> {
    let bulkhead = gateway.bulkheads.get_or_create(&target.name, target.max_concurrency, target.queue_timeout);
    match bulkhead.enter().await {
        Ok(permit) => Ok(permit),
        Err(full) => {
            gateway.metrics.bulkhead_rejected.with_label_values(&[target.name.as_str()]).inc();
            Err(GatewayError::BulkheadFull { adapter: target.name.clone(), retry_after: full.retry_after })
        }
    }
}
