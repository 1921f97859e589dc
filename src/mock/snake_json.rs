//! Style E `snake-json` (政务服务网关 v3, 甘肃/嘉峪关): REST JSON with nested snake_case
//! objects (`service{code,name}`, `regions{handling,accepting}`,
//! `applicant{category, person{…}|organization{…}}`, `id_document{type,number}`), times as epoch
//! milliseconds, gender as GB/T 2261.1 integers 1/2/0/9. Answers `201 {"application":{…}}`
//! (200 when the external_ref already exists), `422 {"error":{"code","message","field"}}`,
//! `404 {"error":{"code":"not_found",…}}`, `503 unavailable`.
//!
//! - Submit `POST /gateway/v3/applications`.
//! - Status `GET /gateway/v3/applications/by-ref/{external_ref}`.
//! - Matters `GET /gateway/v3/services?region=…` → `{"services":[{code,name,department}],"total":n}`.
//!
//! Full description: `docs/platforms/snake-json.md`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::json::{Obj, parse_object};
use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};

/// 办件状态 codes (status).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("received", CaseState::Received),
    ("accepted", CaseState::Accepted),
    ("in_progress", CaseState::InProgress),
    ("supplement_required", CaseState::SupplementRequired),
    ("approved", CaseState::Approved),
    ("rejected", CaseState::Rejected),
    ("withdrawn", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] = &[("online", Mode::Online), ("proxy", Mode::Proxy), ("multi_site", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("person", Kind::Natural), ("organization", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("resident_id", IdType::ResidentId),
    ("passport", IdType::Passport),
    ("hk_macao_permit", IdType::HkMacaoPermit),
    ("taiwan_permit", IdType::TaiwanPermit),
    ("foreign_permanent_resident", IdType::ForeignPermanentResident),
    ("uscc", IdType::Uscc),
];
const GENDERS: &[&str] = &["1", "2", "0", "9"];

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn reply(status: StatusCode, body: &Value) -> Reply {
    Reply { status, content_type: CONTENT_TYPE, body: body.to_string().into_bytes() }
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Reply {
    reply(status, &json!({"error": {"code": code, "message": message, "field": field}}))
}

/// Renders a refusal as `{"error":{"code","message","field"}}` with a REST status.
pub(crate) fn reject(r: &Reject) -> Reply {
    let (status, code) = match r.kind {
        RejectKind::Malformed => (StatusCode::BAD_REQUEST, "malformed_json"),
        RejectKind::Missing => (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        RejectKind::UnknownField => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
        RejectKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"),
        RejectKind::UnknownMatter => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_service"),
        RejectKind::OutOfRegion => (StatusCode::UNPROCESSABLE_ENTITY, "region_not_served"),
        RejectKind::NotFound | RejectKind::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
        RejectKind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        RejectKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    };
    error(status, code, &r.message, r.field.as_deref())
}

/// The platform's "unavailable" answer (503).
pub(crate) fn busy() -> Reply {
    error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "服务暂不可用", None)
}

const APPLICATIONS: &str = "/gateway/v3/applications";
const BY_REF: &str = "/gateway/v3/applications/by-ref/";
const SERVICES: &str = "/gateway/v3/services";

/// Routes one business request.
pub(crate) fn handle(ctx: &Ctx<'_>, req: &Req) -> Reply {
    let path = req.path.as_str();
    let result = if path == APPLICATIONS {
        if req.method == Method::POST { submit(ctx, req) } else { Err(Reject::method(req.method.as_str())) }
    } else if let Some(reference) = path.strip_prefix(BY_REF) {
        if req.method == Method::GET { status(ctx, reference) } else { Err(Reject::method(req.method.as_str())) }
    } else if path == SERVICES {
        if req.method == Method::GET { matters(ctx, req) } else { Err(Reject::method(req.method.as_str())) }
    } else {
        Err(Reject::no_route(path))
    };
    result.unwrap_or_else(|r| {
        tracing::info!(platform = ctx.platform.name, error = %r.message, "Request refused.");
        reject(&r)
    })
}

fn names(p: &str) -> Names {
    Names {
        external_id: "external_ref".into(),
        matter_code: "service.code".into(),
        matter_name: "service.name".into(),
        handling_region: "regions.handling".into(),
        accepting_region: "regions.accepting".into(),
        mode: "handling_mode".into(),
        kind: "applicant.category".into(),
        applicant_name: format!("{p}.name"),
        id_type: format!("{p}.id_document.type"),
        id_number: format!("{p}.id_document.number"),
        gender: format!("{p}.gender"),
        birth_date: format!("{p}.birth_date"),
        phone: format!("{p}.phone"),
        address: format!("{p}.address"),
        credit_code: format!("{p}.credit_code"),
        legal_rep: format!("{p}.legal_representative"),
        submitted_at: "submitted_at".into(),
    }
}

/// Reads `applicant`; answers the path prefix of the party object for messages.
fn applicant(o: &mut Obj<'_>) -> Result<(RawApplicant, String), Reject> {
    let mut a = o.obj("applicant")?.ok_or_else(|| Reject::missing("applicant"))?;
    let category = a.str("category")?.ok_or_else(|| Reject::missing("applicant.category"))?;
    let (own, other) = match category.as_str() {
        "person" => ("person", "organization"),
        "organization" => ("organization", "person"),
        c => {
            return Err(Reject::invalid(
                "applicant.category",
                format!("代码 {c} 不在代码表中（person、organization）"),
            ));
        }
    };
    // Only the object matching the category may be present.
    let (mut party, stray) = if own == "person" {
        (a.obj("person")?, a.obj("organization")?)
    } else {
        (a.obj("organization")?, a.obj("person")?)
    };
    if stray.is_some() {
        return Err(Reject::invalid(&format!("applicant.{other}"), format!("category 为 {own} 时不能填写 {other}")));
    }
    a.finish()?;
    let path = format!("applicant.{own}");
    let p = party.as_mut().ok_or_else(|| Reject::missing(&path))?;
    let mut raw = RawApplicant {
        kind: Some(category.clone()),
        name: p.str("name")?,
        phone: p.str("phone")?,
        address: p.str("address")?,
        ..RawApplicant::default()
    };
    match p.obj("id_document")? {
        Some(mut doc) => {
            raw.id_type = doc.str("type")?;
            raw.id_number = doc.str("number")?;
            doc.finish()?;
        }
        None => return Err(Reject::missing(&format!("{path}.id_document"))),
    }
    if own == "person" {
        raw.gender = p.int("gender")?;
        raw.birth_date = p.str("birth_date")?;
    } else {
        raw.credit_code = p.str("credit_code")?;
        raw.legal_rep = p.str("legal_representative")?;
    }
    if let Some(p) = party {
        p.finish()?;
    }
    Ok((raw, path))
}

fn submit(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    if let Err(r) = validate::require_content_type(req.content_type.as_deref(), &["application/json"], "utf-8", false) {
        return Ok(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", &r.message, None));
    }
    let value = parse_object(&req.body)?;
    let mut o = Obj::new(&value, "")?;
    let mut raw = RawSubmission {
        external_id: o.str("external_ref")?,
        mode: o.str("handling_mode")?,
        form: o.string_map("form")?,
        submitted_at: o.int("submitted_at")?,
        ..RawSubmission::default()
    };
    match o.obj("service")? {
        Some(mut s) => {
            raw.matter_code = s.str("code")?;
            raw.matter_name = s.str("name")?;
            s.finish()?;
        }
        None => return Err(Reject::missing("service")),
    }
    match o.obj("regions")? {
        Some(mut r) => {
            raw.handling_region = r.str("handling")?;
            raw.accepting_region = r.str("accepting")?;
            r.finish()?;
        }
        None => return Err(Reject::missing("regions")),
    }
    let (applicant, party) = applicant(&mut o)?;
    raw.applicant = applicant;
    if let Some(list) = o.arr("materials")? {
        for (i, item) in list.iter().enumerate() {
            let mut m = Obj::new(item, &format!("materials[{i}]"))?;
            raw.materials.push(RawMaterial {
                name: m.str("name")?,
                media_type: m.str("media_type")?,
                sha256: m.str("sha256")?,
                size: m.int("size_bytes")?,
                content: m.str("content_base64")?,
                reference: m.str("reference_url")?,
            });
            m.finish()?;
        }
    }
    o.finish()?;

    let dialect = Dialect {
        names: names(&party),
        material_names: MaterialNames {
            name: "name",
            media_type: "media_type",
            sha256: "sha256",
            size: "size_bytes",
            content: "content_base64",
            reference: "reference_url",
        },
        material_path: &|i, leaf| format!("materials[{i}].{leaf}"),
        form_path: &|key| format!("form.{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Dashed,
        datetime: DateTimeFmt::EpochMillis,
        base64_whitespace: false,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, created, "Submission accepted.");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(reply(status, &application(&case)))
}

fn application(case: &Case) -> Value {
    json!({
        "application": {
            "case_number": case.case_number,
            "external_ref": case.external_id,
            "status": state_code(STATES, case.state),
            "created_at": case.created.timestamp_millis(),
            "updated_at": case.updated.timestamp_millis(),
            "opinion": case.opinion,
        }
    })
}

fn status(ctx: &Ctx<'_>, reference: &str) -> Result<Reply, Reject> {
    let reference = validate::percent_decode(reference).map_err(|_| Reject::not_found(reference))?;
    let store = ctx.store();
    let case = store
        .by_external(&reference)
        .ok_or_else(|| Reject::new(RejectKind::NotFound, None, format!("application {reference} not found")))?;
    Ok(reply(StatusCode::OK, &application(case)))
}

fn matters(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let region = validate::single_param(req.query.as_deref(), "region")?.ok_or_else(|| Reject::missing("region"))?;
    validate::check_region(&region).map_err(|why| Reject::invalid("region", why))?;
    let list: Vec<Value> = if ctx.platform.serves_region(&region) {
        ctx.platform
            .catalogue()
            .iter()
            .map(|m| json!({"code": m.code, "name": m.name, "department": m.department}))
            .collect()
    } else {
        Vec::new()
    };
    Ok(reply(StatusCode::OK, &json!({"total": list.len(), "services": list})))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::{Value, json};

    use crate::mock::testutil::{Client, Probe, Resp, check_faults, check_slow, must, received, set_state, start};

    const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

    fn valid() -> Value {
        json!({
            "external_ref": "TB-20261122-000005",
            "service": {"code": "000104001000", "name": "户口迁移"},
            "regions": {"handling": "620102", "accepting": "520102"},
            "handling_mode": "multi_site",
            "applicant": {
                "category": "person",
                "person": {
                    "name": "马文",
                    "id_document": {"type": "resident_id", "number": "620102199505205613"},
                    "gender": 1,
                    "birth_date": "1995-05-20",
                    "phone": "13919310000",
                    "address": "甘肃省兰州市城关区东岗西路1号"
                }
            },
            "materials": [
                {
                    "name": "居民户口簿",
                    "media_type": "application/pdf",
                    "sha256": "a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9",
                    "size_bytes": 57,
                    "content_base64": "JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK"
                },
                {
                    "name": "准予迁入证明",
                    "media_type": "image/png",
                    "sha256": "4C4B6A3BE1314AB86138BEF4314DDE022E600960D8689A2C8F8631802D20DAB6",
                    "size_bytes": 8,
                    "reference_url": "https://files.example.gov.cn/cl/20261122/zyqrzm.png"
                }
            ],
            "form": {"reason": "务工"},
            "submitted_at": 1_795_312_800_000_u64
        })
    }

    async fn post(addr: SocketAddr, body: &Value) -> Resp {
        must(addr, "POST", "/gateway/v3/applications", JSON, body.to_string().as_bytes()).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("gansu").await;
        let addr = server.local_addr();

        let r = post(addr, &valid()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let a = r.json();
        assert_eq!(a["application"]["case_number"], "GS2026000001");
        assert_eq!(a["application"]["status"], "received");
        assert!(a["application"]["created_at"].is_i64());

        let again = post(addr, &valid()).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["application"]["case_number"], "GS2026000001");

        let mut org = valid();
        org["external_ref"] = json!("TB-corp-5");
        org["applicant"] = json!({
            "category": "organization",
            "organization": {
                "name": "兰州陇原商贸有限公司",
                "id_document": {"type": "uscc", "number": "91620102MA71234K56"},
                "credit_code": "91620102MA71234K56",
                "legal_representative": "杨帆",
                "phone": "0931-8881234",
                "address": null
            }
        });
        let r = post(addr, &org).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["application"]["case_number"], "GS2026000002");

        // Keep-alive: several requests on one connection.
        let mut conn = Client::connect(addr).await;
        let s = conn.send("GET", "/gateway/v3/applications/by-ref/TB-20261122-000005", &[], b"").await.expect("answer");
        assert_eq!(s.status, 200);
        assert_eq!(s.json()["application"]["opinion"], Value::Null);
        let s = conn.send("GET", "/gateway/v3/applications/by-ref/TB%2Dcorp%2D5", &[], b"").await.expect("answer");
        assert_eq!(s.json()["application"]["case_number"], "GS2026000002");

        assert_eq!(set_state(addr, "GS2026000001", "approved", Some("准予迁入")).await.status, 200);
        let s = conn
            .send("GET", "/gateway/v3/applications/by-ref/TB-20261122-000005", &[], b"")
            .await
            .expect("answer")
            .json();
        assert_eq!(s["application"]["status"], "approved");
        assert_eq!(s["application"]["opinion"], "准予迁入");

        let nf = must(addr, "GET", "/gateway/v3/applications/by-ref/nope", &[], b"").await;
        assert_eq!(nf.status, 404);
        assert_eq!(nf.json()["error"]["code"], "not_found");

        let m = must(addr, "GET", "/gateway/v3/services?region=620100", &[], b"").await.json();
        assert_eq!(m["total"], 5);
        assert_eq!(m["services"][0]["department"], "甘肃省公安厅");
        let m = must(addr, "GET", "/gateway/v3/services?region=620200", &[], b"").await.json();
        assert_eq!(m["total"], 5);

        let log = received(addr).await;
        assert_eq!(log.len(), 9);
        assert_eq!(log[3]["path"], "/gateway/v3/applications/by-ref/TB-20261122-000005");
        server.shutdown().await;
    }

    async fn refused(addr: SocketAddr, body: &Value, code: &str, field: &str) {
        let r = post(addr, body).await;
        assert_eq!(r.status, 422, "{}", r.text());
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("jiayuguan").await;
        let addr = server.local_addr();
        let base = || {
            let mut v = valid();
            v["regions"]["handling"] = json!("620202");
            v
        };
        let mut v = base();
        v["applicant"]["person"]["id_document"]["number"] = json!("620102199505205614");
        refused(addr, &v, "invalid_value", "applicant.person.id_document.number").await;
        let mut v = base();
        v["applicant"]["person"]["nickname"] = json!("文");
        refused(addr, &v, "unknown_field", "applicant.person.nickname").await;
        let mut v = base();
        v["applicant"]["person"]["birth_date"] = json!("1995/05/20");
        refused(addr, &v, "invalid_value", "applicant.person.birth_date").await;
        let mut v = base();
        v["applicant"]["person"]["gender"] = json!("1");
        refused(addr, &v, "invalid_value", "applicant.person.gender").await;
        let mut v = base();
        v["applicant"]["person"]["gender"] = json!(3);
        refused(addr, &v, "invalid_value", "applicant.person.gender").await;
        let mut v = base();
        v["submitted_at"] = json!("2026-11-22T10:00:00+08:00");
        refused(addr, &v, "invalid_value", "submitted_at").await;
        let mut v = base();
        v["applicant"]["organization"] = json!({});
        refused(addr, &v, "invalid_value", "applicant.organization").await;
        let mut v = base();
        v["applicant"]["category"] = json!("organization");
        refused(addr, &v, "invalid_value", "applicant.person").await;
        let mut v = base();
        v["materials"][1]["size_bytes"] = json!(8.0);
        refused(addr, &v, "invalid_value", "materials[1].size_bytes").await;
        let mut v = base();
        v["service"]["code"] = json!("000401004000");
        refused(addr, &v, "unknown_service", "service.code").await;
        refused(addr, &valid(), "region_not_served", "regions.handling").await;
        let mut v = base();
        v["regions"] = json!({"handling": "620202"});
        refused(addr, &v, "missing_field", "regions.accepting").await;

        let r = must(addr, "POST", "/gateway/v3/applications", &[("Content-Type", "text/json")], b"{}").await;
        assert_eq!(r.status, 415);
        let r = must(addr, "POST", "/gateway/v3/applications", JSON, b"[1]").await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"]["code"], "malformed_json");
        let r = must(addr, "DELETE", "/gateway/v3/applications", &[], b"").await;
        assert_eq!(r.status, 405);
        let r = must(addr, "GET", "/gateway/v3/services", &[], b"").await;
        assert_eq!(r.status, 422);
        assert_eq!(r.json()["error"]["field"], "region");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn faults() {
        let server = start("jiayuguan").await;
        let probe = Probe { method: "GET", path: "/gateway/v3/services?region=620200", headers: &[], body: b"" };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 503);
            assert_eq!(r.json()["error"]["code"], "unavailable");
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("gansu").await;
        let probe = Probe { method: "GET", path: "/gateway/v3/applications/by-ref/none", headers: &[], body: b"" };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
