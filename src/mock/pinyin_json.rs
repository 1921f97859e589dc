//! Style A `pinyin-json` (网上办事大厅 v2, 贵州/云南): JSON UTF-8 with pinyin-initial field names,
//! real HTTP statuses, `{"zt":"1",…}` on success and `{"zt":"0","cwdm","xx"}` on errors.
//!
//! - Submit `POST /api/sb/tj` → 200 `{"zt":"1","xx","sj":{bjbh,wbbh,bjzt,jssj}}`.
//! - Status `GET /api/sb/cx?wbbh=…` (by external id) → `sj:{bjbh,wbbh,bjzt,gxsj,yj}`.
//! - Matters `GET /api/sx/lb?qh=…` → `{"zt":"1","zs",sj:[{sxbm,sxmc,ssbm}]}`.
//! - Certificates (电子证照库) `GET /api/zz/cx?zzbh=…` → `sj:{zzbh,zzlxdm,…,zzxx,qm?}`; approving a
//!   户口迁移 or 营业执照设立登记 case issues one (办结出证), and the status answer then names it.
//!
//! Full description: `docs/platforms/pinyin-json.md`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{Days, NaiveDate};
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::certificate::{CertKind, CertStatus, Certificate, DemoKey, Field, Holder, signed};
use super::json::{Obj, parse_object};
use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};
use super::{HUKOU, LICENCE, MockPlatform};

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

/// 证照类型代码 (zzlxdm).
const CERT_TYPES: &[(&str, CertKind)] =
    &[("ZZ0104", CertKind::HouseholdTransferPermit), ("ZZ0201", CertKind::BusinessLicense)];
/// 证照状态 codes (zzzt).
pub(crate) const CERT_STATES: &[(&str, CertStatus)] =
    &[("1", CertStatus::Valid), ("2", CertStatus::Cancelled), ("3", CertStatus::Revoked)];
/// 证照信息 keys (zzxx).
const CERT_FIELDS: &[(&str, Field)] = &[
    ("qcdz", Field::MoveFromAddress),
    ("qrdz", Field::MoveToAddress),
    ("qyyy", Field::Reason),
    ("ztmc", Field::EnterpriseName),
    ("tyshxydm", Field::CreditCode),
    ("ztlx", Field::EnterpriseType),
    ("jycs", Field::Address),
    ("jyfw", Field::BusinessScope),
];

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";
const DATE: &str = "%Y-%m-%d";
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
        ("/api/zz/cx", &Method::GET) => certificate(ctx, req),
        ("/api/sb/tj" | "/api/sb/cx" | "/api/sx/lb" | "/api/zz/cx", m) => Err(Reject::method(m.as_str())),
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
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
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
    let mut sj = json!({
        "bjbh": case.case_number,
        "wbbh": case.external_id,
        "bjzt": state_code(STATES, case.state),
        "gxsj": case.updated.format(DATETIME).to_string(),
        "yj": case.opinion,
    });
    // Present only once a certificate was issued (never null).
    if let (Some(id), Value::Object(map)) = (&case.certificate_id, &mut sj) {
        map.insert("zzbh".to_owned(), Value::String(id.clone()));
    }
    json!({"zt": "1", "xx": "成功", "sj": sj})
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

/// A value's code in one of the style's code tables.
fn code_of<T: Copy + PartialEq>(table: &[(&'static str, T)], value: T) -> &'static str {
    table.iter().find(|(_, v)| *v == value).map_or("", |(c, _)| c)
}

fn certificate_body(cert: &Certificate) -> Value {
    let zzxx: Map<String, Value> = cert
        .fields
        .iter()
        .map(|(field, value)| (code_of(CERT_FIELDS, *field).to_owned(), Value::String(value.clone())))
        .collect();
    let mut sj = json!({
        "zzbh": cert.id,
        "zzlxdm": code_of(CERT_TYPES, cert.kind),
        "zzmc": cert.kind.name(),
        "cyrxm": cert.holder.name,
        "cyrzjlx": code_of(ID_TYPES, cert.holder.id_type),
        "cyrzjhm": cert.holder.id_number,
        "fzjg": cert.issuer,
        "fzjgqh": cert.issuer_region,
        "fzrq": cert.issued_on.format(DATE).to_string(),
        "yxqq": cert.valid_from.format(DATE).to_string(),
        "zzzt": code_of(CERT_STATES, cert.status),
        "zzxx": zzxx,
    });
    if let Value::Object(map) = &mut sj {
        // 长期 has no end date; an unsigned certificate has no qm.
        if let Some(until) = cert.valid_until {
            map.insert("yxqz".to_owned(), Value::String(until.format(DATE).to_string()));
        }
        if let Some(seal) = &cert.seal {
            let qm =
                json!({"sf": seal.key.algorithm().name(), "my": seal.key.id(), "qz": STANDARD.encode(&seal.value)});
            map.insert("qm".to_owned(), qm);
        }
    }
    json!({"zt": "1", "xx": "成功", "sj": sj})
}

fn certificate(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let zzbh = validate::single_param(req.query.as_deref(), "zzbh")?.ok_or_else(|| Reject::missing("zzbh"))?;
    let library = ctx.certificates();
    let cert = library
        .get(&zzbh)
        .ok_or_else(|| Reject::new(RejectKind::NotFound, Some("zzbh"), format!("证照不存在：{zzbh}")))?;
    Ok(reply(StatusCode::OK, &certificate_body(cert)))
}

/// Where an issued 准予迁入证明 says the applicant moves to: a fixed address in the province.
fn move_to_address(platform: &MockPlatform) -> &'static str {
    match platform.name {
        "yunnan" => "云南省昆明市五华区东风西路2号",
        _ => "贵州省贵阳市南明区新华路2号",
    }
}

/// The certificate an approved case gets (办结出证, doc §7.5): 户口迁移 → 准予迁入证明 (ZZ0104,
/// 40 days), 营业执照设立登记 → 营业执照 (ZZ0201, 长期); other matters get none.
pub(crate) fn issue(platform: &MockPlatform, case: &Case, today: NaiveDate) -> Option<Certificate> {
    let applicant = &case.applicant;
    let mut fields = Vec::new();
    let kind = match case.matter_code.as_str() {
        HUKOU => {
            if let Some(from) = &applicant.address {
                fields.push((Field::MoveFromAddress, from.clone()));
            }
            fields.push((Field::MoveToAddress, move_to_address(platform).to_owned()));
            fields.push((Field::Reason, "投靠亲属".to_owned()));
            CertKind::HouseholdTransferPermit
        }
        LICENCE => {
            fields.push((Field::EnterpriseName, applicant.name.clone()));
            if let Some(code) = &applicant.credit_code {
                fields.push((Field::CreditCode, code.clone()));
            }
            if let Some(address) = &applicant.address {
                fields.push((Field::Address, address.clone()));
            }
            CertKind::BusinessLicense
        }
        _ => return None,
    };
    // The issuer is the matter's implementing department (实施部门), e.g. 贵州省公安厅.
    let issuer = platform.catalogue().iter().find(|m| m.code == case.matter_code)?.department;
    let valid_until = match kind {
        // Valid 40 days, the day of issue included.
        CertKind::HouseholdTransferPermit => today.checked_add_days(Days::new(39)),
        CertKind::BusinessLicense => None,
    };
    let cert = Certificate {
        id: format!("{}-ZZ", case.case_number),
        kind,
        holder: Holder {
            name: applicant.name.clone(),
            id_type: applicant.id_type,
            id_number: applicant.id_number.clone(),
        },
        issuer: issuer.to_owned(),
        issuer_region: case.handling_region.clone(),
        issued_on: today,
        valid_from: today,
        valid_until,
        status: CertStatus::Valid,
        fields,
        seal: None,
    };
    // 云南 signs with the same demo key: the demo has one certificate authority.
    Some(signed(cert, DemoKey::Ed25519Of2026))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use chrono::Days;
    use serde_json::{Value, json};

    use crate::mock::state::now_beijing;
    use crate::mock::testutil::{
        ED25519_2019, ED25519_2026, Probe, SM2_2026, check_faults, check_slow, control, must, received, set_state,
        start,
    };

    const JSON: &[(&str, &str)] = &[("Content-Type", "application/json; charset=UTF-8")];

    /// A legal person's 营业执照设立登记 (no gender, no birth date).
    fn corporate() -> Value {
        let mut corp = valid();
        if let Some(o) = corp.as_object_mut() {
            o.insert("wbbh".into(), json!("TB-corp-1"));
            o.insert("sxbm".into(), json!("000201002000"));
            o.insert("sxmc".into(), json!("营业执照设立登记"));
            o.insert("sqrlx".into(), json!("2"));
            o.insert("sqrxm".into(), json!("贵阳黔程科技有限公司"));
            o.insert("zjlx".into(), json!("001"));
            o.insert("zjhm".into(), json!("91520102MA6DL8K3XN"));
            o.insert("tyshxydm".into(), json!("91520102MA6DL8K3XN"));
            o.insert("fddbr".into(), json!("李明"));
            o.remove("xb");
            o.remove("csrq");
        }
        corp
    }

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
        let mut corp = corporate();
        let o = corp.as_object_mut().expect("object");
        o.insert("xb".into(), Value::Null);
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

    /// The signed form of GZ-DEMO-0001, written out by hand as §7.2 of the style document defines it.
    const DEMO_0001_SIGNED: &str = concat!(
        r#"{"certificate_id":"GZ-DEMO-0001","#,
        r#""fields":{"move_from_address":"北京市西城区复兴门内大街100号","#,
        r#""move_to_address":"贵州省贵阳市云岩区中华北路1号","reason":"投靠亲属"},"#,
        r#""holder":{"id_number":"11010519491231002X","id_type":"resident_id","name":"张三"},"#,
        r#""issued_on":"2026-11-20","issuer":{"name":"贵阳市公安局云岩区分局","region":"520103"},"#,
        r#""type":{"code":"household_transfer_permit","name":"准予迁入证明"},"#,
        r#""valid_from":"2026-11-20","valid_until":"2036-11-19"}"#
    );

    /// The signatures §7.2 of the document prints.
    const DEMO_0001_QZ: &str =
        "dKcvlJNEkmFlbDU/++MyVUqOjdfuDcbrOJBKOKcKwKSPQIGORWADW/G77mnk7EwN8LzTU6RrbPHCzr0s/wuUAw==";
    const DEMO_SM2_0001_QZ: &str =
        "qENzBFdfgmyb3AA11L2iYsK6nahKzZ912mzt3x9irN2C6yZLHlgUBFqrYMNaLsg3Y2bCrUPoviIIjjVQJosRnw==";

    fn verify_ed25519(public: &str, message: &str, qz: &Value) -> bool {
        let key: [u8; 32] = STANDARD.decode(public).expect("base64").try_into().expect("32 bytes");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).expect("public key");
        let raw = STANDARD.decode(qz.as_str().expect("qz")).expect("base64");
        let signature = ed25519_dalek::Signature::from_slice(&raw).expect("64 bytes");
        key.verify_strict(message.as_bytes(), &signature).is_ok()
    }

    fn verify_sm2(public: &str, message: &str, qz: &Value) -> bool {
        use sm2::dsa::signature::Verifier as _;
        let key = STANDARD.decode(public).expect("base64");
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &key).expect("public key");
        let raw = STANDARD.decode(qz.as_str().expect("qz")).expect("base64");
        let signature = sm2::dsa::Signature::from_slice(&raw).expect("r‖s");
        key.verify(message.as_bytes(), &signature).is_ok()
    }

    async fn certificate(addr: std::net::SocketAddr, zzbh: &str) -> crate::mock::testutil::Resp {
        must(addr, "GET", &format!("/api/zz/cx?zzbh={zzbh}"), &[], b"").await
    }

    #[tokio::test]
    async fn demo_certificates_answer_natively_and_verify() {
        let server = start("guizhou").await;
        let addr = server.local_addr();

        let r = certificate(addr, "GZ-DEMO-0001").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json;charset=UTF-8"));
        let v = r.json();
        assert_eq!((v["zt"].as_str(), v["xx"].as_str()), (Some("1"), Some("成功")));
        let mut sj = v["sj"].clone();
        let qm = sj.as_object_mut().expect("object").remove("qm").expect("signed");
        assert_eq!(
            sj,
            json!({
                "zzbh": "GZ-DEMO-0001",
                "zzlxdm": "ZZ0104",
                "zzmc": "准予迁入证明",
                "cyrxm": "张三",
                "cyrzjlx": "111",
                "cyrzjhm": "11010519491231002X",
                "fzjg": "贵阳市公安局云岩区分局",
                "fzjgqh": "520103",
                "fzrq": "2026-11-20",
                "yxqq": "2026-11-20",
                "yxqz": "2036-11-19",
                "zzzt": "1",
                "zzxx": {
                    "qcdz": "北京市西城区复兴门内大街100号",
                    "qrdz": "贵州省贵阳市云岩区中华北路1号",
                    "qyyy": "投靠亲属"
                }
            })
        );
        assert_eq!((qm["sf"].as_str(), qm["my"].as_str()), (Some("Ed25519"), Some("gz-zzk-ed25519-2026")));
        assert_eq!(qm.as_object().map(|o| o.len()), Some(3));
        assert!(verify_ed25519(ED25519_2026, DEMO_0001_SIGNED, &qm["qz"]));
        // Ed25519 is deterministic: the value §7.2 of the document prints.
        assert_eq!(qm["qz"], DEMO_0001_QZ);
        assert!(!verify_ed25519(ED25519_2019, DEMO_0001_SIGNED, &qm["qz"]));

        let r = certificate(addr, "GZ-DEMO-SM2-0001").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mut sj = r.json()["sj"].clone();
        let qm = sj.as_object_mut().expect("object").remove("qm").expect("signed");
        assert_eq!(
            sj,
            json!({
                "zzbh": "GZ-DEMO-SM2-0001",
                "zzlxdm": "ZZ0201",
                "zzmc": "营业执照",
                "cyrxm": "张三",
                "cyrzjlx": "111",
                "cyrzjhm": "11010519491231002X",
                "fzjg": "贵阳市云岩区市场监督管理局",
                "fzjgqh": "520103",
                "fzrq": "2026-11-20",
                "yxqq": "2026-11-20",
                "zzzt": "1",
                "zzxx": {
                    "ztmc": "贵阳市云岩区张三便利店",
                    "tyshxydm": "92520103MA6DL9P27T",
                    "ztlx": "个体工商户",
                    "jycs": "贵州省贵阳市云岩区中华北路1号",
                    "jyfw": "日用百货零售"
                }
            })
        );
        assert_eq!((qm["sf"].as_str(), qm["my"].as_str()), (Some("SM2withSM3"), Some("gz-zzk-sm2-2026")));
        let signed = concat!(
            r#"{"certificate_id":"GZ-DEMO-SM2-0001","#,
            r#""fields":{"address":"贵州省贵阳市云岩区中华北路1号","business_scope":"日用百货零售","#,
            r#""credit_code":"92520103MA6DL9P27T","enterprise_name":"贵阳市云岩区张三便利店","#,
            r#""enterprise_type":"个体工商户"},"#,
            r#""holder":{"id_number":"11010519491231002X","id_type":"resident_id","name":"张三"},"#,
            r#""issued_on":"2026-11-20","issuer":{"name":"贵阳市云岩区市场监督管理局","region":"520103"},"#,
            r#""type":{"code":"business_license","name":"营业执照"},"valid_from":"2026-11-20"}"#
        );
        assert!(verify_sm2(SM2_2026, signed, &qm["qz"]));
        // This mock's SM2 nonces are RFC 6979, so its value is fixed too (another signer's would differ).
        assert_eq!(qm["qz"], DEMO_SM2_0001_QZ);
        assert!(!verify_sm2(SM2_2026, DEMO_0001_SIGNED, &qm["qz"]));

        // Tampered after signing: served as 李四, signed as 张三.
        let v = certificate(addr, "GZ-DEMO-TAMPERED").await.json();
        assert_eq!(v["sj"]["cyrxm"], "李四");
        let as_signed = DEMO_0001_SIGNED.replace("GZ-DEMO-0001", "GZ-DEMO-TAMPERED");
        let as_served = as_signed.replace("张三", "李四");
        assert!(!verify_ed25519(ED25519_2026, &as_served, &v["sj"]["qm"]["qz"]));
        assert!(verify_ed25519(ED25519_2026, &as_signed, &v["sj"]["qm"]["qz"]));

        let v = certificate(addr, "GZ-DEMO-UNSIGNED").await.json();
        assert_eq!(v["sj"]["zzzt"], "1");
        assert!(v["sj"].get("qm").is_none(), "{v}");

        let v = certificate(addr, "GZ-DEMO-OLDKEY").await.json();
        assert_eq!((v["sj"]["fzrq"].as_str(), v["sj"]["yxqz"].as_str()), (Some("2020-06-01"), Some("2030-05-31")));
        assert_eq!(v["sj"]["qm"]["my"], "gz-zzk-ed25519-2019");
        let old = DEMO_0001_SIGNED
            .replace("GZ-DEMO-0001", "GZ-DEMO-OLDKEY")
            .replace(r#""issued_on":"2026-11-20""#, r#""issued_on":"2020-06-01""#)
            .replace(
                r#""valid_from":"2026-11-20","valid_until":"2036-11-19""#,
                r#""valid_from":"2020-06-01","valid_until":"2030-05-31""#,
            );
        assert!(verify_ed25519(ED25519_2019, &old, &v["sj"]["qm"]["qz"]));

        let v = certificate(addr, "GZ-DEMO-CANCELLED").await.json();
        assert_eq!(v["sj"]["zzzt"], "2");
        let cancelled = DEMO_0001_SIGNED.replace("GZ-DEMO-0001", "GZ-DEMO-CANCELLED");
        assert!(verify_ed25519(ED25519_2026, &cancelled, &v["sj"]["qm"]["qz"]));

        let v = certificate(addr, "GZ-DEMO-EXPIRED").await.json();
        assert_eq!((v["sj"]["yxqq"].as_str(), v["sj"]["yxqz"].as_str()), (Some("2026-01-10"), Some("2026-02-18")));
        let expired = DEMO_0001_SIGNED
            .replace("GZ-DEMO-0001", "GZ-DEMO-EXPIRED")
            .replace(r#""issued_on":"2026-11-20""#, r#""issued_on":"2026-01-10""#)
            .replace(
                r#""valid_from":"2026-11-20","valid_until":"2036-11-19""#,
                r#""valid_from":"2026-01-10","valid_until":"2026-02-18""#,
            );
        assert!(verify_ed25519(ED25519_2026, &expired, &v["sj"]["qm"]["qz"]));

        let r = certificate(addr, "GZ-DEMO-9999").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json(), json!({"zt": "0", "cwdm": "E404", "xx": "证照不存在：GZ-DEMO-9999"}));
        for (path, status, cwdm) in [
            ("/api/zz/cx", 400, "E101"),
            ("/api/zz/cx?zzbh=", 400, "E101"),
            ("/api/zz/cx?zzbh=GZ-DEMO-0001&wbbh=x", 400, "E102"),
        ] {
            let r = must(addr, "GET", path, &[], b"").await;
            assert_eq!((r.status, r.json()["cwdm"].as_str()), (status, Some(cwdm)), "{path}");
        }
        assert_eq!(must(addr, "POST", "/api/zz/cx?zzbh=GZ-DEMO-0001", JSON, b"{}").await.status, 405);
        // 云南 serves the endpoint but holds no demo certificates.
        let yunnan = start("yunnan").await;
        assert_eq!(certificate(yunnan.local_addr(), "GZ-DEMO-0001").await.status, 404);
        yunnan.shutdown().await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn approval_issues_a_certificate() {
        let server = start("guizhou").await;
        let addr = server.local_addr();
        assert_eq!(post(addr, &valid()).await.status, 200);
        let status = || must(addr, "GET", "/api/sb/cx?wbbh=TB-20261122-000001", &[], b"");
        assert!(status().await.json()["sj"].get("zzbh").is_none());
        // Moving to another state issues nothing.
        assert_eq!(set_state(addr, "GZ2026000001", "03", None).await.status, 200);
        assert!(status().await.json()["sj"].get("zzbh").is_none());

        assert_eq!(set_state(addr, "GZ2026000001", "05", Some("准予迁入")).await.status, 200);
        let today = now_beijing().date_naive();
        let sv = status().await.json();
        assert_eq!(sv["sj"]["bjzt"], "05");
        assert_eq!(sv["sj"]["zzbh"], "GZ2026000001-ZZ");

        let r = certificate(addr, "GZ2026000001-ZZ").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let sj = r.json()["sj"].clone();
        let (from, until) =
            (today.format("%Y-%m-%d").to_string(), (today + Days::new(39)).format("%Y-%m-%d").to_string());
        assert_eq!((sj["cyrxm"].as_str(), sj["cyrzjlx"].as_str()), (Some("张三"), Some("111")));
        assert_eq!(sj["cyrzjhm"], "520102199003075413");
        assert_eq!((sj["zzlxdm"].as_str(), sj["zzmc"].as_str()), (Some("ZZ0104"), Some("准予迁入证明")));
        assert_eq!((sj["fzjg"].as_str(), sj["fzjgqh"].as_str()), (Some("贵州省公安厅"), Some("520102")));
        assert_eq!((sj["fzrq"].as_str(), sj["yxqq"].as_str()), (Some(from.as_str()), Some(from.as_str())));
        assert_eq!(sj["yxqz"].as_str(), Some(until.as_str()));
        assert_eq!(sj["zzzt"], "1");
        assert_eq!(
            sj["zzxx"],
            json!({"qcdz": "广东省广州市天河区天河路100号", "qrdz": "贵州省贵阳市南明区新华路2号", "qyyy": "投靠亲属"})
        );
        assert_eq!(sj["qm"]["my"], "gz-zzk-ed25519-2026");
        let signed = format!(
            concat!(
                r#"{{"certificate_id":"GZ2026000001-ZZ","#,
                r#""fields":{{"move_from_address":"广东省广州市天河区天河路100号","#,
                r#""move_to_address":"贵州省贵阳市南明区新华路2号","reason":"投靠亲属"}},"#,
                r#""holder":{{"id_number":"520102199003075413","id_type":"resident_id","name":"张三"}},"#,
                r#""issued_on":"{from}","issuer":{{"name":"贵州省公安厅","region":"520102"}},"#,
                r#""type":{{"code":"household_transfer_permit","name":"准予迁入证明"}},"#,
                r#""valid_from":"{from}","valid_until":"{until}"}}"#
            ),
            from = from,
            until = until
        );
        assert!(verify_ed25519(ED25519_2026, &signed, &sj["qm"]["qz"]));

        // Later moves keep the certificate; approving again issues no second one.
        assert_eq!(set_state(addr, "GZ2026000001", "07", None).await.status, 200);
        assert_eq!(set_state(addr, "GZ2026000001", "05", None).await.status, 200);
        assert_eq!(status().await.json()["sj"]["zzbh"], "GZ2026000001-ZZ");
        assert_eq!(certificate(addr, "GZ2026000001-ZZ").await.json()["sj"]["qm"], sj["qm"]);

        // A legal person's 营业执照: 长期, holder by 统一社会信用代码.
        let mut corp = corporate();
        let o = corp.as_object_mut().expect("object");
        o.remove("lxdz");
        assert_eq!(post(addr, &corp).await.status, 200);
        assert_eq!(set_state(addr, "GZ2026000002", "05", None).await.status, 200);
        let sj = certificate(addr, "GZ2026000002-ZZ").await.json()["sj"].clone();
        assert_eq!((sj["zzlxdm"].as_str(), sj["cyrzjlx"].as_str()), (Some("ZZ0201"), Some("001")));
        assert_eq!(sj["fzjg"], "贵州省市场监督管理局");
        assert!(sj.get("yxqz").is_none(), "{sj}");
        assert_eq!(sj["zzxx"], json!({"ztmc": "贵阳黔程科技有限公司", "tyshxydm": "91520102MA6DL8K3XN"}));
        let signed = format!(
            concat!(
                r#"{{"certificate_id":"GZ2026000002-ZZ","#,
                r#""fields":{{"credit_code":"91520102MA6DL8K3XN","enterprise_name":"贵阳黔程科技有限公司"}},"#,
                r#""holder":{{"id_number":"91520102MA6DL8K3XN","id_type":"uscc","name":"贵阳黔程科技有限公司"}},"#,
                r#""issued_on":"{from}","issuer":{{"name":"贵州省市场监督管理局","region":"520102"}},"#,
                r#""type":{{"code":"business_license","name":"营业执照"}},"valid_from":"{from}"}}"#
            ),
            from = from
        );
        assert!(verify_ed25519(ED25519_2026, &signed, &sj["qm"]["qz"]));

        // A matter without a certificate.
        let mut card = valid();
        card["wbbh"] = json!("TB-card-1");
        card["sxbm"] = json!("000301003000");
        card["sxmc"] = json!("社会保障卡申领");
        assert_eq!(post(addr, &card).await.status, 200);
        assert_eq!(set_state(addr, "GZ2026000003", "05", None).await.status, 200);
        let sv = must(addr, "GET", "/api/sb/cx?wbbh=TB-card-1", &[], b"").await.json();
        assert!(sv["sj"].get("zzbh").is_none(), "{sv}");
        assert_eq!(certificate(addr, "GZ2026000003-ZZ").await.status, 404);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn yunnan_issues_with_its_own_issuer() {
        let server = start("yunnan").await;
        let addr = server.local_addr();
        let mut v = valid();
        v["blqh"] = json!("530102");
        v.as_object_mut().expect("object").remove("lxdz");
        assert_eq!(post(addr, &v).await.status, 200);
        assert_eq!(set_state(addr, "YN2026000001", "05", None).await.status, 200);
        let sj = certificate(addr, "YN2026000001-ZZ").await.json()["sj"].clone();
        assert_eq!((sj["fzjg"].as_str(), sj["fzjgqh"].as_str()), (Some("云南省公安厅"), Some("530102")));
        // No contact address: no 迁出地址.
        assert_eq!(sj["zzxx"], json!({"qrdz": "云南省昆明市五华区东风西路2号", "qyyy": "投靠亲属"}));
        assert_eq!(sj["qm"]["my"], "gz-zzk-ed25519-2026");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn certificate_status_is_set_by_the_control_endpoint() {
        let server = start("guizhou").await;
        let addr = server.local_addr();
        let before = certificate(addr, "GZ-DEMO-0001").await.json();
        for zzzt in ["2", "3", "1"] {
            let r = control(addr, "POST", "/_mock/certificate", json!({"zzbh": "GZ-DEMO-0001", "zzzt": zzzt})).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json(), json!({"zzbh": "GZ-DEMO-0001", "zzzt": zzzt}));
            let v = certificate(addr, "GZ-DEMO-0001").await.json();
            assert_eq!(v["sj"]["zzzt"], zzzt);
            // The status is not signed: the signature stays as it was.
            assert_eq!(v["sj"]["qm"], before["sj"]["qm"]);
        }
        let r = control(addr, "POST", "/_mock/certificate", json!({"zzbh": "GZ-DEMO-9999", "zzzt": "2"})).await;
        assert_eq!(r.status, 404);
        for bad in [
            json!({"zzbh": "GZ-DEMO-0001", "zzzt": "4"}),
            json!({"zzbh": "GZ-DEMO-0001", "zzzt": 2}),
            json!({"zzbh": "GZ-DEMO-0001"}),
            json!({"zzbh": "GZ-DEMO-0001", "zzzt": "2", "x": 1}),
        ] {
            assert_eq!(control(addr, "POST", "/_mock/certificate", bad.clone()).await.status, 400, "{bad}");
        }
        assert_eq!(certificate(addr, "GZ-DEMO-0001").await.json()["sj"]["zzzt"], "1");
        // Control requests are not recorded; the queries above are.
        assert!(received(addr).await.iter().all(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/api/zz/cx"))));
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
