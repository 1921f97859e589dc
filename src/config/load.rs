//! Loading (加载): reads the gateway config, code tables, mappings, adapters and the matter list,
//! compiles them in named passes and collects every diagnostic before reporting. `serve`,
//! `tongban check` both call [`load`] (reload will too).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::diagnostic::{Diagnostic, Diagnostics, Severity};
use super::raw::RawGatewayConfig;
use super::source::{KeyPath, SourceFile};
use crate::adapter::{self, Adapter, RawAdapter, TimeoutDefaults};
use crate::mapping::Mapping;
use crate::mapping::compile::{TableRegistry, compile_mapping};
use crate::mapping::raw::{RawMappingFile, RawTableFile};
use crate::regions::RegionTable;
use crate::routing::Router;
use crate::routing::matters::{MatterList, RawMatterList};

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Largest request body.
    pub body_limit: usize,
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
}

impl Federation {
    /// The same federation with some adapters pointed elsewhere (adapter name → origin), e.g.
    /// simulated platforms on ephemeral ports.
    pub fn with_origins(&self, origins: &HashMap<String, String>) -> Federation {
        let mut adapters = BTreeMap::new();
        let mut router = Router::default();
        for (name, adapter) in &self.adapters {
            let adapter = match origins.get(name) {
                Some(origin) => Arc::new(adapter.with_origin(origin)),
                None => adapter.clone(),
            };
            // Prefixes were unique when loaded, so no conflict can appear here.
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
    let timeouts = TimeoutDefaults {
        connect: Duration::from_millis(raw.upstream.connect_timeout_ms),
        request: Duration::from_millis(raw.upstream.request_timeout_ms),
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
                if let Some(adapter) =
                    adapter::compile(&name, &raw_adapter, &doc, &mapping_lookup, timeouts, &mut diagnostics)
                {
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
            Ok((raw_list, doc)) => MatterList::compile(&raw_list, &doc, regions, &mut diagnostics),
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

    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    let (Some(listen), Some(admin_listen), Some(_)) = (listen, admin_listen, parsed) else {
        return Err(diagnostics);
    };
    let federation = Federation {
        config_file: config_source.display.clone(),
        server: ServerSettings { listen, admin_listen, body_limit: raw.server.body_limit_bytes },
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
