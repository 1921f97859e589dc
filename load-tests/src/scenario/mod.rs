//! Scenarios: what one request of a run is, what counts as success, and what the gateway needs
//! when the tool starts it. A scenario knows nothing about connections, timing or reports.

mod acceptance;
mod submit;

use std::sync::Arc;

use bytes::Bytes;
use clap::ValueEnum;

/// The scenarios, by their command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// `POST /v1/acceptances` (异地代收代办): each request a new application, committed to the
    /// store before the gateway answers 202.
    Acceptance,
    /// `POST /v1/applications` to a JSON platform (Guizhou): canonical JSON in, JSON out.
    Passthrough,
    /// `POST /v1/applications` to a GBK XML platform (Hunan) through a 36-field mapping.
    Translate,
}

impl ScenarioName {
    /// The scenario for one run. `run_id` makes the run's ids unique, so a rerun against the same
    /// store creates new records instead of replaying old ones.
    pub fn build(self, run_id: u32) -> anyhow::Result<Arc<dyn Scenario>> {
        Ok(match self {
            ScenarioName::Acceptance => Arc::new(acceptance::Acceptance::new(run_id)?),
            ScenarioName::Passthrough => Arc::new(submit::Submit::new(submit::Target::Passthrough, run_id)?),
            ScenarioName::Translate => Arc::new(submit::Submit::new(submit::Target::Translate, run_id)?),
        })
    }
}

/// What a started gateway must provide for a scenario.
#[derive(Debug, Clone, Copy)]
pub struct GatewayNeeds {
    /// Simulated platforms (`[demo] mocks`) to run in-process.
    pub mocks: &'static [&'static str],
}

/// One kind of request, sent over and over.
pub trait Scenario: Send + Sync {
    /// The command-line name.
    fn name(&self) -> &'static str;

    /// One line for the report: what a request does.
    fn describe(&self) -> &'static str;

    /// What the gateway needs when the tool starts it.
    fn needs(&self) -> GatewayNeeds;

    /// Request number `seq` of the run (0, 1, 2, …, each used once): method, path and query,
    /// headers and body. The runner adds `Host`.
    fn request(&self, seq: u64) -> http::Request<Bytes>;

    /// Whether an answer with this status did what the scenario measures.
    fn is_success(&self, status: http::StatusCode) -> bool;

    /// Metric name prefixes worth quoting from the gateway's `/metrics` after the run.
    fn gateway_metrics(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A random id for this run, from the standard library's per-process random hash keys.
pub fn random_run_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    // The high half of a 64-bit hash; truncation is intended.
    (hasher.finish() >> 32) as u32
}
