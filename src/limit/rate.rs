//! Rate limits (限流): GCRA token buckets from `governor`, one keyed limiter per configured
//! limit, checked together per request.
//!
//! # All limits admit, or none is charged
//!
//! A request is usually subject to several limits (partner, target, partner/operation). It is
//! admitted only if every enforcing limit admits it, and a refused request must not use up units
//! of the limits that would have admitted it. Governor has no "peek": a check that admits also
//! consumes. So [`RateLimits::check`] runs as a small transaction under one mutex:
//!
//! 1. for each limit, read the key's GCRA state (its "theoretical arrival time"), then let
//!    governor check it (consuming one unit when it admits);
//! 2. if any enforcing limit refused, write the saved state back into every limit that admitted,
//!    in reverse order, so the request has consumed nothing anywhere.
//!
//! The mutex makes the restore exact: no other request can consume from the same key between
//! the read and the write-back. It is held only for a few map operations, never across an await.
//! Governor's own atomic check still decides every admission, so a limit can never admit more
//! than its burst plus what has refilled.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};

use super::clock::TokioClock;
use super::headers::{self, RateLimitHeaders};

/// One configured limit (限流规则): a sustained rate plus a burst, applied per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// Stable identity of the limit, unique across the configuration, e.g. `"partner:demo-limited"`,
    /// `"target:guizhou"`, `"partner-operation:gd/submit"`, `"partner-default"`.
    pub id: String,
    /// Policy name written in the headers, e.g. `"partner"`, `"target"`, `"partner-operation"`.
    pub policy: String,
    /// Sustained rate, units per second. Config validation rejects 0; here it counts as 1.
    pub per_second: u32,
    /// Burst (桶容量): units available at once. Config validation rejects 0; here it counts as 1.
    pub burst: u32,
    /// Shadow mode (影子模式): never refuse, only report would-be refusals.
    pub shadow: bool,
}

impl LimitSpec {
    /// The quota actually enforced: (per second, burst), zeros raised to 1 so no spec can panic.
    fn quota(&self) -> (NonZeroU32, NonZeroU32) {
        (
            NonZeroU32::new(self.per_second).unwrap_or(NonZeroU32::MIN),
            NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN),
        )
    }
}

/// Outcome of checking one request against its limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Id of the first enforcing limit that refused; `None` when admitted.
    pub refused_by: Option<String>,
    /// Ids of shadow limits that would have refused, whether or not the request was admitted.
    pub shadow_refusals: Vec<String>,
    /// When refused: how long until every refusing limit admits again, rounded up to whole
    /// seconds, at least 1 s (for `Retry-After`).
    pub retry_after: Option<Duration>,
    /// Headers of the most constraining enforcing limit (least remaining; on a tie, the longest
    /// reset). Sent on admitted requests too. `None` when only shadow limits applied: a limit
    /// that is not enforced is not advertised, or clients would throttle themselves for it.
    pub headers: Option<RateLimitHeaders>,
}

impl Verdict {
    /// Whether the request may proceed.
    pub fn admitted(&self) -> bool {
        self.refused_by.is_none()
    }
}

/// The keyed state, shared between governor's limiter and our save/restore.
#[derive(Default)]
struct SharedStore(Arc<DashMapStateStore<String>>);

impl StateStore for SharedStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<String> for SharedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

type Limiter = RateLimiter<String, SharedStore, TokioClock, StateInformationMiddleware>;

/// One configured limit's state: a governor keyed limiter plus a handle on its store.
struct KeyedLimit {
    per_second: NonZeroU32,
    burst: NonZeroU32,
    /// Time one unit takes to refill.
    interval: Duration,
    store: Arc<DashMapStateStore<String>>,
    limiter: Limiter,
}

impl KeyedLimit {
    fn new(spec: &LimitSpec) -> KeyedLimit {
        let (per_second, burst) = spec.quota();
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let store = SharedStore::default();
        let handle = Arc::clone(&store.0);
        KeyedLimit {
            per_second,
            burst,
            interval: quota.replenish_interval(),
            store: handle,
            limiter: RateLimiter::new(quota, store, TokioClock),
        }
    }

    /// Same quota → the state carries over a reload.
    fn matches(&self, spec: &LimitSpec) -> bool {
        spec.quota() == (self.per_second, self.burst)
    }

    /// The key's GCRA state (`None`: fresh). Governor stores "fresh" as 0, so a missing key and a
    /// restored fresh key read the same.
    fn save(&self, key: &String) -> Option<Nanos> {
        self.store.measure_and_replace(key, Err::<((), Nanos), _>).err().flatten()
    }

    /// Writes a saved state back (0 is governor's encoding of "fresh").
    fn restore(&self, key: &String, saved: Option<Nanos>) {
        let value = saved.unwrap_or_else(|| Nanos::from(0u64));
        let _: Result<(), ()> = self.store.measure_and_replace(key, |_| Ok(((), value)));
    }

    /// `w`: seconds an empty bucket takes to fill, rounded up.
    fn window_secs(&self) -> u64 {
        u64::from(self.burst.get()).div_ceil(u64::from(self.per_second.get()))
    }

    /// Time until the bucket is whole again, from `remaining` units (an upper bound: a partly
    /// refilled unit counts as missing).
    fn reset_from_remaining(&self, remaining: u32) -> Duration {
        self.interval.saturating_mul(self.burst.get().saturating_sub(remaining))
    }
}

impl fmt::Debug for KeyedLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

/// Holds limiter state across config reloads: state for a spec with the same id AND same quota
/// (per_second, burst) is kept; a changed quota starts fresh; specs no longer present are dropped
/// on [`RateLimits::retain_specs`].
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Limits by spec id. The same mutex serialises [`RateLimits::check`] (see the module docs).
    limits: Mutex<HashMap<String, Arc<KeyedLimit>>>,
}

/// One limit's result within a check.
struct Outcome<'a> {
    spec: &'a LimitSpec,
    limit: Arc<KeyedLimit>,
    key: String,
    saved: Option<Nanos>,
    /// Remaining units after admitting, or the wait until the next unit.
    result: Result<u32, Duration>,
}

impl RateLimits {
    /// No limits yet; they are created on first use by [`RateLimits::check`].
    pub fn new() -> RateLimits {
        RateLimits::default()
    }

    /// The map stays consistent even if a holder panicked, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<KeyedLimit>>> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks (and, when allowed, consumes one unit of) every applicable limit for a request, in
    /// order; all must admit. A limit whose `spec.shadow` is true never refuses: it reports
    /// would-refuse instead.
    ///
    /// Every limit is evaluated even after a refusal (for the longest `Retry-After` and all shadow
    /// reports); if any enforcing limit refused, all units taken by this request are given back,
    /// so a refused request consumes nothing, from shadow limits neither.
    pub fn check(&self, checks: &[(&LimitSpec, &str)]) -> Verdict {
        let mut outcomes = Vec::with_capacity(checks.len());
        {
            let mut limits = self.lock();
            for &(spec, key) in checks {
                let limit = match limits.get(&spec.id) {
                    Some(limit) if limit.matches(spec) => Arc::clone(limit),
                    // New, or its quota changed since the last reload: start fresh.
                    _ => {
                        let limit = Arc::new(KeyedLimit::new(spec));
                        limits.insert(spec.id.clone(), Arc::clone(&limit));
                        limit
                    }
                };
                let key = key.to_owned();
                let saved = limit.save(&key);
                let result = match limit.limiter.check_key(&key) {
                    Ok(state) => Ok(state.remaining_burst_capacity()),
                    Err(not_until) => Err(not_until.wait_time_from(limit.limiter.clock().now())),
                };
                outcomes.push(Outcome { spec, limit, key, saved, result });
            }
            if outcomes.iter().any(|o| o.result.is_err() && !o.spec.shadow) {
                // Reverse order, so a key listed twice ends at its state before this request.
                for o in outcomes.iter().rev().filter(|o| o.result.is_ok()) {
                    o.limit.restore(&o.key, o.saved);
                }
            }
        }
        verdict(&outcomes)
    }

    /// Called after a reload with the specs now configured: drops limits no longer configured and
    /// those whose quota changed (they restart fresh on next use).
    pub fn retain_specs(&self, specs: &[&LimitSpec]) {
        let wanted: HashMap<&str, &LimitSpec> = specs.iter().map(|s| (s.id.as_str(), *s)).collect();
        self.lock().retain(|id, limit| wanted.get(id.as_str()).is_some_and(|spec| limit.matches(spec)));
    }

    /// Prunes stale keys: drops every key whose bucket has been full for at least one refill
    /// interval (indistinguishable from a fresh key), then shrinks the maps. Returns how many
    /// keys remain (for a gauge).
    pub fn prune(&self) -> usize {
        // Not under the lock: pruning many keys should not stall requests, and it only removes
        // keys whose state equals "fresh", which a concurrent check treats the same way.
        let limits: Vec<Arc<KeyedLimit>> = self.lock().values().cloned().collect();
        limits
            .iter()
            .map(|limit| {
                limit.limiter.retain_recent();
                limit.limiter.shrink_to_fit();
                limit.limiter.len()
            })
            .sum()
    }
}

/// Builds the verdict from all outcomes.
fn verdict(outcomes: &[Outcome<'_>]) -> Verdict {
    let refused = |o: &&Outcome<'_>| o.result.is_err() && !o.spec.shadow;
    let refused_by = outcomes.iter().find(refused).map(|o| o.spec.id.clone());
    let shadow_refusals =
        outcomes.iter().filter(|o| o.result.is_err() && o.spec.shadow).map(|o| o.spec.id.clone()).collect();
    let retry_after = outcomes.iter().filter(refused).filter_map(|o| o.result.err()).max().map(headers::retry_after);
    let rolled_back = refused_by.is_some();

    // The most constraining enforcing limit: least remaining, then longest reset, then first.
    let mut best: Option<(&Outcome<'_>, u32, Duration)> = None;
    for o in outcomes.iter().filter(|o| !o.spec.shadow) {
        let (remaining, reset) = match o.result {
            // Its unit was given back when the request was refused.
            Ok(r) if rolled_back => {
                let r = r.saturating_add(1).min(o.limit.burst.get());
                (r, o.limit.reset_from_remaining(r))
            }
            Ok(r) => (r, o.limit.reset_from_remaining(r)),
            // Next unit after `wait`, the rest of the burst one interval each.
            Err(wait) => (0, wait.saturating_add(o.limit.interval.saturating_mul(o.limit.burst.get() - 1))),
        };
        let tighter = best.is_none_or(|(_, r, t)| remaining < r || (remaining == r && reset > t));
        if tighter {
            best = Some((o, remaining, reset));
        }
    }
    let headers = best.map(|(o, remaining, reset)| {
        RateLimitHeaders::new(&o.spec.policy, o.limit.burst.get(), o.limit.window_secs(), remaining, reset)
    });

    Verdict { refused_by, shadow_refusals, retry_after, headers }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use std::sync::Barrier;

    fn spec(id: &str, policy: &str, per_second: u32, burst: u32, shadow: bool) -> LimitSpec {
        LimitSpec { id: id.into(), policy: policy.into(), per_second, burst, shadow }
    }

    /// How many of `n` immediate requests `limits` admits.
    fn admitted(limits: &RateLimits, checks: &[(&LimitSpec, &str)], n: usize) -> usize {
        (0..n).filter(|_| limits.check(checks).admitted()).count()
    }

    async fn advance(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn five_per_second_burst_five() {
        let limits = RateLimits::new();
        let p = spec("partner:demo-limited", "partner", 5, 5, false);
        for left in (0..5).rev() {
            let v = limits.check(&[(&p, "demo")]);
            assert!(v.admitted());
            assert_eq!(v.retry_after, None);
            let h = v.headers.unwrap();
            assert_eq!(h.policy, r#""partner";q=5;w=1"#);
            assert_eq!(h.current, format!(r#""partner";r={left};t=1"#));
        }

        let v = limits.check(&[(&p, "demo")]);
        assert_eq!(v.refused_by.as_deref(), Some("partner:demo-limited"));
        assert_eq!(v.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(
            v.headers,
            Some(RateLimitHeaders { policy: r#""partner";q=5;w=1"#.into(), current: r#""partner";r=0;t=1"#.into() })
        );
        // Keys are independent.
        assert!(limits.check(&[(&p, "other")]).admitted());

        // The true wait is 0.2 s: one unit back after it, not before.
        advance(199).await;
        assert!(!limits.check(&[(&p, "demo")]).admitted());
        advance(1).await;
        assert!(limits.check(&[(&p, "demo")]).admitted());
        assert!(!limits.check(&[(&p, "demo")]).admitted());

        // A whole second refills the whole burst (the unit taken above has refilled too).
        advance(1000).await;
        assert_eq!(admitted(&limits, &[(&p, "demo")], 10), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_tasks_admit_exactly_burst() {
        let limits = Arc::new(RateLimits::new());
        let p = Arc::new(spec("partner:p", "partner", 5, 5, false));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (limits, p) = (Arc::clone(&limits), Arc::clone(&p));
                tokio::spawn(async move { limits.check(&[(&p, "k")]).admitted() })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 5);
    }

    /// 50 OS threads at once, on the paused clock (entered through the runtime handle), through
    /// several limits: each admits exactly its burst, never more.
    #[tokio::test(start_paused = true)]
    async fn concurrent_threads_never_over_admit() {
        let limits = RateLimits::new();
        let partner = spec("partner:p", "partner", 1, 30, false);
        let target = spec("target:t", "target", 1, 7, false);
        let handle = tokio::runtime::Handle::current();
        let barrier = Barrier::new(50);
        let admitted = std::thread::scope(|s| {
            let threads: Vec<_> = (0..50)
                .map(|_| {
                    s.spawn(|| {
                        let _time = handle.enter();
                        barrier.wait();
                        limits.check(&[(&partner, "p"), (&target, "t")]).admitted()
                    })
                })
                .collect();
            threads.into_iter().filter_map(|t| t.join().ok()).filter(|&ok| ok).count()
        });
        assert_eq!(admitted, 7);
        // Refused requests charged nothing to the partner: 30 - 7 left.
        assert_eq!(admitted_n(&limits, &partner, "p", 50), 23);
    }

    fn admitted_n(limits: &RateLimits, s: &LimitSpec, key: &str, n: usize) -> usize {
        admitted(limits, &[(s, key)], n)
    }

    #[tokio::test(start_paused = true)]
    async fn tightest_limit_refuses_and_others_keep_their_units() {
        let limits = RateLimits::new();
        let partner = spec("partner:gd", "partner", 10, 10, false);
        let target = spec("target:guizhou", "target", 2, 2, false);
        let op = spec("partner-operation:gd/submit", "partner-operation", 5, 5, false);
        let checks = [(&partner, "gd"), (&target, "guizhou"), (&op, "gd/submit")];

        let v = limits.check(&checks);
        assert!(v.admitted());
        // The target has least remaining (1 of 2).
        assert_eq!(v.headers.unwrap().current, r#""target";r=1;t=1"#);
        assert!(limits.check(&checks).admitted());

        let v = limits.check(&checks);
        assert_eq!(v.refused_by.as_deref(), Some("target:guizhou"));
        assert_eq!(v.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(v.headers.unwrap().policy, r#""target";q=2;w=1"#);

        // Limits before and after the refusing one were not charged for the refused request.
        assert_eq!(admitted_n(&limits, &op, "gd/submit", 10), 3);
        assert_eq!(admitted_n(&limits, &partner, "gd", 20), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_the_longest_wait() {
        let limits = RateLimits::new();
        let fast = spec("partner:a", "partner", 10, 1, false);
        let slow = spec("target:b", "target", 1, 1, false);
        assert!(limits.check(&[(&fast, "a"), (&slow, "b")]).admitted());
        let v = limits.check(&[(&fast, "a"), (&slow, "b")]);
        assert_eq!(v.refused_by.as_deref(), Some("partner:a"));
        assert_eq!(v.retry_after, Some(Duration::from_secs(1)));
        // Tie on r=0: the longer reset wins.
        assert_eq!(v.headers.unwrap().current, r#""target";r=0;t=1"#);

        let slow3 = spec("target:c", "target", 1, 3, false);
        assert_eq!(admitted(&limits, &[(&slow3, "c")], 3), 3);
        let v = limits.check(&[(&slow3, "c")]);
        assert_eq!(v.retry_after, Some(Duration::from_secs(1)));
        // Reset means "whole again": 1 s for the next unit + 2 s for the rest.
        assert_eq!(v.headers.unwrap(), RateLimitHeaders::new("target", 3, 3, 0, Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn shadow_limits_report_but_never_refuse() {
        let limits = RateLimits::new();
        let partner = spec("partner:gd", "partner", 10, 10, false);
        let shadow = spec("partner-operation:gd/submit", "partner-operation", 1, 1, true);
        let checks = [(&partner, "gd"), (&shadow, "gd/submit")];

        let v = limits.check(&checks);
        assert!(v.admitted());
        assert!(v.shadow_refusals.is_empty());
        for left in [8, 7, 6] {
            let v = limits.check(&checks);
            assert!(v.admitted());
            assert_eq!(v.retry_after, None);
            assert_eq!(v.shadow_refusals, vec!["partner-operation:gd/submit".to_string()]);
            // Not advertised: the header names the enforcing limit.
            assert_eq!(v.headers.unwrap().current, format!(r#""partner";r={left};t=1"#));
        }
        // Shadow only: admitted, no headers.
        let v = limits.check(&[(&shadow, "gd/submit")]);
        assert!(v.admitted());
        assert_eq!(v.headers, None);
        assert_eq!(v.shadow_refusals.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_state_only_for_the_same_quota() {
        let limits = RateLimits::new();
        let p = spec("partner:x", "partner", 5, 5, false);
        let t = spec("target:y", "target", 5, 5, false);
        assert_eq!(admitted_n(&limits, &p, "x", 5), 5);
        assert_eq!(admitted_n(&limits, &t, "y", 5), 5);

        // Same id and quota (a changed shadow flag or policy name does not matter): kept.
        let p_renamed = LimitSpec { policy: "caller".into(), ..p.clone() };
        limits.retain_specs(&[&p_renamed, &t]);
        assert!(!limits.check(&[(&p_renamed, "x")]).admitted());
        assert!(!limits.check(&[(&t, "y")]).admitted());

        // Changed quota: fresh.
        let p10 = LimitSpec { burst: 10, ..p.clone() };
        limits.retain_specs(&[&p10, &t]);
        assert_eq!(admitted_n(&limits, &p10, "x", 20), 10);
        assert!(!limits.check(&[(&t, "y")]).admitted());

        // A changed quota seen by check before any retain_specs also starts fresh.
        let t2 = LimitSpec { per_second: 2, ..t.clone() };
        assert!(limits.check(&[(&t2, "y")]).admitted());

        // Removed specs are dropped.
        limits.retain_specs(&[]);
        assert_eq!(limits.prune(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn prune_drops_keys_idle_past_their_refill() {
        let limits = RateLimits::new();
        let p = spec("partner-default", "partner", 5, 5, false);
        assert_eq!(admitted_n(&limits, &p, "10.0.0.1", 5), 5);
        assert!(limits.check(&[(&p, "10.0.0.2")]).admitted());
        assert_eq!(limits.prune(), 2);

        // The second key refilled its one unit after 0.2 s and is dropped; the first needs 1 s.
        advance(500).await;
        assert_eq!(limits.prune(), 1);

        advance(1500).await;
        assert!(limits.check(&[(&p, "10.0.0.3")]).admitted());
        assert_eq!(limits.prune(), 1);
        // A pruned key is as good as fresh.
        assert_eq!(admitted_n(&limits, &p, "10.0.0.1", 10), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_quotas_do_not_panic() {
        let limits = RateLimits::new();
        let z = spec("partner:z", "partner", 0, 0, false);
        assert_eq!(admitted_n(&limits, &z, "z", 3), 1);
        let v = limits.check(&[(&z, "z")]);
        assert_eq!(v.headers.unwrap().policy, r#""partner";q=1;w=1"#);
    }

    #[test]
    fn shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RateLimits>();
        send_sync::<Verdict>();
    }

    #[test]
    fn no_limits_admit_without_headers() {
        let v = RateLimits::new().check(&[]);
        assert!(v.admitted());
        assert_eq!(v, Verdict::default());
    }
}
