//! Style F `ns-xml` (酒泉市政务服务网): UTF-8 XML in the namespace
//! `http://zwfw.jiuquan.gov.cn/schema/apply/1.0` (any prefix, or the default namespace, is
//! accepted; elements outside it are refused), attribute-heavy
//! (`<jq:Application ref submitted mode>`, `<jq:Matter code name/>`,
//! `<jq:Regions handling accepting/>`, `<jq:Applicant kind name idType idNumber …/>`), materials as
//! `<jq:Materials><jq:Material name type sha256 size [href]>BASE64</jq:Material></jq:Materials>`,
//! form fields as `<jq:Form><jq:reason>务工</jq:reason></jq:Form>`, ISO 8601 times with offset.
//! Faults: HTTP 400/404/503 with `<jq:Fault code="…" field="…"><jq:Reason>…</jq:Reason></jq:Fault>`.
//!
//! - Submit `POST /jq/api/applications` → 201 (200 if known) `<jq:Receipt caseNumber ref state received/>`.
//! - Status `GET /jq/api/applications?ref=…` → `<jq:Status caseNumber ref state updated><jq:Opinion/>?</jq:Status>`.
//! - Matters `GET /jq/api/matters?region=…` → `<jq:Matters count><jq:Matter code name department/>*</jq:Matters>`.
//!
//! Full description: `docs/platforms/ns-xml.md`.

use http::{Method, StatusCode};

use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};
use super::xml::{self, At, Node, esc};

/// The platform's namespace URI.
pub(crate) const NS: &str = "http://zwfw.jiuquan.gov.cn/schema/apply/1.0";

/// 办件状态 codes (@state).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("Received", CaseState::Received),
    ("Accepted", CaseState::Accepted),
    ("Processing", CaseState::InProgress),
    ("PendingSupplement", CaseState::SupplementRequired),
    ("Approved", CaseState::Approved),
    ("Rejected", CaseState::Rejected),
    ("Withdrawn", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] = &[("online", Mode::Online), ("proxy", Mode::Proxy), ("joint", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("natural", Kind::Natural), ("legal", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("ID", IdType::ResidentId),
    ("PP", IdType::Passport),
    ("HM", IdType::HkMacaoPermit),
    ("TW", IdType::TaiwanPermit),
    ("PR", IdType::ForeignPermanentResident),
    ("CC", IdType::Uscc),
];
const GENDERS: &[&str] = &["male", "female", "unknown", "unspecified"];

const TIME: &str = "%Y-%m-%dT%H:%M:%S+08:00";
const CONTENT_TYPE: &str = "application/xml; charset=UTF-8";
/// Material content is the element's text; this names it in paths.
const TEXT: &str = "text()";

fn document(status: StatusCode, root: &str) -> Reply {
    Reply {
        status,
        content_type: CONTENT_TYPE,
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{root}").into_bytes(),
    }
}

fn fault(status: StatusCode, code: &str, field: Option<&str>, reason: &str) -> Reply {
    let field = field.map_or_else(String::new, |f| format!(" field=\"{}\"", esc(f)));
    document(
        status,
        &format!(
            "<jq:Fault xmlns:jq=\"{NS}\" code=\"{code}\"{field}><jq:Reason>{}</jq:Reason></jq:Fault>",
            esc(reason)
        ),
    )
}

/// Renders a refusal as a `jq:Fault`.
pub(crate) fn reject(r: &Reject) -> Reply {
    let (status, code) = match r.kind {
        RejectKind::Malformed => (StatusCode::BAD_REQUEST, "Malformed"),
        RejectKind::Missing | RejectKind::UnknownField | RejectKind::Invalid => (StatusCode::BAD_REQUEST, "Invalid"),
        RejectKind::UnknownMatter => (StatusCode::BAD_REQUEST, "UnknownMatter"),
        RejectKind::OutOfRegion => (StatusCode::BAD_REQUEST, "RegionNotServed"),
        RejectKind::NotFound | RejectKind::NoRoute => (StatusCode::NOT_FOUND, "NotFound"),
        RejectKind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        RejectKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "TooLarge"),
    };
    fault(status, code, r.field.as_deref(), &r.message)
}

/// The platform's "unavailable" answer (503, Fault code="Unavailable").
pub(crate) fn busy() -> Reply {
    fault(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", None, "服务暂不可用")
}

const APPLICATIONS: &str = "/jq/api/applications";
const MATTERS: &str = "/jq/api/matters";

/// Routes one business request.
pub(crate) fn handle(ctx: &Ctx<'_>, req: &Req) -> Reply {
    let result = match (req.path.as_str(), &req.method) {
        (APPLICATIONS, &Method::POST) => submit(ctx, req),
        (APPLICATIONS, &Method::GET) => status(ctx, req),
        (MATTERS, &Method::GET) => matters(ctx, req),
        (APPLICATIONS | MATTERS, m) => Err(Reject::method(m.as_str())),
        (p, _) => Err(Reject::no_route(p)),
    };
    result.unwrap_or_else(|r| {
        tracing::info!(platform = ctx.platform.name, error = %r.message, "Request refused.");
        reject(&r)
    })
}

/// An element that must be empty, carrying only the listed attributes.
fn empty(n: Node<'_>, attrs: &[&str]) -> Result<(), Reject> {
    n.allow(&[], attrs)?;
    match n.text()? {
        Some(_) => Err(Reject::invalid(n.path(), "应为空元素")),
        None => Ok(()),
    }
}

fn names() -> Names {
    Names {
        external_id: "@ref".into(),
        matter_code: "Matter/@code".into(),
        matter_name: "Matter/@name".into(),
        handling_region: "Regions/@handling".into(),
        accepting_region: "Regions/@accepting".into(),
        mode: "@mode".into(),
        kind: "Applicant/@kind".into(),
        applicant_name: "Applicant/@name".into(),
        id_type: "Applicant/@idType".into(),
        id_number: "Applicant/@idNumber".into(),
        gender: "Applicant/@gender".into(),
        birth_date: "Applicant/@birthDate".into(),
        phone: "Applicant/@phone".into(),
        address: "Applicant/@address".into(),
        credit_code: "Applicant/@creditCode".into(),
        legal_rep: "Applicant/@legalRepresentative".into(),
        submitted_at: "@submitted".into(),
    }
}

fn submit(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    validate::require_content_type(req.content_type.as_deref(), &["application/xml", "text/xml"], "UTF-8", false)?;
    let text = std::str::from_utf8(&req.body).map_err(|_| Reject::malformed("报文不是合法的 UTF-8"))?;
    let doc = xml::parse(text)?;
    if let Some(enc) = doc.encoding.as_deref().filter(|e| !e.eq_ignore_ascii_case("UTF-8")) {
        return Err(Reject::malformed(format!("XML 声明的编码必须是 UTF-8（收到 {enc}）")));
    }
    if doc.root.name != "Application" {
        return Err(Reject::malformed(format!("根元素必须是 Application（收到 {}）", doc.root.name)));
    }
    xml::check_namespace(&doc.root, Some(NS), "Application")?;

    let root = At::new(&doc.root, "");
    let a = root.node();
    a.allow(&["Matter", "Regions", "Applicant", "Materials", "Form"], &["ref", "submitted", "mode"])?;
    let matter = a.child("Matter")?.ok_or_else(|| Reject::missing("Matter"))?;
    empty(matter.node(), &["code", "name"])?;
    let regions = a.child("Regions")?.ok_or_else(|| Reject::missing("Regions"))?;
    empty(regions.node(), &["handling", "accepting"])?;
    let applicant = a.child("Applicant")?.ok_or_else(|| Reject::missing("Applicant"))?;
    let p = applicant.node();
    empty(
        p,
        &[
            "kind",
            "name",
            "idType",
            "idNumber",
            "gender",
            "birthDate",
            "phone",
            "address",
            "creditCode",
            "legalRepresentative",
        ],
    )?;
    let mut raw = RawSubmission {
        external_id: a.attr("ref"),
        matter_code: matter.node().attr("code"),
        matter_name: matter.node().attr("name"),
        handling_region: regions.node().attr("handling"),
        accepting_region: regions.node().attr("accepting"),
        mode: a.attr("mode"),
        applicant: RawApplicant {
            kind: p.attr("kind"),
            name: p.attr("name"),
            id_type: p.attr("idType"),
            id_number: p.attr("idNumber"),
            gender: p.attr("gender"),
            birth_date: p.attr("birthDate"),
            phone: p.attr("phone"),
            address: p.attr("address"),
            credit_code: p.attr("creditCode"),
            legal_rep: p.attr("legalRepresentative"),
        },
        submitted_at: a.attr("submitted"),
        ..RawSubmission::default()
    };
    if let Some(list) = a.child("Materials")? {
        let list = list.node();
        list.allow(&["Material"], &[])?;
        for m in list.children("Material") {
            let m = m.node();
            m.allow(&[], &["name", "type", "sha256", "size", "href"])?;
            raw.materials.push(RawMaterial {
                name: m.attr("name"),
                media_type: m.attr("type"),
                sha256: m.attr("sha256"),
                size: m.attr("size"),
                content: m.text()?,
                reference: m.attr("href"),
            });
        }
    }
    if let Some(form) = a.child("Form")? {
        raw.form = form.node().form()?;
    }

    let dialect = Dialect {
        names: names(),
        material_names: MaterialNames {
            name: "name",
            media_type: "type",
            sha256: "sha256",
            size: "size",
            content: TEXT,
            reference: "href",
        },
        material_path: &|i, leaf| {
            if leaf == TEXT {
                format!("Materials/Material[{}]", i + 1)
            } else {
                format!("Materials/Material[{}]/@{leaf}", i + 1)
            }
        },
        form_path: &|key| format!("Form/{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Dashed,
        datetime: DateTimeFmt::Rfc3339,
        base64_whitespace: true,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, created, "Submission accepted.");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(document(
        status,
        &format!(
            "<jq:Receipt xmlns:jq=\"{NS}\" caseNumber=\"{}\" ref=\"{}\" state=\"{}\" received=\"{}\"/>",
            esc(&case.case_number),
            esc(&case.external_id),
            state_code(STATES, case.state),
            case.created.format(TIME)
        ),
    ))
}

fn status_doc(case: &Case) -> String {
    let head = format!(
        "<jq:Status xmlns:jq=\"{NS}\" caseNumber=\"{}\" ref=\"{}\" state=\"{}\" updated=\"{}\"",
        esc(&case.case_number),
        esc(&case.external_id),
        state_code(STATES, case.state),
        case.updated.format(TIME)
    );
    match &case.opinion {
        Some(o) => format!("{head}><jq:Opinion>{}</jq:Opinion></jq:Status>", esc(o)),
        None => format!("{head}/>"),
    }
}

fn status(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let reference = validate::single_param(req.query.as_deref(), "ref")?.ok_or_else(|| Reject::missing("ref"))?;
    let store = ctx.store();
    let case = store.by_external(&reference).ok_or_else(|| Reject::not_found(&reference))?;
    Ok(document(StatusCode::OK, &status_doc(case)))
}

fn matters(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let region = validate::single_param(req.query.as_deref(), "region")?.ok_or_else(|| Reject::missing("region"))?;
    validate::check_region(&region).map_err(|why| Reject::invalid("region", why))?;
    let list: Vec<String> = if ctx.platform.serves_region(&region) {
        ctx.platform
            .catalogue()
            .iter()
            .map(|m| {
                format!(
                    "<jq:Matter code=\"{}\" name=\"{}\" department=\"{}\"/>",
                    esc(m.code),
                    esc(m.name),
                    esc(m.department)
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let head = format!("<jq:Matters xmlns:jq=\"{NS}\" count=\"{}\"", list.len());
    let doc = if list.is_empty() { format!("{head}/>") } else { format!("{head}>{}</jq:Matters>", list.concat()) };
    Ok(document(StatusCode::OK, &doc))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::NS;
    use crate::mock::testutil::{Probe, Resp, check_faults, check_slow, must, received, set_state, start};
    use crate::mock::xml::{Element, parse};

    const XML: &[(&str, &str)] = &[("Content-Type", "application/xml")];

    const VALID: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<jq:Application xmlns:jq="http://zwfw.jiuquan.gov.cn/schema/apply/1.0"
                ref="TB-20261122-000006" submitted="2026-11-22T10:00:00+08:00" mode="online">
  <jq:Matter code="000104001000" name="户口迁移"/>
  <jq:Regions handling="620902" accepting="520102"/>
  <jq:Applicant kind="natural" name="孙立" idType="ID" idNumber="620902199309090031"
                gender="male" birthDate="1993-09-09" phone="13893710000"
                address="甘肃省酒泉市肃州区西大街1号"/>
  <jq:Materials>
    <jq:Material name="居民户口簿" type="application/pdf"
                 sha256="a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9"
                 size="57">JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK</jq:Material>
    <jq:Material name="准予迁入证明" type="image/png"
                 sha256="4c4b6a3be1314ab86138bef4314dde022e600960d8689a2c8f8631802d20dab6"
                 size="8" href="https://files.example.gov.cn/cl/20261122/zyqrzm.png"/>
  </jq:Materials>
  <jq:Form>
    <jq:reason>务工</jq:reason>
  </jq:Form>
</jq:Application>"#;

    fn answer(r: &Resp) -> Element {
        let doc = parse(&r.text()).expect("answer is XML");
        assert_eq!(doc.root.ns.as_deref(), Some(NS));
        doc.root
    }

    fn attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
        el.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    async fn post(addr: SocketAddr, body: &str) -> Resp {
        must(addr, "POST", "/jq/api/applications", XML, body.as_bytes()).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("jiuquan").await;
        let addr = server.local_addr();

        let r = post(addr, VALID).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let receipt = answer(&r);
        assert_eq!(receipt.name, "Receipt");
        assert_eq!(attr(&receipt, "caseNumber"), Some("JQ2026000001"));
        assert_eq!(attr(&receipt, "state"), Some("Received"));
        assert!(attr(&receipt, "received").is_some_and(|t| t.ends_with("+08:00")));

        // Any prefix bound to the namespace, or the default namespace, is the same document.
        let other_prefix = VALID.replace("jq:", "a:").replace("xmlns:jq", "xmlns:a");
        let r = post(addr, &other_prefix).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(attr(&answer(&r), "caseNumber"), Some("JQ2026000001"));
        let default_ns = VALID
            .replace("jq:", "")
            .replace("xmlns:jq", "xmlns")
            .replace("TB-20261122-000006", "TB-default-ns")
            .replace("+08:00", "Z");
        let r = post(addr, &default_ns).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(attr(&answer(&r), "caseNumber"), Some("JQ2026000002"));

        let corp = VALID.replace("TB-20261122-000006", "TB-corp-6").replace(
            r#"kind="natural" name="孙立" idType="ID" idNumber="620902199309090031"
                gender="male" birthDate="1993-09-09""#,
            r#"kind="legal" name="酒泉飞天物流有限公司" idType="CC" idNumber="91620902MA7J8N3L12"
                creditCode="91620902MA7J8N3L12" legalRepresentative="何平""#,
        );
        let r = post(addr, &corp).await;
        assert_eq!(r.status, 201, "{}", r.text());

        let s = must(addr, "GET", "/jq/api/applications?ref=TB-20261122-000006", &[], b"").await;
        assert_eq!(s.status, 200);
        let st = answer(&s);
        assert_eq!(st.name, "Status");
        assert_eq!(attr(&st, "ref"), Some("TB-20261122-000006"));
        assert!(st.children.is_empty());
        assert_eq!(set_state(addr, "JQ2026000001", "Rejected", Some("申请材料不符合法定形式")).await.status, 200);
        let st = answer(&must(addr, "GET", "/jq/api/applications?ref=TB-20261122-000006", &[], b"").await);
        assert_eq!(attr(&st, "state"), Some("Rejected"));
        assert_eq!(st.children[0].name, "Opinion");
        assert_eq!(st.children[0].text, "申请材料不符合法定形式");

        let nf = must(addr, "GET", "/jq/api/applications?ref=nope", &[], b"").await;
        assert_eq!(nf.status, 404);
        assert_eq!(attr(&answer(&nf), "code"), Some("NotFound"));

        let m = answer(&must(addr, "GET", "/jq/api/matters?region=620900", &[], b"").await);
        assert_eq!(attr(&m, "count"), Some("4"));
        assert_eq!(attr(&m.children[3], "department"), Some("酒泉市自然资源局"));
        let m = answer(&must(addr, "GET", "/jq/api/matters?region=620200", &[], b"").await);
        assert_eq!(attr(&m, "count"), Some("0"));

        let log = received(addr).await;
        assert_eq!(log[1]["body"], other_prefix);
        server.shutdown().await;
    }

    async fn refused(addr: SocketAddr, body: &str, code: &str, field: Option<&str>) {
        let r = post(addr, body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let f = answer(&r);
        assert_eq!(f.name, "Fault");
        assert_eq!(attr(&f, "code"), Some(code), "{}", r.text());
        if let Some(field) = field {
            assert_eq!(attr(&f, "field"), Some(field), "{}", r.text());
        }
        assert_eq!(f.children[0].name, "Reason");
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("jiuquan").await;
        let addr = server.local_addr();
        refused(addr, &VALID.replace("090031", "090032"), "Invalid", Some("Applicant/@idNumber")).await;
        refused(
            addr,
            &VALID.replace(r#"mode="online""#, r#"mode="online" channel="web""#),
            "Invalid",
            Some("@channel"),
        )
        .await;
        refused(
            addr,
            &VALID.replace(r#"birthDate="1993-09-09""#, r#"birthDate="19930909""#),
            "Invalid",
            Some("Applicant/@birthDate"),
        )
        .await;
        refused(
            addr,
            &VALID.replace("2026-11-22T10:00:00+08:00", "2026-11-22 10:00:00"),
            "Invalid",
            Some("@submitted"),
        )
        .await;
        refused(addr, &VALID.replace(r#"gender="male""#, r#"gender="M""#), "Invalid", Some("Applicant/@gender")).await;
        refused(
            addr,
            &VALID.replace(r#" size="8""#, r#" size="eight""#),
            "Invalid",
            Some("Materials/Material[2]/@size"),
        )
        .await;
        refused(addr, &VALID.replace("<jq:reason>", "<jq:reason><jq:x/>"), "Invalid", Some("Form/reason/x")).await;
        refused(addr, &VALID.replace(r#" ref="TB-20261122-000006""#, ""), "Invalid", Some("@ref")).await;
        refused(addr, &VALID.replace("000104001000", "000301003000"), "UnknownMatter", Some("Matter/@code")).await;
        refused(
            addr,
            &VALID.replace(r#"handling="620902""#, r#"handling="620202""#),
            "RegionNotServed",
            Some("Regions/@handling"),
        )
        .await;
        // Elements outside the namespace.
        refused(addr, &VALID.replace("<jq:reason>务工</jq:reason>", "<reason>务工</reason>"), "Malformed", None).await;
        refused(
            addr,
            &VALID
                .replace("<jq:Form>", "<jq:Form xmlns:o=\"urn:other\">")
                .replace("<jq:reason>务工</jq:reason>", "<o:reason>务工</o:reason>"),
            "Malformed",
            None,
        )
        .await;
        refused(addr, &VALID.replace("schema/apply/1.0", "schema/apply/2.0"), "Malformed", None).await;
        refused(addr, &VALID.replace("<jq:Form>", "<jq:Form jq:x=\"1\">"), "Invalid", Some("Application/Form/@jq:x"))
            .await;
        refused(addr, &VALID.replace("Application", "Apply"), "Malformed", None).await;
        refused(addr, "<jq:Application", "Malformed", None).await;

        let r =
            must(addr, "POST", "/jq/api/applications", &[("Content-Type", "application/json")], VALID.as_bytes()).await;
        assert_eq!(r.status, 400);
        let r = must(addr, "PUT", "/jq/api/applications", XML, VALID.as_bytes()).await;
        assert_eq!(r.status, 405);
        let r = must(addr, "GET", "/jq/api/nothing", &[], b"").await;
        assert_eq!(r.status, 404);
        let r = must(addr, "GET", "/jq/api/applications", &[], b"").await;
        assert_eq!(r.status, 400);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn faults() {
        let server = start("jiuquan").await;
        let probe = Probe { method: "POST", path: "/jq/api/applications", headers: XML, body: VALID.as_bytes() };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 503);
            let f = answer(r);
            assert_eq!(f.name, "Fault");
            assert_eq!(attr(&f, "code"), Some("Unavailable"));
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("jiuquan").await;
        let probe = Probe { method: "GET", path: "/jq/api/matters?region=620900", headers: &[], body: b"" };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
