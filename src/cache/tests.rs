//! Tests of the response cache. Time is tokio's paused clock: `advance` moves freshness, nothing
//! sleeps for real, and no assertion depends on how fast anything runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::time::{advance, sleep};

use super::{CacheKey, CacheOutcome, CachePolicy, Purge, ResponseCache, StaleOnError};

/// The platform's failures, as a gateway would classify them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upstream {
    /// Unreachable / timed out / busy: a stale answer may stand in.
    Unavailable,
    /// The platform refused: its answer matters, no stale stand-in.
    Rejected,
}

fn allows_stale(error: &Upstream) -> StaleOnError {
    match error {
        Upstream::Unavailable => StaleOnError::Serve { fwd_status: None },
        _ => StaleOnError::Refuse,
    }
}

fn key(target: &str, operation: &str, request: &str) -> CacheKey {
    CacheKey { target: target.into(), operation: operation.into(), request: request.into(), partner: None }
}

fn policy(ttl: u64, stale_if_error: u64) -> CachePolicy {
    CachePolicy { ttl: Duration::from_secs(ttl), stale_if_error: Duration::from_secs(stale_if_error) }
}

fn cache() -> ResponseCache {
    ResponseCache::new(1 << 20, |_| {})
}

/// A cache whose eviction causes are recorded.
fn recording_cache(max_bytes: u64) -> (ResponseCache, Arc<Mutex<Vec<&'static str>>>) {
    let causes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&causes);
    (ResponseCache::new(max_bytes, move |cause| seen.lock().unwrap().push(cause)), causes)
}

/// Looks `key` up with a fetch that counts its calls and answers `answer` after a (paused) second.
async fn lookup(
    cache: &ResponseCache,
    key: &CacheKey,
    policy: CachePolicy,
    calls: &AtomicUsize,
    answer: Result<Value, Upstream>,
) -> (Result<Value, Upstream>, CacheOutcome) {
    cache
        .get_or_fetch_with(key.clone(), policy, allows_stale, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                sleep(Duration::from_secs(1)).await;
                answer
            }
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn miss_then_hit_calls_the_platform_once() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let status = key("guizhou", "status", r#"{"application_id":"A1"}"#);

    let (result, outcome) = lookup(&cache, &status, policy(30, 0), &calls, Ok(json!({"state": "accepted"}))).await;
    assert_eq!(result, Ok(json!({"state": "accepted"})));
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(outcome.header_value(), "tongban; fwd=miss; stored");
    assert_eq!(outcome.label(), "miss");

    let (result, outcome) = lookup(&cache, &status, policy(30, 0), &calls, Ok(json!("not asked"))).await;
    assert_eq!(result, Ok(json!({"state": "accepted"})));
    assert_eq!(outcome, CacheOutcome::Hit { ttl_left: Duration::from_secs(30) });
    assert_eq!(outcome.header_value(), "tongban; hit; ttl=30");
    assert_eq!(outcome.label(), "hit");

    advance(Duration::from_millis(10_500)).await;
    let (_, outcome) = lookup(&cache, &status, policy(30, 0), &calls, Ok(json!("not asked"))).await;
    assert_eq!(outcome.header_value(), "tongban; hit; ttl=19");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn cache_status_values_are_rfc_9211_members() {
    let stale = |millis, fwd_status| CacheOutcome::Stale { expired_for: Duration::from_millis(millis), fwd_status };
    assert_eq!(CacheOutcome::Collapsed.header_value(), "tongban; fwd=miss; collapsed");
    assert_eq!(CacheOutcome::NotStored.header_value(), "tongban; fwd=miss");
    assert_eq!(CacheOutcome::Hit { ttl_left: Duration::from_millis(42_700) }.header_value(), "tongban; hit; ttl=42");
    assert_eq!(CacheOutcome::Hit { ttl_left: Duration::from_millis(300) }.header_value(), "tongban; hit; ttl=0");
    assert_eq!(
        stale(12_300, Some(504)).header_value(),
        "tongban; fwd=stale; fwd-status=504; ttl=-13; detail=stale-if-error"
    );
    assert_eq!(stale(12_000, None).header_value(), "tongban; fwd=stale; ttl=-12; detail=stale-if-error");
    assert_eq!(stale(200, None).header_value(), "tongban; fwd=stale; ttl=-1; detail=stale-if-error");
    // Exactly at expiry the remaining lifetime is zero, and sf-integer has no "-0".
    assert_eq!(stale(0, None).header_value(), "tongban; fwd=stale; ttl=0; detail=stale-if-error");
    let labels: Vec<_> = [
        CacheOutcome::Miss,
        CacheOutcome::NotStored,
        CacheOutcome::Hit { ttl_left: Duration::ZERO },
        CacheOutcome::Collapsed,
        stale(1, None),
    ]
    .iter()
    .map(CacheOutcome::label)
    .collect();
    assert_eq!(labels, ["miss", "miss", "hit", "collapsed", "stale"]);
}

#[tokio::test(start_paused = true)]
async fn twenty_concurrent_misses_make_one_call() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let matters = key("zhejiang", "matters", r#"{"region":"330100"}"#);

    let answers =
        join_all((0..20).map(|_| lookup(&cache, &matters, policy(60, 0), &calls, Ok(json!(["matter-1", "matter-2"])))))
            .await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(answers.iter().all(|(result, _)| *result == Ok(json!(["matter-1", "matter-2"]))));
    let collapsed = answers.iter().filter(|(_, outcome)| *outcome == CacheOutcome::Collapsed).count();
    let missed = answers.iter().filter(|(_, outcome)| *outcome == CacheOutcome::Miss).count();
    assert_eq!((missed, collapsed), (1, 19));
    assert!(cache.flights.lock().unwrap().is_empty(), "the flight is withdrawn once answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_many_threads_make_one_call() {
    let cache = Arc::new(cache());
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tokio::spawn(async move {
                cache
                    .get_or_fetch_with(key("sichuan", "status", "{}"), policy(60, 0), allows_stale, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async {
                            // Give the other tasks a chance to arrive while the call is out.
                            for _ in 0..10 {
                                tokio::task::yield_now().await;
                            }
                            Ok::<_, Upstream>(json!({"state": "done"}))
                        }
                    })
                    .await
            })
        })
        .collect();
    let mut missed = 0;
    for task in tasks {
        let (result, outcome) = task.await.unwrap();
        assert_eq!(result, Ok(json!({"state": "done"})));
        match outcome {
            CacheOutcome::Miss => missed += 1,
            CacheOutcome::Collapsed | CacheOutcome::Hit { .. } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(missed, 1);
}

#[tokio::test(start_paused = true)]
async fn errors_are_shared_with_waiters_and_not_cached() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let status = key("guizhou", "status", "{}");

    let answers =
        join_all((0..5).map(|_| lookup(&cache, &status, policy(60, 60), &calls, Err(Upstream::Unavailable)))).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for all five, error or not");
    assert!(answers.iter().all(|(result, _)| *result == Err(Upstream::Unavailable)));
    let outcomes: Vec<_> = answers.iter().map(|(_, outcome)| outcome.clone()).collect();
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == CacheOutcome::NotStored).count(), 1);
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == CacheOutcome::Collapsed).count(), 4);
    assert_eq!(CacheOutcome::NotStored.header_value(), "tongban; fwd=miss");

    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 0);
    let (result, outcome) = lookup(&cache, &status, policy(60, 60), &calls, Ok(json!("recovered"))).await;
    assert_eq!((result, outcome), (Ok(json!("recovered")), CacheOutcome::Miss));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the error was not stored");
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_covers_permitted_failures_within_the_window() {
    let (cache, causes) = recording_cache(1 << 20);
    let calls = AtomicUsize::new(0);
    let status = key("guizhou", "status", "{}");
    let policy = policy(10, 60);

    let (_, outcome) = lookup(&cache, &status, policy, &calls, Ok(json!("v1"))).await;
    assert_eq!(outcome, CacheOutcome::Miss);

    // The answer was stored one (paused) second into the call; 12 s later it is 2 s stale.
    advance(Duration::from_secs(12)).await;
    let stale = |error: &Upstream| match error {
        Upstream::Unavailable => StaleOnError::Serve { fwd_status: Some(503) },
        Upstream::Rejected => StaleOnError::Refuse,
    };
    let (result, outcome) = cache
        .get_or_fetch_with(status.clone(), policy, stale, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Upstream::Unavailable) }
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a stale entry is refreshed first");
    assert_eq!(result, Ok(json!("v1")));
    assert_eq!(outcome, CacheOutcome::Stale { expired_for: Duration::from_secs(2), fwd_status: Some(503) });
    assert_eq!(outcome.header_value(), "tongban; fwd=stale; fwd-status=503; ttl=-2; detail=stale-if-error");
    assert_eq!(outcome.label(), "stale");

    // A refusal is the platform's answer: no stale stand-in, even within the window.
    let (result, outcome) = lookup(&cache, &status, policy, &calls, Err(Upstream::Rejected)).await;
    assert_eq!((result, outcome), (Err(Upstream::Rejected), CacheOutcome::NotStored));

    // Concurrent lookups share the one failed call and the stale answer.
    let answers = join_all((0..3).map(|_| lookup(&cache, &status, policy, &calls, Err(Upstream::Unavailable)))).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    for (result, outcome) in answers {
        assert_eq!(result, Ok(json!("v1")));
        assert_eq!(outcome.label(), "stale");
    }

    // A success replaces the old answer.
    let (result, outcome) = lookup(&cache, &status, policy, &calls, Ok(json!("v2"))).await;
    assert_eq!((result, outcome), (Ok(json!("v2")), CacheOutcome::Miss));
    assert!(causes.lock().unwrap().contains(&"replaced"));
}

#[tokio::test(start_paused = true)]
async fn no_stale_answer_past_the_window() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let status = key("guizhou", "status", "{}");
    let policy = policy(10, 60);

    let (_, outcome) = lookup(&cache, &status, policy, &calls, Ok(json!("v1"))).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    advance(Duration::from_secs(71)).await;
    let (result, outcome) = lookup(&cache, &status, policy, &calls, Err(Upstream::Unavailable)).await;
    assert_eq!((result, outcome), (Err(Upstream::Unavailable), CacheOutcome::NotStored));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_call_over() {
    let cache = Arc::new(cache());
    let status = key("guizhou", "status", "{}");
    let started = Arc::new(AtomicUsize::new(0));

    let leader = tokio::spawn({
        let (cache, status, started) = (Arc::clone(&cache), status.clone(), Arc::clone(&started));
        async move {
            cache
                .get_or_fetch_with(status, policy(60, 0), allows_stale, || {
                    started.fetch_add(1, Ordering::SeqCst);
                    async {
                        sleep(Duration::from_secs(3600)).await;
                        Ok(json!("never"))
                    }
                })
                .await
        }
    });
    while started.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let waiter = tokio::spawn({
        let (cache, status) = (Arc::clone(&cache), status.clone());
        async move {
            cache
                .get_or_fetch_with(status, policy(60, 0), allows_stale, || async { Ok::<_, Upstream>(json!("second")) })
                .await
        }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    let (result, outcome) = waiter.await.unwrap();
    assert_eq!((result, outcome), (Ok(json!("second")), CacheOutcome::Miss));
    assert!(cache.flights.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_byte_bound_evicts_by_size() {
    let (cache, causes) = recording_cache(2_000);
    let calls = AtomicUsize::new(0);
    let padding = "x".repeat(80);
    for n in 0..100 {
        let (result, _) =
            lookup(&cache, &key("guizhou", "status", &format!("{n:03}")), policy(60, 0), &calls, Ok(json!(padding)))
                .await;
        assert!(result.is_ok());
    }
    cache.run_pending_tasks().await;
    assert!(cache.weighted_size() <= 2_000, "weighted size {}", cache.weighted_size());
    assert!(cache.entry_count() < 100);
    assert!(cache.entry_count() > 0);
    // Each entry weighs its JSON (82 bytes) plus its key (7 + 6 + 3).
    assert_eq!(cache.weighted_size(), cache.entry_count() * 98);
    assert!(causes.lock().unwrap().contains(&"size"));
}

/// Stores one answer for each key.
async fn fill(cache: &ResponseCache, keys: &[CacheKey]) {
    let calls = AtomicUsize::new(0);
    for key in keys {
        let (_, outcome) = lookup(cache, key, policy(60, 0), &calls, Ok(json!(1))).await;
        assert_eq!(outcome, CacheOutcome::Miss);
    }
    cache.run_pending_tasks().await;
}

#[tokio::test(start_paused = true)]
async fn purges_by_target_operation_key_and_all() {
    let (cache, causes) = recording_cache(1 << 20);
    let keys = [
        key("guizhou", "status", "a"),
        key("guizhou", "status", "b"),
        key("guizhou", "matters", "a"),
        key("zhejiang", "status", "a"),
        key("zhejiang", "matters", "a"),
        key("sichuan", "matters", "a"),
    ];
    fill(&cache, &keys).await;
    assert_eq!(cache.entry_count(), 6);

    let guizhou_status = Purge::Operation { target: Some("guizhou".into()), operation: "status".into() };
    assert_eq!(cache.purge(&guizhou_status).await, 2);
    assert_eq!(cache.purge(&Purge::Operation { target: None, operation: "matters".into() }).await, 3);
    assert_eq!(cache.purge(&Purge::Key(key("zhejiang", "status", "a"))).await, 1);
    assert_eq!(cache.purge(&Purge::Key(key("zhejiang", "status", "a"))).await, 0, "already gone");
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 0);

    fill(&cache, &keys).await;
    assert_eq!(cache.purge(&Purge::Target("zhejiang".into())).await, 2);
    assert_eq!(cache.purge(&Purge::All).await, 4);
    assert_eq!(causes.lock().unwrap().iter().filter(|cause| **cause == "explicit").count(), 12);

    // A purged key is fetched again.
    let calls = AtomicUsize::new(0);
    let (_, outcome) = lookup(&cache, &keys[0], policy(60, 0), &calls, Ok(json!(2))).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retain_targets_drops_platforms_no_longer_configured() {
    let cache = cache();
    let keys = [key("guizhou", "status", "a"), key("zhejiang", "status", "a"), key("sichuan", "matters", "a")];
    fill(&cache, &keys).await;
    assert_eq!(cache.retain_targets(&["guizhou", "sichuan"]).await, 1);
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 2);

    let calls = AtomicUsize::new(0);
    for kept in [&keys[0], &keys[2]] {
        let (result, outcome) = lookup(&cache, kept, policy(60, 0), &calls, Ok(json!(2))).await;
        assert_eq!((result, outcome.label()), (Ok(json!(1)), "hit"), "configured targets keep their entries");
    }
    let (result, outcome) = lookup(&cache, &keys[1], policy(60, 0), &calls, Ok(json!(2))).await;
    assert_eq!((result, outcome), (Ok(json!(2)), CacheOutcome::Miss));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_purge_during_a_call_is_not_undone_by_its_answer() {
    let cache = Arc::new(cache());
    let status = key("guizhou", "status", "{}");
    let calls = Arc::new(AtomicUsize::new(0));
    let lookup_task = tokio::spawn({
        let (cache, status, calls) = (Arc::clone(&cache), status.clone(), Arc::clone(&calls));
        async move { lookup(&cache, &status, policy(60, 0), &calls, Ok(json!("before purge"))).await }
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    cache.purge(&Purge::Target("guizhou".into())).await;
    let (result, outcome) = lookup_task.await.unwrap();
    assert_eq!((result, outcome), (Ok(json!("before purge")), CacheOutcome::NotStored));

    let (result, outcome) = lookup(&cache, &status, policy(60, 0), &calls, Ok(json!("after purge"))).await;
    assert_eq!((result, outcome), (Ok(json!("after purge")), CacheOutcome::Miss));
}

#[tokio::test(start_paused = true)]
async fn a_purge_of_other_entries_does_not_stop_a_call_from_storing() {
    let cache = Arc::new(cache());
    let calls = Arc::new(AtomicUsize::new(0));
    let lookup_task = tokio::spawn({
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        async move { lookup(&cache, &key("guizhou", "status", "{}"), policy(60, 0), &calls, Ok(json!(1))).await }
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.purge(&Purge::Target("zhejiang".into())).await, 0);
    assert_eq!(cache.retain_targets(&["guizhou"]).await, 0);
    let (_, outcome) = lookup_task.await.unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
}

#[tokio::test(start_paused = true)]
async fn partners_and_requests_get_their_own_entries() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let shared = key("guizhou", "status", "a");
    let scoped = CacheKey { partner: Some("partner-1".into()), ..shared.clone() };
    let other_partner = CacheKey { partner: Some("partner-2".into()), ..shared.clone() };
    for key in [&shared, &scoped, &other_partner, &key("guizhou", "status", "b"), &shared, &scoped] {
        let (result, _) = lookup(&cache, key, policy(60, 0), &calls, Ok(json!(1))).await;
        assert!(result.is_ok());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_policy_that_keeps_nothing_stores_nothing() {
    let cache = cache();
    let calls = AtomicUsize::new(0);
    let status = key("guizhou", "status", "a");
    let (_, outcome) = lookup(&cache, &status, policy(0, 0), &calls, Ok(json!(1))).await;
    assert_eq!(outcome, CacheOutcome::NotStored);
    let (_, outcome) = lookup(&cache, &status, policy(0, 0), &calls, Ok(json!(1))).await;
    assert_eq!(outcome, CacheOutcome::NotStored);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn the_lookup_future_is_send_for_hyper() {
    fn assert_send<T: Send>(_: &T) {}
    let cache = cache();
    let lookup = cache.get_or_fetch_with(key("guizhou", "status", "a"), policy(1, 1), allows_stale, || async {
        Ok::<_, Upstream>(json!(1))
    });
    assert_send(&lookup);
}
