//! Rate limits and bulkheads over real sockets, on paused time: each limit admits no more than
//! rate + burst under concurrency, answers 429 with Retry-After and the RateLimit headers,
//! shadow limits only count, and a full bulkhead answers 503.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Answer, Harness, demo_federation, golden_input};
use tongban::limit::LimitSpec;

fn spec(id: &str, policy: &str, per_second: u32, burst: u32, shadow: bool) -> LimitSpec {
    LimitSpec { id: id.into(), policy: policy.into(), per_second, burst, shadow }
}

/// Fires `n` requests at once; returns their answers.
async fn burst(harness: &Harness, n: usize, path: &str, key: Option<&str>) -> Vec<Answer> {
    let requests = (0..n).map(|_| {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("x-api-key", k)]).unwrap_or_default();
        async move { harness.gateway("GET", path, &headers, Vec::new()).await }
    });
    futures_util::future::join_all(requests).await
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

#[tokio::test(start_paused = true)]
async fn a_partner_limit_admits_rate_plus_burst_and_says_when_to_retry() {
    let harness = Harness::start().await;
    // demo-limited: 5 per second, burst 5.
    let answers = burst(&harness, 20, "/v1/matters?region=520102", Some("demo-limited")).await;
    assert_eq!(count(&answers, 200), 5, "exactly the burst is admitted at one instant");
    assert_eq!(count(&answers, 429), 15);
    let admitted = answers.iter().find(|a| a.status == 200).unwrap();
    assert_eq!(admitted.header("ratelimit-policy"), Some("\"partner\";q=5;w=1"));
    assert!(admitted.header("ratelimit").unwrap().starts_with("\"partner\";r="), "{:?}", admitted.header("ratelimit"));
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("ratelimit"), Some("\"partner\";r=0;t=1"));
    let problem = refused.json();
    assert_eq!(problem["type"], "urn:tongban:problem:rate-limited");
    assert_eq!(problem["limit"], "partner:demo-limited");
    assert_eq!(problem["retryable"], true);

    // A second later the bucket has refilled: five more.
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    let answers = burst(&harness, 8, "/v1/matters?region=520102", Some("demo-limited")).await;
    assert_eq!(count(&answers, 200), 5);
    assert_eq!(count(&answers, 429), 3);

    // Other callers are not affected.
    let answers = burst(&harness, 5, "/v1/matters?region=520102", None).await;
    assert_eq!(count(&answers, 200), 5);
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn target_and_partner_operation_limits_protect_a_platform() {
    let harness = Harness::start_with(demo_federation(), |federation| {
        *federation = federation.map_adapters(|adapter| {
            if adapter.name == "guizhou" {
                adapter.rate = Some(spec("target:guizhou", "target", 3, 3, false));
            }
        });
    })
    .await;
    // Anonymous callers have room (50/s), the platform only 3 at once: ten submissions at once.
    let template = golden_input("guizhou");
    let submissions = (0..10).map(|n| {
        let mut input = template.clone();
        input["application_id"] = format!("0194f3a0-7c00-7000-8000-00000000t{n:03}").into();
        let harness = &harness;
        async move { harness.submit(&input).await }
    });
    let answers = futures_util::future::join_all(submissions).await;
    assert_eq!(count(&answers, 201), 3);
    assert_eq!(count(&answers, 429), 7);
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    assert_eq!(refused.json()["limit"], "target:guizhou");
    assert_eq!(refused.header("ratelimit-policy"), Some("\"target\";q=3;w=1"));
    assert_eq!(harness.received("guizhou").await.len(), 3, "refused calls never reach the platform");
    // Ten identical lookups a second later: one call reaches the platform (one unit of its
    // refilled bucket); the others share it, so the platform's limit costs them nothing.
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    let answers = burst(&harness, 10, "/v1/matters?region=520102", None).await;
    assert_eq!(count(&answers, 200), 10);

    // guangdong-window may submit 20/s with a burst of 40 (partner-operation limit), from its
    // own province (a Shenzhen window, to Guangzhou).
    let mut input = golden_input("guangdong");
    input["accepting_region"] = "440303".into();
    let mut statuses = Vec::new();
    for n in 0..45 {
        input["application_id"] = format!("0194f3a0-7c00-7000-8000-00000000r{n:03}").into();
        let answer = harness
            .gateway(
                "POST",
                "/v1/applications",
                &[("content-type", "application/json"), ("x-api-key", "gd-window-demo-key")],
                input.to_string().into_bytes(),
            )
            .await;
        statuses.push(answer.status);
        if answer.status == 429 {
            assert_eq!(answer.json()["limit"], "partner-operation:guangdong-window/submit");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 40, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5);
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_shadow_limit_counts_and_refuses_nothing() {
    let harness = Harness::start_with(demo_federation(), |federation| {
        *federation = federation.map_adapters(|adapter| {
            if adapter.name == "guizhou" {
                adapter.rate = Some(spec("target:guizhou", "target", 2, 2, true));
            }
        });
    })
    .await;
    let template = golden_input("guizhou");
    let submissions = (0..6).map(|n| {
        let mut input = template.clone();
        input["application_id"] = format!("0194f3a0-7c00-7000-8000-00000000h{n:03}").into();
        let harness = &harness;
        async move { harness.submit(&input).await }
    });
    let answers = futures_util::future::join_all(submissions).await;
    assert_eq!(count(&answers, 201), 6, "shadow mode refuses nothing");
    let metrics = String::from_utf8_lossy(&harness.admin("GET", "/metrics", Vec::new()).await.body).into_owned();
    let line = "tongban_rate_limited_total{limit=\"target\",mode=\"shadow\",source=\"anonymous\",target=\"guizhou\"} 4";
    assert!(metrics.contains(line), "expected {line} in\\n{metrics}");
    assert!(!metrics.contains("mode=\"enforced\""), "nothing was enforced");
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_answers_503_with_retry_after() {
    let harness = Harness::start_with(demo_federation(), |federation| {
        *federation = federation.map_adapters(|adapter| {
            if adapter.name == "guizhou" {
                adapter.max_concurrency = 1;
                adapter.queue_timeout = std::time::Duration::from_millis(100);
            }
        });
    })
    .await;
    harness.fault("guizhou", "slow").await;
    let mut first = golden_input("guizhou");
    let mut second = first.clone();
    first["application_id"] = "0194f3a0-7c00-7000-8000-0000000000s1".into();
    second["application_id"] = "0194f3a0-7c00-7000-8000-0000000000s2".into();
    let (a, b) = tokio::join!(harness.submit(&first), harness.submit(&second));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    // One call holds the only slot until the platform times out (504); the other waits 100 ms.
    assert_eq!(statuses, [503, 504]);
    let busy = if a.status == 503 { a } else { b };
    assert_eq!(busy.json()["type"], "urn:tongban:problem:platform-busy");
    assert_eq!(busy.header("retry-after"), Some("1"));
    let metrics = String::from_utf8_lossy(&harness.admin("GET", "/metrics", Vec::new()).await.body).into_owned();
    assert!(metrics.contains("tongban_bulkhead_rejected_total{target=\"guizhou\"} 1"), "{metrics}");
    harness.stop().await;
}

#[tokio::test]
async fn an_unknown_api_key_is_refused() {
    let harness = Harness::start().await;
    let answer =
        harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", "not-a-partner-key")], Vec::new()).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["type"], "urn:tongban:problem:unauthorized");
    assert_eq!(answer.header("www-authenticate"), Some("ApiKey header=\"X-Api-Key\""));
    harness.stop().await;

    // Without anonymous access, no key is no entry.
    let harness = Harness::start_with(demo_federation(), |federation| federation.identities.anonymous = false).await;
    let answer = harness.get("/v1/matters?region=520102").await;
    assert_eq!(answer.status, 401);
    assert!(answer.json()["detail"].as_str().unwrap().contains("no X-Api-Key"));
    harness.stop().await;
}

/// At `[server] max_connections` the listener stops accepting: a new client waits in the backlog
/// and is served as soon as a held connection closes.
#[tokio::test(start_paused = true)]
async fn at_the_connection_cap_new_connections_wait_until_one_closes() {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn ask(stream: &mut TcpStream) {
        stream.write_all(b"GET /nowhere HTTP/1.1\r\nhost: gateway\r\n\r\n").await.unwrap();
    }
    async fn answer(stream: &mut TcpStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    let harness = Harness::start_with(demo_federation(), |federation| federation.server.max_connections = 2).await;
    let addr = harness.running.public;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        ask(&mut stream).await;
        assert!(answer(&mut stream).await.starts_with("HTTP/1.1 404"));
        held.push(stream); // kept open: keep-alive
    }
    // The kernel completes the handshake, but the gateway does not take the connection.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    ask(&mut waiting).await;
    let early = tokio::time::timeout(Duration::from_secs(5), answer(&mut waiting)).await;
    assert!(early.is_err(), "a third connection was served past the cap of 2");
    drop(held.pop());
    let served = tokio::time::timeout(Duration::from_secs(5), answer(&mut waiting)).await;
    assert!(served.expect("served once a slot freed").starts_with("HTTP/1.1 404"));
    harness.stop().await;
}

/// Slowloris: a client that starts its headers and never finishes them is cut off by the header
/// read timeout (30 s, hyper's timer), also behind the framing guard, and others are still served.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let harness = Harness::start().await;
    let mut slow = TcpStream::connect(harness.running.public).await.unwrap();
    slow.write_all(b"GET /v1/matters?region=520102 HTTP/1.1\r\nHost: gateway\r\nX-Slow: a").await.unwrap();
    let started = tokio::time::Instant::now();
    // Paused time runs ahead to the next timer once everything waits: the header timeout.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(120), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was still open after 120 s");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(30) && waited < Duration::from_secs(60), "closed after {waited:?}");
    assert!(!rest.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(harness.get("/v1/matters?region=520102").await.status, 200);
    harness.stop().await;
}
