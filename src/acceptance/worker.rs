//! The delivery worker (转递): forwards committed acceptances to their handling platforms.
//!
//! Each round claims due records under a lease (a crashed worker's claims expire and are taken
//! again), delivers them through the same stages as a submission (the platform's limit, its
//! bulkhead, the adapter's mapping), and records the outcome:
//! - confirmed with a case number → `delivered`;
//! - the platform already has it (a retry after a lost answer) → its case number is looked up →
//!   `delivered`; the application id is the platform's idempotency key (外部编号), so a retry
//!   never creates a second case;
//! - a transport failure, a timeout or a retryable business code → retried with exponential
//!   backoff and jitter, up to `max_attempts`, then `dead_letter`;
//! - a refusal (invalid, rejected) → `dead_letter` at once with the platform's reason.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::blocking;
use crate::adapter::Operation;
use crate::adapter::envelope::Outcome;
use crate::config::load::AcceptanceSettings;
use crate::problem::GatewayError;
use crate::proxy::Gateway;
use crate::proxy::context::RequestContext;
use crate::store::{Acceptance, Outcome as Recorded, OutcomeKind};

/// Where a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The platform confirmed, with its case number.
    Delivered(String),
    /// Try again later.
    Retry(String),
    /// Give up: the platform refused, or attempts ran out.
    Dead(String),
}

/// Delivers until shutdown.
pub async fn run(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let settings = gateway.federation().acceptance.clone();
        let delivered = round(&gateway, &settings).await;
        // Status polls and joint decisions ride the same loop: both are cheap when nothing is due.
        let polled = super::status::round(&gateway, &settings).await;
        let decided = super::joint::round(&gateway).await;
        if delivered + polled + decided == 0 {
            let idle = idle_wait(&gateway, settings.poll_interval).await;
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = gateway.acceptances.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
        } else if *shutdown.borrow() {
            break;
        }
    }
}

/// How long an idle worker sleeps: until the next scheduled item, but at most `longest` —
/// the store may be changed by someone who cannot wake this worker (`tongban queue retry`,
/// another instance) — and at least a few milliseconds, so a stuck item cannot spin the loop.
async fn idle_wait(gateway: &Gateway, longest: Duration) -> Duration {
    let now = gateway.acceptances.clock.now_ms();
    let next = blocking(&gateway.acceptances.store, move |store| store.next_due(now)).await;
    match next {
        Ok(Some(at)) => {
            let until = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            Duration::from_millis(until).clamp(Duration::from_millis(10), longest.max(Duration::from_millis(10)))
        }
        Ok(None) => longest,
        Err(err) => {
            tracing::error!(error = %err, "The delivery worker cannot read the acceptance store.");
            longest
        }
    }
}

/// How long a claimed delivery is held: one attempt at the slowest platform — a submission and,
/// for a duplicate, the status lookup, each within its connect and request timeouts — plus a
/// margin. A claim held by a crashed worker is taken again after this, so it is kept short; an
/// attempt that outlives it may run twice, which the platform's idempotency key absorbs.
fn delivery_lease(federation: &crate::config::load::Federation) -> u64 {
    let slowest = federation
        .adapters
        .values()
        .map(|adapter| adapter.connect_timeout.saturating_add(adapter.request_timeout))
        .max()
        .unwrap_or(Duration::from_secs(30));
    let lease = slowest.saturating_mul(2).saturating_add(Duration::from_secs(10));
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

/// One round: claims due records and delivers them concurrently; returns how many were claimed.
pub async fn round(gateway: &Gateway, settings: &AcceptanceSettings) -> usize {
    let acceptances = &gateway.acceptances;
    let now = acceptances.clock.now_ms();
    let lease = delivery_lease(&gateway.federation());
    let batch = settings.batch;
    let claimed = match blocking(&acceptances.store, move |store| store.claim_due(now, batch, lease)).await {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::error!(error = %err, "The delivery worker cannot read the acceptance store.");
            return 0;
        }
    };
    let count = claimed.len();
    let attempts = claimed.iter().map(|record| async move { (record, deliver(gateway, record).await) });
    let delivered = futures_util::future::join_all(attempts).await;
    // The round's outcomes are recorded together: one transaction, one fsync, so delivery keeps
    // up while group commits of new acceptances compete for the same store.
    let mut outcomes = Vec::with_capacity(count);
    let mut labels = Vec::with_capacity(count);
    for (record, delivery) in delivered {
        let (outcome, label) = outcome_of(gateway, settings, record, delivery);
        outcomes.push(outcome);
        labels.push(label);
    }
    let recorded = match blocking(&acceptances.store, move |store| Ok(store.record_outcomes(&outcomes))).await {
        Ok(results) => results,
        Err(err) => {
            (0..count).map(|_| Err(crate::store::StoreError::GroupCommit { detail: err.to_string() })).collect()
        }
    };
    for ((record, label), result) in claimed.iter().zip(labels).zip(recorded) {
        match result {
            Ok(()) => tracing::info!(
                receipt = %record.receipt,
                platform = %record.target,
                outcome = label,
                attempts = record.attempts + 1,
                "Delivery attempt recorded."
            ),
            Err(err) => tracing::error!(
                receipt = %record.receipt,
                error = %err,
                "A delivery outcome could not be recorded; the lease will expire and the delivery repeats (idempotent at the platform)."
            ),
        }
    }
    count
}

/// What to record for one attempt: the last allowed retry becomes a dead letter; counted in the
/// delivery metrics.
fn outcome_of(
    gateway: &Gateway,
    settings: &AcceptanceSettings,
    record: &Acceptance,
    delivery: Delivery,
) -> (Recorded, &'static str) {
    let now = gateway.acceptances.clock.now_ms();
    let attempts = record.attempts + 1;
    let delivery = match delivery {
        Delivery::Retry(error) if attempts >= settings.max_attempts => {
            Delivery::Dead(format!("{error} (gave up after {attempts} attempts)"))
        }
        other => other,
    };
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (kind, label) = match delivery {
        Delivery::Delivered(province_case_id) => {
            let first_poll_at = settings.status_poll.map(|first| now.saturating_add(millis(first)));
            (OutcomeKind::Delivered { province_case_id, first_poll_at }, "delivered")
        }
        Delivery::Retry(error) => {
            let next_attempt_at = now.saturating_add(millis(backoff(settings, attempts)));
            (OutcomeKind::Retry { error, next_attempt_at }, "retry")
        }
        Delivery::Dead(error) => (OutcomeKind::Dead { error }, "dead_letter"),
    };
    gateway.metrics.acceptance_deliveries.with_label_values(&[record.target.as_str(), label]).inc();
    (Recorded { receipt: record.receipt.clone(), at: now, kind }, label)
}

/// One delivery attempt.
pub async fn deliver(gateway: &Gateway, record: &Acceptance) -> Delivery {
    let federation = gateway.federation();
    let Some(adapter) = federation.adapters.get(&record.target) else {
        return Delivery::Retry(format!("no adapter '{}' is configured now", record.target));
    };
    let mut document: Value = match serde_json::from_str(&record.document) {
        Ok(document) => document,
        Err(err) => return Delivery::Dead(format!("the stored document is unreadable: {err}")),
    };
    if let Err(error) = inline_materials(gateway, &mut document).await {
        return Delivery::Retry(error);
    }
    let cx = RequestContext::for_delivery(&record.receipt);
    match crate::proxy::pipeline::call_platform(gateway, adapter, Operation::Submit, &document, &cx, "acceptance").await
    {
        Ok(answer) => match answer["province_case_id"].as_str().filter(|s| !s.is_empty()) {
            Some(case_id) => Delivery::Delivered(case_id.to_owned()),
            None => Delivery::Retry("the platform's answer carries no case number".into()),
        },
        Err(GatewayError::UpstreamBusiness { outcome: Outcome::Duplicate, .. }) => {
            // Delivered before (the answer was lost): ask the platform for its case number.
            let request = serde_json::json!({
                "application_id": record.application_id,
                "handling_region": record.handling_region,
            });
            match crate::proxy::pipeline::call_platform(
                gateway,
                adapter,
                Operation::Status,
                &request,
                &cx,
                "acceptance",
            )
            .await
            {
                Ok(answer) => match answer["province_case_id"].as_str() {
                    Some(case_id) => Delivery::Delivered(case_id.to_owned()),
                    None => Delivery::Retry("the platform has it but gave no case number".into()),
                },
                Err(err) => Delivery::Retry(format!("the platform has it; its case number could not be read: {err}")),
            }
        }
        Err(error) if error.spec().retryable => Delivery::Retry(error.to_string()),
        Err(error) => Delivery::Dead(error.to_string()),
    }
}

/// Puts stored materials back inline (`content_base64`) for the platform, which cannot reach
/// the gateway's material store.
async fn inline_materials(gateway: &Gateway, document: &mut Value) -> Result<(), String> {
    use base64::Engine as _;
    let Some(list) = document.get_mut("materials").and_then(Value::as_array_mut) else { return Ok(()) };
    for material in list {
        let Some(sha256) = material["reference"].as_str().and_then(super::materials::parse_reference) else {
            continue;
        };
        let sha256 = sha256.to_owned();
        let store = gateway.acceptances.materials.clone();
        let bytes = tokio::task::spawn_blocking(move || store.read(&sha256))
            .await
            .map_err(|err| format!("the material task failed: {err}"))?
            .map_err(|err| format!("a material cannot be read from the material store: {err}"))?;
        if let Some(object) = material.as_object_mut() {
            object.remove("reference");
            let content = base64::engine::general_purpose::STANDARD.encode(bytes);
            object.insert("content_base64".into(), Value::String(content));
        }
    }
    Ok(())
}

/// Exponential backoff with "equal jitter": between half and all of base × 2^(attempt−1), capped,
/// so retries after a platform outage spread out instead of arriving together.
fn backoff(settings: &AcceptanceSettings, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let ceiling = settings.backoff.saturating_mul(1u32 << exponent).min(settings.backoff_max);
    // Jitter from the clock's low bits and the attempt: enough to spread retries apart.
    let seed = u64::try_from(uuid::Uuid::now_v7().as_u128() & 0xFFFF_FFFF).unwrap_or(0);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(millis / 2 + seed % (millis / 2 + 1))
}
