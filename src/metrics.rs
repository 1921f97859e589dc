//! Metrics (监控指标): one Prometheus registry, every series the gateway exports, registered at
//! start-up and served on the admin listener at `GET /metrics`. Names follow Prometheus
//! conventions (`tongban_…_total`, `…_seconds`); label names are the constants below.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label: local, cross_region, cross_province, or "none" when unknown (status, matters).
pub const ROUTE_KIND: &str = "route_kind";
/// Label: the calling partner, "anonymous" without a key, "unidentified" before identification.
pub const SOURCE: &str = "source";
/// Label: the handling platform (adapter name), or "none" before routing.
pub const TARGET: &str = "target";
/// Label: submit, status, matters, or "none".
pub const OPERATION: &str = "operation";
/// Label: the HTTP status answered.
pub const STATUS: &str = "status";
/// Label: a cause (problem slug, eviction cause, …).
pub const CAUSE: &str = "cause";
/// Label: cache result: hit, miss, collapsed, stale.
pub const RESULT: &str = "result";
/// Label: which limit (policy) refused.
pub const LIMIT: &str = "limit";
/// Label: enforced or shadow.
pub const MODE: &str = "mode";
/// Label: to_native or to_canonical.
pub const DIRECTION: &str = "direction";

/// Latency buckets from 1 ms to 30 s: platform calls take tens of milliseconds to seconds.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Translation buckets from 1 µs to 10 ms.
const TRANSLATION: &[f64] = &[0.000_001, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.01];

/// Every series, ready to record.
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: IntCounterVec,
    /// Whole exchange latency.
    pub request_duration: HistogramVec,
    /// Upstream hop latency.
    pub upstream_duration: HistogramVec,
    /// Translation time.
    pub translation_duration: HistogramVec,
    /// Cache lookups by result.
    pub cache_requests: IntCounterVec,
    /// Cache evictions by cause.
    pub cache_evictions: IntCounterVec,
    /// Cache entries.
    pub cache_entries: IntGauge,
    /// Cache weighted size in bytes.
    pub cache_bytes: IntGauge,
    /// Requests refused (or that shadow limits would have refused).
    pub rate_limited: IntCounterVec,
    /// Bulkhead refusals.
    pub bulkhead_rejected: IntCounterVec,
    /// Upstream errors by cause.
    pub upstream_errors: IntCounterVec,
    /// Requests in flight per target.
    pub upstream_in_flight: IntGaugeVec,
    /// Platform health from the probe (1 up, 0 down).
    pub platform_up: IntGaugeVec,
    /// Configuration reloads by result.
    pub config_reloads: IntCounterVec,
    /// Limiter keys held.
    pub limiter_keys: IntGauge,
    /// Acceptances committed (created) or answered again (replayed).
    pub acceptances: IntCounterVec,
    /// Delivery attempts by outcome.
    pub acceptance_deliveries: IntCounterVec,
    /// Status polls by outcome.
    pub acceptance_polls: IntCounterVec,
    /// Joint acceptances decided, by decision and whether a party was absent.
    pub acceptance_joint_decisions: IntCounterVec,
    /// Acceptances not yet delivered.
    pub acceptance_queue_depth: IntGauge,
    /// Age of the oldest undelivered acceptance.
    pub acceptance_oldest_age_seconds: IntGauge,
    /// Acceptances in the dead letter queue.
    pub acceptance_dead: IntGauge,
    /// Certificate verifications by issuing platform and result.
    pub certificate_verifications: IntCounterVec,
    /// Print job requests by result.
    pub print_jobs: IntCounterVec,
    /// Time to render one certificate PDF.
    pub print_render_duration: HistogramVec,
    /// QR verifications by answer.
    pub print_verifications: IntCounterVec,
    /// Requests refused by the framing guard before hyper saw them, by problem type.
    pub framing_refusals: IntCounterVec,
    /// TLS handshakes that failed (no or unknown client certificate, old protocol, scans).
    pub tls_handshake_failures: IntCounterVec,
    /// Audit records by outcome: written, dropped_queue_full, dropped_write_failed.
    pub audit_records: IntGaugeVec,
}

impl Metrics {
    /// Registers every series. Registration only fails on duplicate names, which these constants
    /// cannot produce, so failures are logged rather than fatal.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let metrics = Metrics {
            requests: counter(
                "tongban_requests_total",
                "Requests answered, by route kind, source partner, target platform, operation and HTTP status.",
                &[ROUTE_KIND, SOURCE, TARGET, OPERATION, STATUS],
            ),
            request_duration: histogram(
                "tongban_request_duration_seconds",
                "Whole exchange latency, from request received to answer ready.",
                &[ROUTE_KIND, TARGET, OPERATION],
                SECONDS,
            ),
            upstream_duration: histogram(
                "tongban_upstream_duration_seconds",
                "Latency of the call to the handling platform.",
                &[TARGET, OPERATION],
                SECONDS,
            ),
            translation_duration: histogram(
                "tongban_translation_duration_seconds",
                "Time spent translating between canonical and native documents.",
                &[TARGET, DIRECTION],
                TRANSLATION,
            ),
            cache_requests: counter(
                "tongban_cache_requests_total",
                "Cacheable lookups by result: hit, miss, collapsed (waited on an identical miss), stale (served on error).",
                &[TARGET, OPERATION, RESULT],
            ),
            cache_evictions: counter("tongban_cache_evictions_total", "Cache entries removed, by cause.", &[CAUSE]),
            cache_entries: gauge("tongban_cache_entries", "Entries in the response cache."),
            cache_bytes: gauge("tongban_cache_bytes", "Approximate bytes held by the response cache."),
            rate_limited: counter(
                "tongban_rate_limited_total",
                "Requests over a rate limit, by limit, source, target and mode (enforced refusals, shadow would-refuse).",
                &[LIMIT, SOURCE, TARGET, MODE],
            ),
            bulkhead_rejected: counter(
                "tongban_bulkhead_rejected_total",
                "Requests refused because a platform's concurrency cap stayed full.",
                &[TARGET],
            ),
            upstream_errors: counter(
                "tongban_upstream_errors_total",
                "Failed calls to platforms, by cause (problem type).",
                &[TARGET, CAUSE],
            ),
            upstream_in_flight: gauge_vec("tongban_upstream_in_flight", "Calls to each platform in flight.", &[TARGET]),
            platform_up: gauge_vec(
                "tongban_platform_up",
                "Last health probe per platform: 1 reachable, 0 not.",
                &[TARGET],
            ),
            config_reloads: counter(
                "tongban_config_reloads_total",
                "Configuration reloads by result (success, failure).",
                &[RESULT],
            ),
            limiter_keys: gauge("tongban_rate_limiter_keys", "Keys held by the rate limiters after pruning."),
            acceptances: counter(
                "tongban_acceptances_total",
                "Proxy acceptances committed (created) or answered again for a repeated key (replayed).",
                &[RESULT],
            ),
            acceptance_deliveries: counter(
                "tongban_acceptance_deliveries_total",
                "Delivery attempts of proxy acceptances by target and outcome (delivered, retry, dead_letter).",
                &[TARGET, RESULT],
            ),
            acceptance_polls: counter(
                "tongban_acceptance_status_polls_total",
                "Status polls of delivered acceptances by target and outcome (changed, unchanged, failed).",
                &[TARGET, RESULT],
            ),
            acceptance_joint_decisions: counter(
                "tongban_acceptance_joint_decisions_total",
                "Multi-site joint acceptances decided, by result (approved, rejected) and absent (true when the absence rule decided for a party).",
                &[RESULT, "absent"],
            ),
            certificate_verifications: counter(
                "tongban_certificate_verifications_total",
                "Certificate signature checks, by issuing platform (target) and result (verified, unsigned, unknown-key, algorithm-mismatch, key-not-trusted, bad-signature, issuer-mismatch).",
                &["target", RESULT],
            ),
            print_jobs: counter(
                "tongban_print_jobs_total",
                "Print job requests and confirmations, by result (created, reprint, printed, not_printable, reprint_reason_required, unprintable).",
                &[RESULT],
            ),
            print_render_duration: histogram(
                "tongban_print_render_seconds",
                "Time to render one certificate PDF.",
                &[],
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            print_verifications: counter(
                "tongban_print_verifications_total",
                "QR code verifications, by answer (genuine, reprinted, superseded, cancelled, expired, unconfirmed, unknown).",
                &[RESULT],
            ),
            acceptance_queue_depth: gauge(
                "tongban_acceptance_queue_depth",
                "Acceptances accepted but not yet delivered.",
            ),
            acceptance_oldest_age_seconds: gauge(
                "tongban_acceptance_oldest_age_seconds",
                "Age of the oldest acceptance not yet delivered.",
            ),
            acceptance_dead: gauge("tongban_acceptance_dead_letters", "Acceptances in the dead letter queue."),
            framing_refusals: counter(
                "tongban_framing_refusals_total",
                "Requests refused for their framing (smuggling shapes, oversize or malformed heads), by problem type.",
                &["problem"],
            ),
            tls_handshake_failures: counter(
                "tongban_tls_handshake_failures_total",
                "TLS handshakes on the public listener that failed (no or unknown client certificate, old protocol, scans).",
                &[],
            ),
            audit_records: gauge_vec(
                "tongban_audit_records",
                "Audit records since start, by outcome: written, dropped_queue_full, dropped_write_failed.",
                &["outcome"],
            ),
            registry,
        };
        let build = gauge_vec("tongban_build_info", "Build information; the value is always 1.", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.requests.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.upstream_duration.clone()),
            Box::new(metrics.translation_duration.clone()),
            Box::new(metrics.cache_requests.clone()),
            Box::new(metrics.cache_evictions.clone()),
            Box::new(metrics.cache_entries.clone()),
            Box::new(metrics.cache_bytes.clone()),
            Box::new(metrics.rate_limited.clone()),
            Box::new(metrics.bulkhead_rejected.clone()),
            Box::new(metrics.upstream_errors.clone()),
            Box::new(metrics.upstream_in_flight.clone()),
            Box::new(metrics.platform_up.clone()),
            Box::new(metrics.config_reloads.clone()),
            Box::new(metrics.limiter_keys.clone()),
            Box::new(metrics.acceptances.clone()),
            Box::new(metrics.acceptance_deliveries.clone()),
            Box::new(metrics.acceptance_polls.clone()),
            Box::new(metrics.acceptance_joint_decisions.clone()),
            Box::new(metrics.acceptance_queue_depth.clone()),
            Box::new(metrics.acceptance_oldest_age_seconds.clone()),
            Box::new(metrics.acceptance_dead.clone()),
            Box::new(metrics.certificate_verifications.clone()),
            Box::new(metrics.print_jobs.clone()),
            Box::new(metrics.print_render_duration.clone()),
            Box::new(metrics.print_verifications.clone()),
            Box::new(metrics.framing_refusals.clone()),
            Box::new(metrics.tls_handshake_failures.clone()),
            Box::new(metrics.audit_records.clone()),
            Box::new(build),
        ];
        for collector in collectors {
            if let Err(err) = metrics.registry.register(collector) {
                tracing::error!(error = %err, "A metric could not be registered.");
            }
        }
        metrics
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "Metrics could not be encoded.");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

// The constructors below only fail on malformed names or label sets, which are constants here;
// a failure would be a programming error caught by the unit test (no `tongban_invalid` series),
// so each falls back to a valid placeholder rather than panic.
fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| counter("tongban_invalid_metric_total", "placeholder", &[]))
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .unwrap_or_else(|_| histogram("tongban_invalid_seconds", "placeholder", &[], &[1.0]))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|_| gauge("tongban_invalid_gauge", "placeholder"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| gauge_vec("tongban_invalid_gauge", "placeholder", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_registers_and_renders() {
        let metrics = Metrics::new();
        metrics.requests.with_label_values(&["cross_province", "anonymous", "guizhou", "submit", "201"]).inc();
        let text = metrics.render();
        assert!(text.contains("tongban_build_info{version=\""), "{text}");
        assert!(text.contains(
            "tongban_requests_total{operation=\"submit\",route_kind=\"cross_province\",source=\"anonymous\",status=\"201\",target=\"guizhou\"} 1"
        ));
        assert!(!text.contains("tongban_invalid"), "a metric failed to build: {text}");
    }
}
