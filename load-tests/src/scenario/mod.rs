//! Scenarios: what one request of a run is, what counts as success, and what the gateway needs
//! when the tool starts it. A scenario knows nothing about connections, timing or reports.

mod acceptance;
mod lookup;
mod native;
pub mod replay;
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
    /// `POST /v1/native/hunan/submit`: a Hunan window's GBK XML in, the Guangdong platform's JSON
    /// envelope out, and GBK XML back (native ingress).
    NativeIngress,
    /// `GET /v1/applications/{id}`: the same application's state (办件查询), answered from the cache.
    CachedStatus,
    /// `GET /v1/matters` by a partner limited to a few hundred requests a second: most answers are
    /// the rate limiter's `429`.
    RateLimited,
}

impl ScenarioName {
    /// The scenario for one run. `run_id` makes the run's ids unique, so a rerun against the same
    /// store creates new records instead of replaying old ones.
    pub fn build(self, run_id: u32) -> anyhow::Result<Arc<dyn Scenario>> {
        Ok(match self {
            ScenarioName::Acceptance => Arc::new(acceptance::Acceptance::new(run_id)?),
            ScenarioName::Passthrough => Arc::new(submit::Submit::new(submit::Target::Passthrough, run_id)?),
            ScenarioName::Translate => Arc::new(submit::Submit::new(submit::Target::Translate, run_id)?),
            ScenarioName::NativeIngress => Arc::new(native::NativeIngress::new(run_id)),
            ScenarioName::CachedStatus => Arc::new(lookup::CachedStatus::new(run_id)?),
            ScenarioName::RateLimited => Arc::new(lookup::RateLimited),
        })
    }
}

/// What a started gateway must provide for a scenario.
#[derive(Debug, Clone, Copy)]
pub struct GatewayNeeds {
    /// Simulated platforms to start (`tongban mock`), each its own process.
    pub mocks: &'static [&'static str],
    /// `[[partner]]` tables added to the configuration (TOML), for scenarios that call as a partner.
    pub partners: &'static str,
}

impl GatewayNeeds {
    /// Platforms only, anonymous callers.
    pub const fn platforms(mocks: &'static [&'static str]) -> GatewayNeeds {
        GatewayNeeds { mocks, partners: "" }
    }
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
    /// headers and body. The runner adds `Host`. Request 0 is the pre-flight check.
    fn request(&self, seq: u64) -> http::Request<Bytes>;

    /// Requests sent once before the pre-flight check, each of which must succeed (2xx): what
    /// the measured requests read, e.g. the application whose state is looked up.
    fn setup(&self) -> Vec<http::Request<Bytes>> {
        Vec::new()
    }

    /// The simulated platform whose native request the `direct` and `nginx` legs of a side-by-side
    /// run replay (the one the pre-flight check reaches); `None` when requests never reach a
    /// platform in the same way (refusals, durable acceptances answered before delivery).
    fn platform(&self) -> Option<&'static str> {
        None
    }

    /// What makes request `seq` unique (its application id), as it appears in the native request
    /// too: the replayed native request carries request `seq`'s value where request 0's was.
    fn unique(&self, _seq: u64) -> Option<String> {
        None
    }

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
