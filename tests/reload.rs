//! Hot reload: the new configuration is validated with the same code as `tongban check` and
//! swapped in atomically; a broken one leaves the old set serving; in-flight requests finish on
//! the set they started with; limiter state survives where its limit is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Harness, golden_input, root};

/// A private copy of the demo configuration, so a test can edit it.
fn copy_config() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for part in ["config", "adapters", "mappings"] {
        copy(&root().join(part), &dir.path().join(part));
    }
    dir
}

fn load(dir: &Path) -> tongban::config::Federation {
    match tongban::config::load(&dir.join("config/tongban.toml")) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("{diagnostics}"),
    }
}

async fn metrics(harness: &Harness) -> String {
    String::from_utf8_lossy(&harness.admin("GET", "/metrics", Vec::new()).await.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_steady_load_fail_no_request() {
    let dir = copy_config();
    // The load runs as fast as it can: lift the anonymous limit (every reload keeps it lifted).
    let harness = Arc::new(
        Harness::start_with(load(dir.path()), |federation| {
            federation.anonymous_limit = None;
            *federation = federation.map_adapters(|adapter| adapter.rate = None);
        })
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (harness, stop, served, failed) = (harness.clone(), stop.clone(), served.clone(), failed.clone());
        tokio::spawn(async move {
            let mut input = golden_input("guizhou");
            // Bounded: at most 100 000 requests, and it stops when the reloads are done.
            for n in 0..100_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let answer = if n % 2 == 0 {
                    input["application_id"] = format!("0194f3a0-7c00-7000-8000-{n:012}").into();
                    harness.submit(&input).await
                } else {
                    harness.get("/v1/matters?region=520102").await
                };
                if answer.status < 300 {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed during reloads: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
                }
            }
        })
    };
    for _ in 0..100 {
        let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during reloads");
    assert!(served.load(Ordering::Relaxed) > 0);
    assert!(metrics(&harness).await.contains("tongban_config_reloads_total{result=\"success\"} 100"));
    Arc::try_unwrap(harness).ok().unwrap().stop().await;
}

#[tokio::test]
async fn a_broken_reload_leaves_the_old_configuration_serving() {
    let dir = copy_config();
    let harness = Harness::start_with(load(dir.path()), |_| {}).await;
    let adapter = dir.path().join("adapters/guizhou.toml");
    let good = std::fs::read_to_string(&adapter).unwrap();
    std::fs::write(&adapter, good.replace("format = \"json\"", "format = \"yaml\"")).unwrap();

    let refused = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert_eq!(refused.status, 422);
    let problem = refused.json();
    assert_eq!(problem["type"], "urn:tongban:problem:reload-refused");
    let error = problem["errors"][0].as_str().unwrap();
    assert!(error.contains("adapters/guizhou.toml:") && error.contains("format: unknown variant 'yaml'"), "{error}");
    // The old set keeps serving.
    assert_eq!(harness.submit(&golden_input("guizhou")).await.status, 201);
    assert!(metrics(&harness).await.contains("tongban_config_reloads_total{result=\"failure\"} 1"));

    // Fixed, it loads.
    std::fs::write(&adapter, good).unwrap();
    assert_eq!(harness.admin("POST", "/admin/reload", Vec::new()).await.status, 200);
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn limiter_state_survives_a_reload_of_an_unchanged_limit() {
    let dir = copy_config();
    let harness = Harness::start_with(load(dir.path()), |_| {}).await;
    let call = || harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", "demo-limited")], Vec::new());
    for _ in 0..5 {
        assert_eq!(call().await.status, 200);
    }
    assert_eq!(harness.running.gateway.reload("test").await.map(|_| ()).map_err(|d| d.to_string()), Ok(()));
    assert_eq!(call().await.status, 429, "the bucket emptied before the reload stays empty");

    // A changed quota starts afresh.
    let config = dir.path().join("config/tongban.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("rate = { per_second = 5, burst = 5 }", "rate = { per_second = 5, burst = 7 }"),
    )
    .unwrap();
    assert!(harness.running.gateway.reload("test").await.is_ok());
    assert_eq!(call().await.status, 200);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let dir = copy_config();
    let harness = Harness::start_with(load(dir.path()), |federation| federation.observe.watch = true).await;
    // Not on the list yet: refused.
    // 云南 handles 不动产登记资料查询 (its catalogue lists it), accepted in 贵州.
    let mut input = golden_input("yunnan");
    input["matter"] = serde_json::json!({"code": "000501005000", "name": "不动产登记资料查询"});
    input["mode"] = "online".into();
    assert_eq!(harness.submit(&input).await.status, 403);
    let matters = dir.path().join("config/matters.toml");
    let mut text = std::fs::read_to_string(&matters).unwrap();
    text.push_str("\n[[matter]]\ncode = \"000501005000\"\nname = \"不动产登记资料查询\"\nmodes = [\"online\"]\ncross_province = [\"pan-pearl-river\"]\n");
    std::fs::write(&matters, text).unwrap();
    // The watcher reacts to a real file-system event; wait for it, bounded (10 s at most).
    let mut reloaded = false;
    for _ in 0..100 {
        if metrics(&harness).await.contains("tongban_config_reloads_total{result=\"success\"}") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the watcher did not reload within 10 s:\n{}",
        metrics(&harness).await.lines().filter(|l| l.contains("reload")).collect::<Vec<_>>().join("\n")
    );
    input["application_id"] = "0194f3a0-7c00-7000-8000-0000000000w2".into();
    let answer = harness.submit(&input).await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    harness.stop().await;
}

#[tokio::test]
async fn cached_answers_survive_a_reload_while_their_platform_still_exists() {
    let dir = copy_config();
    let harness = Harness::start_with(load(dir.path()), |_| {}).await;
    let path = "/v1/matters?region=520102";
    assert_eq!(harness.get(path).await.header("cache-status"), Some("tongban; fwd=miss; stored"));
    assert!(harness.running.gateway.reload("test").await.is_ok());
    assert!(
        harness.get(path).await.header("cache-status").unwrap().starts_with("tongban; hit"),
        "kept across the reload"
    );

    // A platform removed from the configuration takes its cached answers with it.
    std::fs::remove_file(dir.path().join("adapters/yunnan.toml")).unwrap();
    let config = dir.path().join("config/tongban.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"guizhou\", \"yunnan\",", "\"guizhou\",")).unwrap();
    assert_eq!(harness.get("/v1/matters?region=530102").await.status, 200);
    let reloaded = harness.running.gateway.reload("test").await;
    assert!(reloaded.is_ok(), "{}", reloaded.err().map(|d| d.to_string()).unwrap_or_default());
    assert_eq!(harness.get("/v1/matters?region=530102").await.status, 404, "no platform serves Yunnan any more");
    assert!(harness.get(path).await.header("cache-status").unwrap().starts_with("tongban; hit"));
    harness.stop().await;
}
