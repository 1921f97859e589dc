//! Every error is an RFC 9457 problem with a stable type, made in one place: bad input, routing
//! and matter-list refusals, and each way a platform can fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Harness, canonical, demo_federation, golden_input};
use serde_json::{Value, json};

fn assert_problem(answer: &common::Answer, status: u16, slug: &str) -> Value {
    assert_eq!(
        answer.status,
        status,
        "expected {status} {slug}, got {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    let problem = answer.json();
    assert_eq!(problem["type"], format!("urn:tongban:problem:{slug}"), "{problem}");
    assert_eq!(problem["status"], status);
    assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    assert_eq!(Some(problem["request_id"].as_str().unwrap()), answer.header("x-request-id"));
    problem
}

#[tokio::test]
async fn bad_input_names_the_field_and_the_fix() {
    let harness = Harness::start().await;
    let not_json = harness.gateway("POST", "/v1/applications", &[], b"{\"matter\": ".to_vec()).await;
    let problem = assert_problem(&not_json, 400, "unparseable");
    assert_eq!(problem["field"], "line 1, column 11");

    let mut bad_id = canonical("natural_person");
    bad_id["applicant"]["id_number"] = "110105194912310021".into();
    bad_id["submitted_at"] = "2026-11-22 10:00".into();
    let problem = assert_problem(&harness.submit(&bad_id).await, 422, "invalid");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "every failing field is listed: {problem}");
    assert_eq!(errors[0]["field"], "/applicant/id_number");
    assert!(errors[0]["detail"].as_str().unwrap().contains("check"), "{problem}");
    assert_eq!(errors[1]["field"], "/submitted_at");

    let mut typo = canonical("natural_person");
    typo["applicant"]["gendr"] = "male".into();
    let problem = assert_problem(&harness.submit(&typo).await, 422, "invalid");
    assert_eq!(problem["field"], "/applicant/gendr");
    assert!(problem["detail"].as_str().unwrap().contains("unknown field 'gendr'"), "{problem}");

    let mut bad_mode = canonical("natural_person");
    bad_mode["mode"] = "by_post".into();
    let problem = assert_problem(&harness.submit(&bad_mode).await, 422, "invalid");
    assert_eq!(problem["field"], "/mode");
    assert!(problem["detail"].as_str().unwrap().contains("proxy_acceptance"), "lists the valid modes: {problem}");

    let mut bad_region = canonical("natural_person");
    bad_region["accepting_region"] = "999999".into();
    let problem = assert_problem(&harness.submit(&bad_region).await, 422, "invalid");
    assert_eq!(problem["field"], "/accepting_region");

    let mut damaged = canonical("natural_person");
    damaged["materials"][0]["content_base64"] = "JVBERi0xLjUK".into();
    let problem = assert_problem(&harness.submit(&damaged).await, 422, "invalid");
    assert_eq!(problem["field"], "/materials/0/sha256");

    let mut numeric_form = canonical("natural_person");
    numeric_form["form"]["household_size"] = json!(3);
    let problem = assert_problem(&harness.submit(&numeric_form).await, 422, "invalid");
    assert_eq!(problem["field"], "/form/household_size");
    assert!(problem["detail"].as_str().unwrap().contains("write 3 as \"3\""), "{problem}");

    // Nothing reached a platform.
    for platform in ["guizhou", "guangdong"] {
        assert!(harness.received(platform).await.is_empty(), "{platform} must receive nothing");
    }
    harness.stop().await;
}

#[tokio::test]
async fn routing_and_matter_list_refusals() {
    let harness = Harness::start().await;
    let mut beijing = canonical("natural_person");
    beijing["handling_region"] = "110101".into();
    let problem = assert_problem(&harness.submit(&beijing).await, 404, "no-route");
    assert!(problem["detail"].as_str().unwrap().contains("110101"));

    let mut unlisted = canonical("natural_person");
    unlisted["matter"] = json!({"code": "000501005000", "name": "不动产登记资料查询"});
    let problem = assert_problem(&harness.submit(&unlisted).await, 403, "outside-matter-list");
    assert!(problem["detail"].as_str().unwrap().contains("not on the matter list"), "{problem}");
    assert_eq!(problem["rule"], "config/matters.toml");

    let mut wrong_mode = canonical("natural_person");
    wrong_mode["matter"] = json!({"code": "000401004000", "name": "医保关系转移接续"});
    wrong_mode["mode"] = "proxy_acceptance".into();
    wrong_mode["accepting_region"] = "510104".into();
    let problem = assert_problem(&harness.submit(&wrong_mode).await, 403, "outside-matter-list");
    assert!(problem["detail"].as_str().unwrap().contains("only in modes [online]"), "{problem}");
    assert!(problem["rule"].as_str().unwrap().starts_with("config/matters.toml:"), "names the line: {problem}");

    let mut outside_group = canonical("natural_person");
    outside_group["matter"] = json!({"code": "000401004000", "name": "医保关系转移接续"});
    outside_group["accepting_region"] = "440106".into();
    let problem = assert_problem(&harness.submit(&outside_group).await, 403, "outside-matter-list");
    assert!(problem["detail"].as_str().unwrap().contains("[southwest]"), "{problem}");
    harness.stop().await;
}

#[tokio::test]
async fn platform_failures_become_upstream_problems() {
    let harness = Harness::start().await;
    let input = golden_input("guangdong");

    harness.fault("guangdong", "business_error").await;
    let problem = assert_problem(&harness.submit(&input).await, 503, "upstream-unavailable");
    assert_eq!(problem["upstream"]["code"], "2001");
    assert_eq!(problem["retryable"], true);
    assert_eq!(problem["side"], "upstream");

    harness.fault("guangdong", "http_500").await;
    let problem = assert_problem(&harness.submit(&input).await, 502, "upstream-bad-answer");
    assert_eq!(problem["upstream"]["status"], 500);

    harness.fault("guangdong", "down").await;
    assert_problem(&harness.submit(&input).await, 502, "upstream-unreachable");

    harness.fault("guangdong", "none").await;
    assert_eq!(harness.submit(&input).await.status, 201);
    // The same external id again: the platform's 1003 重复提交.
    let problem = assert_problem(&harness.submit(&input).await, 409, "upstream-duplicate");
    assert_eq!(problem["upstream"]["code"], "1003");
    assert_eq!(problem["adapter"], "guangdong");
    harness.stop().await;
}

#[tokio::test]
async fn a_platform_that_is_not_listening_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let harness = Harness::start_with(demo_federation(), move |federation| {
        let origins = [("guizhou".to_owned(), origin.clone())].into_iter().collect();
        *federation = federation.with_origins(&origins);
    })
    .await;
    let problem = assert_problem(&harness.submit(&golden_input("guizhou")).await, 502, "upstream-unreachable");
    assert!(problem["detail"].as_str().unwrap().contains("connection"), "{problem}");
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_platform_times_out() {
    let harness = Harness::start().await;
    harness.fault("guizhou", "slow").await;
    let problem = assert_problem(&harness.submit(&golden_input("guizhou")).await, 504, "upstream-timeout");
    assert_eq!(problem["detail"], "platform guizhou did not answer within 15s");
    harness.stop().await;
}

#[tokio::test]
async fn endpoints_methods_and_limits() {
    let harness = Harness::start_with(demo_federation(), |federation| federation.server.body_limit = 1024).await;
    assert_problem(&harness.get("/v2/everything").await, 404, "no-endpoint");
    let answer = harness.gateway("DELETE", "/v1/applications", &[], Vec::new()).await;
    assert_problem(&answer, 405, "method-not-allowed");
    assert_eq!(answer.header("allow"), Some("POST"));
    let big = vec![b' '; 4096];
    assert_problem(&harness.gateway("POST", "/v1/applications", &[], big).await, 413, "body-too-large");
    harness.stop().await;
}

#[tokio::test]
async fn conflicting_framing_is_refused_and_never_forwarded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let harness = Harness::start().await;
    let body = golden_input("guizhou").to_string();
    let mut stream = tokio::net::TcpStream::connect(harness.running.public).await.unwrap();
    // A smuggling attempt: a short Content-Length beside a chunked body. RFC 9112 §6.3 lets a
    // server refuse it; the gateway does, before the request is parsed, and closes.
    let request = format!(
        "POST /v1/applications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 400"), "expected 400, got {text}");
    assert!(text.contains("content-type: application/problem+json"), "{text}");
    assert!(text.contains("urn:tongban:problem:request-framing"), "{text}");
    assert!(text.contains("connection: close"), "the connection must close after a conflicting request: {text}");
    assert!(harness.received("guizhou").await.is_empty(), "nothing reaches the platform");
    harness.stop().await;
}

#[tokio::test]
async fn a_path_that_is_not_an_application_id_is_refused() {
    let harness = Harness::start().await;
    let problem =
        assert_problem(&harness.get("/v1/applications/a%2Fb%20c?region=520102").await, 400, "bad-application-id");
    assert!(problem["detail"].as_str().unwrap().contains("'a/b c'"), "{problem}");
    assert!(harness.received("guizhou").await.is_empty());
    harness.stop().await;
}
