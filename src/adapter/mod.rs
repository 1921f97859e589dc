//! Adapters (适配器): one file per platform under `adapters/`, saying where the platform is,
//! which regions it serves, how it speaks (format, encoding), its operations and its business
//! envelope. Compiled once; requests see only [`Adapter`].

pub mod envelope;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::envelope::{Envelope, RawEnvelope};
use self::template::PathTemplate;
use crate::cache::CachePolicy;
use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};
use crate::limit::LimitSpec;
use crate::mapping::{Mapping, WireFormat};
use crate::wire::charset::Charset;

/// The operations a platform offers (业务操作).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// 申报提交: submit an application.
    Submit,
    /// 办件查询: query an application's state.
    Status,
    /// 事项目录: list the matters the platform handles.
    Matters,
    /// 电子证照查询: fetch a certificate from the platform's certificate library.
    Certificate,
}

impl Operation {
    /// Every operation, in documentation order.
    pub const ALL: [Operation; 4] = [Operation::Submit, Operation::Status, Operation::Matters, Operation::Certificate];

    /// The name used in files and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Submit => "submit",
            Operation::Status => "status",
            Operation::Matters => "matters",
            Operation::Certificate => "certificate",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Canonical request fields a path template may use.
    fn template_fields(self) -> &'static [&'static str] {
        match self {
            Operation::Submit => &["application_id", "handling_region", "accepting_region", "mode"],
            Operation::Status => &["application_id", "province_case_id", "handling_region"],
            Operation::Matters => &["region"],
            Operation::Certificate => &["certificate_id", "issuer_region"],
        }
    }
}

/// What to do when a unified social credit code fails its check character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsccCheck {
    /// Refuse the application (the default).
    #[default]
    Enforce,
    /// Forward it with a warning: some early legally issued codes fail the check.
    Warn,
}

/// An adapter file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapter {
    /// The platform's name, e.g. "贵州政务服务网".
    pub title: String,
    /// Region codes served: a province prefix like "52", a city prefix like "6209", or a county.
    pub regions: Vec<String>,
    /// Base URL of the platform's API, e.g. "http://127.0.0.1:19052".
    pub base_url: String,
    /// Wire format: `json` or `xml`.
    pub format: WireFormat,
    /// Character encoding: `utf-8` (default), `gbk` or `gb18030`.
    #[serde(default = "default_charset")]
    pub charset: Charset,
    /// `enforce` (default) or `warn` for unified social credit codes failing their check.
    #[serde(default)]
    pub uscc_check: UsccCheck,
    /// Timeouts; the gateway's `[upstream]` defaults apply where absent.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Content-Type sent with request bodies; default `application/json` or `application/xml`
    /// with the charset, e.g. set "text/xml; charset=GBK" for a platform that insists on it.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Where business outcome codes live in answers.
    #[serde(default)]
    pub envelope: Option<RawEnvelope>,
    /// Operations by name: `submit`, `status`, `matters`.
    pub operations: BTreeMap<String, RawOperation>,
    /// Protects the platform's capacity: a rate for all callers together and a concurrency cap.
    #[serde(default)]
    pub limits: RawTargetLimits,
    /// Cache policies for its idempotent operations (defaults come from the gateway's [cache]).
    #[serde(default)]
    pub cache: RawAdapterCache,
    /// 电子证照签发公钥: the public keys the platform's certificate library signs with.
    #[serde(default)]
    pub certificate_keys: Vec<crate::certificate::verify::RawIssuerKey>,
    /// TLS to the platform (`https://` base URLs): its CA pinned, and the gateway's client
    /// certificate when the platform asks for one.
    #[serde(default)]
    pub tls: Option<RawAdapterTls>,
}

/// `[tls]` of an adapter. Paths are relative to the adapter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapterTls {
    /// The CA certificate(s) (PEM) the platform's certificate must chain to: the only roots
    /// trusted for this platform — never the system's.
    pub ca: String,
    /// The gateway's client certificate (PEM) for platforms that require mutual TLS.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// Its private key (PEM).
    #[serde(default)]
    pub client_key: Option<String>,
    /// The name checked in the platform's certificate (and sent as SNI) instead of the URL's
    /// host, for platforms reached by IP address.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `[limits]` of an adapter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetLimits {
    /// Requests per second to this platform from all callers together.
    #[serde(default)]
    pub rate: Option<crate::config::raw::RawRate>,
    /// Calls in flight to this platform at most (bulkhead, 舱壁); default 64.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// How long a call may wait for a free slot before a 503, in milliseconds; default 100.
    #[serde(default)]
    pub queue_timeout_ms: Option<u64>,
}

/// `[cache]` of an adapter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapterCache {
    /// Policy for status queries.
    #[serde(default)]
    pub status: Option<crate::config::raw::RawCachePolicy>,
    /// Policy for matter catalogues.
    #[serde(default)]
    pub matters: Option<crate::config::raw::RawCachePolicy>,
    /// Policy for certificate lookups.
    #[serde(default)]
    pub certificate: Option<crate::config::raw::RawCachePolicy>,
    /// The platform answers differently per caller: keep one cache entry per partner.
    #[serde(default)]
    pub caller_scoped: bool,
}

fn default_charset() -> Charset {
    Charset::Utf8
}

/// Per-adapter timeouts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP connect timeout in milliseconds.
    #[serde(default)]
    pub connect_ms: Option<u64>,
    /// Whole-request timeout in milliseconds (connect, send, answer).
    #[serde(default)]
    pub request_ms: Option<u64>,
}

/// One operation as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// HTTP method: GET or POST.
    pub method: String,
    /// Path and query below the base URL, with `{field}` placeholders from the canonical request.
    pub path: String,
    /// Mapping file, relative to `mappings/`.
    pub mapping: String,
}

/// A compiled operation.
#[derive(Debug, Clone)]
pub struct OperationSpec {
    /// HTTP method.
    pub method: http::Method,
    /// Path template.
    pub path: PathTemplate,
    /// The mapping.
    pub mapping: Arc<Mapping>,
}

/// A compiled adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Name (the file stem), used in routes, metrics and native ingress URLs.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Region prefixes served.
    pub regions: Vec<String>,
    /// Scheme and authority, e.g. `http://127.0.0.1:19052`.
    pub origin: String,
    /// Path prefix from the base URL, without a trailing slash.
    pub base_path: String,
    /// Wire format.
    pub format: WireFormat,
    /// Character encoding.
    pub charset: Charset,
    /// USCC check policy.
    pub uscc_check: UsccCheck,
    /// Content-Type of request bodies.
    pub content_type: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Business envelope.
    pub envelope: Option<Envelope>,
    /// Operations.
    pub operations: HashMap<Operation, OperationSpec>,
    /// Rate limit for all callers together.
    pub rate: Option<LimitSpec>,
    /// Bulkhead size.
    pub max_concurrency: usize,
    /// Bulkhead wait.
    pub queue_timeout: Duration,
    /// Cache policies of cacheable operations (absent: not cached).
    pub cache: HashMap<Operation, CachePolicy>,
    /// One cache entry per caller.
    pub cache_caller_scoped: bool,
    /// Public keys of the platform's certificate library.
    pub certificate_keys: crate::certificate::verify::IssuerKeys,
    /// TLS to the platform, for `https://` origins.
    pub tls: Option<Arc<crate::tls::ClientTlsFiles>>,
}

impl Adapter {
    /// The `Content-Type` this platform speaks.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// Points the adapter at another origin (tests start mocks on ephemeral ports).
    pub fn with_origin(&self, origin: &str) -> Adapter {
        Adapter { origin: origin.trim_end_matches('/').to_owned(), ..self.clone() }
    }
}

/// Defaults from the gateway config.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutDefaults {
    /// Connect timeout.
    pub connect: Duration,
    /// Request timeout.
    pub request: Duration,
    /// Cache policy for status queries.
    pub status_cache: crate::config::raw::RawCachePolicy,
    /// Cache policy for matter catalogues.
    pub matters_cache: crate::config::raw::RawCachePolicy,
    /// Cache policy for certificate lookups.
    pub certificate_cache: crate::config::raw::RawCachePolicy,
}

/// Bulkhead defaults: generous enough for a provincial platform, small enough to protect it.
const DEFAULT_MAX_CONCURRENCY: usize = 64;
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(100);

/// A compiled rate limit from its raw form.
pub fn limit_spec(id: String, policy: &str, rate: &crate::config::raw::RawRate) -> LimitSpec {
    LimitSpec { id, policy: policy.to_owned(), per_second: rate.per_second, burst: rate.burst, shadow: rate.shadow }
}

fn cache_policy(raw: &crate::config::raw::RawCachePolicy) -> Option<CachePolicy> {
    (raw.ttl_ms > 0).then(|| CachePolicy {
        ttl: Duration::from_millis(raw.ttl_ms),
        stale_if_error: Duration::from_millis(raw.stale_if_error_ms),
    })
}

/// Compiles an adapter file; errors go to `diagnostics`.
pub fn compile(
    name: &str,
    dir: &std::path::Path,
    raw: &RawAdapter,
    doc: &SpannedDoc<'_>,
    mappings: &HashMap<String, Option<Arc<Mapping>>>,
    defaults: TimeoutDefaults,
    diagnostics: &mut Diagnostics,
) -> Option<Adapter> {
    let before = diagnostics.errors().count();
    let root = KeyPath::root();
    if raw.regions.is_empty() {
        doc.report(
            diagnostics,
            &root.key("regions"),
            "list at least one region code prefix, e.g. [\"52\"] or [\"6209\"]",
        );
    }
    for (index, region) in raw.regions.iter().enumerate() {
        if !matches!(region.len(), 2 | 4 | 6) || !region.bytes().all(|b| b.is_ascii_digit()) {
            doc.report(
                diagnostics,
                &root.key("regions").index(index),
                format!("'{region}' is not a region prefix; use 2 digits (province, e.g. 52), 4 (city, e.g. 6209) or 6 (county)"),
            );
        }
    }
    let (origin, base_path) = match split_base_url(&raw.base_url) {
        Ok(parts) => parts,
        Err(message) => {
            doc.report(diagnostics, &root.key("base_url"), message);
            (String::new(), String::new())
        }
    };
    let tls = compile_tls(raw, dir, &origin, doc, diagnostics);
    let envelope = raw.envelope.as_ref().and_then(|e| e.compile(raw.format, doc, &root.key("envelope"), diagnostics));
    let mut operations = HashMap::new();
    for (op_name, op) in &raw.operations {
        let at = root.key("operations").key(op_name);
        let Some(operation) = Operation::parse(op_name) else {
            doc.report(
                diagnostics,
                &at,
                format!("unknown operation '{op_name}'; expected one of 'submit', 'status', 'matters', 'certificate'"),
            );
            continue;
        };
        let method = match op.method.to_ascii_uppercase().as_str() {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            other => {
                doc.report(
                    diagnostics,
                    &at.key("method"),
                    format!("method '{other}' is not supported; use GET, POST or PUT"),
                );
                continue;
            }
        };
        let path = match PathTemplate::parse(&op.path, operation.template_fields()) {
            Ok(path) => path,
            Err(message) => {
                doc.report(diagnostics, &at.key("path"), message);
                continue;
            }
        };
        let mapping = match mappings.get(&op.mapping) {
            Some(Some(mapping)) => mapping,
            Some(None) => {
                doc.report(
                    diagnostics,
                    &at.key("mapping"),
                    format!("mapping '{}' has errors (reported above); fix them first", op.mapping),
                );
                continue;
            }
            None => {
                let hint = if mappings.keys().any(|k| k.ends_with(&op.mapping)) {
                    " (paths are relative to mappings/)"
                } else {
                    ""
                };
                doc.report(
                    diagnostics,
                    &at.key("mapping"),
                    format!("no mapping file '{}' under mappings/{hint}; create it or fix the name", op.mapping),
                );
                continue;
            }
        };
        if mapping.format != raw.format {
            doc.report(
                diagnostics,
                &at.key("mapping"),
                format!(
                    "mapping '{}' is for format \"{}\" but this adapter speaks \"{}\"",
                    op.mapping,
                    mapping.format.name(),
                    raw.format.name()
                ),
            );
        }
        if mapping.response.is_none() {
            doc.report(
                diagnostics,
                &at.key("mapping"),
                format!("mapping '{}' has no [response]; every operation maps the platform's answer", op.mapping),
            );
        }
        if method != http::Method::GET && mapping.request.is_none() {
            doc.report(
                diagnostics,
                &at.key("mapping"),
                format!("a {method} operation sends a body, so mapping '{}' needs a [request]", op.mapping),
            );
        }
        if let (Some(envelope), crate::mapping::WireFormat::Xml) = (&envelope, raw.format) {
            for prefix in envelope.prefixes() {
                if !mapping.namespaces.bindings.iter().any(|(p, _)| p == prefix) {
                    doc.report(
                        diagnostics,
                        &root.key("envelope"),
                        format!(
                            "namespace prefix '{prefix}' is not declared in mapping '{}'; declare it there",
                            op.mapping
                        ),
                    );
                }
            }
        }
        operations.insert(operation, OperationSpec { method, path, mapping: mapping.clone() });
    }
    let content_type = match &raw.content_type {
        Some(value) if http::HeaderValue::from_str(value).is_ok() && value.contains('/') => value.clone(),
        Some(value) => {
            doc.report(
                diagnostics,
                &root.key("content_type"),
                format!("'{value}' is not a media type; write e.g. \"text/xml; charset=GBK\""),
            );
            String::new()
        }
        None => {
            let media = match raw.format {
                WireFormat::Json => "application/json",
                WireFormat::Xml => "application/xml",
            };
            format!("{media}; charset={}", raw.charset.label())
        }
    };
    if !raw.operations.contains_key("submit") {
        doc.report(diagnostics, &root.key("operations"), "an adapter needs at least [operations.submit]");
    }
    if let Some(rate) = &raw.limits.rate {
        check_rate(rate, doc, &root.key("limits").key("rate"), diagnostics);
    }
    if raw.limits.max_concurrency == Some(0) {
        doc.report(diagnostics, &root.key("limits").key("max_concurrency"), "must be at least 1");
    }
    let mut cache = HashMap::new();
    for (operation, own, default) in [
        (Operation::Status, raw.cache.status, defaults.status_cache),
        (Operation::Matters, raw.cache.matters, defaults.matters_cache),
        (Operation::Certificate, raw.cache.certificate, defaults.certificate_cache),
    ] {
        if let Some(policy) = cache_policy(&own.unwrap_or(default)) {
            cache.insert(operation, policy);
        }
    }
    let certificate_keys = crate::certificate::verify::IssuerKeys::compile(
        &raw.certificate_keys,
        doc,
        &root.key("certificate_keys"),
        diagnostics,
    );
    let has_certificates = raw.operations.contains_key(Operation::Certificate.as_str());
    if raw.cache.certificate.is_some_and(|policy| policy.stale_if_error_ms > 0) {
        doc.report(
            diagnostics,
            &root.key("cache").key("certificate").key("stale_if_error_ms"),
            "certificates are never served stale (a cancellation must not be hidden); set 0 or leave it out",
        );
    }
    if has_certificates && raw.certificate_keys.is_empty() {
        doc.report(
            diagnostics,
            &root.key("operations").key("certificate"),
            "a certificate library needs its issuer keys: add [[certificate_keys]] with id, algorithm, public_key and validity, as the issuing platform publishes them",
        );
    }
    if !has_certificates && !raw.certificate_keys.is_empty() {
        diagnostics.push(doc.warning(
            &root.key("certificate_keys"),
            "certificate keys are listed but there is no [operations.certificate]; they are unused",
        ));
    }
    if diagnostics.errors().count() > before {
        return None;
    }
    Some(Adapter {
        name: name.to_owned(),
        title: raw.title.clone(),
        regions: raw.regions.clone(),
        origin,
        base_path,
        format: raw.format,
        charset: raw.charset,
        uscc_check: raw.uscc_check,
        content_type,
        connect_timeout: raw.timeouts.connect_ms.map(Duration::from_millis).unwrap_or(defaults.connect),
        request_timeout: raw.timeouts.request_ms.map(Duration::from_millis).unwrap_or(defaults.request),
        envelope,
        operations,
        rate: raw.limits.rate.as_ref().map(|rate| limit_spec(format!("target:{name}"), "target", rate)),
        max_concurrency: raw.limits.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
        queue_timeout: raw.limits.queue_timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_QUEUE_TIMEOUT),
        cache,
        cache_caller_scoped: raw.cache.caller_scoped,
        certificate_keys,
        tls,
    })
}

/// `[tls]`: required by and only meaningful with an `https://` base URL; the files load with
/// the same code the upstream client uses.
fn compile_tls(
    raw: &RawAdapter,
    dir: &std::path::Path,
    origin: &str,
    doc: &SpannedDoc<'_>,
    diagnostics: &mut Diagnostics,
) -> Option<Arc<crate::tls::ClientTlsFiles>> {
    let https = origin.starts_with("https://");
    let Some(tls) = &raw.tls else {
        if https {
            doc.report(
                diagnostics,
                &KeyPath::root().key("base_url"),
                "an https:// platform needs [tls] ca = \"<the platform's CA, PEM>\": roots are pinned per platform, never taken from the system",
            );
        }
        return None;
    };
    if !https && !origin.is_empty() {
        doc.report(
            diagnostics,
            &KeyPath::root().key("tls"),
            "[tls] is set but base_url is http://; write https:// to use it, or remove [tls]",
        );
        return None;
    }
    let files = crate::tls::ClientTlsFiles {
        ca: dir.join(&tls.ca),
        client_cert: tls.client_cert.as_ref().map(|path| dir.join(path)),
        client_key: tls.client_key.as_ref().map(|path| dir.join(path)),
        server_name: tls.server_name.clone(),
    };
    if let Err(error) = crate::tls::client_config(&files) {
        doc.report(diagnostics, &KeyPath::root().key("tls"), error.to_string());
        return None;
    }
    Some(Arc::new(files))
}

/// A rate must admit something: zero rate or burst would refuse every request.
pub fn check_rate(
    rate: &crate::config::raw::RawRate,
    doc: &SpannedDoc<'_>,
    at: &KeyPath,
    diagnostics: &mut Diagnostics,
) {
    if rate.per_second == 0 {
        doc.report(diagnostics, &at.key("per_second"), "must be at least 1 (requests per second)");
    }
    if rate.burst == 0 {
        doc.report(diagnostics, &at.key("burst"), "must be at least 1 (the number of requests admitted at once)");
    }
}

/// `http://host:port/prefix` → (`http://host:port`, `/prefix`).
fn split_base_url(url: &str) -> Result<(String, String), String> {
    let uri: http::Uri =
        url.parse().map_err(|_| format!("'{url}' is not a URL; write e.g. http://10.1.2.3:8080/api"))?;
    let scheme = match uri.scheme_str() {
        Some(scheme @ ("http" | "https")) => scheme,
        _ => return Err(format!("'{url}' needs a scheme; write http://host:port or https://host:port")),
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("'{url}' has no host; write http://host:port"));
    };
    if uri.query().is_some() {
        return Err("base_url cannot carry a query; put query parameters in the operation's path".into());
    }
    Ok((format!("{scheme}://{authority}"), uri.path().trim_end_matches('/').to_owned()))
}
