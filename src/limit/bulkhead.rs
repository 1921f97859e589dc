//! Bulkheads (舱壁隔离): a per-target cap on requests in flight, so one slow platform cannot tie
//! up every connection and task of the gateway. A request that finds the target full waits in a
//! short queue (bounded by time: `queue_timeout`); when the wait times out the gateway answers
//! 503 with `Retry-After`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `Retry-After` when the queue timed out: the platform is busy now, not broken.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A per-target concurrency cap with a time-bounded wait queue.
#[derive(Debug)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    max: usize,
    queue_timeout: Duration,
    waiting: AtomicUsize,
}

/// A slot in a [`Bulkhead`]; released on drop.
#[derive(Debug)]
pub struct BulkheadPermit {
    _slot: OwnedSemaphorePermit,
}

/// No slot became free within the queue timeout (舱壁已满).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadFull {
    /// Suggested `Retry-After`.
    pub retry_after: Duration,
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "too many requests in flight to the target; retry after {} s", self.retry_after.as_secs())
    }
}

impl std::error::Error for BulkheadFull {}

/// Counts a waiter for as long as it waits, also when its future is dropped mid-wait.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    /// A bulkhead admitting `max_concurrency` requests at once (at least 1; 0 would refuse
    /// everything and is a config error), each other request waiting up to `queue_timeout`.
    pub fn new(max_concurrency: usize, queue_timeout: Duration) -> Bulkhead {
        let max = max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Bulkhead { slots: Arc::new(Semaphore::new(max)), max, queue_timeout, waiting: AtomicUsize::new(0) }
    }

    /// Waits up to `queue_timeout` (tokio time) for a slot. Waiters are served in arrival order.
    pub async fn enter(&self) -> Result<BulkheadPermit, BulkheadFull> {
        let full = BulkheadFull { retry_after: FULL_RETRY_AFTER };
        // Fast path: no timer when a slot is free.
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(BulkheadPermit { _slot: slot });
        }
        let _waiting = Waiting::new(&self.waiting);
        match tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(slot)) => Ok(BulkheadPermit { _slot: slot }),
            // Timed out; (the semaphore is never closed, but treat that as full too).
            Ok(Err(_)) | Err(_) => Err(full),
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The concurrency cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The longest a request waits for a slot.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }
}

/// Bulkheads by target name, surviving reloads when the target's settings are unchanged.
#[derive(Debug, Default)]
pub struct Bulkheads {
    by_target: Mutex<HashMap<String, Arc<Bulkhead>>>,
}

impl Bulkheads {
    /// No bulkheads yet.
    pub fn new() -> Self {
        Bulkheads::default()
    }

    /// The target's bulkhead; a new one if the target is new or its `max` or `queue_timeout`
    /// changed (requests in flight on the old one finish there, uncounted by the new one).
    pub fn get_or_create(&self, target: &str, max: usize, queue_timeout: Duration) -> Arc<Bulkhead> {
        let wanted = max.clamp(1, Semaphore::MAX_PERMITS);
        let mut by_target = self.by_target.lock().unwrap_or_else(PoisonError::into_inner);
        match by_target.get(target) {
            Some(b) if b.max == wanted && b.queue_timeout == queue_timeout => Arc::clone(b),
            _ => {
                let b = Arc::new(Bulkhead::new(max, queue_timeout));
                by_target.insert(target.to_owned(), Arc::clone(&b));
                b
            }
        }
    }

    /// Drops the bulkheads of targets no longer configured.
    pub fn retain(&self, targets: &[&str]) {
        let mut by_target = self.by_target.lock().unwrap_or_else(PoisonError::into_inner);
        by_target.retain(|name, _| targets.contains(&name.as_str()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn third_request_waits_then_times_out() {
        let b = Bulkhead::new(2, Duration::from_millis(500));
        let p1 = b.enter().await.unwrap();
        let _p2 = b.enter().await.unwrap();
        assert_eq!((b.in_flight(), b.max()), (2, 2));

        // Paused time auto-advances to the timeout once nothing else can run.
        let full = b.enter().await.unwrap_err();
        assert_eq!(full, BulkheadFull { retry_after: Duration::from_secs(1) });
        assert_eq!(b.waiting(), 0);

        drop(p1);
        assert_eq!(b.in_flight(), 1);
        let _p3 = b.enter().await.unwrap();
        assert_eq!(b.in_flight(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn releasing_a_permit_lets_a_waiter_in() {
        let b = Arc::new(Bulkhead::new(2, Duration::from_secs(1)));
        let p1 = b.enter().await.unwrap();
        let _p2 = b.enter().await.unwrap();
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.enter().await.map(|_permit| ()) }
        });
        tokio::task::yield_now().await;
        assert_eq!(b.waiting(), 1);

        tokio::time::advance(Duration::from_millis(300)).await;
        drop(p1);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // The waiter's permit was dropped when it finished.
        assert_eq!(b.in_flight(), 1);
        assert_eq!(b.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn bulkheads_survive_unchanged_reloads() {
        let bs = Bulkheads::new();
        let a = bs.get_or_create("guizhou", 4, Duration::from_millis(200));
        let _permit = a.enter().await.unwrap();
        let same = bs.get_or_create("guizhou", 4, Duration::from_millis(200));
        assert!(Arc::ptr_eq(&a, &same));
        assert_eq!(same.in_flight(), 1);

        let changed = bs.get_or_create("guizhou", 8, Duration::from_millis(200));
        assert!(!Arc::ptr_eq(&a, &changed));
        assert_eq!((changed.in_flight(), changed.max()), (0, 8));

        let other = bs.get_or_create("guangdong", 2, Duration::from_millis(200));
        bs.retain(&["guangdong"]);
        assert!(Arc::ptr_eq(&other, &bs.get_or_create("guangdong", 2, Duration::from_millis(200))));
        assert!(!Arc::ptr_eq(&changed, &bs.get_or_create("guizhou", 8, Duration::from_millis(200))));
    }

    #[test]
    fn shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Bulkheads>();
        send_sync::<BulkheadPermit>();
    }

    #[test]
    fn zero_concurrency_counts_as_one() {
        let b = Bulkhead::new(0, Duration::from_millis(10));
        assert_eq!(b.max(), 1);
        assert!(BulkheadFull { retry_after: Duration::from_secs(1) }.to_string().contains("retry after 1 s"));
    }
}
