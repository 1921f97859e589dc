//! The gateway's own config file (`config/tongban.toml`), as written.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayConfig {
    /// Listeners and request limits.
    #[serde(default)]
    pub server: RawServer,
    /// Defaults for calls to platforms.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// Where adapters, mappings and the matter list are, relative to this file.
    #[serde(default)]
    pub paths: RawPaths,
    /// The demo federation's simulated platforms.
    #[serde(default)]
    pub demo: RawDemo,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Public listener for the exchange API, e.g. "127.0.0.1:8080".
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Admin listener for /healthz, e.g. "127.0.0.1:9090". Keep it off public networks.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Largest request body accepted, in bytes (materials travel inline as base64).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
}

impl Default for RawServer {
    fn default() -> RawServer {
        RawServer {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            body_limit_bytes: default_body_limit(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_body_limit() -> usize {
    16 * 1024 * 1024
}

/// `[upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// TCP connect timeout in milliseconds, unless an adapter sets its own.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout in milliseconds, unless an adapter sets its own.
    #[serde(default = "default_request_ms")]
    pub request_timeout_ms: u64,
    /// Idle pooled connections are closed after this many milliseconds.
    #[serde(default = "default_idle_ms")]
    pub pool_idle_timeout_ms: u64,
    /// Most idle connections kept per platform.
    #[serde(default = "default_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Largest answer accepted from a platform, in bytes.
    #[serde(default = "default_body_limit")]
    pub response_limit_bytes: usize,
}

impl Default for RawUpstream {
    fn default() -> RawUpstream {
        RawUpstream {
            connect_timeout_ms: default_connect_ms(),
            request_timeout_ms: default_request_ms(),
            pool_idle_timeout_ms: default_idle_ms(),
            pool_max_idle_per_host: default_max_idle(),
            response_limit_bytes: default_body_limit(),
        }
    }
}

fn default_connect_ms() -> u64 {
    2_000
}
fn default_request_ms() -> u64 {
    15_000
}
fn default_idle_ms() -> u64 {
    90_000
}
fn default_max_idle() -> usize {
    32
}

/// `[paths]`, relative to the config file's directory; by default `adapters/`, `mappings/` and
/// `matters.toml` beside it (e.g. /etc/tongban/adapters with /etc/tongban/tongban.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// Directory of adapter files.
    #[serde(default = "default_adapters")]
    pub adapters: String,
    /// Directory of mapping files (and `tables/`).
    #[serde(default = "default_mappings")]
    pub mappings: String,
    /// The matter list file.
    #[serde(default = "default_matters")]
    pub matters: String,
}

impl Default for RawPaths {
    fn default() -> RawPaths {
        RawPaths { adapters: default_adapters(), mappings: default_mappings(), matters: default_matters() }
    }
}

fn default_adapters() -> String {
    "adapters".into()
}
fn default_mappings() -> String {
    "mappings".into()
}
fn default_matters() -> String {
    "matters.toml".into()
}

/// `[demo]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemo {
    /// Simulated platforms to start in-process with `serve`, by name (see `tongban mock --list`).
    /// Each listens on its own default address, which its adapter's base_url must name.
    #[serde(default)]
    pub mocks: Vec<String>,
}
