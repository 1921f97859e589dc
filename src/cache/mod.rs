//! Response cache (响应缓存) for idempotent lookups: status queries (办件状态查询) and matter lists
//! (事项清单) are answered from memory so that repeated lookups never reach the platforms. Writes
//! (申报提交) are never cached; the gateway only calls [`ResponseCache::get_or_fetch_with`] for operations
//! it knows to be idempotent, and the cache decides whether to call the platform at all.
//!
//! # What is kept
//!
//! One entry per [`CacheKey`]: the target platform (adapter name), the operation, the canonical
//! request (serialised with sorted keys, so equal requests are equal strings) and, when the
//! adapter marks the data caller-scoped (按调用方隔离), the calling partner. Entries live in a moka
//! 0.12 `future::Cache` bounded in bytes (容量按字节计): each entry weighs the serialised size of its
//! JSON value plus the bytes of its key, and the total stays under `max_bytes`. When full, moka's
//! TinyLFU policy decides what stays: a newcomer that is less popular than the entry it would
//! displace is refused admission (reported as a `"size"` eviction), so one scan of unique lookups
//! cannot flush the entries that are asked for again and again.
//!
//! # Freshness (新鲜度) and stale-if-error (故障时用旧值)
//!
//! Every entry records when it was stored as a `tokio::time::Instant`, and freshness is decided
//! with the caller's [`CachePolicy`] at lookup time (so a reload that shortens a ttl takes effect
//! at once, and tests drive time with tokio's paused clock):
//!
//! * fresh while `now < stored + ttl`: answered from memory;
//! * stale while `now < stored + ttl + stale_if_error`: the platform is asked again, and only if
//!   that fails with an error the caller says permits it (unreachable, timeout, unavailable — not a
//!   refusal or a bad request) is the old value served, marked stale;
//! * past that, the entry is as good as gone. moka is told to drop each entry
//!   `ttl + stale_if_error` after insertion (its [`moka::Expiry`], on its own clock), which only
//!   reclaims memory; it never decides freshness.
//!
//! # Single flight (合并回源)
//!
//! N concurrent lookups of one key that all miss make exactly one platform call. The first
//! becomes the leader: it registers a flight (an in-flight map entry holding a `tokio::sync::watch`
//! receiver), calls the fetch closure, stores a success, and publishes its answer — success, error
//! or stale value alike — to everyone who joined the flight; they get the same result marked
//! [`CacheOutcome::Collapsed`] (or [`CacheOutcome::Stale`] when the stale value stood in). Errors
//! are shared this way but never stored: the next lookup after the flight asks the platform again.
//! If the leader is cancelled (its caller went away) its flight is withdrawn and a waiter takes
//! over with its own fetch closure. moka's `entry().and_try_compute_with` was not used for this:
//! it serialises computes per key, but every waiter then runs its own closure after the leader's,
//! so an error would be fetched N times and a waiter could not tell it had been collapsed.
//!
//! # `Cache-Status` (RFC 9211)
//!
//! [`CacheOutcome::header_value`] gives the member this cache adds to the `Cache-Status` response
//! header, named `tongban`. The exact strings:
//!
//! | outcome | value |
//! | --- | --- |
//! | miss, answer stored | `tongban; fwd=miss; stored` |
//! | miss, answer not stored (an error, ttl and stale window both zero, or a purge raced the fetch) | `tongban; fwd=miss` |
//! | fresh hit, 42.7 s of freshness left | `tongban; hit; ttl=42` |
//! | waited on another request's fetch | `tongban; fwd=miss; collapsed` |
//! | stale value served because the platform failed with 504, 12.3 s after expiry | `tongban; fwd=stale; fwd-status=504; ttl=-13; detail=stale-if-error` |
//! | the same without a known status | `tongban; fwd=stale; ttl=-13; detail=stale-if-error` |
//!
//! Every parameter is a valid structured field (RFC 8941): `tongban`, `miss`, `stale` and
//! `stale-if-error` are tokens, `ttl` and `fwd-status` integers, bare `hit`/`stored`/`collapsed`
//! booleans true. `ttl` is the remaining freshness lifetime in whole seconds rounded down (towards
//! −∞), so a stale answer carries a negative ttl. RFC 9211 §2.1 makes `hit` and `fwd` exclusive; a
//! stale-if-error answer went forward (the platform was asked and failed), so it carries
//! `fwd=stale` and no `hit`; `fwd-status` is left out when the failure had no status, although the
//! RFC then reads it as the status of the response sent.
//!
//! # Purge (清除) and reload
//!
//! [`ResponseCache::purge`] removes entries by target, by operation, by exact key or all of them and
//! says how many went; [`ResponseCache::retain_targets`] drops the entries of platforms a reloaded
//! configuration no longer has, so the same cache survives a reload. A purge also stops any matching
//! fetch already in flight from storing its answer, so a purge is never undone by a slow platform
//! call.
//!
//! # Statistics (统计)
//!
//! [`ResponseCache::entry_count`] and [`ResponseCache::weighted_size`] feed gauges; the closure given
//! to [`ResponseCache::new`] hears every removal with its cause: `"size"`, `"expired"`,
//! `"explicit"` (a purge) or `"replaced"` (a refresh overwrote the entry). moka applies evictions
//! and updates its counts in batches; [`ResponseCache::run_pending_tasks`] flushes them.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// The cache's name in `Cache-Status`.
const NAME: &str = "tongban";

/// Upper bound on how long moka keeps an entry: guards its clock arithmetic against absurd
/// configured durations.
const MAX_RETENTION: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Largest magnitude an RFC 8941 integer may have.
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Cache policy (缓存策略) of one operation of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Time to live (有效期): how long an answer is served without asking the platform.
    pub ttl: Duration,
    /// Stale-if-error window (故障容忍期) after the ttl: how long an expired answer may still stand
    /// in when the platform fails.
    pub stale_if_error: Duration,
}

impl CachePolicy {
    /// How long an entry is worth keeping at all.
    fn retention(&self) -> Duration {
        self.ttl.saturating_add(self.stale_if_error).min(MAX_RETENTION)
    }

    /// Where an entry stored at `stored` stands at `now`.
    fn age(&self, stored: Instant, now: Instant) -> Age {
        let elapsed = now.saturating_duration_since(stored);
        if elapsed < self.ttl {
            Age::Fresh { ttl_left: self.ttl - elapsed }
        } else if elapsed < self.ttl.saturating_add(self.stale_if_error) {
            Age::Stale { expired_for: elapsed - self.ttl }
        } else {
            Age::Gone
        }
    }
}

/// Where an entry stands against a policy.
enum Age {
    Fresh { ttl_left: Duration },
    Stale { expired_for: Duration },
    Gone,
}

/// Cache key (缓存键): which answer an entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Target platform (目标平台): the adapter name.
    pub target: String,
    /// Operation (操作), e.g. `status` or `matters`.
    pub operation: String,
    /// Normalised canonical request (规范化请求); the gateway serialises it with sorted keys.
    pub request: String,
    /// Calling partner (调用方), set when the adapter marks the data caller-scoped so that one
    /// partner's answer is never served to another.
    pub partner: Option<String>,
}

impl CacheKey {
    /// Bytes the key itself holds.
    fn bytes(&self) -> u64 {
        let partner = self.partner.as_ref().map_or(0, String::len);
        [self.target.len(), self.operation.len(), self.request.len(), partner].iter().map(|&n| n as u64).sum()
    }
}

/// How an answer was obtained (缓存结果); gives the `Cache-Status` value and the metrics label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Miss (未命中): the platform was asked and its answer stored.
    Miss,
    /// Fresh hit (命中): answered from memory.
    Hit {
        /// Freshness left.
        ttl_left: Duration,
    },
    /// Collapsed (合并): waited on another request's platform call and got its result.
    Collapsed,
    /// Stale (过期兜底): the platform failed and an expired answer within its stale-if-error window
    /// stood in.
    Stale {
        /// How long ago the answer stopped being fresh.
        expired_for: Duration,
        /// Status of the failure (e.g. 503, 504), when the caller knows one.
        fwd_status: Option<u16>,
    },
    /// Miss not stored (未缓存): the platform was asked but nothing was stored — it failed, the
    /// policy keeps nothing, or a purge happened during the call.
    NotStored,
}

impl CacheOutcome {
    /// The `Cache-Status` member (RFC 9211) for this outcome; the strings are listed in the
    /// module documentation.
    pub fn header_value(&self) -> String {
        match self {
            CacheOutcome::Miss => format!("{NAME}; fwd=miss; stored"),
            CacheOutcome::NotStored => format!("{NAME}; fwd=miss"),
            CacheOutcome::Collapsed => format!("{NAME}; fwd=miss; collapsed"),
            CacheOutcome::Hit { ttl_left } => format!("{NAME}; hit; ttl={}", ttl_left.as_secs().min(SF_INTEGER_MAX)),
            CacheOutcome::Stale { expired_for, fwd_status } => {
                // Rounded towards −∞ like the hit's ttl: 0.2 s past expiry is ttl=-1.
                let past = expired_for.as_secs().saturating_add(u64::from(expired_for.subsec_nanos() > 0));
                let ttl = past.min(SF_INTEGER_MAX);
                let ttl = if ttl == 0 { "0".to_owned() } else { format!("-{ttl}") };
                match fwd_status {
                    Some(status) => {
                        format!("{NAME}; fwd=stale; fwd-status={status}; ttl={ttl}; detail=stale-if-error")
                    }
                    None => format!("{NAME}; fwd=stale; ttl={ttl}; detail=stale-if-error"),
                }
            }
        }
    }

    /// Metrics label (监控标签): `miss`, `hit`, `collapsed` or `stale`.
    pub fn label(&self) -> &'static str {
        match self {
            CacheOutcome::Miss | CacheOutcome::NotStored => "miss",
            CacheOutcome::Hit { .. } => "hit",
            CacheOutcome::Collapsed => "collapsed",
            CacheOutcome::Stale { .. } => "stale",
        }
    }

    /// What a request that joined a flight reports, given the leader's outcome.
    fn for_waiter(self) -> CacheOutcome {
        match self {
            CacheOutcome::Miss | CacheOutcome::NotStored | CacheOutcome::Collapsed => CacheOutcome::Collapsed,
            // The waiter was served the same stale (or fresh) value: say so.
            stale_or_hit @ (CacheOutcome::Stale { .. } | CacheOutcome::Hit { .. }) => stale_or_hit,
        }
    }
}

/// Whether a failed platform call may be covered by a stale answer (故障时是否用旧值), decided by
/// the caller for each error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleOnError {
    /// Return the error (a refusal, a bad request: the platform answered, and the answer matters).
    Refuse,
    /// Serve a stale answer if one is within its window.
    Serve {
        /// Status of the failure for `Cache-Status`' `fwd-status`, when known.
        fwd_status: Option<u16>,
    },
}

/// What to purge (清除范围).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Everything.
    All,
    /// Every entry of one target platform (adapter name).
    Target(String),
    /// Every entry of one operation, of one target or of all of them.
    Operation {
        /// The target, or `None` for every target.
        target: Option<String>,
        /// The operation.
        operation: String,
    },
    /// One exact key.
    Key(CacheKey),
}

impl Purge {
    /// Whether `key` falls under this purge.
    pub fn matches(&self, key: &CacheKey) -> bool {
        match self {
            Purge::All => true,
            Purge::Target(target) => key.target == *target,
            Purge::Operation { target, operation } => {
                key.operation == *operation && target.as_ref().is_none_or(|target| key.target == *target)
            }
            Purge::Key(exact) => key == exact,
        }
    }
}

/// One stored answer.
struct Entry {
    value: Value,
    /// When it was stored, on tokio's clock (paused in tests).
    stored: Instant,
    /// How long moka keeps it.
    retain: Duration,
    /// Its weight in bytes, computed once.
    weight: u32,
}

/// Tells moka to drop each entry once its stale-if-error window is over.
struct Retention;

impl Expiry<CacheKey, Arc<Entry>> for Retention {
    fn expire_after_create(&self, _: &CacheKey, entry: &Arc<Entry>, _: std::time::Instant) -> Option<Duration> {
        Some(entry.retain)
    }

    // A refresh restarts the clock with the new answer's policy; the default would keep the old
    // deadline.
    fn expire_after_update(
        &self,
        _: &CacheKey,
        entry: &Arc<Entry>,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.retain)
    }
}

/// A result and how it was obtained, as a flight publishes it.
type Answer<E> = (Result<Value, E>, CacheOutcome);

/// The receiving side of a flight, as kept in the in-flight map.
type FlightReceiver<E> = watch::Receiver<Option<Answer<E>>>;

/// In-flight platform calls by key. The receivers are type-erased because the error type is
/// chosen per call; a key is only ever fetched with one error type in practice.
type Flights = Mutex<HashMap<CacheKey, Box<dyn Any + Send + Sync>>>;

/// What a lookup that missed does.
enum Role<E> {
    /// Another request is fetching this key: wait for its answer.
    Wait(FlightReceiver<E>),
    /// Fetch and publish to whoever joins.
    Lead(watch::Sender<Option<Answer<E>>>),
    /// A flight with another error type is on (never in the gateway): fetch without sharing.
    Alone,
}

/// Withdraws the leader's flight however the leader ends: answered, cancelled or panicking.
struct FlightGuard<'a> {
    flights: &'a Flights,
    key: &'a CacheKey,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).remove(self.key);
    }
}

/// The response cache (响应缓存). Keep one for the life of the process and share it (e.g. in an
/// `Arc`) across configuration reloads.
pub struct ResponseCache {
    cache: Cache<CacheKey, Arc<Entry>>,
    flights: Flights,
    /// Bumped by every purge that finds a matching fetch in flight; a fetch that sees it change
    /// does not store its answer.
    purges: AtomicU64,
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .field("max_bytes", &self.cache.policy().max_capacity())
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache holding at most about `max_bytes` bytes of answers and keys. `on_evict` hears
    /// every removal with its cause: `"size"`, `"expired"`, `"explicit"` or `"replaced"`.
    pub fn new(max_bytes: u64, on_evict: impl Fn(&'static str) + Send + Sync + 'static) -> ResponseCache {
        let cache = Cache::builder()
            .name("tongban-response-cache")
            .max_capacity(max_bytes)
            .weigher(|_: &CacheKey, entry: &Arc<Entry>| entry.weight)
            .expire_after(Retention)
            .eviction_listener(move |_, _, cause| on_evict(cause_label(cause)))
            .build();
        ResponseCache { cache, flights: Mutex::new(HashMap::new()), purges: AtomicU64::new(0) }
    }

    /// The answer for `key`: from memory while fresh, otherwise from `fetch` — called at most once
    /// for all concurrent lookups of the key — with a stale answer standing in when `fetch` fails
    /// with an error for which `stale` says so (giving the failure's status for `Cache-Status`'
    /// `fwd-status`). Errors are never stored.
    pub async fn get_or_fetch_with<E, F, Fut>(
        &self,
        key: CacheKey,
        policy: CachePolicy,
        stale: impl Fn(&E) -> StaleOnError,
        fetch: F,
    ) -> (Result<Value, E>, CacheOutcome)
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        loop {
            if let Some(hit) = self.fresh(&key, policy).await {
                return hit;
            }
            match self.join_or_lead::<E>(&key) {
                Role::Wait(mut flight) => {
                    let answer = match flight.wait_for(Option::is_some).await {
                        Ok(published) => published.clone(),
                        Err(_) => None,
                    };
                    match answer {
                        Some((result, outcome)) => return (result, outcome.for_waiter()),
                        // The leader was cancelled before answering: look again, and lead if need be.
                        None => continue,
                    }
                }
                Role::Lead(publish) => {
                    let _flight = FlightGuard { flights: &self.flights, key: &key };
                    // A leader that finished between our lookup and our taking the flight has
                    // stored its answer: use it rather than asking the platform again.
                    if let Some(hit) = self.fresh(&key, policy).await {
                        return hit;
                    }
                    let answer = self.fetch_and_store(&key, policy, &stale, fetch).await;
                    // Publish before the guard withdraws the flight, so a request arriving in
                    // between either joins and gets this answer or finds it stored.
                    publish.send_replace(Some(answer.clone()));
                    return answer;
                }
                Role::Alone => return self.fetch_and_store(&key, policy, &stale, fetch).await,
            }
        }
    }

    /// Purges entries (清除缓存) and returns how many were removed.
    pub async fn purge(&self, purge: &Purge) -> u64 {
        self.fence(|key| purge.matches(key));
        match purge {
            Purge::Key(key) => u64::from(self.cache.remove(key).await.is_some()),
            _ => self.remove_where(|key| purge.matches(key)).await,
        }
    }

    /// Drops the entries of every target not in `targets` (after a configuration reload) and
    /// returns how many were removed.
    pub async fn retain_targets(&self, targets: &[&str]) -> u64 {
        let doomed = |key: &CacheKey| !targets.contains(&key.target.as_str());
        self.fence(doomed);
        self.remove_where(doomed).await
    }

    /// Entries held (条目数), as of moka's last housekeeping.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes held (占用字节数, the sum of entry weights), as of moka's last housekeeping.
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Runs moka's pending housekeeping now: evictions, expirations and the counts above.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// The stored answer for `key` if it is fresh under `policy`.
    async fn fresh<E>(&self, key: &CacheKey, policy: CachePolicy) -> Option<(Result<Value, E>, CacheOutcome)> {
        let entry = self.cache.get(key).await?;
        match policy.age(entry.stored, Instant::now()) {
            Age::Fresh { ttl_left } => Some((Ok(entry.value.clone()), CacheOutcome::Hit { ttl_left })),
            Age::Stale { .. } | Age::Gone => None,
        }
    }

    /// Joins the flight for `key`, or starts one.
    fn join_or_lead<E: Clone + Send + Sync + 'static>(&self, key: &CacheKey) -> Role<E> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        match flights.get(key) {
            Some(flight) => match flight.downcast_ref::<FlightReceiver<E>>() {
                Some(receiver) => Role::Wait(receiver.clone()),
                None => Role::Alone,
            },
            None => {
                let (sender, receiver) = watch::channel(None);
                flights.insert(key.clone(), Box::new(receiver));
                Role::Lead(sender)
            }
        }
    }

    /// Calls the platform; stores a success, or lets a stale answer cover a permitted failure.
    async fn fetch_and_store<E, F, Fut>(
        &self,
        key: &CacheKey,
        policy: CachePolicy,
        stale: &impl Fn(&E) -> StaleOnError,
        fetch: F,
    ) -> (Result<Value, E>, CacheOutcome)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        let purges_before = self.purges.load(Ordering::SeqCst);
        let error = match fetch().await {
            Ok(value) => {
                let outcome = if self.store(key, &value, policy, purges_before).await {
                    CacheOutcome::Miss
                } else {
                    CacheOutcome::NotStored
                };
                return (Ok(value), outcome);
            }
            Err(error) => error,
        };
        let StaleOnError::Serve { fwd_status } = stale(&error) else {
            return (Err(error), CacheOutcome::NotStored);
        };
        let Some(entry) = self.cache.get(key).await else {
            return (Err(error), CacheOutcome::NotStored);
        };
        match policy.age(entry.stored, Instant::now()) {
            Age::Stale { expired_for } => (Ok(entry.value.clone()), CacheOutcome::Stale { expired_for, fwd_status }),
            // Only when a fetch of another error type stored one meanwhile.
            Age::Fresh { ttl_left } => (Ok(entry.value.clone()), CacheOutcome::Hit { ttl_left }),
            Age::Gone => (Err(error), CacheOutcome::NotStored),
        }
    }

    /// Stores a fresh answer unless the policy keeps nothing or a purge began since
    /// `purges_before`; says whether it is stored.
    async fn store(&self, key: &CacheKey, value: &Value, policy: CachePolicy, purges_before: u64) -> bool {
        let retain = policy.retention();
        if retain.is_zero() || self.purges.load(Ordering::SeqCst) != purges_before {
            return false;
        }
        let weight = u32::try_from(key.bytes().saturating_add(json_bytes(value))).unwrap_or(u32::MAX);
        let entry = Entry { value: value.clone(), stored: Instant::now(), retain, weight };
        self.cache.insert(key.clone(), Arc::new(entry)).await;
        // A purge that began after the check above may have looked before the insert landed:
        // take the answer back rather than let it outlive the purge.
        if self.purges.load(Ordering::SeqCst) != purges_before {
            self.cache.remove(key).await;
            return false;
        }
        true
    }

    /// Stops fetches in flight for doomed keys from storing their (pre-purge) answers. Flights
    /// registered after this look started their calls after the purge, so their answers may be
    /// stored; the counter is bumped before any entry is removed, which [`Self::store`] relies on.
    fn fence(&self, doomed: impl Fn(&CacheKey) -> bool) {
        let flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.keys().any(doomed) {
            self.purges.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Removes every entry whose key satisfies `doomed`; returns how many were removed.
    async fn remove_where(&self, doomed: impl Fn(&CacheKey) -> bool) -> u64 {
        let keys: Vec<Arc<CacheKey>> = self.cache.iter().filter(|(key, _)| doomed(key)).map(|(key, _)| key).collect();
        let mut removed = 0;
        for key in keys {
            if self.cache.remove(key.as_ref()).await.is_some() {
                removed += 1;
            }
        }
        removed
    }
}

/// The cause label for metrics.
fn cause_label(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Size => "size",
        RemovalCause::Expired => "expired",
        RemovalCause::Explicit => "explicit",
        RemovalCause::Replaced => "replaced",
    }
}

/// Serialised size of a JSON value, counted without building the string.
fn json_bytes(value: &Value) -> u64 {
    let mut counter = ByteCounter(0);
    // Serialising a `Value` into a writer that never fails cannot fail; a partial count would
    // still be a fair weight.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A writer that only counts.
struct ByteCounter(u64);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
