//! The IETF rate-limit headers (限流响应头), draft-ietf-httpapi-ratelimit-headers, in
//! structured-field syntax:
//!
//! ```text
//! RateLimit-Policy: "partner";q=5;w=1
//! RateLimit: "partner";r=0;t=1
//! ```
//!
//! `q` is the quota in units (the burst), `w` the window in seconds (how long an empty bucket
//! takes to refill), `r` the remaining units and `t` the seconds until the quota is whole again.

use std::time::Duration;

/// Header name of the policy header.
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
/// Header name of the current-state header.
pub const RATELIMIT: &str = "RateLimit";

/// Values for the `RateLimit-Policy` and `RateLimit` headers of one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Policy` value, e.g. `"partner";q=5;w=1`.
    pub policy: String,
    /// `RateLimit` value, e.g. `"partner";r=0;t=1`.
    pub current: String,
}

impl RateLimitHeaders {
    /// Formats the headers of one limit.
    ///
    /// `quota`: burst units; `window_secs`: refill time of a whole burst; `remaining`: units left;
    /// `reset`: time until the bucket is whole again (rounded up to whole seconds).
    pub fn new(policy_name: &str, quota: u32, window_secs: u64, remaining: u32, reset: Duration) -> RateLimitHeaders {
        let name = sf_string(policy_name);
        RateLimitHeaders {
            policy: format!("{name};q={quota};w={window_secs}"),
            current: format!("{name};r={remaining};t={}", ceil_secs(reset)),
        }
    }
}

/// Whole seconds, rounded up: headers and `Retry-After` carry integers, and rounding down would
/// invite a retry that is refused again.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `Retry-After` as HTTP needs it: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: Duration) -> Duration {
    Duration::from_secs(ceil_secs(wait).max(1))
}

/// A structured-field sf-string (RFC 8941 §3.3.3): printable ASCII in quotes, `"` and `\`
/// escaped. Characters outside that range (e.g. Chinese policy names) cannot be carried and
/// become `_`, so a badly named policy still yields a valid header.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_structured_fields() {
        let h = RateLimitHeaders::new("partner", 5, 1, 0, Duration::from_millis(200));
        assert_eq!(h.policy, r#""partner";q=5;w=1"#);
        assert_eq!(h.current, r#""partner";r=0;t=1"#);
    }

    #[test]
    fn escapes_policy_names() {
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("限流"), r#""__""#);
    }

    #[test]
    fn rounds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(retry_after(Duration::from_millis(1200)), Duration::from_secs(2));
    }
}
