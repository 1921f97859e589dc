//! A progress bar on stderr while a leg runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// How often the bar reads the counter; the rate shown is measured over this interval.
const POLL: Duration = Duration::from_millis(200);

/// The bar's length: its position is progress in thousandths, so it moves smoothly on any run length.
const SCALE: u64 = 1000;

/// A bar on stderr that follows a run's completed requests until the deadline; hidden when stderr is not a
/// terminal (indicatif does this).
///
/// Dropping it has the same effect as [`Progress::finish`], so an early return cannot leave a task polling.
pub struct Progress {
    bar: ProgressBar,
    /// `None` when started outside a tokio runtime: the bar is then only shown, never updated.
    poller: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a bar for a leg named `label` lasting at most `duration` or `max_requests` answers; it polls
    /// `completed` (an atomic counter the runner increments) every 200 ms on a tokio task.
    ///
    /// The bar fills with elapsed time over `duration`, or with answers over `max_requests` when that limit is
    /// nearer, since the run stops at whichever comes first; `max_requests` of 0 means no answer limit.
    pub fn start(label: &str, duration: Duration, max_requests: u64, completed: Arc<AtomicU64>) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(SCALE), ProgressDrawTarget::stderr())
            .with_style(style())
            .with_prefix(label.to_owned());
        bar.set_message(message(Duration::ZERO, duration, 0, 0.0));
        // Outside a runtime `tokio::spawn` would panic; a bar that never moves is the harmless fallback.
        let poller = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(poll(bar.clone(), duration, max_requests, completed)));
        Progress { bar, poller }
    }

    /// Stops polling and clears the bar.
    pub fn finish(self) {
        // The work is in `Drop`, which also covers a `Progress` dropped on an error path.
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // `abort` only asks the task to stop, so this never waits. A tick already under way may still update
        // the bar, but a bar finished and cleared draws nothing more.
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// Updates the bar from the counter every [`POLL`] until aborted.
async fn poll(bar: ProgressBar, duration: Duration, max_requests: u64, completed: Arc<AtomicU64>) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(POLL);
    // After a stall (a busy runtime), skip the missed ticks instead of bursting: the rate uses real time anyway.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last_at, mut last_count) = (started, 0);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let count = completed.load(Ordering::Relaxed);
        let rate = rate(count.saturating_sub(last_count), now.duration_since(last_at));
        let elapsed = now.duration_since(started);
        bar.set_position(progress(elapsed, duration, count, max_requests));
        bar.set_message(message(elapsed, duration, count, rate));
        (last_at, last_count) = (now, count);
    }
}

/// The bar's look: label, bar, then time, answers and rate from [`message`].
fn style() -> ProgressStyle {
    // The template is a constant, so this cannot fail; the plain style is only there to avoid an unwrap.
    ProgressStyle::with_template("{prefix:>10} [{bar:40.cyan/blue}] {msg}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Progress in thousandths: the further along of time and answers, capped at full.
fn progress(elapsed: Duration, duration: Duration, count: u64, max_requests: u64) -> u64 {
    let by_time = if duration.is_zero() { 1.0 } else { elapsed.as_secs_f64() / duration.as_secs_f64() };
    let by_answers = if max_requests == 0 { 0.0 } else { count as f64 / max_requests as f64 };
    (by_time.max(by_answers).clamp(0.0, 1.0) * SCALE as f64).round() as u64
}

/// Answers per second over one poll interval; 0 when no time has passed (the interval's first tick is at once).
fn rate(answers: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { answers as f64 / secs } else { 0.0 }
}

/// "12.3s/30s  45678 answers  3712/s".
fn message(elapsed: Duration, duration: Duration, count: u64, rate: f64) -> String {
    format!("{:.1}s/{}s  {count} answers  {rate:.0}/s", elapsed.as_secs_f64(), duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_the_counter_and_finishes_in_a_multi_thread_runtime() {
        let completed = Arc::new(AtomicU64::new(0));
        let progress = Progress::start("tongban", Duration::from_secs(2), 1_000_000, completed.clone());
        completed.fetch_add(150, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(450)).await;
        // Hidden on a non-terminal stderr, but the bar still keeps its state.
        assert!(progress.bar.position() > 0);
        assert!(progress.bar.message().contains("150 answers"), "{}", progress.bar.message());
        progress.finish();
    }

    #[tokio::test]
    async fn finishes_at_once_in_a_current_thread_runtime() {
        let progress = Progress::start("direct", Duration::ZERO, 0, Arc::new(AtomicU64::new(0)));
        progress.finish();
    }

    #[test]
    fn outside_a_runtime_it_neither_panics_nor_polls() {
        let progress = Progress::start("nginx", Duration::from_secs(1), 10, Arc::new(AtomicU64::new(0)));
        assert!(progress.poller.is_none());
        progress.finish();
    }

    #[test]
    fn progress_follows_the_nearer_limit() {
        let s = Duration::from_secs;
        assert_eq!(progress(s(15), s(30), 0, 1000), 500);
        assert_eq!(progress(s(3), s(30), 900, 1000), 900);
        assert_eq!(progress(s(60), s(30), 0, 1000), 1000);
        assert_eq!(progress(s(1), Duration::ZERO, 0, 0), 1000);
        assert_eq!(progress(Duration::ZERO, s(30), 5, 0), 0);
        assert_eq!(progress(Duration::ZERO, s(30), u64::MAX, 1), 1000);
    }

    #[test]
    fn rate_is_over_the_last_interval() {
        assert_eq!(rate(100, Duration::from_millis(200)), 500.0);
        assert_eq!(rate(100, Duration::ZERO), 0.0);
        assert_eq!(
            message(Duration::from_millis(12_340), Duration::from_secs(30), 45678, 3712.4),
            "12.3s/30s  45678 answers  3712/s"
        );
    }
}
