//! Proxy acceptance (异地代收代办): committed before acknowledged, idempotent, delivered to the
//! handling platform exactly once even when it is down for a while, dead-lettered after the last
//! attempt, requeued by an operator; bad input leaves nothing in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::time::Duration;

use common::{Answer, Harness, canonical, demo_federation};
use serde_json::{Value, json};

/// A Guangdong window (天河区) accepts a Guizhou matter (handled in 南明区).
fn acceptance(application_id: &str) -> Value {
    let mut application = canonical("natural_person");
    application["application_id"] = application_id.into();
    application["mode"] = "proxy_acceptance".into();
    json!({ "accepting_site": { "window_id": "GD-TH-0007", "region": "440106" }, "application": application })
}

async fn accept(harness: &Harness, body: &Value, key: Option<&str>) -> Answer {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    harness.gateway("POST", "/v1/acceptances", &headers, body.to_string().into_bytes()).await
}

/// Polls the acceptance until `done` holds (paused time: each wait lets the worker run), at most 400 rounds.
async fn wait_for(harness: &Harness, receipt: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = harness.get(&format!("/v1/acceptances/{receipt}")).await.json();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("acceptance {receipt} never reached the expected state; last seen:\n{last:#}");
}

async fn cases_for(harness: &Harness, platform: &str, external_id: &str) -> usize {
    let mock = harness.mocks[platform].local_addr();
    let cases = harness.send("GET", &format!("http://{mock}/_mock/cases"), &[], Vec::new()).await.json();
    cases.as_array().unwrap().iter().filter(|c| c["external_id"] == external_id).count()
}

#[tokio::test(start_paused = true)]
async fn an_acceptance_is_committed_then_delivered_and_resubmission_is_idempotent() {
    let harness = Harness::start().await;
    let body = acceptance("0194f3a0-7c00-7000-8000-00000000a001");
    let first = accept(&harness, &body, Some("window-key-1")).await;
    assert_eq!(first.status, 202, "{}", String::from_utf8_lossy(&first.body));
    let receipt = first.json()["receipt"].as_str().unwrap().to_owned();
    assert!(receipt.starts_with("TB") && receipt.len() == 20, "{receipt}");
    assert_eq!(first.header("location"), Some(format!("/v1/acceptances/{receipt}").as_str()));

    // The same key (even with another body) and the same application id both give the same receipt.
    let again = accept(&harness, &acceptance("0194f3a0-7c00-7000-8000-00000000a0ff"), Some("window-key-1")).await;
    assert_eq!(again.json()["receipt"], receipt.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let by_id = accept(&harness, &body, None).await;
    assert_eq!(by_id.json()["receipt"], receipt.as_str());

    let delivered = wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    assert!(delivered["province_case_id"].as_str().unwrap().starts_with("GZ2026"), "{delivered}");
    let events: Vec<&str> =
        delivered["timeline"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"accepted"));
    assert_eq!(events.last(), Some(&"delivered"));
    assert_eq!(cases_for(&harness, "guizhou", "0194f3a0-7c00-7000-8000-00000000a001").await, 1);
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_platform_that_is_down_gets_it_exactly_once_when_back() {
    let harness = Harness::start().await;
    harness.fault("guizhou", "down").await;
    let answer = accept(&harness, &acceptance("0194f3a0-7c00-7000-8000-00000000a002"), None).await;
    assert_eq!(answer.status, 202, "acknowledged although the platform is down");
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();
    let retrying = wait_for(&harness, &receipt, |a| a["attempts"].as_u64().unwrap_or(0) >= 2).await;
    assert_eq!(retrying["state"], "accepted", "{retrying}");
    assert!(retrying["last_error"].as_str().unwrap().contains("could not be reached"), "{retrying}");

    harness.fault("guizhou", "none").await;
    let delivered = wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    assert!(delivered["province_case_id"].as_str().is_some());
    assert_eq!(
        cases_for(&harness, "guizhou", "0194f3a0-7c00-7000-8000-00000000a002").await,
        1,
        "exactly one case at the platform"
    );
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retries_end_in_the_dead_letter_queue_and_an_operator_can_requeue() {
    let harness = Harness::start_with(demo_federation(), |federation| {
        federation.acceptance.max_attempts = 3;
        federation.acceptance.backoff = Duration::from_millis(200);
    })
    .await;
    harness.fault("guizhou", "down").await;
    let answer = accept(&harness, &acceptance("0194f3a0-7c00-7000-8000-00000000a003"), None).await;
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();
    let dead = wait_for(&harness, &receipt, |a| a["state"] == "dead_letter").await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert!(dead["last_error"].as_str().unwrap().contains("gave up after 3 attempts"), "{dead}");
    let listed = harness.admin("GET", "/admin/acceptances?state=dead_letter", Vec::new()).await.json();
    assert_eq!(listed["acceptances"][0]["receipt"], receipt.as_str());

    harness.fault("guizhou", "none").await;
    let requeued = harness.admin("POST", &format!("/admin/acceptances/{receipt}/retry"), Vec::new()).await;
    assert_eq!(requeued.status, 200, "{}", String::from_utf8_lossy(&requeued.body));
    let delivered = wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    let again = harness.admin("POST", &format!("/admin/acceptances/{receipt}/retry"), Vec::new()).await;
    assert_eq!(again.status, 409, "a delivered acceptance is not requeued");
    assert!(again.json()["detail"].as_str().unwrap().contains("not in the dead letter queue"));
    let events: Vec<&str> =
        delivered["timeline"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"dead_letter") && events.contains(&"requeued"), "{events:?}");
    assert_eq!(cases_for(&harness, "guizhou", "0194f3a0-7c00-7000-8000-00000000a003").await, 1);
    harness.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_problem_and_leaves_nothing_in_the_store() {
    let harness = Harness::start().await;
    let mut bad_id = acceptance("0194f3a0-7c00-7000-8000-00000000a004");
    bad_id["application"]["applicant"]["id_number"] = "110105194912310021".into();
    let answer = accept(&harness, &bad_id, None).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["field"], "/application/applicant/id_number");

    let mut online = acceptance("0194f3a0-7c00-7000-8000-00000000a005");
    online["application"]["mode"] = "online".into();
    let answer = accept(&harness, &online, None).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["field"], "/application/mode");

    let mut elsewhere = acceptance("0194f3a0-7c00-7000-8000-00000000a006");
    elsewhere["accepting_site"]["region"] = "520102".into();
    assert_eq!(accept(&harness, &elsewhere, None).await.json()["field"], "/accepting_site/region");

    // 医保关系转移接续 crosses provinces online only: not by proxy acceptance.
    let mut not_allowed = acceptance("0194f3a0-7c00-7000-8000-00000000a007");
    not_allowed["application"]["matter"] = json!({"code": "000401004000", "name": "医保关系转移接续"});
    not_allowed["accepting_site"]["region"] = "510104".into();
    not_allowed["application"]["accepting_region"] = "510104".into();
    let answer = accept(&harness, &not_allowed, None).await;
    assert_eq!(answer.status, 403, "{}", String::from_utf8_lossy(&answer.body));

    let typo =
        accept(&harness, &json!({"accepting_site": {"window_id": "W", "region": "440106"}, "applicaton": {}}), None)
            .await;
    assert_eq!(typo.status, 422);

    let listed = harness.admin("GET", "/admin/acceptances", Vec::new()).await.json();
    assert_eq!(listed["acceptances"], json!([]), "nothing was stored");
    assert_eq!(harness.get("/v1/acceptances/TB000").await.status, 404);
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_handling_platform_reports_progress_by_callback() {
    let harness = Harness::start().await;
    harness.fault("guizhou", "down").await;
    let answer = accept(&harness, &acceptance("0194f3a0-7c00-7000-8000-00000000a008"), None).await;
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();
    let events = format!("/v1/acceptances/{receipt}/events");
    let post = |body: Value| {
        harness.gateway("POST", &events, &[("content-type", "application/json")], body.to_string().into_bytes())
    };

    // Not delivered yet: the platform cannot have it.
    let early = post(json!({"state": "approved"})).await;
    assert_eq!(early.status, 409, "{}", String::from_utf8_lossy(&early.body));

    harness.fault("guizhou", "none").await;
    wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    let approved = post(json!({"state": "approved", "detail": "准予迁入"})).await;
    assert_eq!(approved.status, 200, "{}", String::from_utf8_lossy(&approved.body));
    assert_eq!(approved.json()["changed"], true);
    let shown = harness.get(&format!("/v1/acceptances/{receipt}")).await.json();
    assert_eq!(shown["state"], "approved");
    let last = shown["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "state");
    assert!(last["detail"].as_str().unwrap().contains("准予迁入"), "{last}");

    assert_eq!(
        post(json!({"state": "approved", "detail": "again"})).await.json()["changed"],
        false,
        "a repeated state is not a new event"
    );
    assert_eq!(post(json!({"state": "received"})).await.status, 422);
    assert_eq!(post(json!({"stat": "approved"})).await.status, 422);
    let unknown = harness
        .gateway("POST", "/v1/acceptances/TB000/events", &[], json!({"state": "approved"}).to_string().into_bytes())
        .await;
    assert_eq!(unknown.status, 404);
    harness.stop().await;
}
