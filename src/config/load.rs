//! Loading (加载): reads the gateway config, code tables, mappings, adapters and the matter list,
//! compiles them in named passes and collects every diagnostic before reporting. `serve`,
//! `tongban check` both call [`load`] (reload will too).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::diagnostic::{Diagnostic, Diagnostics, Severity};
use super::raw::{RawAllow, RawGatewayConfig};
use super::source::{KeyPath, SourceFile};
use crate::access::{Allowed, Right, Rights};
use crate::adapter::{self, Adapter, Operation, RawAdapter, TimeoutDefaults};
use crate::identity::{IdentifyBy, Identities, Partner, PartnerEntry};
use crate::limit::LimitSpec;
use crate::mapping::Mapping;
use crate::mapping::compile::{TableRegistry, compile_mapping};
use crate::mapping::raw::{RawMappingFile, RawTableFile};
use crate::regions::RegionTable;
use crate::routing::Router;
use crate::routing::matters::{MatterList, RawMatterList};
use crate::tls::{ClientAuth, ServerTlsFiles};

/// `[audit]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The log file.
    pub path: PathBuf,
    /// The chain's hash.
    pub algorithm: crate::audit::Algorithm,
    /// Records waiting for the disk at most.
    pub queue: usize,
    /// fsync after every batch.
    pub fsync: bool,
}

impl AuditSettings {
    /// How far each batch goes before the writer takes the next.
    pub fn durability(&self) -> crate::audit::Durability {
        if self.fsync { crate::audit::Durability::Synced } else { crate::audit::Durability::Written }
    }
}

/// The admin API's bearer token (管理令牌), kept only as its SHA-256 digest: comparing digests
/// leaks nothing of the token through timing, and the token never shows in a debug print.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    /// The token as written in its file (surrounding whitespace removed).
    pub fn new(token: &str) -> AdminToken {
        use sha2::Digest as _;
        AdminToken(sha2::Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        AdminToken::new(presented) == *self
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Largest request body.
    pub body_limit: usize,
    /// Connections open at once on each listener.
    pub max_connections: usize,
    /// TLS on the public listener; absent: plain HTTP.
    pub tls: Option<ServerTlsFiles>,
    /// Header lines per request head.
    pub max_headers: usize,
    /// Bytes per request head.
    pub max_head_bytes: usize,
    /// The admin API's bearer token, when `admin_token_file` is set.
    pub admin_token: Option<AdminToken>,
    /// Nesting depth of JSON bodies.
    pub max_json_depth: usize,
}

/// Upstream client settings.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Idle pooled connections close after this.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per platform.
    pub pool_max_idle_per_host: usize,
    /// Largest answer accepted.
    pub response_limit: usize,
}

/// The compiled configuration: everything a running gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Federation {
    /// The config file it came from.
    pub config_file: String,
    /// Listeners.
    pub server: ServerSettings,
    /// Upstream client.
    pub upstream: UpstreamSettings,
    /// Adapters by name.
    pub adapters: BTreeMap<String, Arc<Adapter>>,
    /// Region routing.
    pub router: Router,
    /// The matter list.
    pub matters: MatterList,
    /// Every mapping, by name relative to mappings/.
    pub mappings: BTreeMap<String, Arc<Mapping>>,
    /// The region table.
    pub regions: &'static RegionTable,
    /// Simulated platforms to start in-process.
    pub demo_mocks: Vec<String>,
    /// How many mapping test cases ran (and passed).
    pub mapping_tests: usize,
    /// Partners and their keys.
    pub identities: Identities,
    /// Limit for partners without their own.
    pub partner_default: Option<LimitSpec>,
    /// Limit per anonymous client address.
    pub anonymous_limit: Option<LimitSpec>,
    /// Response cache size bound.
    pub cache_max_bytes: u64,
    /// Logs, probes, watching, pruning.
    pub observe: ObserveSettings,
    /// Files and directories a reload reads (watched when `observe.watch` is on).
    pub sources: Vec<PathBuf>,
    /// The config file, for reloads.
    pub config_path: PathBuf,
    /// Proxy acceptance settings.
    pub acceptance: AcceptanceSettings,
    /// The audit log, when `[audit]` is configured.
    pub audit: Option<AuditSettings>,
    /// Certificate printing, when configured.
    pub printing: Option<PrintingSettings>,
}

/// `[printing]`, compiled.
#[derive(Debug, Clone)]
pub struct PrintingSettings {
    /// Print job store.
    pub store: PathBuf,
    /// The token key file.
    pub token_key: PathBuf,
    /// Verification URL prefix.
    pub verify_url: String,
    /// Copies per job at most.
    pub max_copies: u32,
    /// Templates by certificate type, with the font.
    pub templates: Arc<crate::certificate::template::Templates>,
}

/// `[acceptance]`, compiled.
#[derive(Debug, Clone)]
pub struct AcceptanceSettings {
    /// The store's path.
    pub store: PathBuf,
    /// Attempts before dead letter.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Worker poll interval.
    pub poll_interval: Duration,
    /// Deliveries per round.
    pub batch: usize,
    /// First status poll after delivery; `None` when polling is off.
    pub status_poll: Option<Duration>,
    /// Longest interval between status polls.
    pub status_poll_max: Duration,
    /// The content-addressed material directory (材料库).
    pub materials: PathBuf,
    /// Largest material, in bytes.
    pub material_max_bytes: u64,
    /// Most materials in one acceptance.
    pub max_materials: usize,
}

/// `[observe]` and `[limits] prune_interval_ms`, compiled.
#[derive(Debug, Clone, Copy)]
pub struct ObserveSettings {
    /// Log format.
    pub log_format: crate::observe::logging::LogFormat,
    /// Health probe interval; `None` when off.
    pub probe_interval: Option<Duration>,
    /// Reload on file changes.
    pub watch: bool,
    /// Limiter key pruning interval.
    pub prune_interval: Duration,
}

impl Federation {
    /// The same federation with some adapters pointed elsewhere (adapter name → origin), e.g.
    /// simulated platforms on ephemeral ports.
    pub fn with_origins(&self, origins: &HashMap<String, String>) -> Federation {
        self.map_adapters(|adapter| {
            if let Some(origin) = origins.get(&adapter.name) {
                *adapter = adapter.with_origin(origin);
            }
        })
    }

    /// The same federation with every adapter passed through `change` (routing rebuilt).
    pub fn map_adapters(&self, change: impl Fn(&mut Adapter)) -> Federation {
        let mut adapters = BTreeMap::new();
        let mut router = Router::default();
        for (name, adapter) in &self.adapters {
            let mut adapter = Adapter::clone(adapter);
            change(&mut adapter);
            let adapter = Arc::new(adapter);
            // Prefixes were unique when loaded; `change` is not meant to alter them.
            let _ = router.add(&adapter);
            adapters.insert(name.clone(), adapter);
        }
        Federation { adapters, router, ..self.clone() }
    }
}

/// Loads and compiles everything; `Err` carries every error (and warnings), `Ok` the warnings.
pub fn load(config_path: &Path) -> Result<(Federation, Diagnostics), Diagnostics> {
    let mut diagnostics = Diagnostics::new();
    let config_source = match SourceFile::read(config_path) {
        Ok(source) => source,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return Err(diagnostics);
        }
    };
    // A broken gateway file must not hide the other files' errors: fall back to the paths it
    // names (read leniently) so every file is still checked.
    let parsed = match config_source.parse::<RawGatewayConfig>() {
        Ok(parsed) => Some(parsed),
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            None
        }
    };
    let raw = match &parsed {
        Some((raw, _)) => raw.clone(),
        None => lenient_config(&config_source.text),
    };
    let base = config_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let at = |key: &str| KeyPath::root().key("server").key(key);
    let address = |key: &str, text: &str, diagnostics: &mut Diagnostics| match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            if let Some((_, doc)) = &parsed {
                doc.report(
                    diagnostics,
                    &at(key),
                    format!("'{text}' is not an address; write host:port with an IP, e.g. 127.0.0.1:8080"),
                );
            }
            None
        }
    };
    let listen = address("listen", &raw.server.listen, &mut diagnostics);
    let admin_listen = address("admin_listen", &raw.server.admin_listen, &mut diagnostics);
    let server_tls = compile_server_tls(&raw, &base, &parsed, listen, &mut diagnostics);
    // Limits so small that ordinary requests would be refused are mistakes.
    for (key, value, least, what) in [
        ("max_headers", raw.server.max_headers, 8, "header lines"),
        ("max_head_bytes", raw.server.max_head_bytes, 1024, "bytes"),
        ("max_json_depth", raw.server.max_json_depth, 8, "levels (canonical documents nest 3 deep)"),
    ] {
        if value < least {
            report_config(&parsed, &mut diagnostics, &at(key), format!("must be at least {least} {what}"));
        }
    }
    // (Under client certificates anonymous access is an error of its own.)
    if raw.access.anonymous
        && raw.server.tls.as_ref().is_none_or(|tls| tls.client_auth == "off")
        && raw.partners.iter().any(|partner| partner.allow.is_some())
        && let Some((_, doc)) = &parsed
    {
        // Anonymous callers have every right: a partner could drop its key to shed its limits.
        diagnostics.push(doc.warning(
            &KeyPath::root().key("access").key("anonymous"),
            "anonymous callers have every right, so [partner.allow] tables restrict only callers who send a key; turn anonymous access off in production",
        ));
    }
    let timeouts = TimeoutDefaults {
        connect: Duration::from_millis(raw.upstream.connect_timeout_ms),
        request: Duration::from_millis(raw.upstream.request_timeout_ms),
        status_cache: raw.cache.status,
        matters_cache: raw.cache.matters,
        certificate_cache: raw.cache.certificate,
    };
    let regions = RegionTable::embedded();

    // Pass 1: shared code tables.
    let mappings_dir = base.join(&raw.paths.mappings);
    let mut tables = TableRegistry::default();
    for path in toml_files(&mappings_dir.join("tables"), false, &mut diagnostics) {
        if let Some(source) = read(&path, &mut diagnostics) {
            match source.parse::<RawTableFile>() {
                Ok((raw_tables, doc)) => tables.add_file(&raw_tables, &doc, &mut diagnostics),
                Err(diagnostic) => diagnostics.push(diagnostic),
            }
        }
    }

    // Pass 2: every mapping file, compiled and tested.
    let mut mappings = BTreeMap::new();
    let mut mapping_tests = 0;
    let mut broken_mappings = Vec::new();
    for path in toml_files(&mappings_dir, true, &mut diagnostics) {
        let Some(source) = read(&path, &mut diagnostics) else { continue };
        let name = relative_name(&mappings_dir, &path);
        match source.parse::<RawMappingFile>() {
            Ok((raw_mapping, doc)) => {
                if let Some(mapping) = compile_mapping(&name, &raw_mapping, &doc, &tables, &mut diagnostics) {
                    for failure in mapping.run_tests() {
                        diagnostics.push(Diagnostic {
                            severity: Severity::Error,
                            file: String::new(),
                            position: None,
                            key_path: String::new(),
                            message: failure.message,
                        });
                    }
                    mapping_tests += mapping.tests.len();
                    mappings.insert(name, Arc::new(mapping));
                } else {
                    broken_mappings.push(name);
                }
            }
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                broken_mappings.push(name);
            }
        }
    }
    let mut mapping_lookup: HashMap<String, Option<Arc<Mapping>>> =
        mappings.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    for name in broken_mappings {
        mapping_lookup.insert(name, None);
    }

    // Pass 3: adapters, then the routing table.
    let mut adapters = BTreeMap::new();
    let mut router = Router::default();
    let adapters_dir = base.join(&raw.paths.adapters);
    let adapter_files = toml_files(&adapters_dir, false, &mut diagnostics);
    if adapter_files.is_empty() {
        report_config(
            &parsed,
            &mut diagnostics,
            &KeyPath::root().key("paths").key("adapters"),
            format!(
                "no adapter files (*.toml) in {}; add one per platform",
                super::source::display_path(&adapters_dir)
            ),
        );
    }
    for path in adapter_files {
        let Some(source) = read(&path, &mut diagnostics) else { continue };
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match source.parse::<RawAdapter>() {
            Ok((raw_adapter, doc)) => {
                if let Some(adapter) = adapter::compile(
                    &name,
                    path.parent().unwrap_or(&adapters_dir),
                    &raw_adapter,
                    &doc,
                    &mapping_lookup,
                    timeouts,
                    &mut diagnostics,
                ) {
                    let adapter = Arc::new(adapter);
                    for conflict in router.add(&adapter) {
                        let index = adapter.regions.iter().position(|r| *r == conflict.prefix).unwrap_or(0);
                        doc.report(
                            &mut diagnostics,
                            &KeyPath::root().key("regions").index(index),
                            format!(
                                "region prefix '{}' is already served by adapter '{}'; each prefix routes to one platform (use a longer prefix for a city platform)",
                                conflict.prefix, conflict.first
                            ),
                        );
                    }
                    adapters.insert(name, adapter);
                }
            }
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }

    // Pass 4: the matter list.
    let matters_path = base.join(&raw.paths.matters);
    let matters = match read(&matters_path, &mut diagnostics) {
        Some(source) => match source.parse::<RawMatterList>() {
            Ok((raw_list, doc)) => MatterList::compile(&raw_list, &doc, regions, &router, &mut diagnostics),
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                MatterList::default()
            }
        },
        None => MatterList::default(),
    };

    // Pass 5: demo mocks name known simulated platforms that have adapters.
    for (index, name) in raw.demo.mocks.iter().enumerate() {
        let at = KeyPath::root().key("demo").key("mocks").index(index);
        if let Some(platform) = crate::mock::find(name) {
            let expected = format!("http://{}", platform.default_listen);
            match adapters.get(name) {
                None if !diagnostics.has_errors() => report_config(
                    &parsed,
                    &mut diagnostics,
                    &at,
                    format!(
                        "simulated platform '{name}' has no adapter; add adapters/{name}.toml or remove it from demo.mocks"
                    ),
                ),
                Some(adapter) if adapter.origin != expected => {
                    if let Some((_, doc)) = &parsed {
                        diagnostics.push(doc.warning(
                            &at,
                            format!(
                                "adapter '{name}' points at {} but the simulated platform listens on {expected}",
                                adapter.origin
                            ),
                        ));
                    }
                }
                _ => {}
            }
        } else {
            let known: Vec<&str> = crate::mock::demo_platforms().iter().map(|p| p.name).collect();
            report_config(
                &parsed,
                &mut diagnostics,
                &at,
                format!("no simulated platform named '{name}'; known: {}", known.join(", ")),
            );
        }
    }

    // Pass 6: partners, their keys or certificate names, their rights and limits.
    let identify_by = match server_tls.as_ref().map(|tls| tls.client_auth) {
        Some(ClientAuth::Required | ClientAuth::Optional) => IdentifyBy::Certificate,
        _ => IdentifyBy::ApiKey,
    };
    let identities = compile_partners(&raw, &parsed, identify_by, regions, &matters, &mut diagnostics);
    let rate = |diagnostics: &mut Diagnostics,
                key: &str,
                rate: &Option<crate::config::raw::RawRate>,
                id: &str,
                policy: &str| {
        let rate = rate.as_ref()?;
        if let Some((_, doc)) = &parsed {
            adapter::check_rate(rate, doc, &KeyPath::root().key("limits").key(key), diagnostics);
        }
        Some(adapter::limit_spec(id.to_owned(), policy, rate))
    };
    let partner_default =
        rate(&mut diagnostics, "partner_default", &raw.limits.partner_default, "partner-default", "partner");
    let anonymous_limit = rate(&mut diagnostics, "anonymous", &raw.limits.anonymous, "anonymous", "anonymous");

    // Pass 7: certificate printing — the font, then every template checked against it.
    let mut sources = vec![config_path.to_path_buf(), adapters_dir.clone(), mappings_dir.clone(), matters_path.clone()];
    // A renewed certificate or key reloads like any other configuration file.
    if let Some(tls) = &server_tls {
        sources.extend([tls.cert.clone(), tls.key.clone()]);
        sources.extend(tls.client_ca.clone());
        sources.extend(tls.client_crl.iter().cloned());
    }
    let admin_token = raw.server.admin_token_file.as_ref().and_then(|file| {
        let at = KeyPath::root().key("server").key("admin_token_file");
        let path = base.join(file);
        // Watched: a new token applies at the next reload.
        sources.push(path.clone());
        let make = format!("create it with `openssl rand -hex 32 > {0}; chmod 600 {0}`", path.display());
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= 16 && text.trim().bytes().all(|b| b.is_ascii_graphic()) => {
                Some(AdminToken::new(&text))
            }
            Ok(_) => {
                let message =
                    format!("{}: the token must be at least 16 visible ASCII characters; {make}", path.display());
                report_config(&parsed, &mut diagnostics, &at, message);
                None
            }
            Err(error) => {
                report_config(
                    &parsed,
                    &mut diagnostics,
                    &at,
                    format!("cannot read {}: {error}; {make}", path.display()),
                );
                None
            }
        }
    });
    let audit = raw.audit.as_ref().and_then(|audit| {
        let at = KeyPath::root().key("audit");
        let Some(algorithm) = crate::audit::Algorithm::parse(&audit.algorithm) else {
            report_config(
                &parsed,
                &mut diagnostics,
                &at.key("algorithm"),
                format!("unknown algorithm '{}'; expected 'sm3' or 'sha256'", audit.algorithm),
            );
            return None;
        };
        if audit.queue == 0 {
            report_config(
                &parsed,
                &mut diagnostics,
                &at.key("queue"),
                "must be at least 1 (records waiting for the disk)".into(),
            );
        }
        Some(AuditSettings { path: base.join(&audit.path), algorithm, queue: audit.queue.max(1), fsync: audit.fsync })
    });
    let printing = raw.printing.as_ref().and_then(|printing| {
        let at = KeyPath::root().key("printing");
        compile_printing(printing, &base, &parsed, &at, &mut sources, &mut diagnostics)
    });

    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    let (Some(listen), Some(admin_listen), Some(_)) = (listen, admin_listen, parsed) else {
        return Err(diagnostics);
    };
    let federation = Federation {
        config_file: config_source.display.clone(),
        server: ServerSettings {
            listen,
            admin_listen,
            body_limit: raw.server.body_limit_bytes,
            max_connections: raw.server.max_connections,
            tls: server_tls,
            max_headers: raw.server.max_headers,
            max_head_bytes: raw.server.max_head_bytes,
            max_json_depth: raw.server.max_json_depth,
            admin_token,
        },
        upstream: UpstreamSettings {
            pool_idle_timeout: Duration::from_millis(raw.upstream.pool_idle_timeout_ms),
            pool_max_idle_per_host: raw.upstream.pool_max_idle_per_host,
            response_limit: raw.upstream.response_limit_bytes,
        },
        adapters,
        router,
        matters,
        mappings,
        regions,
        demo_mocks: raw.demo.mocks.clone(),
        mapping_tests,
        identities,
        partner_default,
        anonymous_limit,
        cache_max_bytes: raw.cache.max_bytes,
        observe: ObserveSettings {
            log_format: raw.observe.log_format,
            probe_interval: (raw.observe.probe_interval_ms > 0)
                .then(|| Duration::from_millis(raw.observe.probe_interval_ms)),
            watch: raw.observe.watch,
            prune_interval: Duration::from_millis(raw.limits.prune_interval_ms.max(1_000)),
        },
        sources,
        config_path: config_path.to_path_buf(),
        acceptance: AcceptanceSettings {
            store: base.join(&raw.acceptance.store),
            max_attempts: raw.acceptance.max_attempts.max(1),
            backoff: Duration::from_millis(raw.acceptance.backoff_ms.max(1)),
            backoff_max: Duration::from_millis(raw.acceptance.backoff_max_ms.max(raw.acceptance.backoff_ms.max(1))),
            poll_interval: Duration::from_millis(raw.acceptance.poll_interval_ms.max(10)),
            batch: raw.acceptance.batch.clamp(1, 1_000),
            status_poll: (raw.acceptance.status_poll_ms > 0)
                .then(|| Duration::from_millis(raw.acceptance.status_poll_ms.max(100))),
            status_poll_max: Duration::from_millis(
                raw.acceptance.status_poll_max_ms.max(raw.acceptance.status_poll_ms.max(100)),
            ),
            materials: match &raw.acceptance.materials {
                Some(dir) => base.join(dir),
                None => base.join(&raw.acceptance.store).parent().map(|d| d.join("materials")).unwrap_or_default(),
            },
            material_max_bytes: raw.acceptance.material_max_bytes.max(1),
            max_materials: raw.acceptance.max_materials.clamp(1, 1_000),
        },
        printing,
        audit,
    };
    Ok((federation, diagnostics))
}

fn read(path: &Path, diagnostics: &mut Diagnostics) -> Option<SourceFile> {
    match SourceFile::read(path) {
        Ok(source) => Some(source),
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            None
        }
    }
}

/// `*.toml` files below a directory, sorted; `tables/` is skipped when recursing.
fn toml_files(dir: &Path, recurse: bool, diagnostics: &mut Diagnostics) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if current == dir && err.kind() == std::io::ErrorKind::NotFound => {
                // A missing tables/ directory is fine; a missing adapters/ is reported by the caller.
                continue;
            }
            Err(err) => {
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: super::source::display_path(&current),
                    position: None,
                    key_path: String::new(),
                    message: format!("cannot list the directory: {err}"),
                });
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if recurse && path.file_name().is_some_and(|n| n != "tables") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative_name(base: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(base).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The gateway file read without its schema, for its `[paths]` after a schema error.
fn lenient_config(text: &str) -> RawGatewayConfig {
    let mut raw = RawGatewayConfig {
        server: Default::default(),
        upstream: Default::default(),
        paths: Default::default(),
        demo: Default::default(),
        access: Default::default(),
        acceptance: Default::default(),
        printing: None,
        audit: None,
        partners: Vec::new(),
        limits: Default::default(),
        cache: Default::default(),
        observe: Default::default(),
    };
    if let Ok(table) = text.parse::<toml::Table>() {
        let get = |key: &str| table.get("paths").and_then(|p| p.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(adapters) = get("adapters") {
            raw.paths.adapters = adapters;
        }
        if let Some(mappings) = get("mappings") {
            raw.paths.mappings = mappings;
        }
        if let Some(matters) = get("matters") {
            raw.paths.matters = matters;
        }
    }
    raw
}

/// Reports at a key of the gateway file, when it parsed (its schema error is reported already).
/// `[printing]`: loads the font once and compiles every template in the templates directory.
fn compile_printing(
    raw: &super::raw::RawPrinting,
    base: &Path,
    parsed: &Option<(RawGatewayConfig, super::source::SpannedDoc<'_>)>,
    at: &KeyPath,
    sources: &mut Vec<PathBuf>,
    diagnostics: &mut Diagnostics,
) -> Option<PrintingSettings> {
    use crate::certificate::pdf::PdfFont;
    use crate::certificate::template::{RawTemplate, Template, Templates};
    let before = diagnostics.errors().count();
    let font_path = base.join(&raw.font);
    let font = match std::fs::read(&font_path) {
        Ok(bytes) => match PdfFont::from_bytes(bytes) {
            Ok(font) => Some(font),
            Err(error) => {
                report_config(parsed, diagnostics, &at.key("font"), format!("{}: {error}", font_path.display()));
                None
            }
        },
        Err(error) => {
            report_config(
                parsed,
                diagnostics,
                &at.key("font"),
                format!(
                    "cannot read the print font {}: {error}; the repository ships config/fonts/NotoSansHans-Regular.otf",
                    font_path.display()
                ),
            );
            None
        }
    };
    let verify_url = raw.verify_url.trim();
    if !(verify_url.starts_with("http://") || verify_url.starts_with("https://")) || !verify_url.ends_with('/') {
        report_config(
            parsed,
            diagnostics,
            &at.key("verify_url"),
            format!(
                "'{verify_url}' must be an http(s) URL ending in '/', e.g. \"https://gateway.example.gov.cn/v1/verify/\"; the QR code carries it plus the token"
            ),
        );
    }
    if raw.max_copies == 0 || raw.max_copies > 100 {
        report_config(parsed, diagnostics, &at.key("max_copies"), "between 1 and 100".into());
    }
    let dir = base.join(&raw.templates);
    sources.push(dir.clone());
    if !dir.is_dir() {
        report_config(
            parsed,
            diagnostics,
            &at.key("templates"),
            format!("no template directory {}; create it with one <certificate type>.toml per type", dir.display()),
        );
    }
    let mut templates: Vec<Template> = Vec::new();
    for path in toml_files(&dir, false, diagnostics) {
        let Some(source) = read(&path, diagnostics) else { continue };
        match source.parse::<RawTemplate>() {
            Ok((raw_template, doc)) => {
                if let Some(template) = Template::compile(&raw_template, &doc, font.as_ref(), diagnostics) {
                    if let Some(first) = templates.iter().find(|t| t.type_code == template.type_code) {
                        doc.report(
                            diagnostics,
                            &KeyPath::root().key("type"),
                            format!(
                                "type '{}' already has a template in {}; keep one per type",
                                template.type_code, first.file
                            ),
                        );
                    } else {
                        templates.push(template);
                    }
                }
            }
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    if diagnostics.errors().count() > before {
        return None;
    }
    Some(PrintingSettings {
        store: base.join(&raw.store),
        token_key: base.join(&raw.token_key),
        verify_url: verify_url.to_owned(),
        max_copies: raw.max_copies,
        templates: Arc::new(Templates::new(font?, templates)),
    })
}

fn report_config(
    parsed: &Option<(RawGatewayConfig, super::source::SpannedDoc<'_>)>,
    diagnostics: &mut Diagnostics,
    at: &KeyPath,
    message: String,
) {
    if let Some((_, doc)) = parsed {
        doc.report(diagnostics, at, message);
    }
}

/// `[server.tls]`: files that load exactly as the listener loads them, a client CA when
/// certificates identify partners, and no plain HTTP off loopback unless the config says so.
fn compile_server_tls(
    raw: &RawGatewayConfig,
    base: &Path,
    parsed: &Option<(RawGatewayConfig, super::source::SpannedDoc<'_>)>,
    listen: Option<SocketAddr>,
    diagnostics: &mut Diagnostics,
) -> Option<ServerTlsFiles> {
    let at = KeyPath::root().key("server");
    let Some(tls) = &raw.server.tls else {
        if let Some(listen) = listen
            && !listen.ip().is_loopback()
            && !raw.server.plain_http
        {
            report_config(
                parsed,
                diagnostics,
                &at.key("listen"),
                format!(
                    "{listen} is not a loopback address and [server.tls] is absent: partners' personal data would cross the network in clear; add [server.tls] (tongban certs init makes demo certificates), or set server.plain_http = true when a TLS terminator you run sits in front"
                ),
            );
        }
        return None;
    };
    let at = at.key("tls");
    let client_auth = match tls.client_auth.as_str() {
        "required" => ClientAuth::Required,
        "optional" => ClientAuth::Optional,
        "off" => ClientAuth::Off,
        other => {
            report_config(
                parsed,
                diagnostics,
                &at.key("client_auth"),
                format!("unknown client_auth '{other}'; expected 'required' (mutual TLS), 'optional' or 'off'"),
            );
            ClientAuth::Required
        }
    };
    let mut missing = false;
    let mut file = |key: KeyPath, path: &str, fix: &str| {
        let resolved = base.join(path);
        if !resolved.is_file() {
            missing = true;
            report_config(parsed, diagnostics, &key, format!("{} does not exist; {fix}", resolved.display()));
        }
        resolved
    };
    const DEMO_FILES: &str = "tongban certs init --out <dir> makes demo files";
    let cert = file(at.key("cert"), &tls.cert, DEMO_FILES);
    let key = file(at.key("key"), &tls.key, DEMO_FILES);
    let client_ca = tls.client_ca.as_ref().map(|path| file(at.key("client_ca"), path, DEMO_FILES));
    let crl_fix =
        "give the revocation list (PEM 'X509 CRL') of a CA in client_ca, or `tongban certs revoke` for the demo CA";
    let client_crl: Vec<PathBuf> = (tls.client_crl.iter().enumerate())
        .map(|(i, path)| file(at.key("client_crl").index(i), path, crl_fix))
        .collect();
    if client_auth == ClientAuth::Off && !client_crl.is_empty() {
        report_config(
            parsed,
            diagnostics,
            &at.key("client_crl"),
            "revocation lists apply to client certificates, which client_auth = \"off\" does not ask for; remove client_crl or ask for certificates".into(),
        );
    }
    if client_auth != ClientAuth::Off && client_ca.is_none() {
        report_config(
            parsed,
            diagnostics,
            &at.key("client_ca"),
            "client certificates need the CA that issues them: set client_ca, or client_auth = \"off\"".into(),
        );
    }
    if client_auth != ClientAuth::Off && raw.access.anonymous {
        report_config(
            parsed,
            diagnostics,
            &KeyPath::root().key("access").key("anonymous"),
            "anonymous callers cannot be combined with client certificates (they would bypass deny-by-default); set access.anonymous = false".into(),
        );
    }
    let files = ServerTlsFiles { cert, key, client_ca, client_auth, client_crl };
    // The listener's own loader: a key that does not match, an empty CA, a bad PEM.
    if !missing && let Err(error) = crate::tls::server_config(&files) {
        // A revocation list's own error goes to its key.
        let crl = match &error {
            crate::tls::TlsError::NoCrl { path }
            | crate::tls::TlsError::BadCrl { path, .. }
            | crate::tls::TlsError::Pem { path, .. } => Some(path),
            _ => None,
        };
        let index = crl.and_then(|path| files.client_crl.iter().position(|crl| crl == path));
        let key = index.map_or_else(|| at.clone(), |i| at.key("client_crl").index(i));
        report_config(parsed, diagnostics, &key, error.to_string());
    }
    Some(files)
}

/// Partners: unique names and keys, known operations, sane rates, rights naming real regions
/// and matters.
fn compile_partners(
    raw: &RawGatewayConfig,
    parsed: &Option<(RawGatewayConfig, super::source::SpannedDoc<'_>)>,
    by: IdentifyBy,
    regions: &RegionTable,
    matters: &MatterList,
    diagnostics: &mut Diagnostics,
) -> Identities {
    let Some((_, doc)) = parsed else { return Identities::default() };
    let mut partners = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    let mut tls_names = std::collections::HashSet::new();
    for (index, raw_partner) in raw.partners.iter().enumerate() {
        let at = KeyPath::root().key("partner").index(index);
        if !names.insert(raw_partner.name.as_str()) {
            doc.report(
                diagnostics,
                &at.key("name"),
                format!("partner '{}' is defined twice; merge the entries", raw_partner.name),
            );
        }
        if raw_partner.name == crate::identity::ANONYMOUS {
            doc.report(
                diagnostics,
                &at.key("name"),
                "'anonymous' is reserved for callers without a key; pick another name",
            );
        }
        match by {
            IdentifyBy::ApiKey if raw_partner.api_keys.is_empty() => {
                doc.report(diagnostics, &at.key("api_keys"), "give at least one API key, or remove the partner")
            }
            IdentifyBy::Certificate if raw_partner.tls_names.is_empty() => doc.report(
                diagnostics,
                &at.key("tls_names"),
                "client certificates identify partners ([server.tls] client_auth): give the names in this partner's certificate (SAN DNS or URI, or the subject CN)",
            ),
            _ => {}
        }
        for (i, name) in raw_partner.tls_names.iter().enumerate() {
            if name.trim().is_empty() {
                doc.report(diagnostics, &at.key("tls_names").index(i), "a certificate name cannot be empty");
            }
            if !tls_names.insert(name.as_str()) {
                doc.report(
                    diagnostics,
                    &at.key("tls_names").index(i),
                    "this certificate name is listed before (for this or another partner); a name identifies one partner",
                );
            }
        }
        for (i, key) in raw_partner.api_keys.iter().enumerate() {
            if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                doc.report(
                    diagnostics,
                    &at.key("api_keys").index(i),
                    "an API key is at least 8 visible ASCII characters",
                );
            }
            if !keys.insert(key.as_str()) {
                doc.report(
                    diagnostics,
                    &at.key("api_keys").index(i),
                    "this API key is given to another partner too; keys identify one partner",
                );
            }
        }
        if let Some(rate) = &raw_partner.rate {
            adapter::check_rate(rate, doc, &at.key("rate"), diagnostics);
        }
        let mut operations = HashMap::new();
        for (name, rate) in &raw_partner.operations {
            adapter::check_rate(rate, doc, &at.key("operations").key(name), diagnostics);
            match Operation::parse(name) {
                Some(operation) => {
                    let id = format!("partner-operation:{}/{name}", raw_partner.name);
                    operations.insert(operation, adapter::limit_spec(id, "partner-operation", rate));
                }
                None => doc.report(
                    diagnostics,
                    &at.key("operations").key(name),
                    format!("unknown operation '{name}'; expected one of 'submit', 'status', 'matters'"),
                ),
            }
        }
        // The partner's own region: validated like the region lists, the default of `allow.from`.
        let home = raw_partner.province.as_ref().and_then(|code| {
            let at = at.key("province");
            region_code_prefix(code, doc, &at, regions, diagnostics).map(|prefix| vec![prefix])
        });
        let partner = Partner {
            name: raw_partner.name.clone(),
            title: raw_partner.title.clone().unwrap_or_else(|| raw_partner.name.clone()),
            province: raw_partner.province.clone(),
            agency: raw_partner.agency.clone(),
            rate: raw_partner
                .rate
                .as_ref()
                .map(|rate| adapter::limit_spec(format!("partner:{}", raw_partner.name), "partner", rate)),
            operations,
            rights: match &raw_partner.allow {
                Some(allow) => {
                    let rights = compile_rights(allow, doc, &at.key("allow"), regions, matters, diagnostics);
                    let from = match (&allow.from, home) {
                        (Some(list), _) => region_list(list, doc, &at.key("allow").key("from"), regions, diagnostics),
                        (None, Some(home)) => Allowed::Only(home),
                        // Deny by default once certificates identify partners.
                        (None, None) if by == IdentifyBy::Certificate => Allowed::Only(Vec::new()),
                        (None, None) => Allowed::Any,
                    };
                    Rights { from, ..rights }
                }
                None if by == IdentifyBy::Certificate => Rights::none(),
                None => Rights { from: home.map_or(Allowed::Any, Allowed::Only), ..Rights::all() },
            },
        };
        partners.push(PartnerEntry {
            partner: Arc::new(partner),
            api_keys: raw_partner.api_keys.clone(),
            tls_names: raw_partner.tls_names.clone(),
        });
    }
    Identities::new(partners, raw.access.anonymous, by)
}

/// `[partner.allow]`: known operations, regions in the division table, matters on the list.
fn compile_rights(
    allow: &RawAllow,
    doc: &super::source::SpannedDoc<'_>,
    at: &KeyPath,
    regions: &RegionTable,
    matters: &MatterList,
    diagnostics: &mut Diagnostics,
) -> Rights {
    let any = |list: &[String]| list.iter().any(|item| item == "*");
    let operations = if any(&allow.operations) {
        Allowed::Any
    } else {
        let mut set = std::collections::HashSet::new();
        for (i, name) in allow.operations.iter().enumerate() {
            match Right::parse(name) {
                Some(right) => {
                    set.insert(right);
                }
                None => {
                    let known: Vec<&str> = Right::ALL.iter().map(|r| r.as_str()).collect();
                    doc.report(
                        diagnostics,
                        &at.key("operations").index(i),
                        format!("unknown operation '{name}'; expected \"*\" or some of {}", known.join(", ")),
                    )
                }
            }
        }
        Allowed::Only(set)
    };
    let region_list = region_list(&allow.regions, doc, &at.key("regions"), regions, diagnostics);
    let matter_list = if any(&allow.matters) {
        Allowed::Any
    } else {
        for (i, code) in allow.matters.iter().enumerate() {
            if matters.name_of(code).is_none() {
                doc.report(
                    diagnostics,
                    &at.key("matters").index(i),
                    format!("matter '{code}' is not on the matter list; add it there first, or fix the code"),
                );
            }
        }
        Allowed::Only(allow.matters.iter().cloned().collect())
    };
    Rights { operations, regions: region_list, matters: matter_list, from: Allowed::Any }
}

/// A list of region codes or prefixes (`["*"]`: all), each checked against GB/T 2260.
fn region_list(
    list: &[String],
    doc: &super::source::SpannedDoc<'_>,
    at: &KeyPath,
    regions: &RegionTable,
    diagnostics: &mut Diagnostics,
) -> Allowed<Vec<String>> {
    if list.iter().any(|item| item == "*") {
        return Allowed::Any;
    }
    let prefixes = list
        .iter()
        .enumerate()
        .filter_map(|(i, code)| region_code_prefix(code, doc, &at.index(i), regions, diagnostics))
        .collect();
    Allowed::Only(prefixes)
}

/// One region code or prefix ("52", "4401", "440106") as the prefix it stands for, or an error
/// naming the key when it is not a region in GB/T 2260.
fn region_code_prefix(
    code: &str,
    doc: &super::source::SpannedDoc<'_>,
    at: &KeyPath,
    regions: &RegionTable,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let shaped = matches!(code.len(), 2 | 4 | 6) && code.bytes().all(|b| b.is_ascii_digit());
    if !shaped || regions.get(&format!("{code:0<6}")).is_none() {
        doc.report(
            diagnostics,
            at,
            format!("'{code}' is not a region code in GB/T 2260; write a province (\"52\"), a city (\"4401\") or a county (\"440106\")"),
        );
        return None;
    }
    Some(crate::access::region_prefix(code).to_owned())
}
