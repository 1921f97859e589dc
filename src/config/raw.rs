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
    /// Who may call without an API key.
    #[serde(default)]
    pub access: RawAccess,
    /// Partners (合作方) and their API keys and limits.
    #[serde(default, rename = "partner")]
    pub partners: Vec<RawPartner>,
    /// Rate limits that apply to every partner without its own.
    #[serde(default)]
    pub limits: RawLimits,
    /// The response cache for idempotent lookups.
    #[serde(default)]
    pub cache: RawCache,
    /// Logs, health probes and configuration watching.
    #[serde(default)]
    pub observe: RawObserve,
    /// Proxy acceptance (异地代收代办): the durable store and the delivery worker.
    #[serde(default)]
    pub acceptance: RawAcceptance,
    /// Remote certificate printing (异地打证); absent: printing is off.
    #[serde(default)]
    pub printing: Option<RawPrinting>,
    /// The tamper-evident audit log (审计日志); absent: no audit log.
    #[serde(default)]
    pub audit: Option<RawAudit>,
}

/// `[audit]`: every exchange recorded, hash-chained, without personal data in clear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The log file (JSON Lines, append-only), relative to this file.
    pub path: String,
    /// The chain's hash: "sm3" (GB/T 32905) or "sha256".
    #[serde(default = "default_audit_algorithm")]
    pub algorithm: String,
    /// Records waiting for the disk at most; past it records are dropped, counted and the gap
    /// is written into the chain, so requests never wait for the disk.
    #[serde(default = "default_audit_queue")]
    pub queue: usize,
    /// fsync after every batch, so a power cut loses no record the writer wrote (default); false:
    /// hand batches to the operating system only.
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_true() -> bool {
    true
}

fn default_audit_algorithm() -> String {
    "sm3".into()
}
fn default_audit_queue() -> usize {
    65_536
}

/// `[printing]`: remote certificate printing (异地打证).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrinting {
    /// The SQLite database of print jobs and their documents, relative to this file.
    #[serde(default = "default_print_store")]
    pub store: String,
    /// Directory of print templates, one `<type>.toml` per certificate type.
    #[serde(default = "default_print_templates")]
    pub templates: String,
    /// The CJK font documents are printed in (OpenType or TrueType); only used glyphs are embedded.
    #[serde(default = "default_print_font")]
    pub font: String,
    /// The 32-byte Ed25519 seed signing QR verification tokens; created on first start. Keep it
    /// private and backed up: a new key makes every printed QR code answer "unknown".
    #[serde(default = "default_token_key")]
    pub token_key: String,
    /// Public base URL of `GET /v1/verify/`, ending in `/`; the QR code carries it plus the token.
    pub verify_url: String,
    /// Most copies one job may ask for.
    #[serde(default = "default_max_copies")]
    pub max_copies: u32,
}

fn default_print_store() -> String {
    "data/prints.sqlite".into()
}
fn default_print_templates() -> String {
    "certificates".into()
}
fn default_print_font() -> String {
    "fonts/NotoSansHans-Regular.otf".into()
}
fn default_token_key() -> String {
    "data/print-token.key".into()
}
fn default_max_copies() -> u32 {
    5
}

/// `[acceptance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcceptance {
    /// The SQLite database holding accepted applications, relative to this file; created on
    /// first start. Every acknowledged acceptance is committed here first.
    #[serde(default = "default_store")]
    pub store: String,
    /// Delivery attempts before an acceptance goes to the dead letter queue.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Longest retry delay in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// The longest an idle worker sleeps, in milliseconds: it wakes at once for new work from
    /// this gateway and at each scheduled time, but changes made by others (`tongban queue
    /// retry`, another instance on the same store) are seen within this interval.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Deliveries claimed per round.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// First status poll after delivery, in milliseconds; doubles while the platform's state is
    /// unchanged, up to `status_poll_max_ms`. 0 turns polling off (platforms that call back).
    #[serde(default = "default_status_poll_ms")]
    pub status_poll_ms: u64,
    /// Longest interval between status polls, in milliseconds.
    #[serde(default = "default_status_poll_max_ms")]
    pub status_poll_max_ms: u64,
    /// Where uploaded materials are kept, content-addressed, relative to this file; by default
    /// `materials/` beside the store.
    #[serde(default)]
    pub materials: Option<String>,
    /// Largest material (one scanned document), in bytes.
    #[serde(default = "default_material_max_bytes")]
    pub material_max_bytes: u64,
    /// Most materials in one acceptance.
    #[serde(default = "default_max_materials")]
    pub max_materials: usize,
}

impl Default for RawAcceptance {
    fn default() -> RawAcceptance {
        RawAcceptance {
            store: default_store(),
            max_attempts: default_max_attempts(),
            backoff_ms: default_backoff_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            poll_interval_ms: default_poll_ms(),
            batch: default_batch(),
            status_poll_ms: default_status_poll_ms(),
            status_poll_max_ms: default_status_poll_max_ms(),
            materials: None,
            material_max_bytes: default_material_max_bytes(),
            max_materials: default_max_materials(),
        }
    }
}

fn default_status_poll_ms() -> u64 {
    60_000
}
fn default_status_poll_max_ms() -> u64 {
    3_600_000
}
fn default_material_max_bytes() -> u64 {
    20 * 1024 * 1024
}
fn default_max_materials() -> usize {
    20
}

fn default_store() -> String {
    "data/acceptances.sqlite".into()
}
fn default_max_attempts() -> u32 {
    8
}
fn default_backoff_ms() -> u64 {
    1_000
}
fn default_backoff_max_ms() -> u64 {
    300_000
}
fn default_poll_ms() -> u64 {
    200
}
fn default_batch() -> usize {
    32
}

/// `[access]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    /// Admit callers without an `X-Api-Key` (counted as "anonymous", limited per client address).
    /// Off by default; the demo turns it on for its walk-throughs.
    #[serde(default)]
    pub anonymous: bool,
}

/// A sustained rate with a burst.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests that may arrive at once (the bucket size).
    pub burst: u32,
    /// Count what this limit would refuse, refuse nothing (to try a limit out safely).
    #[serde(default)]
    pub shadow: bool,
}

/// `[[partner]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    /// Short name, used in metrics and logs, e.g. "guangdong-window".
    pub name: String,
    /// Display title, e.g. "广东省政务服务数据管理局".
    #[serde(default)]
    pub title: Option<String>,
    /// The partner's own province (or city) as a region code or prefix, e.g. "44": without
    /// `allow.from`, the only regions its windows may accept in and its sites print in.
    #[serde(default)]
    pub province: Option<String>,
    /// Agency name.
    #[serde(default)]
    pub agency: Option<String>,
    /// API keys sent in `X-Api-Key` (when partners are identified by key). Keep this file private.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Names in the partner's client certificate that identify it under mutual TLS: a SAN DNS
    /// name or URI, or the subject's common name, e.g. "guangdong-window.partner.tongban.test".
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// What the partner may call; absent: everything when identified by API key, nothing under
    /// mutual TLS.
    #[serde(default)]
    pub allow: Option<RawAllow>,
    /// The partner's own limit (instead of `[limits] partner_default`).
    #[serde(default)]
    pub rate: Option<RawRate>,
    /// Limits per operation: submit, status, matters.
    #[serde(default)]
    pub operations: std::collections::BTreeMap<String, RawRate>,
}

/// `[partner.allow]`: a partner's rights (访问权限). Each list is required; `["*"]` allows all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    /// Operations: submit, status, matters, accept, decide, certificate, print.
    pub operations: Vec<String>,
    /// Target regions as codes or prefixes: "52" (a province), "4401" (a city), "440106".
    pub regions: Vec<String>,
    /// Matter codes (事项编码) from the matter list.
    pub matters: Vec<String>,
    /// Regions the partner acts from — where its windows accept (受理地) and its sites print
    /// (打证地) — as codes or prefixes; absent: the partner's `province` (under mutual TLS without
    /// a province: none).
    #[serde(default)]
    pub from: Option<Vec<String>>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Limit for each partner without its own `rate`.
    #[serde(default)]
    pub partner_default: Option<RawRate>,
    /// Limit for each anonymous client address.
    #[serde(default)]
    pub anonymous: Option<RawRate>,
    /// How often idle limiter keys are pruned, in milliseconds.
    #[serde(default = "default_prune_ms")]
    pub prune_interval_ms: u64,
}

impl Default for RawLimits {
    fn default() -> RawLimits {
        RawLimits { partner_default: None, anonymous: None, prune_interval_ms: default_prune_ms() }
    }
}

fn default_prune_ms() -> u64 {
    60_000
}

/// A cache policy for one operation.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCachePolicy {
    /// How long an answer is fresh, in milliseconds; 0 turns caching off for the operation.
    pub ttl_ms: u64,
    /// How long past freshness an answer may still be served when the platform fails.
    #[serde(default)]
    pub stale_if_error_ms: u64,
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Most bytes the cache holds (approximate: serialized answers and keys).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// Default policy for status queries (办件查询), unless an adapter sets its own.
    #[serde(default = "default_status_policy")]
    pub status: RawCachePolicy,
    /// Default policy for matter catalogues (事项目录), unless an adapter sets its own.
    #[serde(default = "default_matters_policy")]
    pub matters: RawCachePolicy,
    /// Default policy for certificate lookups (电子证照查询): short, since a certificate can be
    /// cancelled; never served stale, since a cancellation must not be hidden.
    #[serde(default = "default_certificate_policy")]
    pub certificate: RawCachePolicy,
}

impl Default for RawCache {
    fn default() -> RawCache {
        RawCache {
            max_bytes: default_cache_bytes(),
            status: default_status_policy(),
            matters: default_matters_policy(),
            certificate: default_certificate_policy(),
        }
    }
}

fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_status_policy() -> RawCachePolicy {
    RawCachePolicy { ttl_ms: 5_000, stale_if_error_ms: 60_000 }
}
fn default_certificate_policy() -> RawCachePolicy {
    RawCachePolicy { ttl_ms: 60_000, stale_if_error_ms: 0 }
}
fn default_matters_policy() -> RawCachePolicy {
    RawCachePolicy { ttl_ms: 600_000, stale_if_error_ms: 86_400_000 }
}

/// `[observe]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    /// Log format: "text" or "json" (one object per line).
    #[serde(default = "default_log_format")]
    pub log_format: crate::observe::logging::LogFormat,
    /// How often each platform's health is probed, in milliseconds; 0 turns probing off.
    #[serde(default = "default_probe_ms")]
    pub probe_interval_ms: u64,
    /// Reload when a configuration file changes (SIGHUP and POST /admin/reload always work).
    #[serde(default)]
    pub watch: bool,
}

impl Default for RawObserve {
    fn default() -> RawObserve {
        RawObserve { log_format: default_log_format(), probe_interval_ms: default_probe_ms(), watch: false }
    }
}

fn default_log_format() -> crate::observe::logging::LogFormat {
    crate::observe::logging::LogFormat::Text
}
fn default_probe_ms() -> u64 {
    10_000
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Public listener for the exchange API, e.g. "127.0.0.1:8080".
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Admin listener (/healthz, /readyz, /metrics, /v1/adapters, /admin/reload, /admin/cache/purge),
    /// e.g. "127.0.0.1:9090". Keep it off public networks.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// A file holding the admin API's bearer token (at least 16 visible ASCII characters), relative
    /// to this file; absent: the admin API asks for none. /healthz, /readyz and /metrics stay open.
    #[serde(default)]
    pub admin_token_file: Option<String>,
    /// Largest request body accepted, in bytes (materials travel inline as base64).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Connections open at once on each listener; past it the gateway stops accepting until one
    /// closes (new ones wait in the kernel's backlog), so a flood cannot exhaust memory or file
    /// descriptors.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TLS on the public listener, with client certificates for mutual TLS.
    #[serde(default)]
    pub tls: Option<RawServerTls>,
    /// Serve plain HTTP on a non-loopback address (only behind a TLS terminator you run).
    /// Loopback addresses may always serve plain HTTP (the demo).
    #[serde(default)]
    pub plain_http: bool,
    /// Request heads with more header lines are refused (431).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Request heads (request line and headers) larger than this are refused (431), in bytes.
    #[serde(default = "default_max_head_bytes")]
    pub max_head_bytes: usize,
    /// JSON bodies nested deeper than this are refused (400).
    #[serde(default = "default_max_json_depth")]
    pub max_json_depth: usize,
}

/// `[server.tls]`: TLS 1.2/1.3 on the public listener. Files are re-read on reload.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    /// The gateway's certificate chain (PEM), relative to this file.
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// CA certificates (PEM) that issue partners' client certificates.
    #[serde(default)]
    pub client_ca: Option<String>,
    /// "required" (mutual TLS: partners are identified by certificate), "optional" (a
    /// certificate identifies when sent; without one only /v1/verify answers) or "off".
    #[serde(default = "default_client_auth")]
    pub client_auth: String,
    /// Revocation lists (CRL, PEM) of the CAs in `client_ca`, relative to this file.
    #[serde(default)]
    pub client_crl: Vec<String>,
}

fn default_client_auth() -> String {
    "required".into()
}
fn default_max_headers() -> usize {
    64
}
fn default_max_head_bytes() -> usize {
    16 * 1024
}
fn default_max_json_depth() -> usize {
    32
}

impl Default for RawServer {
    fn default() -> RawServer {
        RawServer {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            admin_token_file: None,
            body_limit_bytes: default_body_limit(),
            max_connections: default_max_connections(),
            tls: None,
            plain_http: false,
            max_headers: default_max_headers(),
            max_head_bytes: default_max_head_bytes(),
            max_json_depth: default_max_json_depth(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_max_connections() -> usize {
    25_000
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
