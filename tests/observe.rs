//! Observability: the metrics after a scripted exchange carry the expected series and labels,
//! personal data never reaches a log line, and /readyz shows each platform's probed health.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Harness, demo_federation, golden_input};
use serde_json::json;
use tongban::observe::logging::{LogFormat, capture};

async fn metrics(harness: &Harness) -> String {
    let answer = harness.admin("GET", "/metrics", Vec::new()).await;
    assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    String::from_utf8_lossy(&answer.body).into_owned()
}

#[tokio::test]
async fn metrics_carry_the_expected_series_after_a_scripted_exchange() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    assert_eq!(harness.submit(&input).await.status, 201);
    let status = format!("/v1/applications/{}?region=520102", input["application_id"].as_str().unwrap());
    assert_eq!(harness.get(&status).await.status, 200);
    assert_eq!(harness.get(&status).await.status, 200);
    let mut refused = input.clone();
    refused["matter"] = json!({"code": "000501005000", "name": "不动产登记资料查询"});
    assert_eq!(harness.submit(&refused).await.status, 403);
    for _ in 0..6 {
        harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", "demo-limited")], Vec::new()).await;
    }
    harness.fault("guangdong", "down").await;
    assert_eq!(harness.submit(&golden_input("guangdong")).await.status, 502);

    let text = metrics(&harness).await;
    let expected = [
        r#"tongban_requests_total{operation="submit",route_kind="cross_province",source="anonymous",status="201",target="guizhou"} 1"#,
        r#"tongban_requests_total{operation="status",route_kind="none",source="anonymous",status="200",target="guizhou"} 2"#,
        r#"tongban_requests_total{operation="submit",route_kind="none",source="anonymous",status="403",target="none"} 1"#,
        r#"tongban_requests_total{operation="matters",route_kind="none",source="demo-limited",status="429",target="guizhou"} 1"#,
        r#"tongban_requests_total{operation="submit",route_kind="cross_province",source="anonymous",status="502",target="guangdong"} 1"#,
        r#"tongban_cache_requests_total{operation="status",result="hit",target="guizhou"} 1"#,
        r#"tongban_cache_requests_total{operation="status",result="miss",target="guizhou"} 1"#,
        r#"tongban_rate_limited_total{limit="partner",mode="enforced",source="demo-limited",target="guizhou"} 1"#,
        r#"tongban_upstream_errors_total{cause="upstream-unreachable",target="guangdong"} 1"#,
        r#"tongban_upstream_duration_seconds_count{operation="submit",target="guizhou"} 1"#,
        r#"tongban_translation_duration_seconds_count{direction="to_native",target="guizhou"} 1"#,
        r#"tongban_request_duration_seconds_count{operation="submit",route_kind="cross_province",target="guizhou"} 1"#,
        r#"tongban_upstream_in_flight{target="guizhou"} 0"#,
        r#"tongban_build_info{version=""#,
    ];
    for line in expected {
        assert!(text.contains(line), "expected a series starting {line}\nin\n{text}");
    }
    harness.stop().await;
}

/// The personal data of the scripted exchange: none of it may appear in any log line.
const SECRETS: [&str; 4] = ["11010519491231002X", "13800138000", "张三", "110105194912310021"];

async fn scripted_exchange_with_personal_data(harness: &Harness) {
    let input = golden_input("guizhou");
    assert_eq!(
        harness
            .gateway("POST", "/v1/applications", &[("x-request-id", "log-req-1")], input.to_string().into_bytes())
            .await
            .status,
        201
    );
    // Refused: a bad check digit (the problem detail quotes the number; the log must not).
    let mut bad = input.clone();
    bad["application_id"] = "0194f3a0-7c00-7000-8000-0000000000l2".into();
    bad["applicant"]["id_number"] = "110105194912310021".into();
    assert_eq!(harness.submit(&bad).await.status, 422);
    // A caller who puts an ID number where the application id goes: the path is logged.
    assert_eq!(harness.get("/v1/applications/11010519491231002X?region=520102").await.status, 404);
    // A platform failure.
    harness.fault("guizhou", "business_error").await;
    let mut again = input.clone();
    again["application_id"] = "0194f3a0-7c00-7000-8000-0000000000l3".into();
    assert_eq!(harness.submit(&again).await.status, 503);
}

#[tokio::test]
async fn personal_data_is_masked_in_every_text_log_line() {
    let (subscriber, logs) = capture(LogFormat::Text);
    let _guard = tracing::subscriber::set_default(subscriber);
    let harness = Harness::start().await;
    scripted_exchange_with_personal_data(&harness).await;
    harness.stop().await;
    let text = logs.text();
    assert!(text.contains("log-req-1") && text.contains("Application submitted."), "logs were captured:\n{text}");
    assert!(text.contains("Request refused."), "{text}");
    assert!(text.contains("110105********002X"), "the path's ID number is logged masked:\n{text}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} reached the logs:\n{text}");
    }
}

#[tokio::test]
async fn personal_data_is_masked_in_json_logs_too() {
    let (subscriber, logs) = capture(LogFormat::Json);
    let _guard = tracing::subscriber::set_default(subscriber);
    let harness = Harness::start().await;
    scripted_exchange_with_personal_data(&harness).await;
    harness.stop().await;
    let text = logs.text();
    let submitted = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "Application submitted.")
        .expect("a JSON line for the submission");
    assert_eq!(submitted["request_id"], "log-req-1");
    assert_eq!(submitted["platform"], "guizhou");
    assert_eq!(submitted["kind"], "cross_province");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} reached the logs:\n{text}");
    }
}

#[tokio::test]
async fn readyz_shows_each_platforms_probed_health() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let harness = Harness::start_with(demo_federation(), move |federation| {
        let origins = [("anhui".to_owned(), origin.clone())].into_iter().collect();
        *federation = federation.with_origins(&origins);
    })
    .await;
    tongban::proxy::health::probe_all(&harness.running.gateway).await;
    let ready = harness.admin("GET", "/readyz", Vec::new()).await.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["platforms"]["guizhou"]["up"], true);
    assert_eq!(ready["platforms"]["anhui"]["up"], false);
    assert!(ready["platforms"]["anhui"]["detail"].as_str().is_some());
    let text = metrics(&harness).await;
    assert!(text.contains(r#"tongban_platform_up{target="anhui"} 0"#), "{text}");
    assert!(text.contains(r#"tongban_platform_up{target="guizhou"} 1"#), "{text}");
    harness.stop().await;
}

#[tokio::test]
async fn the_admin_api_asks_for_the_operators_token_when_one_is_set() {
    use tongban::config::AdminToken;
    const TOKEN: &str = "admin-token-0123456789abcdef";
    let harness = Harness::start_with(demo_federation(), |federation| {
        federation.server.admin_token = Some(AdminToken::new(TOKEN));
    })
    .await;
    let url = |path: &str| format!("http://{}{path}", harness.running.admin);
    // What orchestrators and Prometheus read stays open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(harness.send("GET", &url(path), &[], Vec::new()).await.status, 200, "{path}");
    }
    // Without the token, or with another: 401 naming the fix, and nothing is done.
    let answer = harness.send("POST", &url("/admin/reload"), &[], Vec::new()).await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert_eq!(answer.json()["type"], "urn:tongban:problem:unauthorized");
    assert!(answer.json()["detail"].as_str().unwrap().contains("admin_token_file"));
    let wrong = [("authorization", "Bearer admin-token-0123456789abcdeX")];
    let answer = harness.send("GET", &url("/admin/acceptances"), &wrong, Vec::new()).await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(!metrics(&harness).await.contains("tongban_config_reloads_total{result=\"success\"} 1"), "no reload ran");
    // With it, the admin API answers.
    let bearer = format!("Bearer {TOKEN}");
    let right = [("authorization", bearer.as_str())];
    assert_eq!(harness.send("POST", &url("/admin/reload"), &right, Vec::new()).await.status, 200);
    assert_eq!(harness.send("GET", &url("/admin/acceptances"), &right, Vec::new()).await.status, 200);
    assert_eq!(harness.send("GET", &url("/v1/adapters"), &right, Vec::new()).await.status, 200);
    // The scheme name is case-insensitive; the token is not.
    let lower = format!("bearer {TOKEN}");
    assert_eq!(
        harness.send("GET", &url("/admin/audit"), &[("authorization", lower.as_str())], Vec::new()).await.status,
        200
    );
    let upper = format!("Bearer {}", TOKEN.to_uppercase());
    assert_eq!(
        harness.send("GET", &url("/admin/audit"), &[("authorization", upper.as_str())], Vec::new()).await.status,
        401
    );
    harness.stop().await;
}
