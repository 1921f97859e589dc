//! Rate limits and bulkheads (限流与舱壁隔离): per partner, per target platform, per (partner, operation).
//!
//! A small province's platform must not be flooded by a big neighbour, so every request passes
//! two kinds of guard before it is forwarded:
//!
//! - [`RateLimits`]: token-bucket (GCRA) limits, each a sustained rate per second plus a burst,
//!   keyed by partner (or client IP for anonymous callers), by target platform and by
//!   "partner/operation". Over quota → 429 with `Retry-After` and the IETF rate-limit headers
//!   ([`RateLimitHeaders`]). A limit may run in shadow mode (影子模式): it counts what it would
//!   refuse and refuses nothing.
//! - [`Bulkhead`] (舱壁): a per-target concurrency cap with a short, time-bounded wait queue.
//!   A request that cannot get a slot in time → 503 with `Retry-After`.
//!
//! Time comes from tokio ([`clock::TokioClock`]), so tests run on paused time and advancing it
//! refills buckets.

pub mod bulkhead;
pub mod clock;
pub mod headers;
pub mod rate;

pub use bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit, Bulkheads};
pub use clock::{TokioClock, TokioInstant};
pub use headers::RateLimitHeaders;
pub use rate::{LimitSpec, RateLimits, Verdict};
