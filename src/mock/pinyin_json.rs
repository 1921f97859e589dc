//! Style A `pinyin-json` (网上办事大厅 v2, 贵州/云南): JSON UTF-8 with pinyin-initial field names,
//! real HTTP statuses, `{"zt":"1",…}` on success and `{"zt":"0","cwdm","xx"}` on errors.
//!
//! - Submit `POST /api/sb/tj` → 200 `{"zt":"1","xx","sj":{bjbh,wbbh,bjzt,jssj}}`.
//! - Status `GET /api/sb/cx?wbbh=…` (by external id) → `sj:{bjbh,wbbh,bjzt,gxsj,yj}`.
//! - Matters `GET /api/sx/lb?qh=…` → `{"zt":"1","zs",sj:[{sxbm,sxmc,ssbm}]}`.
//!
//! Full description: `docs/platforms/pinyin-json.md`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::json::{Obj, parse_object};
use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};

/// 办件状态 codes (bjzt).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("01", CaseState::Received),
    ("02", CaseState::Accepted),
    ("03", CaseState::InProgress),
    ("04", CaseState::SupplementRequired),
    ("05", CaseState::Approved),
    ("06", CaseState::Rejected),
    ("07", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] = &[("1", Mode::Online), ("2", Mode::Proxy), ("3", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("1", Kind::Natural), ("2", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("111", IdType::ResidentId),
    ("414", IdType::Passport),
    ("516", IdType::HkMacaoPermit),
    ("511", IdType::TaiwanPermit),
    ("553", IdType::ForeignPermanentResident),
    ("001", IdType::Uscc),
];
const GENDERS: &[&str] = &["1", "2", "0", "9"];

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";
const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

fn reply(status: StatusCode, body: &Value) -> Reply {
    Reply { status, content_type: CONTENT_TYPE, body: body.to_string().into_bytes() }
}

/// Renders a refusal as `{"zt":"0","cwdm","xx"}` with the matching HTTP status.
pub(crate) fn reject(r: &Reject) -> Reply {
    let (status, code) = match r.kind {
        RejectKind::Malformed => (StatusCode::BAD_REQUEST, "E100"),
        RejectKind::Missing => (StatusCode::BAD_REQUEST, "E101"),
        RejectKind::UnknownField => (StatusCode::BAD_REQUEST, "E102"),
        RejectKind::Invalid => (StatusCode::BAD_REQUEST, "E103"),
        RejectKind::UnknownMatter => (StatusCode::BAD_REQUEST, "E104"),
        RejectKind::OutOfRegion => (StatusCode::BAD_REQUEST, "E105"),
        RejectKind::NotFound | RejectKind::NoRoute => (StatusCode::NOT_FOUND, "E404"),
        RejectKind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "E405"),
        RejectKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "E413"),
    };
    reply(status, &json!({"zt": "0", "cwdm": code, "xx": r.message}))
}

/// The platform's "system busy" answer (400, cwdm E500).
pub(crate) fn busy() -> Reply {
    reply(StatusCode::BAD_REQUEST, &json!({"zt": "0", "cwdm": "E500", "xx": "系统繁忙，请稍后再试"}))
}

/// Routes one business request.
pub(crate) fn handle(ctx: &Ctx<'_>, req: &Req) -> Reply {
    let result = match (req.path.as_str(), &req.method) {
        ("/api/sb/tj", &Method::POST) => submit(ctx, req),
        ("/api/sb/cx", &Method::GET) => status(ctx, req),
        ("/api/sx/lb", &Method::GET) => matters(ctx, req),
        ("/api/sb/tj" | "/api/sb/cx" | "/api/sx/lb", m) => Err(Reject::method(m.as_str())),
        (p, _) => Err(Reject::no_route(p)),
    };
    result.unwrap_or_else(|r| {
        tracing::info!(platform = ctx.platform.name, error = %r.message, "Request refused.");
        reject(&r)
    })
}

fn dialect_names() -> Names {
    Names {
        external_id: "wbbh".into(),
        matter_code: "sxbm".into(),
        matter_name: "sxmc".into(),
        handling_region: "blqh".into(),
        accepting_region: "sjqh".into(),
        mode: "blms".into(),
        kind: "sqrlx".into(),
        applicant_name: "sqrxm".into(),
        id_type: "zjlx".into(),
        id_number: "zjhm".into(),
        gender: "xb".into(),
        birth_date: "csrq".into(),
        phone: "lxdh".into(),
        address: "lxdz".into(),
        credit_code: "tyshxydm".into(),
        legal_rep: "fddbr".into(),
        submitted_at: "sqsj".into(),
    }
}

fn submit(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    validate::require_content_type(req.content_type.as_deref(), &["application/json"], "UTF-8", false)?;
    let value = parse_object(&req.body)?;
    let mut o = Obj::new(&value, "")?;
    let mut raw = RawSubmission {
        external_id: o.str("wbbh")?,
        matter_code: o.str("sxbm")?,
        matter_name: o.str("sxmc")?,
        handling_region: o.str("blqh")?,
        accepting_region: o.str("sjqh")?,
        mode: o.str("blms")?,
        applicant: RawApplicant {
            kind: o.str("sqrlx")?,
            name: o.str("sqrxm")?,
            id_type: o.str("zjlx")?,
            id_number: o.str("zjhm")?,
            gender: o.str("xb")?,
            birth_date: o.str("csrq")?,
            phone: o.str("lxdh")?,
            address: o.str("lxdz")?,
            credit_code: o.str("tyshxydm")?,
            legal_rep: o.str("fddbr")?,
        },
        form: o.string_map("bdxx")?,
        submitted_at: o.str("sqsj")?,
        ..RawSubmission::default()
    };
    if let Some(list) = o.arr("cl")? {
        for (i, item) in list.iter().enumerate() {
            let mut m = Obj::new(item, &format!("cl[{i}]"))?;
            raw.materials.push(RawMaterial {
                name: m.str("clmc")?,
                media_type: m.str("wjlx")?,
                sha256: m.str("zy")?,
                size: m.int("dx")?,
                content: m.str("nr")?,
                reference: m.str("dz")?,
            });
            m.finish()?;
        }
    }
    o.finish()?;

    let dialect = Dialect {
        names: dialect_names(),
        material_names: MaterialNames {
            name: "clmc",
            media_type: "wjlx",
            sha256: "zy",
            size: "dx",
            content: "nr",
            reference: "dz",
        },
        material_path: &|i, leaf| format!("cl[{i}].{leaf}"),
        form_path: &|key| format!("bdxx.{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Dashed,
        datetime: DateTimeFmt::Spaced,
        base64_whitespace: false,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted.external_id);
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, created, "Submission accepted.");
    Ok(reply(
        StatusCode::OK,
        &json!({
            "zt": "1",
            "xx": if created { "提交成功" } else { "重复提交，返回已有办件" },
            "sj": {
                "bjbh": case.case_number,
                "wbbh": case.external_id,
                "bjzt": state_code(STATES, case.state),
                "jssj": case.created.format(DATETIME).to_string(),
            }
        }),
    ))
}

fn status_body(case: &Case) -> Value {
    json!({
        "zt": "1",
        "xx": "成功",
        "sj": {
            "bjbh": case.case_number,
            "wbbh": case.external_id,
            "bjzt": state_code(STATES, case.state),
            "gxsj": case.updated.format(DATETIME).to_string(),
            "yj": case.opinion,
        }
    })
}

fn status(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let wbbh = validate::single_param(req.query.as_deref(), "wbbh")?.ok_or_else(|| Reject::missing("wbbh"))?;
    let store = ctx.store();
    let case = store.by_external(&wbbh).ok_or_else(|| Reject::not_found(&wbbh))?;
    Ok(reply(StatusCode::OK, &status_body(case)))
}

fn matters(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let qh = validate::single_param(req.query.as_deref(), "qh")?.ok_or_else(|| Reject::missing("qh"))?;
    validate::check_region(&qh).map_err(|why| Reject::invalid("qh", why))?;
    let list: Vec<Value> = if ctx.platform.serves_region(&qh) {
        ctx.platform.catalogue().iter().map(|m| json!({"sxbm": m.code, "sxmc": m.name, "ssbm": m.department})).collect()
    } else {
        Vec::new()
    };
    Ok(reply(StatusCode::OK, &json!({"zt": "1", "xx": "成功", "zs": list.len(), "sj": list})))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::mock::testutil::{Probe, check_faults, check_slow, must, received, set_state, start};

    const JSON: &[(&str, &str)] = &[("Content-Type", "application/json; charset=UTF-8")];

    fn valid() -> Value {
        json!({
            "wbbh": "TB-20261122-000001",
            "sxbm": "000104001000",
            "sxmc": "户口迁移",
            "blqh": "520102",
            "sjqh": "440106",
            "blms": "2",
            "sqrlx": "1",
            "sqrxm": "张三",
            "zjlx": "111",
            "zjhm": "520102199003075413",
            "xb": "1",
            "csrq": "1990-03-07",
            "lxdh": "13800138000",
            "lxdz": "广东省广州市天河区天河路100号",
            "cl": [
                {
                    "clmc": "居民户口簿",
                    "wjlx": "application/pdf",
                    "zy": "a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9",
                    "dx": 57,
                    "nr": "JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK"
                },
                {
                    "clmc": "准予迁入证明",
                    "wjlx": "image/png",
                    "zy": "4c4b6a3be1314ab86138bef4314dde022e600960d8689a2c8f8631802d20dab6",
                    "dx": 8,
                    "dz": "https://files.example.gov.cn/cl/20261122/zyqrzm.png"
                }
            ],
            "bdxx": {"reason": "务工", "qrd": "贵州省贵阳市南明区"},
            "sqsj": "2026-11-22 10:00:00"
        })
    }

    async fn post(addr: std::net::SocketAddr, body: &Value) -> crate::mock::testutil::Resp {
        must(addr, "POST", "/api/sb/tj", JSON, body.to_string().as_bytes()).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("guizhou").await;
        let addr = server.local_addr();

        let r = post(addr, &valid()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["zt"], "1");
        assert_eq!(v["sj"]["bjbh"], "GZ2026000001");
        assert_eq!(v["sj"]["bjzt"], "01");

        // Idempotent on the external id.
        let again = post(addr, &valid()).await.json();
        assert_eq!(again["sj"]["bjbh"], "GZ2026000001");

        // A legal person.
        let mut corp = valid();
        let o = corp.as_object_mut().expect("object");
        o.insert("wbbh".into(), json!("TB-corp-1"));
        o.insert("sxbm".into(), json!("000201002000"));
        o.insert("sxmc".into(), json!("营业执照设立登记"));
        o.insert("sqrlx".into(), json!("2"));
        o.insert("sqrxm".into(), json!("贵阳黔程科技有限公司"));
        o.insert("zjlx".into(), json!("001"));
        o.insert("zjhm".into(), json!("91520102MA6DL8K3XN"));
        o.insert("tyshxydm".into(), json!("91520102MA6DL8K3XN"));
        o.insert("fddbr".into(), json!("李明"));
        o.insert("xb".into(), Value::Null);
        o.remove("csrq");
        let r = post(addr, &corp).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["sj"]["bjbh"], "GZ2026000002");

        let s = must(addr, "GET", "/api/sb/cx?wbbh=TB-20261122-000001", &[], b"").await;
        assert_eq!(s.status, 200);
        let sv = s.json();
        assert_eq!(sv["sj"]["bjbh"], "GZ2026000001");
        assert_eq!(sv["sj"]["wbbh"], "TB-20261122-000001");
        assert_eq!(sv["sj"]["yj"], Value::Null);

        let moved = set_state(addr, "GZ2026000001", "04", Some("请补充材料")).await;
        assert_eq!(moved.status, 200);
        let sv = must(addr, "GET", "/api/sb/cx?wbbh=TB-20261122-000001", &[], b"").await.json();
        assert_eq!(sv["sj"]["bjzt"], "04");
        assert_eq!(sv["sj"]["yj"], "请补充材料");
        assert_eq!(set_state(addr, "GZ2026000001", "RECEIVED", None).await.status, 400);
        assert_eq!(set_state(addr, "GZ2026999999", "05", None).await.status, 404);

        let missing = must(addr, "GET", "/api/sb/cx?wbbh=nope", &[], b"").await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json()["cwdm"], "E404");

        let m = must(addr, "GET", "/api/sx/lb?qh=520000", &[], b"").await.json();
        assert_eq!(m["zs"], 4);
        assert_eq!(m["sj"][0]["sxbm"], "000104001000");
        assert_eq!(m["sj"][0]["ssbm"], "贵州省公安厅");
        let other = must(addr, "GET", "/api/sx/lb?qh=440000", &[], b"").await.json();
        assert_eq!(other["zs"], 0);
        assert_eq!(must(addr, "GET", "/api/sx/lb?qh=52", &[], b"").await.json()["cwdm"], "E103");

        let log = received(addr).await;
        assert_eq!(log.len(), 9);
        assert_eq!(log[0]["method"], "POST");
        assert_eq!(log[0]["path"], "/api/sb/tj");
        assert_eq!(log[0]["headers"]["content-type"], "application/json; charset=UTF-8");
        assert_eq!(log[0]["headers"]["x-request-id"], Value::Null);
        let body: Value = serde_json::from_str(log[0]["body"].as_str().expect("body")).expect("json");
        assert_eq!(body["sqrxm"], "张三");
        assert_eq!(log[3]["path"], "/api/sb/cx?wbbh=TB-20261122-000001");
        let cases = must(addr, "GET", "/_mock/cases", &[], b"").await.json();
        assert_eq!(cases[0]["state"], "04");
        assert_eq!(cases[1]["external_id"], "TB-corp-1");
        assert_eq!(must(addr, "DELETE", "/_mock/received", &[], b"").await.status, 204);
        assert!(received(addr).await.is_empty());
        server.shutdown().await;
    }

    async fn refused(addr: std::net::SocketAddr, body: &Value, code: &str, field: &str) {
        let r = post(addr, body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let v = r.json();
        assert_eq!(v["zt"], "0");
        assert_eq!(v["cwdm"], code, "{v}");
        assert!(v["xx"].as_str().unwrap_or("").contains(field), "{v}");
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("guizhou").await;
        let addr = server.local_addr();
        let with = |key: &str, value: Value| {
            let mut v = valid();
            v[key] = value;
            v
        };
        refused(addr, &with("zjhm", json!("520102199003075414")), "E103", "zjhm").await;
        refused(addr, &with("beizhu", json!("x")), "E102", "beizhu").await;
        refused(addr, &with("csrq", json!("1990/03/07")), "E103", "csrq").await;
        refused(addr, &with("sqsj", json!("2026-11-22T10:00:00")), "E103", "sqsj").await;
        refused(addr, &with("xb", json!("M")), "E103", "xb").await;
        refused(addr, &with("blms", json!(1)), "E103", "blms").await;
        refused(addr, &with("sxbm", json!("000999000000")), "E104", "sxbm").await;
        refused(addr, &with("blqh", json!("440106")), "E105", "blqh").await;
        refused(addr, &with("tyshxydm", json!("91520102MA6DL8K3XN")), "E103", "tyshxydm").await;
        let mut v = valid();
        v.as_object_mut().expect("object").remove("sqsj");
        refused(addr, &v, "E101", "sqsj").await;
        let mut v = valid();
        v["cl"][0]["dx"] = json!("57");
        refused(addr, &v, "E103", "cl[0].dx").await;
        let mut v = valid();
        v["cl"][0]["dx"] = json!(58);
        refused(addr, &v, "E103", "cl[0].dx").await;
        let mut v = valid();
        v["cl"][1]["nr"] = json!("iVBORw0KGgo=");
        refused(addr, &v, "E103", "cl[1].nr").await;
        let mut v = valid();
        v["cl"][0]["zy"] = json!("abc");
        refused(addr, &v, "E103", "cl[0].zy").await;
        let mut v = valid();
        v["cl"][0]["x"] = json!(1);
        refused(addr, &v, "E102", "cl[0].x").await;
        let mut v = valid();
        v["bdxx"]["reason"] = json!(1);
        refused(addr, &v, "E103", "bdxx.reason").await;

        let body = valid().to_string();
        let r = must(addr, "POST", "/api/sb/tj", &[("Content-Type", "text/plain")], body.as_bytes()).await;
        assert_eq!(r.json()["cwdm"], "E100");
        let r = must(addr, "POST", "/api/sb/tj", &[("Content-Type", "application/json; charset=GBK")], body.as_bytes())
            .await;
        assert_eq!(r.json()["cwdm"], "E100");
        let r = must(addr, "POST", "/api/sb/tj", JSON, b"{not json").await;
        assert_eq!(r.json()["cwdm"], "E100");
        let r = must(addr, "POST", "/api/sb/tj", JSON, &[0xff, 0xfe]).await;
        assert_eq!(r.json()["cwdm"], "E100");
        let r = must(addr, "GET", "/api/sb/tj", &[], b"").await;
        assert_eq!(r.status, 405);
        let r = must(addr, "GET", "/api/nothing", &[], b"").await;
        assert_eq!(r.status, 404);
        let r = must(addr, "GET", "/api/sb/cx", &[], b"").await;
        assert_eq!(r.json()["cwdm"], "E101");
        let r = must(addr, "GET", "/api/sb/cx?wbbh=a&x=1", &[], b"").await;
        assert_eq!(r.json()["cwdm"], "E102");
        assert!(must(addr, "GET", "/_mock/cases", &[], b"").await.json().as_array().is_some_and(Vec::is_empty));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn faults() {
        let server = start("yunnan").await;
        let probe = Probe { method: "GET", path: "/api/sx/lb?qh=530000", headers: &[], body: b"" };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 400);
            assert_eq!(r.json()["cwdm"], "E500");
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("guizhou").await;
        let probe = Probe { method: "GET", path: "/api/sx/lb?qh=520000", headers: &[], body: b"" };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
