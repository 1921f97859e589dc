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
    let mut changed = body.clone();
    changed["application"]["applicant"]["phone"] = "13900139000".into();
    let again = accept(&harness, &changed, Some("window-key-1")).await;
    assert_eq!(again.json()["receipt"], receipt.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let by_id = accept(&harness, &body, None).await;
    assert_eq!(by_id.json()["receipt"], receipt.as_str());

    // The key for another application: refused, naming the application it belongs to — a replay
    // would tell the window its second application was accepted when it never was.
    let other = acceptance("0194f3a0-7c00-7000-8000-00000000a0ff");
    let reused = accept(&harness, &other, Some("window-key-1")).await;
    assert_eq!(reused.status, 409, "{}", reused.text());
    let problem = reused.json();
    assert_eq!(problem["type"], "urn:tongban:problem:idempotency-key-reused");
    assert_eq!(problem["field"], "header:Idempotency-Key");
    assert!(problem["detail"].as_str().unwrap().contains("0194f3a0-7c00-7000-8000-00000000a001"), "{problem}");

    // Keys are each partner's own: the Guangdong window's "window-key-1" is a new acceptance.
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "window-key-1"),
        ("x-api-key", "gd-window-demo-key"),
    ];
    let theirs = harness.gateway("POST", "/v1/acceptances", &headers, other.to_string().into_bytes()).await;
    assert_eq!(theirs.status, 202, "{}", theirs.text());
    assert_ne!(theirs.json()["receipt"], receipt.as_str());
    assert_eq!(theirs.header("idempotent-replayed"), None);

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
    assert_eq!(stored_materials(&harness), Vec::<std::path::PathBuf>::new(), "not even the inline material");
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

#[tokio::test(start_paused = true)]
async fn status_is_refreshed_by_polling_until_the_platform_decides() {
    // Hours pass in this test: the worker sleeps until the next scheduled item, not every second.
    let harness = Harness::start_with(demo_federation(), |federation| {
        federation.acceptance.poll_interval = Duration::from_secs(3600);
    })
    .await;
    let answer = accept(&harness, &acceptance("0194f3a0-7c00-7000-8000-00000000a009"), None).await;
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();
    let delivered = wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    assert!(delivered["next_status_poll"].is_string(), "a delivered acceptance is polled: {delivered}");
    let case = delivered["province_case_id"].as_str().unwrap().to_owned();

    // The platform moves the case on; nobody calls back — polling notices.
    harness.set_state("guizhou", &case, "03").await; // 办理中
    wait_for(&harness, &receipt, |a| a["state"] == "in_review").await;
    harness.set_state("guizhou", &case, "05").await; // 办结
    let approved = wait_for(&harness, &receipt, |a| a["state"] == "approved").await;
    let states: Vec<&str> = approved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "state")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "one event per change, none for unchanged polls: {states:?}");
    assert!(states[0].starts_with("in_review") && states[1].starts_with("approved"), "{states:?}");
    assert!(approved["next_status_poll"].is_null(), "a final state is not polled: {approved}");
    let metrics = String::from_utf8(harness.admin("GET", "/metrics", Vec::new()).await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(r#"tongban_acceptance_status_polls_total{result="changed",target="guizhou"} 2"#),
        "{metrics}"
    );

    // Polling has stopped: hours later the platform has been asked nothing more.
    let asked = harness.received("guizhou").await.len();
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    assert_eq!(harness.received("guizhou").await.len(), asked);
    harness.stop().await;
}

/// 营业执照设立登记 in the 川黔 cooperation zone: accepted at a Guangdong window, approved in
/// parallel by Guizhou's and Sichuan's market regulators (多地联办).
fn joint_acceptance(application_id: &str) -> Value {
    let mut application = canonical("legal_person");
    application["application_id"] = application_id.into();
    application["mode"] = "multi_site".into();
    application["accepting_region"] = "440106".into();
    application["handling_region"] = "520000".into();
    json!({ "accepting_site": { "window_id": "GD-TH-0007", "region": "440106" }, "application": application })
}

#[tokio::test(start_paused = true)]
async fn a_joint_acceptance_fans_out_and_an_absent_party_counts_as_consent() {
    // Hours pass in this test: the worker sleeps until the next scheduled item, not every second.
    let harness = Harness::start_with(demo_federation(), |federation| {
        federation.acceptance.poll_interval = Duration::from_secs(3600);
    })
    .await;
    let id = "0194f3a0-7c00-7000-8000-00000000a010";
    let answer = accept(&harness, &joint_acceptance(id), Some("joint-key-1")).await;
    assert_eq!(answer.status, 202, "{}", String::from_utf8_lossy(&answer.body));
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();
    assert_eq!(answer.json()["state"], "joint_pending");

    // Both parties get it, each once, under the same application id.
    let delivered = wait_for(&harness, &receipt, |a| {
        a["joint"]["parts"].as_array().is_some_and(|p| p.iter().all(|p| p["state"] == "delivered"))
    })
    .await;
    let parts = delivered["joint"]["parts"].as_array().unwrap().clone();
    let parties: Vec<&str> = parts.iter().map(|p| p["party"].as_str().unwrap()).collect();
    assert_eq!(parties, ["guizhou-market", "sichuan-market"]);
    assert_eq!(delivered["joint"]["absence"], "consent");
    assert_eq!(cases_for(&harness, "guizhou", id).await, 1);
    assert_eq!(cases_for(&harness, "sichuan", id).await, 1);
    // A part links back to its joint acceptance.
    let part = harness.get(parts[1]["link"].as_str().unwrap()).await.json();
    assert_eq!(part["part_of"]["receipt"], receipt.as_str());

    // Guizhou approves; Sichuan never answers.
    let guizhou_case = parts[0]["province_case_id"].as_str().unwrap();
    harness.set_state("guizhou", guizhou_case, "05").await;
    let waiting = wait_for(&harness, &receipt, |a| a["joint"]["parts"][0]["state"] == "approved").await;
    assert_eq!(waiting["state"], "joint_pending", "Sichuan has not decided and the deadline has not passed");

    // Past the deadline (240 hours), the absence rule decides.
    tokio::time::sleep(Duration::from_secs(240 * 3600)).await;
    let decided = wait_for(&harness, &receipt, |a| a["state"] != "joint_pending").await;
    assert_eq!(decided["state"], "approved", "{decided:#}");
    let sichuan = &decided["joint"]["parts"][1];
    assert_eq!((sichuan["state"].as_str(), sichuan["absent"].as_bool()), (Some("absent"), Some(true)));
    let last = decided["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "decided");
    let detail = last["detail"].as_str().unwrap();
    assert!(detail.contains("guizhou-market approved") && detail.contains("sichuan-market absent"), "{detail}");
    let metrics = String::from_utf8(harness.admin("GET", "/metrics", Vec::new()).await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(r#"tongban_acceptance_joint_decisions_total{absent="true",result="approved"} 1"#),
        "{metrics}"
    );

    // The joint record is decided by its parts, never by a report.
    let report = harness
        .gateway(
            "POST",
            &format!("/v1/acceptances/{receipt}/events"),
            &[("content-type", "application/json")],
            json!({"state": "rejected"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(report.status, 409, "{}", String::from_utf8_lossy(&report.body));
    // Resubmitting gives the joint receipt back, with no new parts.
    let again = accept(&harness, &joint_acceptance(id), Some("joint-key-1")).await;
    assert_eq!(again.json()["receipt"], receipt.as_str());
    assert_eq!(cases_for(&harness, "sichuan", id).await, 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_joint_acceptance_needs_a_joint_matter_led_by_one_of_its_parties() {
    let harness = Harness::start().await;
    let mut not_joint = acceptance("0194f3a0-7c00-7000-8000-00000000a011");
    not_joint["application"]["mode"] = "multi_site".into();
    let answer = accept(&harness, &not_joint, None).await;
    assert_eq!((answer.status, answer.json()["field"].as_str()), (422, Some("/application/mode")));
    assert!(answer.json()["detail"].as_str().unwrap().contains("[matter.joint]"), "{}", answer.json());

    let mut wrong_lead = joint_acceptance("0194f3a0-7c00-7000-8000-00000000a012");
    wrong_lead["application"]["handling_region"] = "530102".into();
    let answer = accept(&harness, &wrong_lead, None).await;
    assert_eq!(answer.json()["field"], "/application/handling_region", "{}", answer.json());
    assert!(answer.json()["detail"].as_str().unwrap().contains("520000, 510000"));
    let listed = harness.admin("GET", "/admin/acceptances", Vec::new()).await.json();
    assert_eq!(listed["acceptances"], json!([]), "nothing was stored");
    harness.stop().await;
}

/// A multipart/form-data body (RFC 7578): the acceptance document, then files by part name.
fn multipart(document: &Value, files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "tongban-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"acceptance\"\r\nContent-Type: application/json\r\n\r\n{document}\r\n"
        )
        .as_bytes(),
    );
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An acceptance whose one material is the multipart part `scan-1`, declared as `declared`.
fn with_uploaded_material(application_id: &str, declared: &[u8]) -> Value {
    let mut body = acceptance(application_id);
    body["application"]["materials"] = json!([{
        "name": "营业执照申请书（扫描件）",
        "media_type": "application/pdf",
        "sha256": sha256_hex(declared),
        "size": declared.len(),
        "reference": "cid:scan-1",
    }]);
    body
}

/// Files in the material store (staging excluded).
fn stored_materials(harness: &Harness) -> Vec<std::path::PathBuf> {
    let dir = harness.store_dir.path().join("materials");
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir).unwrap() {
        let sub = sub.unwrap().path();
        for entry in std::fs::read_dir(&sub).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files
}

async fn accept_multipart(harness: &Harness, content_type: &str, body: Vec<u8>) -> Answer {
    harness.gateway("POST", "/v1/acceptances", &[("content-type", content_type)], body).await
}

#[tokio::test(start_paused = true)]
async fn materials_uploaded_as_parts_are_stored_by_digest_and_reach_the_platform_inline() {
    let harness = Harness::start().await;
    let scan: Vec<u8> = b"%PDF-1.7\n".iter().copied().chain((0..200_000u32).map(|i| (i % 251) as u8)).collect();
    let digest = sha256_hex(&scan);
    let document = with_uploaded_material("0194f3a0-7c00-7000-8000-00000000a013", &scan);
    let (content_type, body) = multipart(&document, &[("scan-1", &scan)]);
    let answer = accept_multipart(&harness, &content_type, body).await;
    assert_eq!(answer.status, 202, "{}", String::from_utf8_lossy(&answer.body));
    let receipt = answer.json()["receipt"].as_str().unwrap().to_owned();

    // Stored once, under its digest; the inline material of the same kind of request is too.
    let stored = stored_materials(&harness);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(format!("{}/{digest}", &digest[..2])), "{stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), scan);

    // The platform receives the bytes inline, as its API takes them.
    wait_for(&harness, &receipt, |a| a["state"] == "delivered").await;
    let sent: Value = serde_json::from_slice(&harness.last_body("guizhou").await).unwrap();
    use base64::Engine as _;
    let content = base64::engine::general_purpose::STANDARD.decode(sent["cl"][0]["nr"].as_str().unwrap()).unwrap();
    assert_eq!(content, scan);
    assert_eq!(sent["cl"][0]["zy"], digest.as_str());

    // The audit record's request digest is over the application document part, as sent (the
    // scan is in the material store under its own digest, which the document references).
    let audit = harness.running.gateway.audit.as_ref().unwrap();
    assert!(audit.flush(Duration::from_secs(10)));
    let log = std::fs::read_to_string(harness.store_dir.path().join("audit.log")).unwrap();
    let record: Value = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|record| record["path_kind"] == "/v1/acceptances" && record["method"] == "POST")
        .unwrap();
    assert_eq!(record["request_digest"], tongban::audit::Algorithm::Sm3.digest_hex(document.to_string().as_bytes()));
    harness.stop().await;
}

#[tokio::test]
async fn a_damaged_or_oversize_upload_is_refused_and_nothing_is_stored() {
    let harness = Harness::start_with(demo_federation(), |federation| {
        federation.acceptance.material_max_bytes = 64 * 1024;
    })
    .await;
    let scan = vec![7u8; 10_000];
    // Damaged in transit: the part is not what was declared.
    let document = with_uploaded_material("0194f3a0-7c00-7000-8000-00000000a014", &scan);
    let mut damaged = scan.clone();
    damaged[5_000] ^= 1;
    let (content_type, body) = multipart(&document, &[("scan-1", &damaged)]);
    let answer = accept_multipart(&harness, &content_type, body).await;
    assert_eq!(answer.status, 422, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["field"], "/application/materials/0/sha256");
    assert!(answer.json()["detail"].as_str().unwrap().contains("send the material again"), "{}", answer.json());

    // Over the configured size: refused while streaming.
    let big = vec![1u8; 100 * 1024];
    let document = with_uploaded_material("0194f3a0-7c00-7000-8000-00000000a015", &big);
    let (content_type, body) = multipart(&document, &[("scan-1", &big)]);
    let answer = accept_multipart(&harness, &content_type, body).await;
    assert_eq!(answer.status, 413, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["type"], "urn:tongban:problem:material-too-large");

    // A declared material with no part, and a part no material names.
    let document = with_uploaded_material("0194f3a0-7c00-7000-8000-00000000a016", &scan);
    let (content_type, body) = multipart(&document, &[("scan-2", &scan)]);
    let answer = accept_multipart(&harness, &content_type, body).await;
    assert_eq!((answer.status, answer.json()["field"].as_str()), (422, Some("/application/materials/0/reference")));
    let (content_type, body) = multipart(&acceptance("0194f3a0-7c00-7000-8000-00000000a017"), &[("stray", &scan)]);
    let answer = accept_multipart(&harness, &content_type, body).await;
    assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(&answer.body));
    assert!(answer.json()["detail"].as_str().unwrap().contains("stray"), "{}", answer.json());

    let listed = harness.admin("GET", "/admin/acceptances", Vec::new()).await.json();
    assert_eq!(listed["acceptances"], json!([]), "no acceptance was stored");
    assert_eq!(stored_materials(&harness), Vec::<std::path::PathBuf>::new(), "no material was stored");
    let staging = std::fs::read_dir(harness.store_dir.path().join("materials/tmp")).unwrap().count();
    assert_eq!(staging, 0, "staging files are removed");
    harness.stop().await;
}
