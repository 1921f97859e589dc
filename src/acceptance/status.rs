//! Status refresh (状态同步) for delivered acceptances: the handling platform's state is polled
//! through its adapter's `status` operation, with backoff — the interval doubles while nothing
//! changes and starts again from the first interval when something does — and polling stops at
//! a final state (办结). Platforms that call back (`POST /v1/acceptances/{receipt}/events`) feed
//! the same store call, so either path moves the acceptance on.

use std::time::Duration;

use serde_json::json;

use super::blocking;
use crate::adapter::Operation;
use crate::canonical::State;
use crate::config::load::AcceptanceSettings;
use crate::proxy::Gateway;
use crate::proxy::context::RequestContext;
use crate::store::Acceptance;

/// Polls taken per round.
const POLL_BATCH: usize = 64;

/// The acceptance state a platform's canonical state moves to; `None` for `received` (the
/// platform has it, which `delivered` already says).
pub fn acceptance_state(state: State) -> Option<&'static str> {
    match state {
        State::Received => None,
        State::Accepted | State::InProgress => Some("in_review"),
        State::SupplementRequired => Some("supplement_required"),
        State::Approved => Some("approved"),
        State::Rejected => Some("rejected"),
        State::Withdrawn => Some("withdrawn"),
    }
}

/// One round: polls every due record; returns how many were polled.
pub async fn round(gateway: &Gateway, settings: &AcceptanceSettings) -> usize {
    let Some(first) = settings.status_poll else { return 0 };
    let acceptances = &gateway.acceptances;
    let now = acceptances.clock.now_ms();
    // The lease: a poll that crashes half-way is taken again after the longest interval.
    let lease = u64::try_from(settings.status_poll_max.as_millis()).unwrap_or(u64::MAX);
    let due = match blocking(&acceptances.store, move |store| store.claim_polls(now, POLL_BATCH, lease)).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(error = %err, "The status poller cannot read the acceptance store.");
            return 0;
        }
    };
    let count = due.len();
    let polls = due.into_iter().map(|record| poll_and_record(gateway, settings, first, record));
    futures_util::future::join_all(polls).await;
    count
}

async fn poll_and_record(gateway: &Gateway, settings: &AcceptanceSettings, first: Duration, record: Acceptance) {
    let observed = poll(gateway, &record).await;
    let acceptances = &gateway.acceptances;
    let now = acceptances.clock.now_ms();
    let previous = record.poll_interval_ms.and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis);
    let receipt = record.receipt.clone();
    let max = settings.status_poll_max;
    let result = blocking(&acceptances.store, move |store| {
        let changed = match &observed {
            Ok(Some((state, message))) => store.record_state(&receipt, state, message.as_deref(), now)?,
            Ok(None) | Err(_) => false,
        };
        let interval = next_interval((first, max), previous, changed);
        let millis = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        store.schedule_poll(&receipt, Some(now.saturating_add(millis)), millis)?;
        Ok((changed, observed))
    })
    .await;
    let outcome = match &result {
        Ok((true, _)) => "changed",
        Ok((false, Ok(_))) => "unchanged",
        _ => "failed",
    };
    gateway.metrics.acceptance_polls.with_label_values(&[record.target.as_str(), outcome]).inc();
    match result {
        Ok((changed, Ok(state))) => tracing::debug!(
            receipt = %record.receipt,
            state = state.as_ref().map(|s| s.0).unwrap_or("received"),
            changed,
            "Status polled."
        ),
        Ok((_, Err(error))) => tracing::warn!(
            receipt = %record.receipt,
            platform = %record.target,
            %error,
            "A status poll failed; it is tried again after the next interval."
        ),
        Err(err) => tracing::error!(receipt = %record.receipt, error = %err, "A status poll could not be recorded."),
    }
}

/// The interval before the next poll: the first one after a change, else double the last,
/// capped — an application that sits in review for weeks is asked about rarely.
pub fn next_interval((first, max): (Duration, Duration), previous: Option<Duration>, changed: bool) -> Duration {
    match previous {
        Some(previous) if !changed => previous.saturating_mul(2).min(max).max(first),
        _ => first,
    }
}

/// One status request to the handling platform; the new acceptance state and the platform's
/// message, or `None` while the platform only says it received it.
async fn poll(gateway: &Gateway, record: &Acceptance) -> Result<Option<(&'static str, Option<String>)>, String> {
    let federation = gateway.federation();
    let Some(adapter) = federation.adapters.get(&record.target) else {
        return Err(format!("no adapter '{}' is configured now", record.target));
    };
    let mut request = json!({ "application_id": record.application_id, "handling_region": record.handling_region });
    if let Some(case_id) = &record.province_case_id {
        request["province_case_id"] = case_id.clone().into();
    }
    let cx = RequestContext::for_delivery(&record.receipt);
    let answer =
        crate::proxy::pipeline::call_platform(gateway, adapter, Operation::Status, &request, &cx, "acceptance")
            .await
            .map_err(|err| err.to_string())?;
    let state: State = serde_json::from_value(answer["state"].clone())
        .map_err(|err| format!("the platform's answer has no usable state: {err}"))?;
    let message = answer["message"].as_str().map(str::to_owned);
    Ok(acceptance_state(state).map(|s| (s, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_backs_off_while_nothing_changes_and_starts_over_on_a_change() {
        let bounds = (Duration::from_secs(60), Duration::from_secs(600));
        assert_eq!(next_interval(bounds, None, false), Duration::from_secs(60));
        assert_eq!(next_interval(bounds, Some(Duration::from_secs(60)), false), Duration::from_secs(120));
        assert_eq!(next_interval(bounds, Some(Duration::from_secs(480)), false), Duration::from_secs(600));
        assert_eq!(next_interval(bounds, Some(Duration::from_secs(600)), false), Duration::from_secs(600));
        assert_eq!(next_interval(bounds, Some(Duration::from_secs(600)), true), Duration::from_secs(60));
    }

    #[test]
    fn platform_states_map_to_acceptance_states() {
        assert_eq!(acceptance_state(State::Received), None);
        assert_eq!(acceptance_state(State::InProgress), Some("in_review"));
        assert_eq!(acceptance_state(State::Approved), Some("approved"));
    }
}
