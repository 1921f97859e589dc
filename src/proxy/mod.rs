//! The proxy (代理): listeners, the request pipeline, the upstream client, and the state that
//! outlives any one configuration — rate limiters, bulkheads, the response cache, metrics and
//! platform health — so that a reload swaps the configuration and keeps the rest.

pub mod admin;
pub mod admit;
pub mod body;
pub mod context;
pub mod decode;
pub mod forward;
pub mod framing;
pub mod health;
pub mod pipeline;
pub mod respond;
pub mod route;
pub mod server;
pub mod upstream;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch as signal};

use self::health::HealthBoard;
use self::upstream::Upstream;
use crate::acceptance::Acceptances;
use crate::cache::ResponseCache;
use crate::config::diagnostic::Diagnostics;
use crate::config::{Federation, load};
use crate::limit::{Bulkheads, LimitSpec, RateLimits};
use crate::metrics::Metrics;
use crate::store::{AcceptanceStore, SqliteStore};

/// Adjusts every loaded federation before it serves (tests point adapters at simulated platforms
/// on ephemeral ports; a reload must keep doing so).
pub type Adjust = Box<dyn Fn(Federation) -> Federation + Send + Sync>;

/// A running gateway's shared state.
pub struct Gateway {
    federation: ArcSwap<Federation>,
    /// The upstream client.
    pub upstream: Upstream,
    /// Rate limiter state, kept across reloads for unchanged limits.
    pub limits: RateLimits,
    /// Per-platform concurrency caps.
    pub bulkheads: Bulkheads,
    /// Cached answers of idempotent lookups.
    pub cache: ResponseCache,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// Last known platform health.
    pub health: HealthBoard,
    /// Proxy acceptances: the durable store and its clock.
    pub acceptances: Acceptances,
    /// Certificate printing: print jobs and the token key, when `[printing]` is configured.
    pub printing: Option<crate::certificate::print::PrintDesk>,
    /// The public listener's TLS, reloaded with the configuration.
    pub tls: Option<Arc<crate::tls::TlsAcceptor>>,
    /// The audit log, when `[audit]` is configured (opened at start).
    pub audit: Option<crate::audit::AuditLog>,
    adjust: Adjust,
    reloading: Mutex<()>,
}

impl Gateway {
    /// A gateway for a compiled (and already adjusted) federation; `adjust` applies to reloads.
    pub fn new(
        federation: Federation,
        adjust: Adjust,
        store: Arc<dyn AcceptanceStore>,
        materials: crate::acceptance::materials::MaterialStore,
    ) -> Gateway {
        let metrics = Arc::new(Metrics::new());
        let evictions = metrics.clone();
        let cache = ResponseCache::new(federation.cache_max_bytes, move |cause| {
            evictions.cache_evictions.with_label_values(&[cause]).inc();
        });
        Gateway {
            upstream: Upstream::new(federation.upstream.clone()),
            federation: ArcSwap::from_pointee(federation),
            limits: RateLimits::new(),
            bulkheads: Bulkheads::new(),
            cache,
            metrics,
            health: HealthBoard::default(),
            acceptances: Acceptances {
                store,
                materials,
                clock: crate::acceptance::clock::Clock::new(),
                wake: tokio::sync::Notify::new(),
            },
            printing: None,
            tls: None,
            audit: None,
            adjust,
            reloading: Mutex::new(()),
        }
    }

    /// The federation in force; a request keeps the one it started with.
    pub fn federation(&self) -> Arc<Federation> {
        self.federation.load_full()
    }

    /// Counts a committed (or replayed) acceptance.
    pub fn acceptance_accepted(&self, created: bool) {
        self.metrics.acceptances.with_label_values(&[if created { "created" } else { "replayed" }]).inc();
    }

    /// Loads the configuration again with the same code as `tongban check`. On success the new
    /// set replaces the old atomically; on error the old set keeps serving and the errors are
    /// returned, logged and counted.
    pub async fn reload(&self, reason: &str) -> Result<Diagnostics, Diagnostics> {
        let _one_at_a_time = self.reloading.lock().await;
        // A rotated audit log (moved away by logrotate, which then sends SIGHUP) is reopened
        // whether or not the new configuration loads.
        if let Some(audit) = self.audit.clone() {
            let _ = tokio::task::spawn_blocking(move || audit.reopen()).await;
        }
        let path = self.federation().config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&path)).await;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                let mut diagnostics = Diagnostics::new();
                diagnostics.push(crate::config::diagnostic::Diagnostic {
                    severity: crate::config::diagnostic::Severity::Error,
                    file: String::new(),
                    position: None,
                    key_path: String::new(),
                    message: format!("the reload task failed: {err}"),
                });
                Err(diagnostics)
            }
        };
        match loaded {
            Ok((federation, mut warnings)) => {
                let federation = (self.adjust)(federation);
                // How partners are identified follows what the running listener speaks: switching
                // TLS or client certificates on or off needs a restart, so such a reload is refused.
                let running = self.federation().server.tls.as_ref().map(|tls| tls.client_auth);
                let asked = federation.server.tls.as_ref().map(|tls| tls.client_auth);
                let mut prepared = None;
                let refusal = if running != asked {
                    Some(format!(
                        "changes TLS or client_auth ({running:?} → {asked:?}); that takes a restart, the running configuration keeps serving"
                    ))
                } else if let Some(files) = federation.server.tls.clone() {
                    // Built before anything is swapped, so a bad key leaves everything as it was;
                    // on a blocking thread, since it reads the certificate and key files.
                    match tokio::task::spawn_blocking(move || crate::tls::server_config(&files)).await {
                        Ok(Ok(config)) => {
                            prepared = Some(config);
                            None
                        }
                        Ok(Err(error)) => Some(error.to_string()),
                        Err(error) => Some(format!("the TLS loading task failed: {error}")),
                    }
                } else {
                    None
                };
                if let Some(message) = refusal {
                    self.metrics.config_reloads.with_label_values(&["failure"]).inc();
                    tracing::warn!(reason, error = %message, "Reload refused: server.tls.");
                    let mut diagnostics = Diagnostics::new();
                    diagnostics.push(crate::config::diagnostic::Diagnostic {
                        severity: crate::config::diagnostic::Severity::Error,
                        file: federation.config_file.clone(),
                        position: None,
                        key_path: "server.tls".into(),
                        message,
                    });
                    return Err(diagnostics);
                }
                let tls_files = federation.server.tls.clone();
                for setting in restart_only_changes(&self.federation(), &federation) {
                    tracing::warn!(setting, "Changed setting takes effect only after a restart.");
                    warnings.push(crate::config::diagnostic::Diagnostic {
                        severity: crate::config::diagnostic::Severity::Warning,
                        file: federation.config_file.clone(),
                        position: None,
                        key_path: setting.to_owned(),
                        message: "changed; this setting takes effect only after a restart".into(),
                    });
                }
                self.apply(federation).await;
                // New handshakes use renewed certificates from here on; open connections keep theirs.
                if let (Some(acceptor), Some(files), Some(config)) = (&self.tls, tls_files, prepared) {
                    acceptor.install(files, config);
                }
                self.metrics.config_reloads.with_label_values(&["success"]).inc();
                tracing::info!(reason, warnings = warnings.len(), "Configuration reloaded.");
                Ok(warnings)
            }
            Err(diagnostics) => {
                self.metrics.config_reloads.with_label_values(&["failure"]).inc();
                let errors = diagnostics.errors().count();
                for diagnostic in diagnostics.errors() {
                    tracing::warn!(diagnostic = %diagnostic, "Reload refused: configuration error.");
                }
                tracing::warn!(
                    reason,
                    errors,
                    "Configuration reload refused; the previous configuration keeps serving."
                );
                Err(diagnostics)
            }
        }
    }

    /// Swaps in a federation, keeping limiter, bulkhead and cache state whose keys still exist.
    async fn apply(&self, federation: Federation) {
        // Removed platforms leave no stale health series behind (an alert would fire forever).
        for name in self.federation().adapters.keys().filter(|name| !federation.adapters.contains_key(*name)) {
            let _ = self.metrics.platform_up.remove_label_values(&[name.as_str()]);
        }
        let specs = limit_specs(&federation);
        self.limits.retain_specs(&specs.iter().collect::<Vec<_>>());
        let names: Vec<&str> = federation.adapters.keys().map(String::as_str).collect();
        self.bulkheads.retain(&names);
        self.health.retain(&names);
        self.cache.retain_targets(&names).await;
        // Renewed platform certificates are read again by the next call.
        self.upstream.forget_tls_clients();
        self.federation.store(Arc::new(federation));
    }
}

/// Settings read once at start-up: listeners, the upstream pool, the cache size, [observe], the
/// paths watched. A reload keeps the running values; the operator is told.
fn restart_only_changes(old: &Federation, new: &Federation) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen");
    }
    if old.server.admin_listen != new.server.admin_listen {
        changed.push("server.admin_listen");
    }
    if old.server.max_connections != new.server.max_connections
        || old.server.max_headers != new.server.max_headers
        || old.server.max_head_bytes != new.server.max_head_bytes
    {
        changed.push("server (connection and head limits)");
    }

    if old.upstream.pool_idle_timeout != new.upstream.pool_idle_timeout
        || old.upstream.pool_max_idle_per_host != new.upstream.pool_max_idle_per_host
        || old.upstream.response_limit != new.upstream.response_limit
    {
        changed.push("upstream");
    }
    if old.cache_max_bytes != new.cache_max_bytes {
        changed.push("cache.max_bytes");
    }
    let (a, b) = (&old.observe, &new.observe);
    if a.log_format != b.log_format
        || a.probe_interval != b.probe_interval
        || a.watch != b.watch
        || a.prune_interval != b.prune_interval
    {
        changed.push("observe");
    }
    if old.sources != new.sources {
        // What a new file says applies now; only the file watch needs the restart to see it.
        changed.push("paths (files added to the configuration: their contents apply now, the file watch covers them after a restart)");
    }
    if old.demo_mocks != new.demo_mocks {
        changed.push("demo.mocks");
    }
    if old.acceptance.store != new.acceptance.store {
        changed.push("acceptance.store");
    }
    if old.acceptance.materials != new.acceptance.materials {
        changed.push("acceptance.materials");
    }
    if old.audit != new.audit {
        changed.push("audit");
    }
    changed
}

/// Every limit a federation configures.
fn limit_specs(federation: &Federation) -> Vec<LimitSpec> {
    let mut specs: Vec<LimitSpec> = federation.adapters.values().filter_map(|a| a.rate.clone()).collect();
    for partner in federation.identities.partners() {
        specs.extend(partner.rate.clone());
        specs.extend(partner.operations.values().cloned());
    }
    specs.extend(federation.partner_default.clone());
    specs.extend(federation.anonymous_limit.clone());
    specs
}

/// A started gateway: its addresses and a handle to stop it.
pub struct Running {
    /// Public listener address.
    pub public: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// The shared state.
    pub gateway: Arc<Gateway>,
    shutdown: signal::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets open requests finish, and waits for every task to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // The last exchanges reach the disk before the process ends (bounded: a stuck disk
        // must not hold the shutdown).
        if let Some(audit) = self.gateway.audit.clone() {
            let _ = tokio::task::spawn_blocking(move || audit.flush(std::time::Duration::from_secs(5))).await;
        }
    }
}

/// Serves a federation as loaded.
pub async fn start(federation: Federation, public: TcpListener, admin: TcpListener) -> std::io::Result<Running> {
    start_with(federation, public, admin, Box::new(|federation| federation)).await
}

/// Serves a federation, adjusting it (and every reloaded one) first.
pub async fn start_with(
    federation: Federation,
    public: TcpListener,
    admin: TcpListener,
    adjust: Adjust,
) -> std::io::Result<Running> {
    let federation = adjust(federation);
    let observe = federation.observe;
    let sources = federation.sources.clone();
    // Every acknowledged acceptance is committed here first: no store, no start.
    let path = federation.acceptance.store.clone();
    let store: Arc<dyn AcceptanceStore> = match tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await {
        Ok(Ok(store)) => Arc::new(store),
        Ok(Err(err)) => return Err(std::io::Error::other(err.to_string())),
        Err(err) => return Err(std::io::Error::other(err.to_string())),
    };
    let dir = federation.acceptance.materials.clone();
    let materials =
        match tokio::task::spawn_blocking(move || crate::acceptance::materials::MaterialStore::open(&dir)).await {
            Ok(Ok(materials)) => materials,
            Ok(Err(err)) => return Err(std::io::Error::other(err.to_string())),
            Err(err) => return Err(std::io::Error::other(err.to_string())),
        };
    let printing = match federation.printing.clone() {
        Some(settings) => match tokio::task::spawn_blocking(move || open_print_desk(&settings)).await {
            Ok(Ok(desk)) => Some(desk),
            Ok(Err(err)) => return Err(std::io::Error::other(err)),
            Err(err) => return Err(std::io::Error::other(err.to_string())),
        },
        None => None,
    };
    // Listener caps are fixed at start; a reload does not resize them.
    let max_connections = federation.server.max_connections;
    let framing_limits = framing::FramingLimits {
        max_headers: federation.server.max_headers,
        max_head_bytes: federation.server.max_head_bytes,
    };
    let tls = match federation.server.tls.clone() {
        Some(files) => Some(Arc::new(crate::tls::TlsAcceptor::new(files).map_err(std::io::Error::other)?)),
        None => None,
    };
    // Every exchange is recorded from the first one: no audit log, no start.
    let audit = match federation.audit.clone() {
        Some(settings) => {
            let opened = tokio::task::spawn_blocking(move || {
                crate::audit::AuditLog::open(
                    &settings.path,
                    settings.algorithm,
                    env!("CARGO_PKG_VERSION"),
                    settings.queue,
                    settings.durability(),
                )
            })
            .await;
            match opened {
                Ok(Ok(audit)) => Some(audit),
                Ok(Err(err)) => {
                    return Err(std::io::Error::other(format!("{err}; check it with tongban audit verify")));
                }
                Err(err) => return Err(std::io::Error::other(err.to_string())),
            }
        }
        None => None,
    };
    let mut gateway = Gateway::new(federation, adjust, store, materials);
    gateway.printing = printing;
    gateway.audit = audit;
    gateway.tls = tls.clone();
    let gateway = Arc::new(gateway);
    let (shutdown, watcher) = signal::channel(false);
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let for_public = gateway.clone();
    let public_options = server::ListenerOptions {
        max_connections,
        tls,
        framing: Some((framing_limits, framing_refusal(gateway.metrics.clone(), gateway.audit.clone()))),
        handshake_failures: Some(gateway.metrics.tls_handshake_failures.with_label_values(&[] as &[&str])),
    };
    let mut tasks = vec![tokio::spawn(server::serve(
        public,
        move |request, peer| pipeline::handle(for_public.clone(), request, peer),
        watcher.clone(),
        public_options,
    ))];
    let for_admin = gateway.clone();
    tasks.push(tokio::spawn(server::serve(
        admin,
        move |request, _peer| admin::handle(for_admin.clone(), request),
        watcher.clone(),
        server::ListenerOptions::plain(max_connections),
    )));
    tasks.push(tokio::spawn(prune(gateway.clone(), observe.prune_interval, watcher.clone())));
    tasks.push(tokio::spawn(crate::acceptance::worker::run(gateway.clone(), watcher.clone())));
    if let Some(interval) = observe.probe_interval {
        tasks.push(tokio::spawn(health::run(gateway.clone(), interval, watcher.clone())));
    }
    if observe.watch
        && let Some(registered) = watch::register(&sources)
    {
        tasks.push(tokio::spawn(watch::run(gateway.clone(), registered, watcher)));
    }
    Ok(Running { public: public_addr, admin: admin_addr, gateway, shutdown, tasks })
}

/// The framing guard's refusal, counted, logged and audited under a fresh request id.
fn framing_refusal(metrics: Arc<Metrics>, audit: Option<crate::audit::AuditLog>) -> framing::Refusal {
    Arc::new(move |violation: &framing::FramingViolation, held: &[u8]| {
        metrics.framing_refusals.with_label_values(&[violation.slug()]).inc();
        let request_id = uuid::Uuid::now_v7().to_string();
        tracing::info!(request_id = %request_id, status = violation.status(), problem = violation.slug(), "Request refused for its framing.");
        if let Some(audit) = &audit {
            audit.record(pipeline::refused_framing_entry(audit.algorithm(), &request_id, violation, held));
        }
        framing::refusal_response(violation, &request_id)
    })
}

/// The print job store and the token key; both must open before the gateway serves.
fn open_print_desk(
    settings: &crate::config::load::PrintingSettings,
) -> Result<crate::certificate::print::PrintDesk, String> {
    let store = crate::store::prints::PrintStore::open(&settings.store).map_err(|e| e.to_string())?;
    let key = crate::certificate::token::TokenKey::load_or_create(&settings.token_key)?;
    Ok(crate::certificate::print::PrintDesk { store, key })
}

/// Prunes idle limiter keys and refreshes the cache gauges, so memory stays bounded.
async fn prune(gateway: Arc<Gateway>, interval: std::time::Duration, mut shutdown: signal::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => break,
        }
        let keys = gateway.limits.prune();
        gateway.metrics.limiter_keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
        gateway.cache.run_pending_tasks().await;
        gateway.metrics.cache_entries.set(i64::try_from(gateway.cache.entry_count()).unwrap_or(i64::MAX));
        gateway.metrics.cache_bytes.set(i64::try_from(gateway.cache.weighted_size()).unwrap_or(i64::MAX));
        queue_gauges(&gateway).await;
    }
}

/// Queue depth, oldest undelivered age and dead letters, for the metrics.
pub async fn queue_gauges(gateway: &Gateway) {
    let now = gateway.acceptances.clock.now_ms();
    if let Ok(stats) = crate::acceptance::blocking(&gateway.acceptances.store, |store| store.queue_stats()).await {
        let metrics = &gateway.metrics;
        metrics.acceptance_queue_depth.set(i64::try_from(stats.depth).unwrap_or(i64::MAX));
        metrics.acceptance_dead.set(i64::try_from(stats.dead).unwrap_or(i64::MAX));
        let age = stats.oldest_undelivered_at.map(|at| (now - at).max(0) / 1000).unwrap_or(0);
        metrics.acceptance_oldest_age_seconds.set(age);
    }
}
