//! Multi-site joint handling (多地联办): a matter whose list entry names several parties (a
//! parallel approval, 并联审批) is accepted once and fanned out — one part per party, each
//! delivered, polled and called back like any acceptance. The joint record is decided when every
//! party has decided; past the deadline, parties that have the application but gave no decision
//! are absent and the entry's absence rule (缺席默认) counts them as consent or refusal. A party
//! that never received the application is never counted absent: the joint record waits for its
//! delivery (an operator sees it in the dead letter queue if it cannot be delivered).

use serde_json::Value;

use super::blocking;
use crate::proxy::Gateway;
use crate::routing::matters::JointRule;
use crate::store::{Acceptance, FINAL_STATES, JointDecision, NewJoint, NewPart, STATE_ACCEPTED, SystemTimeMs};

/// Joint records examined per round.
const JOINT_BATCH: usize = 256;

/// The parts of a joint acceptance: the application once per party, addressed to its region.
pub fn fan_out(rule: &JointRule, document: &Value, accepted_at: SystemTimeMs) -> NewJoint {
    let parts = rule
        .parties
        .iter()
        .map(|party| {
            let mut part = document.clone();
            part["handling_region"] = Value::String(party.region.clone());
            NewPart {
                party: party.name.clone(),
                target: party.adapter.clone(),
                handling_region: party.region.clone(),
                document: part.to_string(),
            }
        })
        .collect();
    let deadline = i64::try_from(rule.deadline.as_millis()).unwrap_or(i64::MAX);
    NewJoint { deadline_at: accepted_at.saturating_add(deadline), absence: rule.absence.as_str().to_owned(), parts }
}

/// Decides a joint record from its parts, or `None` while it must wait.
pub fn decide(joint: &Acceptance, parts: &[Acceptance], now: SystemTimeMs) -> Option<JointDecision> {
    let decided = |p: &Acceptance| FINAL_STATES.contains(&p.state.as_str());
    let past_deadline = joint.deadline_at.is_some_and(|deadline| now >= deadline);
    if parts.is_empty() || (!parts.iter().all(decided) && !past_deadline) {
        return None;
    }
    // Without a case number the party never had the application: it cannot be absent.
    let undelivered =
        |p: &Acceptance| p.province_case_id.is_none() || [STATE_ACCEPTED, "delivering"].contains(&p.state.as_str());
    if parts.iter().any(|p| !decided(p) && undelivered(p)) {
        return None;
    }
    let absent: Vec<&Acceptance> = parts.iter().filter(|p| !decided(p)).collect();
    let consent_by_absence = joint.absence.as_deref() != Some("refusal");
    let approved =
        parts.iter().filter(|p| decided(p)).all(|p| p.state == "approved") && (absent.is_empty() || consent_by_absence);
    let state = if approved { "approved" } else { "rejected" };
    let mut lines: Vec<String> = parts
        .iter()
        .filter(|p| decided(p))
        .map(|p| format!("{} {}", p.party.as_deref().unwrap_or(&p.target), p.state))
        .collect();
    lines.extend(absent.iter().map(|p| {
        format!(
            "{} absent (counted as {}, 缺席默认)",
            p.party.as_deref().unwrap_or(&p.target),
            if consent_by_absence { "consent" } else { "refusal" }
        )
    }));
    Some(JointDecision {
        state: state.to_owned(),
        absent: absent.iter().map(|p| p.receipt.clone()).collect(),
        detail: format!("{state}: {}", lines.join("; ")),
    })
}

/// One round: decides every open joint record that can be decided; returns how many were.
pub async fn round(gateway: &Gateway) -> usize {
    let acceptances = &gateway.acceptances;
    let now = acceptances.clock.now_ms();
    let result = blocking(&acceptances.store, move |store| {
        let mut decided = Vec::new();
        for joint in store.open_joints(JOINT_BATCH)? {
            let parts = store.parts(&joint.receipt)?;
            if let Some(decision) = decide(&joint, &parts, now)
                && store.decide_joint(&joint.receipt, &decision, now)?
            {
                tracing::info!(receipt = %joint.receipt, decision = %decision.detail, "Joint acceptance decided.");
                decided.push((decision.state, !decision.absent.is_empty()));
            }
        }
        Ok(decided)
    })
    .await;
    match result {
        Ok(decided) => {
            for (state, absent) in &decided {
                let absent = if *absent { "true" } else { "false" };
                gateway.metrics.acceptance_joint_decisions.with_label_values(&[state.as_str(), absent]).inc();
            }
            decided.len()
        }
        Err(err) => {
            tracing::error!(error = %err, "Joint acceptances could not be decided this round.");
            0
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(receipt: &str, state: &str, case: Option<&str>) -> Acceptance {
        Acceptance {
            receipt: receipt.into(),
            application_id: "app".into(),
            idempotency_key: None,
            target: "guizhou".into(),
            matter_code: "m".into(),
            window_id: "w".into(),
            accepting_region: "440106".into(),
            handling_region: "520000".into(),
            document: "{}".into(),
            state: state.into(),
            province_case_id: case.map(Into::into),
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            accepted_at: 0,
            updated_at: 0,
            kind: "part".into(),
            parent_receipt: Some("J".into()),
            party: Some(receipt.to_lowercase()),
            deadline_at: None,
            absence: None,
            next_poll_at: None,
            poll_interval_ms: None,
            partner: None,
        }
    }

    fn joint(absence: &str) -> Acceptance {
        Acceptance {
            kind: "joint".into(),
            deadline_at: Some(1_000),
            absence: Some(absence.into()),
            ..record("J", "joint_pending", None)
        }
    }

    #[test]
    fn waits_until_every_party_decided_or_the_deadline() {
        let parts = [record("A", "approved", Some("1")), record("B", "in_review", Some("2"))];
        assert_eq!(decide(&joint("consent"), &parts, 999), None);
        let decision = decide(&joint("consent"), &parts, 1_000).unwrap();
        assert_eq!(decision.state, "approved");
        assert_eq!(decision.absent, vec!["B".to_owned()]);
        assert!(decision.detail.contains("b absent (counted as consent"), "{}", decision.detail);
    }

    #[test]
    fn all_decided_before_the_deadline() {
        let parts = [record("A", "approved", Some("1")), record("B", "approved", Some("2"))];
        assert_eq!(decide(&joint("consent"), &parts, 0).unwrap().state, "approved");
        let parts = [record("A", "approved", Some("1")), record("B", "rejected", Some("2"))];
        let decision = decide(&joint("consent"), &parts, 0).unwrap();
        assert_eq!((decision.state.as_str(), decision.absent.len()), ("rejected", 0));
    }

    #[test]
    fn absence_as_refusal_rejects() {
        let parts = [record("A", "approved", Some("1")), record("B", "delivered", Some("2"))];
        assert_eq!(decide(&joint("refusal"), &parts, 5_000).unwrap().state, "rejected");
    }

    #[test]
    fn a_party_that_never_received_it_is_not_absent() {
        let parts = [record("A", "approved", Some("1")), record("B", "dead_letter", None)];
        assert_eq!(decide(&joint("consent"), &parts, 5_000), None);
    }
}
