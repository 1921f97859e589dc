//! The response cache over real sockets, on paused time: identical concurrent misses make one
//! platform call, a platform that is down is covered by stale answers within the window, every
//! cacheable answer says what the cache did (Cache-Status, RFC 9211), and entries can be purged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::time::Duration;

use common::{Harness, golden_input};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn concurrent_identical_misses_make_one_platform_call() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    assert_eq!(harness.submit(&input).await.status, 201);
    let path = format!("/v1/applications/{}?region=520102", input["application_id"].as_str().unwrap());
    let requests = (0..16).map(|_| harness.get(&path));
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == 200), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let statuses: Vec<&str> = answers.iter().filter_map(|a| a.header("cache-status")).collect();
    assert_eq!(statuses.iter().filter(|s| s.contains("stored")).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.starts_with("tongban; ")), "{statuses:?}");
    let status_calls = harness
        .received("guizhou")
        .await
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/api/sb/cx"))
        .count();
    assert_eq!(status_calls, 1, "sixteen identical lookups, one call to the platform");
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn miss_hit_and_stale_if_error_while_the_platform_is_down() {
    let harness = Harness::start().await;
    let path = "/v1/matters?region=520102";
    let first = harness.get(path).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-status"), Some("tongban; fwd=miss; stored"));
    let second = harness.get(path).await;
    assert_eq!(second.header("cache-status"), Some("tongban; hit; ttl=600"));
    assert_eq!(second.json()["matters"], first.json()["matters"]);

    // Past freshness (10 minutes for catalogues) the platform goes down: the stale catalogue
    // is served, within its day-long window, and marked so.
    tokio::time::advance(Duration::from_secs(601)).await;
    harness.fault("guizhou", "down").await;
    let stale = harness.get(path).await;
    assert_eq!(stale.status, 200, "{}", String::from_utf8_lossy(&stale.body));
    let header = stale.header("cache-status").unwrap();
    assert!(header.contains("fwd=stale") && header.contains("fwd-status=502") && header.contains("ttl=-1"), "{header}");
    assert_eq!(stale.json()["matters"], first.json()["matters"]);

    // Past the window, the failure shows.
    tokio::time::advance(Duration::from_secs(86_400)).await;
    let failed = harness.get(path).await;
    assert_eq!(failed.status, 502);
    assert_eq!(failed.json()["type"], "urn:tongban:problem:upstream-unreachable");

    let metrics = String::from_utf8_lossy(&harness.admin("GET", "/metrics", Vec::new()).await.body).into_owned();
    for result in ["hit", "miss", "stale"] {
        let line =
            format!("tongban_cache_requests_total{{operation=\"matters\",result=\"{result}\",target=\"guizhou\"}}");
        assert!(metrics.contains(&line), "expected {line} in\n{metrics}");
    }
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_never_covered_by_a_stale_answer_and_writes_are_never_cached() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    let submitted = harness.submit(&input).await;
    assert!(submitted.header("cache-status").is_none(), "submissions are writes: not cacheable");
    let path = format!("/v1/applications/{}?region=520102", input["application_id"].as_str().unwrap());
    assert_eq!(harness.get(&path).await.status, 200);
    tokio::time::advance(Duration::from_secs(6)).await;
    // The platform's business error (E500 系统繁忙 → unavailable) allows stale; a 404 would not.
    harness.fault("guizhou", "business_error").await;
    let stale = harness.get(&path).await;
    assert_eq!(stale.status, 200);
    assert!(stale.header("cache-status").unwrap().contains("fwd=stale"));
    harness.fault("guizhou", "none").await;
    let unknown = harness.get("/v1/applications/never-submitted?region=520102").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("cache-status"), Some("tongban; fwd=miss"), "errors are not stored");
    harness.stop().await;
}

#[tokio::test]
async fn entries_are_purged_by_key_target_or_operation() {
    let harness = Harness::start().await;
    for region in ["520102", "440106"] {
        assert_eq!(harness.get(&format!("/v1/matters?region={region}")).await.status, 200);
    }
    let key = json!({"target": "guizhou", "operation": "matters", "request": {"region": "520102"}});
    let purged = harness.admin("POST", "/admin/cache/purge", key.to_string().into_bytes()).await;
    assert_eq!(purged.json()["purged"], 1);
    assert_eq!(
        harness.get("/v1/matters?region=520102").await.header("cache-status"),
        Some("tongban; fwd=miss; stored")
    );
    assert!(harness.get("/v1/matters?region=440106").await.header("cache-status").unwrap().contains("hit"));
    let all = harness.admin("POST", "/admin/cache/purge", Vec::new()).await;
    assert_eq!(all.json()["purged"], 2);
    let bad = harness.admin("POST", "/admin/cache/purge", b"{not json".to_vec()).await;
    assert_eq!(bad.status, 400);
    // A mistyped key must not widen the purge to everything.
    assert_eq!(harness.get("/v1/matters?region=520102").await.status, 200);
    let typo = harness.admin("POST", "/admin/cache/purge", br#"{"targt":"guizhou"}"#.to_vec()).await;
    assert_eq!(typo.status, 400, "{}", String::from_utf8_lossy(&typo.body));
    assert!(harness.get("/v1/matters?region=520102").await.header("cache-status").unwrap().contains("hit"));
    harness.stop().await;
}
