//! Style B `envelope-json` (数字政府开放平台, 四川/广东/广西): camelCase JSON with a nested
//! `applicant`, ISO 8601 `+08:00` times, and every business answer HTTP 200 inside an envelope
//! `{"code":0,"msg":"success","data":{…}}`; errors 1001 参数校验失败, 1002 事项不存在,
//! 1003 重复提交 (data carries the existing caseNo), 1004 办理地不属于本平台, 2001 系统繁忙,
//! 4004 办件不存在.
//!
//! - Submit `POST /open/api/v1/apply/submit` → `data:{caseNo,outerNo,status,receiveTime}`.
//! - Status `GET /open/api/v1/apply/query?outerNo=…` → `data:{caseNo,outerNo,status,updateTime,remark}`.
//! - Matters `GET /open/api/v1/items?areaCode=…` → `data:{total,list:[{itemCode,itemName,deptName}]}`.
//!
//! Full description: `docs/platforms/envelope-json.md`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::json::{Obj, parse_object};
use super::server::{Ctx, Reply, Req, state_code};
use super::state::CaseState;
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};

/// 办件状态 codes (status).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("RECEIVED", CaseState::Received),
    ("ACCEPTED", CaseState::Accepted),
    ("PROCESSING", CaseState::InProgress),
    ("SUPPLEMENT", CaseState::SupplementRequired),
    ("APPROVED", CaseState::Approved),
    ("REJECTED", CaseState::Rejected),
    ("WITHDRAWN", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] = &[("ONLINE", Mode::Online), ("PROXY", Mode::Proxy), ("MULTI_SITE", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("PERSON", Kind::Natural), ("CORP", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("ID_CARD", IdType::ResidentId),
    ("PASSPORT", IdType::Passport),
    ("HK_MACAO_PASS", IdType::HkMacaoPermit),
    ("TAIWAN_PASS", IdType::TaiwanPermit),
    ("FOREIGN_PR", IdType::ForeignPermanentResident),
    ("USCC", IdType::Uscc),
];
const GENDERS: &[&str] = &["M", "F", "U", "N"];

const TIME: &str = "%Y-%m-%dT%H:%M:%S+08:00";
const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

fn reply(status: StatusCode, body: &Value) -> Reply {
    Reply { status, content_type: CONTENT_TYPE, body: body.to_string().into_bytes() }
}

fn envelope(code: u32, msg: &str, data: Value) -> Reply {
    reply(StatusCode::OK, &json!({"code": code, "msg": msg, "data": data}))
}

/// Renders a refusal: business errors are HTTP 200 envelopes; only routing errors leave 200.
pub(crate) fn reject(r: &Reject) -> Reply {
    match r.kind {
        RejectKind::Malformed | RejectKind::Missing | RejectKind::UnknownField | RejectKind::Invalid => {
            envelope(1001, &format!("参数校验失败：{}", r.message), Value::Null)
        }
        RejectKind::UnknownMatter => envelope(1002, &r.message, Value::Null),
        RejectKind::OutOfRegion => envelope(1004, &r.message, Value::Null),
        RejectKind::NotFound => envelope(4004, "办件不存在", Value::Null),
        RejectKind::NoRoute => reply(StatusCode::NOT_FOUND, &json!({"code": 404, "msg": "接口不存在", "data": null})),
        RejectKind::MethodNotAllowed => {
            reply(StatusCode::METHOD_NOT_ALLOWED, &json!({"code": 405, "msg": r.message, "data": null}))
        }
        RejectKind::TooLarge => {
            reply(StatusCode::PAYLOAD_TOO_LARGE, &json!({"code": 413, "msg": r.message, "data": null}))
        }
    }
}

/// The platform's "system busy" answer (HTTP 200, code 2001).
pub(crate) fn busy() -> Reply {
    envelope(2001, "系统繁忙", Value::Null)
}

const SUBMIT: &str = "/open/api/v1/apply/submit";
const QUERY: &str = "/open/api/v1/apply/query";
const ITEMS: &str = "/open/api/v1/items";

/// Routes one business request.
pub(crate) fn handle(ctx: &Ctx<'_>, req: &Req) -> Reply {
    let result = match (req.path.as_str(), &req.method) {
        (SUBMIT, &Method::POST) => submit(ctx, req),
        (QUERY, &Method::GET) => status(ctx, req),
        (ITEMS, &Method::GET) => matters(ctx, req),
        (SUBMIT | QUERY | ITEMS, m) => Err(Reject::method(m.as_str())),
        (p, _) => Err(Reject::no_route(p)),
    };
    result.unwrap_or_else(|r| {
        tracing::info!(platform = ctx.platform.name, error = %r.message, "Request refused.");
        reject(&r)
    })
}

fn names() -> Names {
    Names {
        external_id: "outerNo".into(),
        matter_code: "itemCode".into(),
        matter_name: "itemName".into(),
        handling_region: "handleAreaCode".into(),
        accepting_region: "acceptAreaCode".into(),
        mode: "handleMode".into(),
        kind: "applicant.type".into(),
        applicant_name: "applicant.name".into(),
        id_type: "applicant.certType".into(),
        id_number: "applicant.certNo".into(),
        gender: "applicant.sex".into(),
        birth_date: "applicant.birthday".into(),
        phone: "applicant.mobile".into(),
        address: "applicant.address".into(),
        credit_code: "applicant.creditCode".into(),
        legal_rep: "applicant.legalPerson".into(),
        submitted_at: "applyTime".into(),
    }
}

fn submit(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    validate::require_content_type(req.content_type.as_deref(), &["application/json"], "UTF-8", false)?;
    let value = parse_object(&req.body)?;
    let mut o = Obj::new(&value, "")?;
    let mut raw = RawSubmission {
        external_id: o.str("outerNo")?,
        matter_code: o.str("itemCode")?,
        matter_name: o.str("itemName")?,
        handling_region: o.str("handleAreaCode")?,
        accepting_region: o.str("acceptAreaCode")?,
        mode: o.str("handleMode")?,
        form: o.string_map("formData")?,
        submitted_at: o.str("applyTime")?,
        ..RawSubmission::default()
    };
    if let Some(mut a) = o.obj("applicant")? {
        raw.applicant = RawApplicant {
            kind: a.str("type")?,
            name: a.str("name")?,
            id_type: a.str("certType")?,
            id_number: a.str("certNo")?,
            gender: a.str("sex")?,
            birth_date: a.str("birthday")?,
            phone: a.str("mobile")?,
            address: a.str("address")?,
            credit_code: a.str("creditCode")?,
            legal_rep: a.str("legalPerson")?,
        };
        a.finish()?;
    } else {
        return Err(Reject::missing("applicant"));
    }
    if let Some(list) = o.arr("materials")? {
        for (i, item) in list.iter().enumerate() {
            let mut m = Obj::new(item, &format!("materials[{i}]"))?;
            raw.materials.push(RawMaterial {
                name: m.str("name")?,
                media_type: m.str("mimeType")?,
                sha256: m.str("sha256")?,
                size: m.int("size")?,
                content: m.str("content")?,
                reference: m.str("url")?,
            });
            m.finish()?;
        }
    }
    o.finish()?;

    let dialect = Dialect {
        names: names(),
        material_names: MaterialNames {
            name: "name",
            media_type: "mimeType",
            sha256: "sha256",
            size: "size",
            content: "content",
            reference: "url",
        },
        material_path: &|i, leaf| format!("materials[{i}].{leaf}"),
        form_path: &|key| format!("formData.{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Dashed,
        datetime: DateTimeFmt::IsoBeijing,
        base64_whitespace: false,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
    if !created {
        // This platform reports a repeated outerNo instead of answering success again.
        return Ok(envelope(
            1003,
            "重复提交",
            json!({
                "caseNo": case.case_number,
                "outerNo": case.external_id,
                "status": state_code(STATES, case.state),
            }),
        ));
    }
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, "Submission accepted.");
    Ok(envelope(
        0,
        "success",
        json!({
            "caseNo": case.case_number,
            "outerNo": case.external_id,
            "status": state_code(STATES, case.state),
            "receiveTime": case.created.format(TIME).to_string(),
        }),
    ))
}

fn status(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let outer = validate::single_param(req.query.as_deref(), "outerNo")?.ok_or_else(|| Reject::missing("outerNo"))?;
    let store = ctx.store();
    let case = store.by_external(&outer).ok_or_else(|| Reject::not_found(&outer))?;
    Ok(envelope(
        0,
        "success",
        json!({
            "caseNo": case.case_number,
            "outerNo": case.external_id,
            "status": state_code(STATES, case.state),
            "updateTime": case.updated.format(TIME).to_string(),
            "remark": case.opinion,
        }),
    ))
}

fn matters(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let area = validate::single_param(req.query.as_deref(), "areaCode")?.ok_or_else(|| Reject::missing("areaCode"))?;
    validate::check_region(&area).map_err(|why| Reject::invalid("areaCode", why))?;
    let list: Vec<Value> = if ctx.platform.serves_region(&area) {
        ctx.platform
            .catalogue()
            .iter()
            .map(|m| json!({"itemCode": m.code, "itemName": m.name, "deptName": m.department}))
            .collect()
    } else {
        Vec::new()
    };
    Ok(envelope(0, "success", json!({"total": list.len(), "list": list})))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::{Value, json};

    use crate::mock::testutil::{Probe, Resp, check_faults, check_slow, must, received, set_state, start};

    const JSON: &[(&str, &str)] = &[
        ("Content-Type", "application/json"),
        ("X-Request-Id", "req-42"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ];

    fn valid() -> Value {
        json!({
            "outerNo": "TB-20261122-000002",
            "itemCode": "000104001000",
            "itemName": "户口迁移",
            "handleAreaCode": "440106",
            "acceptAreaCode": "520102",
            "handleMode": "PROXY",
            "applicant": {
                "type": "PERSON",
                "name": "陈小红",
                "certType": "ID_CARD",
                "certNo": "440106198506122323",
                "sex": "F",
                "birthday": "1985-06-12",
                "mobile": "13902223344",
                "address": "贵州省贵阳市云岩区中华北路1号"
            },
            "materials": [
                {
                    "name": "居民户口簿",
                    "mimeType": "application/pdf",
                    "sha256": "a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9",
                    "size": 57,
                    "content": "JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK"
                },
                {
                    "name": "准予迁入证明",
                    "mimeType": "image/png",
                    "sha256": "4c4b6a3be1314ab86138bef4314dde022e600960d8689a2c8f8631802d20dab6",
                    "size": 8,
                    "url": "https://files.example.gov.cn/cl/20261122/zyqrzm.png"
                }
            ],
            "formData": {"reason": "务工"},
            "applyTime": "2026-11-22T10:00:00+08:00"
        })
    }

    async fn post(addr: SocketAddr, body: &Value) -> Resp {
        must(addr, "POST", "/open/api/v1/apply/submit", JSON, body.to_string().as_bytes()).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("guangdong").await;
        let addr = server.local_addr();

        let r = post(addr, &valid()).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["code"], 0, "{v}");
        assert_eq!(v["msg"], "success");
        assert_eq!(v["data"]["caseNo"], "GD2026000001");
        assert_eq!(v["data"]["status"], "RECEIVED");
        assert!(v["data"]["receiveTime"].as_str().is_some_and(|t| t.ends_with("+08:00")));

        let dup = post(addr, &valid()).await;
        assert_eq!(dup.status, 200);
        let d = dup.json();
        assert_eq!(d["code"], 1003);
        assert_eq!(d["data"]["caseNo"], "GD2026000001");

        let mut corp = valid();
        corp["outerNo"] = json!("TB-corp-2");
        corp["itemCode"] = json!("000201002000");
        corp["applicant"] = json!({
            "type": "CORP", "name": "广州粤信贸易有限公司", "certType": "USCC",
            "certNo": "91440106MA5D1W2E70", "creditCode": "91440106MA5D1W2E70",
            "legalPerson": "黄志强", "mobile": "020-87654321", "address": null
        });
        let c = post(addr, &corp).await.json();
        assert_eq!(c["code"], 0, "{c}");
        assert_eq!(c["data"]["caseNo"], "GD2026000002");

        let q = must(addr, "GET", "/open/api/v1/apply/query?outerNo=TB-20261122-000002", &[], b"").await;
        let qv = q.json();
        assert_eq!(qv["code"], 0);
        assert_eq!(qv["data"]["caseNo"], "GD2026000001");
        assert_eq!(qv["data"]["remark"], Value::Null);
        assert_eq!(set_state(addr, "GD2026000001", "APPROVED", Some("准予迁入")).await.status, 200);
        let qv = must(addr, "GET", "/open/api/v1/apply/query?outerNo=TB-20261122-000002", &[], b"").await.json();
        assert_eq!(qv["data"]["status"], "APPROVED");
        assert_eq!(qv["data"]["remark"], "准予迁入");

        let nf = must(addr, "GET", "/open/api/v1/apply/query?outerNo=nope", &[], b"").await;
        assert_eq!(nf.status, 200);
        assert_eq!(nf.json()["code"], 4004);

        let m = must(addr, "GET", "/open/api/v1/items?areaCode=440000", &[], b"").await.json();
        assert_eq!(m["data"]["total"], 6);
        assert_eq!(m["data"]["list"][1]["itemName"], "营业执照设立登记");
        assert_eq!(m["data"]["list"][1]["deptName"], "广东省市场监督管理局");

        let log = received(addr).await;
        assert_eq!(log[0]["headers"]["x-request-id"], "req-42");
        assert_eq!(log[0]["headers"]["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let raw = log[0]["body_base64"].as_str().expect("base64");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(raw).expect("decodes");
        assert_eq!(String::from_utf8(bytes).ok().as_deref(), log[0]["body"].as_str());
        server.shutdown().await;
    }

    async fn refused(addr: SocketAddr, body: &Value, code: u32, field: &str) {
        let r = post(addr, body).await;
        assert_eq!(r.status, 200, "business errors are HTTP 200");
        let v = r.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(v["msg"].as_str().unwrap_or("").contains(field), "{v}");
        assert_eq!(v["data"], Value::Null);
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("sichuan").await;
        let addr = server.local_addr();
        let base = || {
            let mut v = valid();
            v["handleAreaCode"] = json!("510107");
            v
        };
        let mut v = base();
        v["applicant"]["certNo"] = json!("440106198506122324");
        refused(addr, &v, 1001, "applicant.certNo").await;
        let mut v = base();
        v["applicant"]["nickname"] = json!("小红");
        refused(addr, &v, 1001, "applicant.nickname").await;
        let mut v = base();
        v["applyTime"] = json!("2026-11-22 10:00:00");
        refused(addr, &v, 1001, "applyTime").await;
        let mut v = base();
        v["applyTime"] = json!("2026-11-22T02:00:00Z");
        refused(addr, &v, 1001, "applyTime").await;
        let mut v = base();
        v["applicant"]["birthday"] = json!("19850612");
        refused(addr, &v, 1001, "applicant.birthday").await;
        let mut v = base();
        v["applicant"]["certType"] = json!("USCC");
        refused(addr, &v, 1001, "applicant.certType").await;
        let mut v = base();
        v["materials"][0]["url"] = json!("ftp://x");
        refused(addr, &v, 1001, "materials[0].content").await;
        let mut v = base();
        v["itemCode"] = json!("000601006000");
        refused(addr, &v, 1002, "itemCode").await;
        refused(addr, &valid(), 1004, "handleAreaCode").await;
        let mut v = base();
        v.as_object_mut().expect("object").remove("applicant");
        refused(addr, &v, 1001, "applicant").await;

        let r = must(addr, "POST", "/open/api/v1/apply/submit", &[], base().to_string().as_bytes()).await;
        assert_eq!(r.json()["code"], 1001);
        let r = must(addr, "GET", "/open/api/v1/apply/submit", &[], b"").await;
        assert_eq!(r.status, 405);
        let r = must(addr, "POST", "/open/api/v2/apply/submit", JSON, b"{}").await;
        assert_eq!(r.status, 404);
        let r = must(addr, "GET", "/open/api/v1/items", &[], b"").await;
        assert_eq!(r.json()["code"], 1001);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn faults() {
        let server = start("guangxi").await;
        let probe = Probe { method: "GET", path: "/open/api/v1/items?areaCode=450000", headers: &[], body: b"" };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["code"], 2001);
            assert_eq!(r.json()["msg"], "系统繁忙");
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("guangxi").await;
        let body = valid().to_string().replace(r#""handleAreaCode":"440106""#, r#""handleAreaCode":"450103""#);
        let probe = Probe { method: "POST", path: "/open/api/v1/apply/submit", headers: JSON, body: body.as_bytes() };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
