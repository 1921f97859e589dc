//! Remote certificate printing (异地打证): fetch and verify a certificate from its issuer, render
//! it, queue it for a window or self-service terminal, confirm it printed, and answer anyone who
//! scans its QR code.
//!
//! ```text
//! POST /v1/print-jobs ─▶ decode ─▶ fetch live (issuer's adapter, operation `certificate`)
//!   ─▶ verify signature ─▶ printable today? ─▶ print-once rule ─▶ render PDF ─▶ record ─▶ 201
//! GET  /v1/print-jobs?site=ID            a site's queue
//! GET  /v1/print-jobs/{id}[/document]    the job, its PDF
//! POST /v1/print-jobs/{id}/printed       the site confirms
//! GET  /v1/verify/{token}                genuine, reprinted, superseded, cancelled, expired, unconfirmed, unknown
//! GET  /v1/certificates/{id}?issuer_region=CODE   the verified certificate itself
//! ```

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::template::{PrintFacts, RenderFailure};
use super::token::TokenKey;
use super::verify::{self, VerifyError};
use super::{Certificate, NotPrintable, beijing_today};
use crate::access::{Call, Right};
use crate::adapter::{Adapter, Operation};
use crate::canonical::validate::FieldError;
use crate::config::Federation;
use crate::problem::GatewayError;
use crate::proxy::Gateway;
use crate::proxy::pipeline::{self, Exchange};
use crate::proxy::respond::{self, Reply};
use crate::proxy::route;
use crate::store::prints::{JOB_PRINTED, JOB_QUEUED, PrintJob, PrintStore, PrintStoreError};

/// What the gateway keeps for printing across reloads: the job store and the token key.
#[derive(Debug, Clone)]
pub struct PrintDesk {
    /// Print jobs and their documents.
    pub store: PrintStore,
    /// Signs the tokens in QR codes.
    pub key: TokenKey,
}

/// A certificate fetched from its issuer and verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The certificate.
    pub certificate: Certificate,
    /// The issuing platform.
    pub adapter: Arc<Adapter>,
    /// The key that vouched for it.
    pub key_id: String,
}

fn today(gateway: &Gateway) -> chrono::NaiveDate {
    let ms = gateway.acceptances.clock.now_ms();
    beijing_today(chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

fn shaped_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How fresh a certificate must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Through the cache (`[cache] certificate`): lookups and QR checks.
    Cached,
    /// From the issuer now: before printing, so a cancellation a minute old is not missed.
    Live,
}

/// Fetches a certificate through its issuer's adapter and verifies it.
pub async fn fetch(
    gateway: &Gateway,
    federation: &Federation,
    x: &mut Exchange,
    certificate_id: &str,
    issuer_region: Option<&str>,
    freshness: Freshness,
    right: Option<Right>,
) -> Result<Verified, GatewayError> {
    if !shaped_id(certificate_id) {
        return Err(GatewayError::InvalidRequest {
            errors: vec![FieldError {
                field: "/certificate_id".into(),
                detail: format!("'{certificate_id}' is not a certificate number: 1–64 letters, digits, '-' or '_'"),
            }],
        });
    }
    let region = route::query_region(federation, issuer_region, "issuer_region")?;
    let route = route::platform(federation, region)?;
    let adapter = route.adapter.clone();
    if !adapter.operations.contains_key(&Operation::Certificate) {
        return Err(GatewayError::NoCertificateLibrary { adapter: adapter.name.clone() });
    }
    x.operation = Some(Operation::Certificate);
    x.target = Some(adapter.name.clone());
    let call = right.map(|right| Call::to(right, &route.to.code, None));
    pipeline::admit(gateway, federation, x, &adapter, Operation::Certificate, call)?;
    let request = json!({ "certificate_id": certificate_id, "issuer_region": route.to.code });
    let answer = match freshness {
        Freshness::Cached => {
            pipeline::lookup(gateway, x, &adapter, Operation::Certificate, &request, certificate_answer).await?
        }
        Freshness::Live => {
            let source = x.caller.as_ref().map(|c| c.name().to_owned()).unwrap_or_default();
            let answer =
                pipeline::call_platform(gateway, &adapter, Operation::Certificate, &request, &x.cx, &source).await?;
            certificate_answer(&adapter.name, &answer)?;
            answer
        }
    };
    let certificate = Certificate::from_canonical(&answer).map_err(|error| GatewayError::UpstreamBadAnswer {
        adapter: adapter.name.clone(),
        detail: format!("the certificate does not fit the canonical model: {}", error.0),
        status: 200,
    })?;
    if certificate.certificate_id != certificate_id {
        return Err(GatewayError::UpstreamBadAnswer {
            adapter: adapter.name.clone(),
            detail: format!(
                "asked for certificate {certificate_id}, the platform answered {}",
                certificate.certificate_id
            ),
            status: 200,
        });
    }
    // A platform's keys vouch only for authorities it serves: a certificate naming another
    // province's authority is refused even when its signature verifies.
    let issuer_platform = federation
        .regions
        .resolve(&certificate.issuer.region)
        .ok()
        .and_then(|region| route::platform(federation, region).ok())
        .map(|route| route.adapter.name.clone());
    if issuer_platform.as_deref() != Some(adapter.name.as_str()) {
        gateway.metrics.certificate_verifications.with_label_values(&[adapter.name.as_str(), "issuer-mismatch"]).inc();
        return Err(GatewayError::CertificateUnverified {
            adapter: adapter.name.clone(),
            certificate_id: certificate_id.to_owned(),
            code: "issuer-mismatch",
            reason: format!(
                "it names issuing authority region {}, which platform {} does not serve",
                certificate.issuer.region, adapter.name
            ),
            fix: "do not print it; ask the issuing authority's own platform for it",
        });
    }
    // The right is for the authority that issued it, which may sit deeper than the region asked.
    if let Some(right) = right {
        let issuer = federation.regions.resolve(&certificate.issuer.region).map(|r| r.code.clone());
        let issuer = issuer.unwrap_or_else(|_| certificate.issuer.region.clone());
        crate::proxy::admit::authorize(x, Call::to(right, &issuer, None))?;
    }
    let outcome = verify::verify(&certificate, &adapter.certificate_keys, today(gateway));
    let label = match &outcome {
        Ok(_) => "verified",
        Err(error) => refusal_code(error),
    };
    gateway.metrics.certificate_verifications.with_label_values(&[adapter.name.as_str(), label]).inc();
    match outcome {
        Ok(key) => {
            let key_id = key.id.clone();
            Ok(Verified { certificate, adapter, key_id })
        }
        Err(error) => {
            tracing::warn!(request_id = %x.cx.request_id, platform = %adapter.name, certificate_id, verification = label, "Certificate refused: {error}.");
            Err(GatewayError::CertificateUnverified {
                adapter: adapter.name.clone(),
                certificate_id: certificate_id.to_owned(),
                code: label,
                reason: error.to_string(),
                fix: refusal_fix(&error),
            })
        }
    }
}

fn refusal_code(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::Unsigned => "unsigned",
        VerifyError::UnknownKey { .. } => "unknown-key",
        VerifyError::AlgorithmMismatch { .. } => "algorithm-mismatch",
        VerifyError::KeyNotTrusted { .. } => "key-not-trusted",
        VerifyError::BadSignature { .. } => "bad-signature",
    }
}

fn refusal_fix(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::Unsigned => "ask the issuing authority to sign it; unsigned certificates are never printed",
        VerifyError::UnknownKey { .. } => {
            "if the issuer has published a new key, add it to [[certificate_keys]] of its adapter file; otherwise treat it as forged"
        }
        VerifyError::AlgorithmMismatch { .. } | VerifyError::BadSignature { .. } => {
            "do not print it; report it to the issuing authority (the content does not match what it signed)"
        }
        VerifyError::KeyNotTrusted { .. } => {
            "ask the issuing authority to re-sign it with a current key, or correct the key's validity in its adapter file if it is wrong"
        }
    }
}

/// A certificate answer is usable when it is an object; [`Certificate::from_canonical`] says more.
fn certificate_answer(adapter: &str, answer: &Value) -> Result<(), GatewayError> {
    if answer.is_object() {
        Ok(())
    } else {
        Err(GatewayError::UpstreamBadAnswer {
            adapter: adapter.to_owned(),
            detail: "the certificate answer is not an object".into(),
            status: 200,
        })
    }
}

/// `GET /v1/certificates/{id}?issuer_region=CODE`: the verified certificate.
pub async fn show_certificate(
    gateway: &Gateway,
    federation: &Federation,
    x: &mut Exchange,
    certificate_id: &str,
    issuer_region: Option<&str>,
) -> Result<Reply, GatewayError> {
    let verified =
        fetch(gateway, federation, x, certificate_id, issuer_region, Freshness::Cached, Some(Right::Certificate))
            .await?;
    let mut body = serde_json::to_value(&verified.certificate).map_err(|e| GatewayError::Internal(e.to_string()))?;
    body["verification"] = json!({
        "verified": true,
        "platform": verified.adapter.name,
        "key_id": verified.key_id,
        "checked_on": today(gateway).to_string(),
        "printable": verified.certificate.printable_on(today(gateway)).is_ok(),
    });
    Ok(private(respond::json(StatusCode::OK, &body, &x.cx)))
}

/// Answers carrying personal data: no shared cache may keep them.
fn private(mut reply: Reply) -> Reply {
    reply.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    reply
}

/// The body of `POST /v1/print-jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintRequest {
    certificate_id: String,
    issuer_region: String,
    site: Site,
    requested_by: String,
    #[serde(default = "one")]
    copies: u32,
    #[serde(default)]
    reprint_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Site {
    /// Window or terminal id (窗口/自助终端编号).
    id: String,
    /// The site's region code.
    region: String,
}

fn one() -> u32 {
    1
}

/// The print store and key with the settings in force, when printing is configured.
fn desk<'f>(
    gateway: &Gateway,
    federation: &'f Federation,
) -> Result<(PrintDesk, &'f crate::config::PrintingSettings), GatewayError> {
    match (&gateway.printing, &federation.printing) {
        (Some(desk), Some(settings)) => Ok((desk.clone(), settings)),
        // Added by a reload: the store and key open only at start.
        (None, Some(_)) => Err(GatewayError::Internal(
            "[printing] was added by a reload; restart the gateway to open the print store and token key".into(),
        )),
        _ => Err(GatewayError::PrintingDisabled),
    }
}

async fn blocking<T: Send + 'static>(
    store: &PrintStore,
    f: impl FnOnce(&PrintStore) -> Result<T, PrintStoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(PrintStoreError::NumberTaken { number })) => Err(GatewayError::PrintJobConflict {
            detail: format!(
                "print {number} of this certificate was recorded by another request at the same moment; look at the site's queue before sending again"
            ),
        }),
        Ok(Err(error)) => Err(GatewayError::Internal(error.to_string())),
        Err(error) => Err(GatewayError::Internal(error.to_string())),
    }
}

/// `POST /v1/print-jobs`.
pub async fn create(
    gateway: &Gateway,
    federation: &Federation,
    x: &mut Exchange,
    body: &[u8],
) -> Result<Reply, GatewayError> {
    let (desk, settings) = desk(gateway, federation)?;
    let request = decode_request(body, federation, settings.max_copies)?;
    // The site prints where the partner is (异地打证): checked before anything reaches the issuer.
    crate::proxy::admit::authorize(x, Call::operation(Right::Print).from(Some(&request.site.region)))
        .map_err(|error| error.from_field("/site/region"))?;
    let verified = fetch(
        gateway,
        federation,
        x,
        &request.certificate_id,
        Some(&request.issuer_region),
        Freshness::Live,
        Some(Right::Print),
    )
    .await?;
    let certificate = &verified.certificate;
    let today = today(gateway);
    if let Err(reason) = certificate.printable_on(today) {
        let (code, field, detail) = match reason {
            NotPrintable::Withdrawn(status) => (
                if status == super::CertificateStatus::Revoked { "revoked" } else { "cancelled" },
                "/status",
                format!(
                    "the issuer reports it {}; only the issuing authority can reinstate or reissue it",
                    status.as_str()
                ),
            ),
            NotPrintable::Expired { valid_until } => (
                "expired",
                "/valid_until",
                format!("it was valid until {valid_until}; the holder applies to the issuer for renewal"),
            ),
            NotPrintable::NotYetValid { valid_from } => {
                ("not_yet_valid", "/valid_from", format!("it is valid from {valid_from}; print it from that day"))
            }
        };
        gateway.metrics.print_jobs.with_label_values(&["not_printable"]).inc();
        return Err(GatewayError::CertificateNotPrintable {
            certificate_id: certificate.certificate_id.clone(),
            reason: code,
            field,
            detail,
        });
    }
    let issuer_region = certificate.issuer.region.clone();
    let id = certificate.certificate_id.clone();
    let printed = blocking(&desk.store, move |store| store.last_print_number(&issuer_region, &id)).await?;
    let reason = request.reprint_reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    if printed > 0 && reason.is_none() {
        gateway.metrics.print_jobs.with_label_values(&["reprint_reason_required"]).inc();
        return Err(GatewayError::ReprintReasonRequired {
            certificate_id: certificate.certificate_id.clone(),
            printed,
        });
    }
    let number = printed + 1;
    let job_id = Uuid::now_v7();
    let verify_url = verify_url(settings, &desk.key, job_id);
    let templates = settings.templates.clone();
    let render_certificate = certificate.clone();
    let site_id = request.site.id.clone();
    let job_text = job_id.to_string();
    let url = verify_url.clone();
    let started = std::time::Instant::now();
    let rendered = tokio::task::spawn_blocking(move || {
        let facts = PrintFacts { number, site: &site_id, date: today, job: &job_text, verify_url: &url };
        templates.render(&render_certificate, &facts)
    })
    .await
    .map_err(|error| GatewayError::Internal(error.to_string()))?;
    gateway.metrics.print_render_duration.with_label_values(&[] as &[&str]).observe(started.elapsed().as_secs_f64());
    let document = rendered.map_err(|failure| {
        gateway.metrics.print_jobs.with_label_values(&["unprintable"]).inc();
        unprintable(failure)
    })?;
    let job = PrintJob {
        job_id: job_id.to_string(),
        issuer_region: certificate.issuer.region.clone(),
        issuer_platform: verified.adapter.name.clone(),
        certificate_id: certificate.certificate_id.clone(),
        certificate_type: certificate.kind.code.clone(),
        certificate_name: certificate.kind.name.clone(),
        holder_masked: mask_name(&certificate.holder.name),
        certificate_digest: hex(&Sha256::digest(certificate.signed_bytes())),
        key_id: verified.key_id.clone(),
        site: request.site.id,
        site_region: request.site.region,
        requested_by: request.requested_by,
        partner: x.caller.as_ref().map(|c| c.name().to_owned()).unwrap_or_default(),
        copies: request.copies,
        print_number: number,
        reprint_reason: if number > 1 { reason } else { None },
        state: JOB_QUEUED.into(),
        created_at: gateway.acceptances.clock.now_ms(),
        printed_at: None,
    };
    let record = job.clone();
    blocking(&desk.store, move |store| store.insert(&record, &document)).await?;
    gateway.metrics.print_jobs.with_label_values(&[if number > 1 { "reprint" } else { "created" }]).inc();
    tracing::info!(request_id = %x.cx.request_id, job_id = %job.job_id, certificate_id = %job.certificate_id, print_number = number, site = %job.site, "Print job queued.");
    let mut reply = private(respond::json(StatusCode::CREATED, &job_json(&job, settings, &desk.key), &x.cx));
    if let Ok(location) = http::HeaderValue::from_str(&format!("/v1/print-jobs/{}", job.job_id)) {
        reply.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(reply)
}

fn unprintable(failure: RenderFailure) -> GatewayError {
    match failure {
        RenderFailure::NoTemplate { type_code } => GatewayError::CertificateUnprintable {
            code: "no-template",
            field: Some("/type/code".into()),
            detail: format!(
                "no print template for certificate type '{type_code}'; the operator adds one to the [printing] templates directory (docs/operations.md)"
            ),
        },
        RenderFailure::Unprintable(missing) => GatewayError::CertificateUnprintable {
            code: "glyphs-missing",
            field: missing.missing.first().map(|(path, _)| path.clone()),
            detail: format!(
                "{missing}; nothing was printed — the operator configures a font that has them ([printing] font)"
            ),
        },
        RenderFailure::Pdf(detail) => GatewayError::CertificateUnprintable {
            code: "pdf",
            field: None,
            detail: format!("the PDF could not be written: {detail}"),
        },
    }
}

fn decode_request(body: &[u8], federation: &Federation, max_copies: u32) -> Result<PrintRequest, GatewayError> {
    crate::proxy::decode::depth(body, federation.server.max_json_depth)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: PrintRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = (path != ".").then(|| crate::proxy::decode::pointer(&path));
        GatewayError::Unparseable {
            detail: format!("{}; send {{\"certificate_id\", \"issuer_region\", \"site\": {{\"id\", \"region\"}}, \"requested_by\", \"copies\"?, \"reprint_reason\"?}}", error.inner()),
            field,
        }
    })?;
    let mut errors = Vec::new();
    let mut fail = |field: &str, detail: String| errors.push(FieldError { field: field.into(), detail });
    if !shaped_id(&request.certificate_id) {
        fail("/certificate_id", "1–64 letters, digits, '-' or '_', as the certificate shows it".into());
    }
    if let Err(error) = federation.regions.resolve(&request.issuer_region) {
        fail("/issuer_region", format!("{error}; give the issuing authority's 6-digit region code"));
    }
    if !shaped_id(&request.site.id) {
        fail("/site/id", "the window or terminal id: 1–64 letters, digits, '-' or '_'".into());
    }
    if let Err(error) = federation.regions.resolve(&request.site.region) {
        fail("/site/region", format!("{error}; give the printing site's 6-digit region code"));
    }
    let requested_by = request.requested_by.trim();
    if requested_by.is_empty() || requested_by.chars().count() > 64 {
        fail("/requested_by", "name the clerk or terminal asking, 1–64 characters".into());
    }
    if request.copies == 0 || request.copies > max_copies {
        fail("/copies", format!("between 1 and {max_copies}"));
    }
    if request.reprint_reason.as_deref().is_some_and(|r| r.chars().count() > 200) {
        fail("/reprint_reason", "at most 200 characters".into());
    }
    if errors.is_empty() { Ok(request) } else { Err(GatewayError::InvalidRequest { errors }) }
}

/// `张三` → `张*`: enough for a clerk or a scanner to recognise, not to harvest.
fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a print stands among the prints of its certificate.
fn standing(job: &PrintJob, latest: u32) -> (&'static str, String) {
    if job.print_number < latest {
        ("superseded", format!("print {latest} of this certificate replaced this copy (print {})", job.print_number))
    } else if job.print_number > 1 {
        ("reprinted", format!("a genuine reprint, number {} (补打)", job.print_number))
    } else {
        ("genuine", "a genuine, current print of a valid certificate".into())
    }
}

fn rfc3339(ms: i64) -> String {
    crate::acceptance::clock::rfc3339(ms)
}

/// The job as answers show it; its verify URL is re-derived (tokens are deterministic).
fn job_json(job: &PrintJob, settings: &crate::config::PrintingSettings, key: &TokenKey) -> Value {
    let verify_url = Uuid::parse_str(&job.job_id).map(|id| verify_url(settings, key, id)).unwrap_or_default();
    json!({
        "job_id": job.job_id,
        "state": job.state,
        "certificate": {
            "certificate_id": job.certificate_id,
            "issuer_region": job.issuer_region,
            "platform": job.issuer_platform,
            "type": job.certificate_type,
            "name": job.certificate_name,
            "holder": job.holder_masked,
            "key_id": job.key_id,
        },
        "site": { "id": job.site, "region": job.site_region },
        "requested_by": job.requested_by,
        "copies": job.copies,
        "print_number": job.print_number,
        "reprint_reason": job.reprint_reason,
        "created_at": rfc3339(job.created_at),
        "printed_at": job.printed_at.map(rfc3339),
        "document": format!("/v1/print-jobs/{}/document", job.job_id),
        "verify_url": verify_url,
    })
}

/// What the QR code of a job carries.
fn verify_url(settings: &crate::config::PrintingSettings, key: &TokenKey, job: Uuid) -> String {
    format!("{}{}", settings.verify_url, key.issue(job))
}

async fn find(desk: &PrintDesk, job_id: &str) -> Result<PrintJob, GatewayError> {
    let id = job_id.to_owned();
    blocking(&desk.store, move |store| store.get(&id))
        .await?
        .ok_or_else(|| GatewayError::UnknownPrintJob { job_id: job_id.to_owned() })
}

/// `GET /v1/print-jobs?site=ID[&state=queued|printed|all]`: a site's queue, oldest first.
pub async fn list(
    gateway: &Gateway,
    federation: &Federation,
    x: &Exchange,
    site: Option<String>,
    state: Option<String>,
) -> Result<Reply, GatewayError> {
    let (desk, settings) = desk(gateway, federation)?;
    let Some(site) = site.filter(|s| shaped_id(s)) else {
        return Err(GatewayError::BadQuery {
            name: "site",
            detail: "is required: the window or terminal id, e.g. ?site=GD-WINDOW-01".into(),
        });
    };
    let state = match state.as_deref() {
        None | Some("queued") => Some(JOB_QUEUED),
        Some("printed") => Some(JOB_PRINTED),
        Some("all") => None,
        Some(_) => {
            return Err(GatewayError::BadQuery {
                name: "state",
                detail: "is one of queued (default), printed or all".into(),
            });
        }
    };
    let for_site = site.clone();
    let jobs = blocking(&desk.store, move |store| store.for_site(&for_site, state, 100)).await?;
    // A site's queue shows only the jobs the caller has the right to see.
    let jobs: Vec<Value> =
        jobs.iter().filter(|job| authorize_job(x, job).is_ok()).map(|job| job_json(job, settings, &desk.key)).collect();
    Ok(private(respond::json(StatusCode::OK, &json!({ "site": site, "jobs": jobs }), &x.cx)))
}

/// `GET /v1/print-jobs/{id}`.
pub async fn show(
    gateway: &Gateway,
    federation: &Federation,
    x: &Exchange,
    job_id: &str,
) -> Result<Reply, GatewayError> {
    let (desk, settings) = desk(gateway, federation)?;
    let job = find(&desk, job_id).await?;
    authorize_job(x, &job)?;
    Ok(private(respond::json(StatusCode::OK, &job_json(&job, settings, &desk.key), &x.cx)))
}

/// The `print` right for the region that issued the job's certificate, from the job's site.
fn authorize_job(x: &Exchange, job: &PrintJob) -> Result<(), GatewayError> {
    let call = Call::to(Right::Print, &job.issuer_region, None).from(Some(&job.site_region));
    crate::proxy::admit::authorize(x, call)
}

/// `GET /v1/print-jobs/{id}/document`: the PDF.
pub async fn document(
    gateway: &Gateway,
    federation: &Federation,
    x: &Exchange,
    job_id: &str,
) -> Result<Reply, GatewayError> {
    let (desk, _) = desk(gateway, federation)?;
    authorize_job(x, &find(&desk, job_id).await?)?;
    let id = job_id.to_owned();
    let document = blocking(&desk.store, move |store| store.document(&id))
        .await?
        .ok_or_else(|| GatewayError::UnknownPrintJob { job_id: job_id.to_owned() })?;
    let mut reply = respond::bytes(StatusCode::OK, "application/pdf", document, &x.cx);
    if let Ok(value) = http::HeaderValue::from_str(&format!("inline; filename=\"{job_id}.pdf\"")) {
        reply.headers_mut().insert(http::header::CONTENT_DISPOSITION, value);
    }
    // Personal data: no shared cache may keep it.
    reply.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(reply)
}

/// The site names itself, so a job cannot be confirmed by another window by mistake.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    site: String,
}

/// `POST /v1/print-jobs/{id}/printed`: the site confirms; repeating it changes nothing.
pub async fn printed(
    gateway: &Gateway,
    federation: &Federation,
    x: &Exchange,
    job_id: &str,
    body: &[u8],
) -> Result<Reply, GatewayError> {
    let (desk, settings) = desk(gateway, federation)?;
    crate::proxy::decode::depth(body, federation.server.max_json_depth)?;
    let confirmation: Confirmation = serde_json::from_slice(body).map_err(|error| GatewayError::Unparseable {
        detail: format!("{error}; send {{\"site\": \"<the id of the site that printed it>\"}}"),
        field: Some("/site".into()),
    })?;
    let job = find(&desk, job_id).await?;
    authorize_job(x, &job)?;
    if confirmation.site != job.site {
        return Err(GatewayError::PrintJobConflict {
            detail: format!(
                "job {job_id} is queued for site {}, not {}; only that site confirms it",
                job.site, confirmation.site
            ),
        });
    }
    let id = job_id.to_owned();
    let now = gateway.acceptances.clock.now_ms();
    let job = blocking(&desk.store, move |store| store.mark_printed(&id, now))
        .await?
        .ok_or_else(|| GatewayError::UnknownPrintJob { job_id: job_id.to_owned() })?;
    gateway.metrics.print_jobs.with_label_values(&["printed"]).inc();
    Ok(private(respond::json(StatusCode::OK, &job_json(&job, settings, &desk.key), &x.cx)))
}

/// `GET /v1/verify/{token}`: what anyone scanning the QR code learns. Always 200 with a status;
/// only the masked holder name and the certificate's public facts are shown.
pub async fn check(
    gateway: &Gateway,
    federation: &Federation,
    x: &mut Exchange,
    token: &str,
) -> Result<Reply, GatewayError> {
    let (desk, _) = desk(gateway, federation)?;
    let unknown = |x: &Exchange| {
        gateway.metrics.print_verifications.with_label_values(&["unknown"]).inc();
        respond::json(
            StatusCode::OK,
            &json!({
                "status": "unknown",
                "genuine": false,
                "detail": "this code was not issued by this gateway, or it was altered: treat the document as not genuine",
            }),
            &x.cx,
        )
    };
    let Some(job_id) = desk.key.check(token) else { return Ok(unknown(x)) };
    let id = job_id.to_string();
    let Some(job) = blocking(&desk.store, move |store| store.get(&id)).await? else { return Ok(unknown(x)) };
    let (region, certificate_id) = (job.issuer_region.clone(), job.certificate_id.clone());
    let latest = blocking(&desk.store, move |store| store.last_print_number(&region, &certificate_id)).await?;
    // Ask the issuer whether the certificate still stands; the record answers when it cannot.
    // Anyone may check a printed QR code: no right is needed.
    let current =
        fetch(gateway, federation, x, &job.certificate_id, Some(&job.issuer_region), Freshness::Cached, None).await;
    let today = today(gateway);
    let (status, issuer_checked, detail) = match &current {
        Ok(verified) => {
            let certificate = &verified.certificate;
            let same = hex(&Sha256::digest(certificate.signed_bytes())) == job.certificate_digest;
            match certificate.printable_on(today) {
                Err(NotPrintable::Withdrawn(status)) => {
                    ("cancelled", true, format!("the issuer reports the certificate {}", status.as_str()))
                }
                Err(NotPrintable::Expired { valid_until }) => {
                    ("expired", true, format!("the certificate was valid until {valid_until}"))
                }
                _ if !same => (
                    "superseded",
                    true,
                    "the issuer's certificate has changed since this document was printed; ask for a new print".into(),
                ),
                _ => {
                    let (status, detail) = standing(&job, latest);
                    (status, true, detail)
                }
            }
        }
        // The issuer no longer has it: as good as withdrawn.
        Err(GatewayError::UpstreamBusiness { outcome: crate::adapter::envelope::Outcome::NotFound, .. }) => {
            ("cancelled", true, "the issuer no longer has this certificate".into())
        }
        // The certificate no longer verifies (a key withdrawn, the content changed unsigned):
        // the paper cannot be vouched for.
        Err(error) if !error.spec().retryable => {
            tracing::warn!(request_id = %x.cx.request_id, job_id = %job.job_id, problem = error.spec().slug, "A printed certificate can no longer be confirmed.");
            (
                "unconfirmed",
                true,
                format!(
                    "the issuer's certificate can no longer be verified ({}); do not rely on this document",
                    error.spec().slug
                ),
            )
        }
        // The issuer could not be asked just now: the record answers, and says so.
        Err(error) => {
            tracing::info!(request_id = %x.cx.request_id, job_id = %job.job_id, problem = error.spec().slug, "Verification answered from the record: the issuer could not be asked.");
            let (status, _) = standing(&job, latest);
            (
                status,
                false,
                format!("printed by this gateway; the issuer could not be asked just now ({})", error.spec().slug),
            )
        }
    };
    gateway.metrics.print_verifications.with_label_values(&[status]).inc();
    let mut body = json!({
        "status": status,
        // Genuine and current: what a person scanning the code wants to know.
        "genuine": matches!(status, "genuine" | "reprinted"),
        "detail": detail,
        "print_number": job.print_number,
        "latest_print_number": latest,
        "issuer_checked": issuer_checked,
        "certificate": {
            "certificate_id": job.certificate_id,
            "name": job.certificate_name,
            "holder": job.holder_masked,
            "issuer_region": job.issuer_region,
        },
        "printed": {
            "site": job.site,
            "site_region": job.site_region,
            "queued_at": rfc3339(job.created_at),
            "printed_at": job.printed_at.map(rfc3339),
        },
    });
    if let Ok(verified) = &current {
        let certificate = &verified.certificate;
        body["certificate"]["issuer"] = json!(certificate.issuer.name);
        body["certificate"]["issued_on"] = json!(certificate.issued_on);
        body["certificate"]["valid_until"] = json!(certificate.valid_until.as_deref().unwrap_or("长期"));
        body["certificate"]["status"] = json!(certificate.status.as_str());
    }
    Ok(respond::json(StatusCode::OK, &body, &x.cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_after_the_first_character() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name(""), "");
    }
}
