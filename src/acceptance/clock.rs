//! Wall time for acceptances, following tokio's clock so tests on paused time control retries.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Unix-epoch milliseconds that advance with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: i64,
    start: Instant,
}

impl Clock {
    /// A clock starting at the current wall time.
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Clock { wall_at_start: i64::try_from(wall).unwrap_or(i64::MAX), start: Instant::now() }
    }

    /// Now, in Unix-epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall_at_start.saturating_add(elapsed)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Epoch milliseconds as canonical ISO 8601 Beijing time.
pub fn rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(at) => {
            at.with_timezone(&crate::mapping::datetime::beijing()).to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        }
        None => String::new(),
    }
}
