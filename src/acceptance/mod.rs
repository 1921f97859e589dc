//! Proxy acceptance (异地代收代办): a window in one province accepts an application for a matter
//! another province handles. The gateway commits it to the durable store *before* answering
//! `202 Accepted` with a receipt number (回执编号); the delivery worker ([`worker`]) then forwards
//! it to the handling platform until that platform confirms with its own case number. Nothing
//! acknowledged is lost; an `Idempotency-Key` (or the application id) never makes a second record.

pub mod clock;
pub mod joint;
pub mod materials;
pub mod status;
pub mod worker;

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use self::clock::Clock;
use crate::access::{Call, Right};
use crate::canonical::Mode;
use crate::canonical::validate::FieldError;
use crate::problem::GatewayError;
use crate::proxy::Gateway;
use crate::proxy::pipeline::{Exchange, caller_name};
use crate::proxy::respond::{self, Reply};
use crate::proxy::{decode, route};
use crate::store::{AcceptanceStore, NewAcceptance, StoreError};

/// The store and the clock acceptances are stamped with.
pub struct Acceptances {
    /// The durable store.
    pub store: Arc<dyn AcceptanceStore>,
    /// Wall time that follows tokio's clock (paused in tests).
    pub clock: Clock,
    /// Uploaded materials, content-addressed (材料库).
    pub materials: materials::MaterialStore,
    /// Wakes the delivery worker when there is new work (an acceptance, a requeue, a report).
    pub wake: tokio::sync::Notify,
}

/// `POST /v1/acceptances` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceRequest {
    /// Where the application was accepted (收件窗口).
    accepting_site: AcceptingSite,
    /// The canonical application, mode `proxy_acceptance`.
    application: Value,
}

/// The accepting window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptingSite {
    /// The window's id at the accepting platform.
    window_id: String,
    /// The window's region code (must be the application's accepting region).
    region: String,
}

fn invalid(field: &str, detail: impl Into<String>) -> GatewayError {
    GatewayError::Invalid { errors: vec![FieldError { field: field.into(), detail: detail.into() }] }
}

fn store_error(err: StoreError) -> GatewayError {
    match err {
        StoreError::Conflict { .. } | StoreError::InvalidTransition { .. } | StoreError::IdTaken { .. } => {
            GatewayError::AcceptanceConflict { detail: err.to_string() }
        }
        StoreError::KeyReused { .. } => GatewayError::IdempotencyKeyReused { detail: err.to_string() },
        // The store's own check of what the caller sent: the caller's to fix, not a fault.
        StoreError::InvalidInput { field, reason } => {
            GatewayError::InvalidRequest { errors: vec![FieldError { field: field.to_owned(), detail: reason }] }
        }
        other => GatewayError::Internal(format!("the acceptance store failed: {other}")),
    }
}

/// Runs a blocking store call off the async workers.
pub async fn blocking<T: Send + 'static>(
    store: &Arc<dyn AcceptanceStore>,
    call: impl FnOnce(&dyn AcceptanceStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(store.as_ref())).await {
        Ok(result) => result.map_err(store_error),
        Err(err) => Err(GatewayError::Internal(format!("the acceptance store task failed: {err}"))),
    }
}

/// How long a multipart upload may take: scanned materials are large and windows' links slow.
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Reads a `multipart/form-data` acceptance: the `acceptance` part (the JSON document) and one
/// part per material, each streamed into the material store's staging area.
pub async fn upload(
    gateway: &Gateway,
    federation: &crate::config::load::Federation,
    content_type: &str,
    body: hyper::body::Incoming,
) -> Result<materials::Upload, GatewayError> {
    use http_body_util::BodyExt as _;
    let settings = &federation.acceptance;
    let limits = materials::MultipartLimits {
        document_bytes: federation.server.body_limit,
        material_bytes: settings.material_max_bytes,
        max_parts: settings.max_materials.saturating_add(1),
    };
    let read =
        materials::read_multipart(content_type, body.into_data_stream(), &limits, &gateway.acceptances.materials);
    match tokio::time::timeout(UPLOAD_TIMEOUT, read).await {
        Ok(result) => result.map_err(|err| material_error(err, None)),
        Err(_) => Err(GatewayError::BodyTimeout { after: UPLOAD_TIMEOUT }),
    }
}

/// A material problem as the caller sees it: the field (or multipart part) and the fix.
fn material_error(err: materials::MaterialError, field: Option<String>) -> GatewayError {
    use materials::MaterialError as E;
    let field = field.or_else(|| err.part().map(|part| format!("multipart part '{part}'")));
    if err.is_internal() {
        return GatewayError::Internal(format!("the material store failed: {err}"));
    }
    match err {
        E::TooLarge { .. } | E::BodyTooLarge { .. } => {
            GatewayError::MaterialTooLarge { field: field.unwrap_or_else(|| "/".into()), detail: err.to_string() }
        }
        E::DigestMismatch { .. } | E::SizeMismatch { .. } | E::UnknownPart { .. } | E::BadReference { .. } => {
            GatewayError::Invalid {
                errors: vec![FieldError { field: field.unwrap_or_else(|| "/".into()), detail: err.to_string() }],
            }
        }
        other => GatewayError::Unparseable { detail: other.to_string(), field },
    }
}

/// Puts the application's materials in the material store — inline content and uploaded parts
/// alike, each checked against its declared SHA-256 and size — and points the document at
/// them (`urn:tongban:material:sha256:…`). Nothing is stored unless every material passes.
async fn store_materials(
    gateway: &Gateway,
    application: &mut Value,
    upload: Option<materials::Upload>,
    max_bytes: u64,
    max_materials: usize,
) -> Result<(), GatewayError> {
    use base64::Engine as _;
    let count = application["materials"].as_array().map_or(0, Vec::len);
    if count > max_materials {
        return Err(invalid(
            "/application/materials",
            format!("{count} materials; at most {max_materials} go in one acceptance"),
        ));
    }
    let mut upload = upload;
    let mut staged = Vec::new();
    let mut known = Vec::new();
    for index in 0..count {
        let material = &application["materials"][index];
        let at = |field: &str| format!("/application/materials/{index}/{field}");
        let declared_sha = material["sha256"].as_str().unwrap_or_default().to_owned();
        let declared_size = material["size"].as_u64().unwrap_or_default();
        if declared_size > max_bytes {
            let detail = format!(
                "the material is {declared_size} bytes; at most {max_bytes} are accepted — scan it at a lower resolution or split it"
            );
            return Err(GatewayError::MaterialTooLarge { field: at("size"), detail });
        }
        let piece = if let Some(content) = material["content_base64"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|_| invalid(&at("content_base64"), "is not valid base64 (standard alphabet, with padding)"))?;
            // Validation checked the digest; content already stored is not written again.
            if gateway.acceptances.materials.contains(&declared_sha) {
                known.push((index, declared_sha));
                continue;
            }
            let store = gateway.acceptances.materials.clone();
            let piece = tokio::task::spawn_blocking(move || store.stage_bytes(&bytes))
                .await
                .map_err(|err| GatewayError::Internal(format!("the material task failed: {err}")))?;
            piece.map_err(|err| material_error(err, Some(at("content_base64"))))?
        } else if let Some(reference) = material["reference"].as_str().filter(|r| r.starts_with("cid:")) {
            let Some(upload) = upload.as_mut() else {
                return Err(invalid(
                    &at("reference"),
                    "a cid: reference names a part of a multipart/form-data upload; send the material as that part, or inline as content_base64",
                ));
            };
            upload.take(reference).map_err(|err| material_error(err, Some(at("reference"))))?
        } else {
            let stored = material["reference"].as_str().and_then(materials::parse_reference);
            if let Some(sha256) = stored
                && !gateway.acceptances.materials.contains(sha256)
            {
                return Err(invalid(
                    &at("reference"),
                    "no stored material has this digest; send the content (inline or as a multipart part)",
                ));
            }
            continue; // stored already, or held elsewhere (a URL the platform fetches)
        };
        piece.check(&declared_sha, declared_size).map_err(|err| {
            let field = if matches!(err, materials::MaterialError::SizeMismatch { .. }) { "size" } else { "sha256" };
            material_error(err, Some(at(field)))
        })?;
        staged.push((index, piece));
    }
    if let Some(upload) = upload {
        upload.finish().map_err(|err| material_error(err, None))?;
    }
    if !staged.is_empty() {
        let stored = tokio::task::spawn_blocking(move || {
            staged
                .into_iter()
                .map(|(index, piece)| piece.commit().map(|stored| (index, stored.sha256)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|err| GatewayError::Internal(format!("the material task failed: {err}")))?
        .map_err(|err| material_error(err, None))?;
        known.extend(stored);
    }
    for (index, sha256) in known {
        if let Some(object) = application["materials"][index].as_object_mut() {
            object.remove("content_base64");
            object.insert("reference".into(), Value::String(materials::reference(&sha256)));
        }
    }
    Ok(())
}

/// The key as stored: each partner's keys are its own, so one window can neither collide with
/// another's key nor read another's receipt by guessing it. Keys are visible ASCII, so the space
/// cannot occur in one and the partner's name ends at the last space.
fn partner_scoped(x: &Exchange, key: &str) -> String {
    format!("{} {key}", caller_name(x))
}

/// `POST /v1/acceptances`: validate, route, commit, then acknowledge with a receipt.
pub async fn accept(
    gateway: &Gateway,
    x: &mut Exchange,
    body: &[u8],
    idempotency_key: Option<String>,
    upload: Option<materials::Upload>,
) -> Result<Reply, GatewayError> {
    let federation = gateway.federation();
    let request = decode::json(body, federation.server.max_json_depth)?;
    let request: AcceptanceRequest = serde_path_to_error::deserialize(&request).map_err(|err| {
        let field = decode::pointer(&err.path().to_string());
        invalid(&field, err.inner().to_string().replace('`', "'"))
    })?;
    let mut doc = request.application;
    let (app, validation) =
        decode::validated(&mut doc, federation.regions).map_err(|error| prefix_fields(error, "/application"))?;
    let joint_rule = match app.mode {
        Mode::ProxyAcceptance => None,
        Mode::MultiSite => match federation.matters.joint(&app.matter.code) {
            Some(rule) if rule.parties.iter().any(|p| p.region == app.handling_region) => Some(rule),
            Some(rule) => {
                let regions: Vec<&str> = rule.parties.iter().map(|p| p.region.as_str()).collect();
                return Err(invalid(
                    "/application/handling_region",
                    format!(
                        "a joint matter is led by one of its parties; give one of their regions: {}",
                        regions.join(", ")
                    ),
                ));
            }
            None => {
                return Err(invalid(
                    "/application/mode",
                    format!(
                        "matter {} is not handled jointly (its matter-list entry has no [matter.joint]); send mode proxy_acceptance",
                        app.matter.code
                    ),
                ));
            }
        },
        _ => {
            return Err(invalid(
                "/application/mode",
                "an acceptance is mode proxy_acceptance (异地代收代办) or multi_site (多地联办); send other applications to POST /v1/applications",
            ));
        }
    };
    let site = &request.accepting_site;
    if site.window_id.trim().is_empty() || site.window_id.len() > 64 {
        return Err(invalid("/accepting_site/window_id", "give the accepting window's id, 1–64 characters"));
    }
    let (Some(accepting), Some(handling)) = (validation.accepting, validation.handling) else {
        return Err(GatewayError::Internal("validated regions missing".into()));
    };
    match federation.regions.resolve(&site.region) {
        Ok(resolved) if resolved.code == accepting.code => {}
        Ok(_) => {
            return Err(invalid(
                "/accepting_site/region",
                format!("the window's region must be the application's accepting region {}", accepting.code),
            ));
        }
        Err(err) => return Err(invalid("/accepting_site/region", err.to_string())),
    }
    x.operation = Some(crate::adapter::Operation::Submit);
    let route = route::application(&federation, &app.matter.code, app.mode, accepting, handling)?;
    x.target = Some(route.adapter.name.clone());
    x.kind = route.kind;
    let warnings = crate::proxy::pipeline::uscc_policy(validation.uscc_check_failures, &route, x)?;
    let from = route.from.as_ref().map(|from| from.code.as_str());
    x.from_region = from.map(str::to_owned);
    let call = Call::to(Right::Accept, &route.to.code, Some(&app.matter.code)).from(from);
    crate::proxy::pipeline::admit(
        gateway,
        &federation,
        x,
        &route.adapter,
        crate::adapter::Operation::Submit,
        Some(call),
    )
    .map_err(|error| error.from_field("/accepting_site/region"))?;
    // Joint handling sends the application to every party: each region needs the right too.
    if let Some(rule) = joint_rule {
        for party in &rule.parties {
            let call = Call::to(Right::Accept, &party.region, Some(&app.matter.code));
            crate::proxy::admit::authorize(x, call)?;
        }
    }
    // Platforms validate against today's division table (see submit).
    doc["handling_region"] = Value::String(route.to.code.clone());
    if let Some(from) = &route.from {
        doc["accepting_region"] = Value::String(from.code.clone());
    }
    let settings = &federation.acceptance;
    store_materials(gateway, &mut doc, upload, settings.material_max_bytes, settings.max_materials).await?;
    let acceptances = &gateway.acceptances;
    let accepted_at = acceptances.clock.now_ms();
    let joint = joint_rule.map(|rule| joint::fan_out(rule, &doc, accepted_at));
    let new = NewAcceptance {
        application_id: app.application_id.clone().unwrap_or_default(),
        idempotency_key: idempotency_key.map(|key| partner_scoped(x, &key)),
        partner: caller_name(x).to_owned(),
        target: route.adapter.name.clone(),
        matter_code: app.matter.code.clone(),
        window_id: site.window_id.clone(),
        accepting_region: route.from.as_ref().map(|r| r.code.clone()).unwrap_or_default(),
        handling_region: route.to.code.clone(),
        document: doc.to_string(),
        accepted_at,
        joint,
    };
    let accepted = blocking(&acceptances.store, move |store| store.accept(new)).await?;
    gateway.acceptance_accepted(accepted.created);
    if accepted.created {
        acceptances.wake.notify_one();
    }
    let record = &accepted.acceptance;
    tracing::info!(
        request_id = %x.cx.request_id,
        receipt = %record.receipt,
        platform = %record.target,
        created = accepted.created,
        "Acceptance committed."
    );
    let location = format!("/v1/acceptances/{}", record.receipt);
    let mut body = json!({
        "receipt": record.receipt,
        "application_id": record.application_id,
        "state": record.state,
        "accepted_at": clock::rfc3339(record.accepted_at),
        "route": route.to_json(),
        "links": { "self": location },
    });
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    let mut reply = respond::json(StatusCode::ACCEPTED, &body, &x.cx);
    if let Ok(value) = http::HeaderValue::from_str(&location) {
        reply.headers_mut().insert(http::header::LOCATION, value);
    }
    if !accepted.created {
        reply.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    Ok(reply)
}

/// The caller's right over one stored acceptance, for its handling region and matter: the
/// partner that accepted it reads it with `accept`; the handling side reads it and reports
/// decisions with `decide`; the window that accepted it never decides it (separation of duties),
/// so one window can neither read another's acceptances nor approve its own.
fn authorize_record(x: &Exchange, record: &crate::store::Acceptance, decision: bool) -> Result<(), GatewayError> {
    let owner = record.partner.as_deref().is_some_and(|owner| owner == caller_name(x));
    if decision && owner && matches!(x.caller, Some(crate::identity::Caller::Partner(_))) {
        return Err(GatewayError::Forbidden {
            partner: caller_name(x).to_owned(),
            right: "own",
            value: record.receipt.clone(),
            field: None,
        });
    }
    let right = if owner && !decision { Right::Accept } else { Right::Decide };
    crate::proxy::admit::authorize(x, Call::to(right, &record.handling_region, Some(&record.matter_code)))
}

/// `GET /v1/acceptances/{receipt}`: the state and the timeline.
pub async fn show(gateway: &Gateway, x: &Exchange, receipt: &str) -> Result<Reply, GatewayError> {
    let id = receipt.to_owned();
    let store = &gateway.acceptances.store;
    let found = blocking(store, move |store| {
        let record = store.get(&id)?;
        let (events, parts) = match &record {
            Some(record) if record.kind == crate::store::KIND_JOINT => (store.events(&id)?, store.parts(&id)?),
            Some(_) => (store.events(&id)?, Vec::new()),
            None => (Vec::new(), Vec::new()),
        };
        Ok((record, events, parts))
    })
    .await?;
    let (Some(record), events, parts) = found else {
        return Err(GatewayError::UnknownReceipt { receipt: receipt.to_owned() });
    };
    authorize_record(x, &record, false)?;
    let timeline: Vec<Value> =
        events.iter().map(|e| json!({ "at": clock::rfc3339(e.at), "event": e.kind, "detail": e.detail })).collect();
    let mut body = json!({
        "receipt": record.receipt,
        "application_id": record.application_id,
        "state": record.state,
        "platform": record.target,
        "province_case_id": record.province_case_id,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "window_id": record.window_id,
        "accepting_region": record.accepting_region,
        "handling_region": record.handling_region,
        "accepted_at": clock::rfc3339(record.accepted_at),
        "updated_at": clock::rfc3339(record.updated_at),
        "next_status_poll": record.next_poll_at.map(clock::rfc3339),
        "timeline": timeline,
    });
    if let Some(parent) = &record.parent_receipt {
        body["part_of"] =
            json!({ "receipt": parent, "party": record.party, "link": format!("/v1/acceptances/{parent}") });
    }
    if record.kind == crate::store::KIND_JOINT {
        body["joint"] = json!({
            "deadline": record.deadline_at.map(clock::rfc3339),
            "absence": record.absence,
            "parts": parts.iter().map(|part| json!({
                "receipt": part.receipt,
                "party": part.party,
                "platform": part.target,
                "handling_region": part.handling_region,
                "state": part.state,
                "province_case_id": part.province_case_id,
                "absent": part.state == crate::store::STATE_ABSENT,
                "link": format!("/v1/acceptances/{}", part.receipt),
            })).collect::<Vec<_>>(),
        });
    }
    Ok(respond::json(StatusCode::OK, &body, &x.cx))
}

/// Field paths of the inner application are reported from the request's root.
fn prefix_fields(error: GatewayError, prefix: &str) -> GatewayError {
    match error {
        GatewayError::Invalid { errors } => GatewayError::Invalid {
            errors: errors
                .into_iter()
                .map(|e| FieldError { field: format!("{prefix}{}", if e.field == "/" { "" } else { &e.field }), ..e })
                .collect(),
        },
        other => other,
    }
}

/// `POST /v1/acceptances/{receipt}/events` body: the handling platform reports progress.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformEvent {
    /// The canonical state: in_review, supplement_required, approved, rejected, withdrawn.
    state: crate::canonical::State,
    /// The platform's remark (办理意见), if any.
    #[serde(default)]
    detail: Option<String>,
}

/// `POST /v1/acceptances/{receipt}/events`: a callback from the handling platform after delivery.
pub async fn event(gateway: &Gateway, x: &Exchange, receipt: &str, body: &[u8]) -> Result<Reply, GatewayError> {
    let request = decode::json(body, gateway.federation().server.max_json_depth)?;
    let event: PlatformEvent = serde_path_to_error::deserialize(&request).map_err(|err| {
        let field = decode::pointer(&err.path().to_string());
        invalid(&field, err.inner().to_string().replace('`', "'"))
    })?;
    let Some(state) = status::acceptance_state(event.state) else {
        return Err(invalid(
            "/state",
            "an acceptance is received when it is delivered; report in_progress, supplement_required, approved, rejected or withdrawn",
        ));
    };
    let acceptances = &gateway.acceptances;
    let now = acceptances.clock.now_ms();
    let id = receipt.to_owned();
    let detail = event.detail.clone();
    let lookup = id.clone();
    let Some(record) = blocking(&acceptances.store, move |store| store.get(&lookup)).await? else {
        return Err(GatewayError::UnknownReceipt { receipt: receipt.to_owned() });
    };
    authorize_record(x, &record, true)?;
    let recorded = blocking(&acceptances.store, move |store| {
        if store.get(&id)?.is_none() {
            return Ok(None);
        }
        store.record_state(&id, state, detail.as_deref(), now).map(Some)
    })
    .await;
    match recorded {
        Ok(Some(changed)) => {
            if changed {
                // A part's decision may complete its joint acceptance.
                acceptances.wake.notify_one();
            }
            tracing::info!(request_id = %x.cx.request_id, receipt, state, changed, "Platform event recorded.");
            Ok(respond::json(StatusCode::OK, &json!({ "receipt": receipt, "state": state, "changed": changed }), &x.cx))
        }
        Ok(None) => Err(GatewayError::UnknownReceipt { receipt: receipt.to_owned() }),
        Err(error) => Err(error),
    }
}
