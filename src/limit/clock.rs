//! A governor clock (时钟) over tokio's time, so that tests on paused tokio time control when
//! buckets refill, and production uses the same monotonic clock as every tokio timer.

use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, ReasonablyRealtime, Reference};
use governor::nanos::Nanos;

/// A reading of [`TokioClock`]: a newtype around [`tokio::time::Instant`] that governor can use
/// as its [`Reference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokioInstant(pub tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: Nanos) -> TokioInstant {
        // Overflow would need an instant centuries ahead; saturate instead of panicking.
        TokioInstant(self.0.checked_add(Duration::from(other)).unwrap_or(self.0))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        nanos(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(Duration::from(duration)).unwrap_or(self.0))
    }
}

/// Converts without governor's `From<Duration>`, which panics past ~584 years.
fn nanos(d: Duration) -> Nanos {
    Nanos::from(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Governor clock reading [`tokio::time::Instant::now`]; under `tokio::time::pause` it stands
/// still until the test advances it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// Tokio's clock follows real monotonic time (except when paused in tests, where governor's
/// async waits then follow the paused time too, which is what the tests want).
impl ReasonablyRealtime for TokioClock {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = TokioClock;
        let a = clock.now();
        tokio::time::advance(Duration::from_millis(250)).await;
        let b = clock.now();
        assert_eq!(b.duration_since(a), Nanos::from(250_000_000u64));
        // Saturating both ways, as governor requires.
        assert_eq!(a.duration_since(b), Nanos::from(0u64));
        assert_eq!(b.saturating_sub(Nanos::from(250_000_000u64)), a);
        assert_eq!(a + Nanos::from(250_000_000u64), b);
    }
}
