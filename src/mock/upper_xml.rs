//! Style C `upper-xml` (申报接口 SBJK, 安徽/益阳): UTF-8 XML with UPPER-CASE element names,
//! `<REQUEST><HEAD><JKBM>…</JKBM></HEAD><BODY>…</BODY></REQUEST>` in, and
//! `<RESPONSE><HEAD><CODE>0000</CODE><MESSAGE>成功</MESSAGE></HEAD><BODY>…</BODY></RESPONSE>` out,
//! HTTP 200 with a non-`0000` CODE for business errors (E000 报文格式错误, E001 校验失败,
//! E002 事项不存在, E003 办理区划不属于本平台, E404 办件不存在, E999 系统繁忙). Dates `yyyyMMdd`,
//! datetimes `yyyyMMddHHmmss`, applicant kind as `<SQR LX="1|2">`, materials as
//! `<CLLB><CL>…</CL></CLLB>`, form fields as children of `<BD>` named by key.
//!
//! - Submit `POST /ws/sbjk/submit` (JKBM `SUBMIT`) → `BODY{BJBH,WBBH,BJZT,JSSJ}`.
//! - Status `POST /ws/sbjk/query` (JKBM `QUERY`, by WBBH) → `BODY{BJBH,WBBH,BJZT,GXSJ,YJ?}`.
//! - Matters `POST /ws/sbjk/items` (JKBM `ITEMS`, QHDM) → `BODY{ZS,SXLB{SX{SXBM,SXMC,SSBM}*}}`.
//!
//! Full description: `docs/platforms/upper-xml.md`.

use http::{Method, StatusCode};

use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};
use super::xml::{self, At, Document, Node, leaf};

/// 办件状态 codes (BJZT).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("SJ", CaseState::Received),
    ("SL", CaseState::Accepted),
    ("BL", CaseState::InProgress),
    ("BZ", CaseState::SupplementRequired),
    ("BJ", CaseState::Approved),
    ("BYSL", CaseState::Rejected),
    ("CH", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] = &[("01", Mode::Online), ("02", Mode::Proxy), ("03", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("1", Kind::Natural), ("2", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("10", IdType::ResidentId),
    ("11", IdType::Passport),
    ("12", IdType::HkMacaoPermit),
    ("13", IdType::TaiwanPermit),
    ("14", IdType::ForeignPermanentResident),
    ("20", IdType::Uscc),
];
const GENDERS: &[&str] = &["1", "2", "0", "9"];

const DATETIME: &str = "%Y%m%d%H%M%S";
const CONTENT_TYPE: &str = "application/xml;charset=UTF-8";

fn response(status: StatusCode, code: &str, message: &str, body: &str) -> Reply {
    let body = if body.is_empty() { "<BODY/>".to_owned() } else { format!("<BODY>{body}</BODY>") };
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<RESPONSE><HEAD><CODE>{code}</CODE><MESSAGE>{}</MESSAGE></HEAD>{body}</RESPONSE>",
        xml::esc(message)
    );
    Reply { status, content_type: CONTENT_TYPE, body: text.into_bytes() }
}

/// Renders a refusal as a `<RESPONSE>` with the matching CODE.
pub(crate) fn reject(r: &Reject) -> Reply {
    let ok = StatusCode::OK;
    match r.kind {
        RejectKind::Malformed => response(ok, "E000", &format!("报文格式错误：{}", r.message), ""),
        RejectKind::Missing | RejectKind::UnknownField | RejectKind::Invalid => {
            response(ok, "E001", &format!("校验失败：{}", r.message), "")
        }
        RejectKind::UnknownMatter => response(ok, "E002", &r.message, ""),
        RejectKind::OutOfRegion => response(ok, "E003", &r.message, ""),
        RejectKind::NotFound => response(ok, "E404", &r.message, ""),
        RejectKind::NoRoute => response(StatusCode::NOT_FOUND, "E404", "接口不存在", ""),
        RejectKind::MethodNotAllowed => response(StatusCode::METHOD_NOT_ALLOWED, "E405", "请求方法不支持", ""),
        RejectKind::TooLarge => response(StatusCode::PAYLOAD_TOO_LARGE, "E413", "报文过大", ""),
    }
}

/// The platform's "system busy" answer (CODE E999).
pub(crate) fn busy() -> Reply {
    response(StatusCode::OK, "E999", "系统繁忙", "")
}

/// Routes one business request.
pub(crate) fn handle(ctx: &Ctx<'_>, req: &Req) -> Reply {
    let jkbm = match req.path.as_str() {
        "/ws/sbjk/submit" => "SUBMIT",
        "/ws/sbjk/query" => "QUERY",
        "/ws/sbjk/items" => "ITEMS",
        p => return reject(&Reject::no_route(p)),
    };
    if req.method != Method::POST {
        return reject(&Reject::method(req.method.as_str()));
    }
    let result = parse_request(req).and_then(|doc| {
        let root = At::new(&doc.root, "");
        let body = check_envelope(root.node(), jkbm)?;
        let body = body.node();
        match jkbm {
            "SUBMIT" => submit(ctx, body),
            "QUERY" => status(ctx, body),
            _ => matters(ctx, body),
        }
    });
    result.unwrap_or_else(|r| {
        tracing::info!(platform = ctx.platform.name, error = %r.message, "Request refused.");
        reject(&r)
    })
}

fn parse_request(req: &Req) -> Result<Document, Reject> {
    validate::require_content_type(req.content_type.as_deref(), &["application/xml", "text/xml"], "UTF-8", false)?;
    let text = std::str::from_utf8(&req.body).map_err(|_| Reject::malformed("报文不是合法的 UTF-8"))?;
    let doc = xml::parse(text)?;
    if let Some(enc) = doc.encoding.as_deref().filter(|e| !e.eq_ignore_ascii_case("UTF-8")) {
        return Err(Reject::malformed(format!("XML 声明的编码必须是 UTF-8（收到 {enc}）")));
    }
    if doc.root.name != "REQUEST" {
        return Err(Reject::malformed(format!("根元素必须是 REQUEST（收到 {}）", doc.root.name)));
    }
    xml::check_namespace(&doc.root, None, "REQUEST")?;
    Ok(doc)
}

/// Checks HEAD (JKBM must match the URL, QQSJ optional) and returns BODY.
fn check_envelope<'a>(root: Node<'a>, jkbm: &str) -> Result<At<'a>, Reject> {
    root.allow(&["HEAD", "BODY"], &[])?;
    let head = root.child("HEAD")?.ok_or_else(|| Reject::missing("HEAD"))?;
    let head = head.node();
    head.allow(&["JKBM", "QQSJ"], &[])?;
    let code = head.leaf("JKBM")?.ok_or_else(|| Reject::missing("HEAD/JKBM"))?;
    if code != jkbm {
        return Err(Reject::invalid("HEAD/JKBM", format!("接口编码应为 {jkbm}（收到 {code}）")));
    }
    if let Some(t) = head.leaf("QQSJ")? {
        validate::check_datetime(&t, DateTimeFmt::Compact).map_err(|why| Reject::invalid("HEAD/QQSJ", why))?;
    }
    let body = root.child("BODY")?.ok_or_else(|| Reject::missing("BODY"))?;
    // Re-root BODY so field paths read `SQR/ZJHM`, as in the document.
    Ok(At::new(body.el(), ""))
}

fn names() -> Names {
    Names {
        external_id: "WBBH".into(),
        matter_code: "SXBM".into(),
        matter_name: "SXMC".into(),
        handling_region: "BLQH".into(),
        accepting_region: "SJQH".into(),
        mode: "BLMS".into(),
        kind: "SQR/@LX".into(),
        applicant_name: "SQR/XM".into(),
        id_type: "SQR/ZJLX".into(),
        id_number: "SQR/ZJHM".into(),
        gender: "SQR/XB".into(),
        birth_date: "SQR/CSRQ".into(),
        phone: "SQR/LXDH".into(),
        address: "SQR/LXDZ".into(),
        credit_code: "SQR/TYSHXYDM".into(),
        legal_rep: "SQR/FDDBR".into(),
        submitted_at: "SQSJ".into(),
    }
}

fn submit(ctx: &Ctx<'_>, body: Node<'_>) -> Result<Reply, Reject> {
    body.allow(&["WBBH", "SXBM", "SXMC", "BLQH", "SJQH", "BLMS", "SQR", "CLLB", "BD", "SQSJ"], &[])?;
    let sqr = body.child("SQR")?.ok_or_else(|| Reject::missing("SQR"))?;
    let sqr = sqr.node();
    sqr.allow(&["XM", "ZJLX", "ZJHM", "XB", "CSRQ", "LXDH", "LXDZ", "TYSHXYDM", "FDDBR"], &["LX"])?;
    let mut raw = RawSubmission {
        external_id: body.leaf("WBBH")?,
        matter_code: body.leaf("SXBM")?,
        matter_name: body.leaf("SXMC")?,
        handling_region: body.leaf("BLQH")?,
        accepting_region: body.leaf("SJQH")?,
        mode: body.leaf("BLMS")?,
        applicant: RawApplicant {
            kind: sqr.attr("LX"),
            name: sqr.leaf("XM")?,
            id_type: sqr.leaf("ZJLX")?,
            id_number: sqr.leaf("ZJHM")?,
            gender: sqr.leaf("XB")?,
            birth_date: sqr.leaf("CSRQ")?,
            phone: sqr.leaf("LXDH")?,
            address: sqr.leaf("LXDZ")?,
            credit_code: sqr.leaf("TYSHXYDM")?,
            legal_rep: sqr.leaf("FDDBR")?,
        },
        submitted_at: body.leaf("SQSJ")?,
        ..RawSubmission::default()
    };
    if let Some(list) = body.child("CLLB")? {
        let list = list.node();
        list.allow(&["CL"], &[])?;
        for cl in list.children("CL") {
            let cl = cl.node();
            cl.allow(&["CLMC", "WJLX", "SHA256", "DX", "NR", "DZ"], &[])?;
            raw.materials.push(RawMaterial {
                name: cl.leaf("CLMC")?,
                media_type: cl.leaf("WJLX")?,
                sha256: cl.leaf("SHA256")?,
                size: cl.leaf("DX")?,
                content: cl.leaf("NR")?,
                reference: cl.leaf("DZ")?,
            });
        }
    }
    if let Some(bd) = body.child("BD")? {
        raw.form = bd.node().form()?;
    }

    let dialect = Dialect {
        names: names(),
        material_names: MaterialNames {
            name: "CLMC",
            media_type: "WJLX",
            sha256: "SHA256",
            size: "DX",
            content: "NR",
            reference: "DZ",
        },
        material_path: &|i, leaf| format!("CLLB/CL[{}]/{leaf}", i + 1),
        form_path: &|key| format!("BD/{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Compact,
        datetime: DateTimeFmt::Compact,
        base64_whitespace: true,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, created, "Submission accepted.");
    let inner = [
        leaf("BJBH", &case.case_number),
        leaf("WBBH", &case.external_id),
        leaf("BJZT", state_code(STATES, case.state)),
        leaf("JSSJ", &case.created.format(DATETIME).to_string()),
    ]
    .concat();
    Ok(response(StatusCode::OK, "0000", "成功", &inner))
}

fn status_body(case: &Case) -> String {
    let mut inner = [
        leaf("BJBH", &case.case_number),
        leaf("WBBH", &case.external_id),
        leaf("BJZT", state_code(STATES, case.state)),
        leaf("GXSJ", &case.updated.format(DATETIME).to_string()),
    ]
    .concat();
    if let Some(yj) = &case.opinion {
        inner.push_str(&leaf("YJ", yj));
    }
    inner
}

fn status(ctx: &Ctx<'_>, body: Node<'_>) -> Result<Reply, Reject> {
    body.allow(&["WBBH"], &[])?;
    let wbbh = body.leaf("WBBH")?.ok_or_else(|| Reject::missing("WBBH"))?;
    let store = ctx.store();
    let case = store.by_external(&wbbh).ok_or_else(|| Reject::not_found(&wbbh))?;
    Ok(response(StatusCode::OK, "0000", "成功", &status_body(case)))
}

fn matters(ctx: &Ctx<'_>, body: Node<'_>) -> Result<Reply, Reject> {
    body.allow(&["QHDM"], &[])?;
    let qh = body.leaf("QHDM")?.ok_or_else(|| Reject::missing("QHDM"))?;
    validate::check_region(&qh).map_err(|why| Reject::invalid("QHDM", why))?;
    let list: Vec<String> = if ctx.platform.serves_region(&qh) {
        ctx.platform
            .catalogue()
            .iter()
            .map(|m| format!("<SX>{}{}{}</SX>", leaf("SXBM", m.code), leaf("SXMC", m.name), leaf("SSBM", m.department)))
            .collect()
    } else {
        Vec::new()
    };
    let sxlb = if list.is_empty() { "<SXLB/>".to_owned() } else { format!("<SXLB>{}</SXLB>", list.concat()) };
    let inner = format!("{}{sxlb}", leaf("ZS", &list.len().to_string()));
    Ok(response(StatusCode::OK, "0000", "成功", &inner))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::mock::testutil::{Probe, Resp, check_faults, check_slow, must, received, set_state, start};
    use crate::mock::xml::{At, parse};

    const XML: &[(&str, &str)] = &[("Content-Type", "application/xml; charset=UTF-8")];

    const VALID: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<REQUEST>
  <HEAD>
    <JKBM>SUBMIT</JKBM>
    <QQSJ>20261122100000</QQSJ>
  </HEAD>
  <BODY>
    <WBBH>TB-20261122-000003</WBBH>
    <SXBM>000104001000</SXBM>
    <SXMC>户口迁移</SXMC>
    <BLQH>340102</BLQH>
    <SJQH>520102</SJQH>
    <BLMS>01</BLMS>
    <SQR LX="1">
      <XM>周敏</XM>
      <ZJLX>10</ZJLX>
      <ZJHM>340102199208150022</ZJHM>
      <XB>2</XB>
      <CSRQ>19920815</CSRQ>
      <LXDH>13955110000</LXDH>
      <LXDZ>安徽省合肥市瑶海区长江东路8号</LXDZ>
    </SQR>
    <CLLB>
      <CL>
        <CLMC>居民户口簿</CLMC>
        <WJLX>application/pdf</WJLX>
        <SHA256>a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9</SHA256>
        <DX>57</DX>
        <NR>JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAv
Q2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK</NR>
      </CL>
      <CL>
        <CLMC>准予迁入证明</CLMC>
        <WJLX>image/png</WJLX>
        <SHA256>4c4b6a3be1314ab86138bef4314dde022e600960d8689a2c8f8631802d20dab6</SHA256>
        <DX>8</DX>
        <DZ>https://files.example.gov.cn/cl/20261122/zyqrzm.png</DZ>
      </CL>
    </CLLB>
    <BD>
      <reason>务工</reason>
    </BD>
    <SQSJ>20261122100000</SQSJ>
  </BODY>
</REQUEST>"#;

    /// Reads `RESPONSE/HEAD/CODE` and a BODY leaf.
    fn answer(r: &Resp) -> (String, String, Option<crate::mock::xml::Element>) {
        let doc = parse(&r.text()).expect("answer is XML");
        assert_eq!(doc.root.name, "RESPONSE");
        let root = At::new(&doc.root, "");
        let n = root.node();
        let head = n.child("HEAD").ok().flatten().expect("HEAD");
        let code = head.node().leaf("CODE").ok().flatten().unwrap_or_default();
        let msg = head.node().leaf("MESSAGE").ok().flatten().unwrap_or_default();
        let body = n.child("BODY").ok().flatten().map(|b| b.node().el.clone());
        (code, msg, body)
    }

    fn body_leaf(body: &Option<crate::mock::xml::Element>, name: &str) -> Option<String> {
        let el = body.as_ref()?;
        let at = At::new(el, "");
        at.node().leaf(name).ok().flatten()
    }

    async fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
        must(addr, "POST", path, XML, body.as_bytes()).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("anhui").await;
        let addr = server.local_addr();

        let r = post(addr, "/ws/sbjk/submit", VALID).await;
        assert_eq!(r.status, 200);
        let (code, msg, body) = answer(&r);
        assert_eq!((code.as_str(), msg.as_str()), ("0000", "成功"), "{}", r.text());
        assert_eq!(body_leaf(&body, "BJBH").as_deref(), Some("AH2026000001"));
        assert_eq!(body_leaf(&body, "BJZT").as_deref(), Some("SJ"));
        assert!(body_leaf(&body, "JSSJ").is_some_and(|t| t.len() == 14));

        let again = answer(&post(addr, "/ws/sbjk/submit", VALID).await);
        assert_eq!(body_leaf(&again.2, "BJBH").as_deref(), Some("AH2026000001"));

        let corp = VALID.replace("TB-20261122-000003", "TB-corp-3").replace(
            r#"<SQR LX="1">
      <XM>周敏</XM>
      <ZJLX>10</ZJLX>
      <ZJHM>340102199208150022</ZJHM>
      <XB>2</XB>
      <CSRQ>19920815</CSRQ>"#,
            r#"<SQR LX="2">
      <XM>合肥皖信科技有限公司</XM>
      <ZJLX>20</ZJLX>
      <ZJHM>91340100MA2T0Q9R5R</ZJHM>
      <TYSHXYDM>91340100MA2T0Q9R5R</TYSHXYDM>
      <FDDBR>吴刚</FDDBR>
      <XB></XB>"#,
        );
        let (code, msg, body) = answer(&post(addr, "/ws/sbjk/submit", &corp).await);
        assert_eq!(code, "0000", "{msg}");
        assert_eq!(body_leaf(&body, "BJBH").as_deref(), Some("AH2026000002"));

        let query = "<REQUEST><HEAD><JKBM>QUERY</JKBM></HEAD><BODY><WBBH>TB-20261122-000003</WBBH></BODY></REQUEST>";
        let (code, _, body) = answer(&post(addr, "/ws/sbjk/query", query).await);
        assert_eq!(code, "0000");
        assert_eq!(body_leaf(&body, "WBBH").as_deref(), Some("TB-20261122-000003"));
        assert_eq!(body_leaf(&body, "YJ"), None);
        assert_eq!(set_state(addr, "AH2026000001", "SL", Some("材料齐全，予以受理")).await.status, 200);
        let (_, _, body) = answer(&post(addr, "/ws/sbjk/query", query).await);
        assert_eq!(body_leaf(&body, "BJZT").as_deref(), Some("SL"));
        assert_eq!(body_leaf(&body, "YJ").as_deref(), Some("材料齐全，予以受理"));

        let unknown = query.replace("TB-20261122-000003", "nope");
        let r = post(addr, "/ws/sbjk/query", &unknown).await;
        assert_eq!(r.status, 200);
        assert_eq!(answer(&r).0, "E404");

        let items = "<REQUEST><HEAD><JKBM>ITEMS</JKBM></HEAD><BODY><QHDM>340000</QHDM></BODY></REQUEST>";
        let r = post(addr, "/ws/sbjk/items", items).await;
        let (code, _, body) = answer(&r);
        assert_eq!(code, "0000");
        assert_eq!(body_leaf(&body, "ZS").as_deref(), Some("4"));
        assert!(r.text().contains("<SX><SXBM>000104001000</SXBM><SXMC>户口迁移</SXMC><SSBM>安徽省公安厅</SSBM></SX>"));

        let log = received(addr).await;
        assert_eq!(log.len(), 7);
        assert_eq!(log[0]["body"], VALID);
        assert_eq!(log[6]["path"], "/ws/sbjk/items");
        server.shutdown().await;
    }

    async fn refused(addr: SocketAddr, body: &str, code: &str, field: &str) {
        let r = post(addr, "/ws/sbjk/submit", body).await;
        assert_eq!(r.status, 200);
        let (c, msg, _) = answer(&r);
        assert_eq!(c, code, "{msg}");
        assert!(msg.contains(field), "{msg}");
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("yiyang").await;
        let addr = server.local_addr();
        let base = VALID.replace("<BLQH>340102</BLQH>", "<BLQH>430902</BLQH>");
        refused(addr, &base.replace("150022", "150023"), "E001", "SQR/ZJHM").await;
        refused(addr, &base.replace("<XB>2</XB>", "<XB>2</XB><BZ>x</BZ>"), "E001", "SQR/BZ").await;
        refused(addr, &base.replace("<CSRQ>19920815", "<CSRQ>1992-08-15"), "E001", "SQR/CSRQ").await;
        refused(addr, &base.replace(r#"LX="1""#, r#"LX="1" XX="y""#), "E001", "SQR/@XX").await;
        refused(addr, &base.replace(r#"<SQR LX="1">"#, "<SQR>"), "E001", "SQR/@LX").await;
        refused(addr, &base.replace("<DX>8</DX>", "<DX>8</DX><NR>iVBORw0KGgo=</NR>"), "E001", "CLLB/CL[2]/NR").await;
        refused(addr, &base.replace("<DX>57</DX>", "<DX>5.7</DX>"), "E001", "CLLB/CL[1]/DX").await;
        refused(addr, &base.replace("<reason>", "<reason a='1'>"), "E001", "BD/reason/@a").await;
        refused(addr, &base.replace("<JKBM>SUBMIT", "<JKBM>QUERY"), "E001", "HEAD/JKBM").await;
        refused(addr, &base.replace("<WBBH>TB-20261122-000003</WBBH>", "<WBBH>a</WBBH><WBBH>b</WBBH>"), "E001", "WBBH")
            .await;
        refused(addr, &base.replace("000104001000", "000301003000"), "E002", "SXBM").await;
        refused(addr, VALID, "E003", "BLQH").await;
        refused(addr, &base.replace("<REQUEST>", "<REQUEST xmlns=\"urn:x\">"), "E000", "REQUEST").await;
        refused(addr, &base.replace("</REQUEST>", ""), "E000", "XML").await;
        refused(addr, &base.replace("encoding=\"UTF-8\"", "encoding=\"GBK\""), "E000", "UTF-8").await;
        refused(addr, &base.replace("REQUEST>", "REQ>"), "E000", "REQUEST").await;

        let r = must(addr, "POST", "/ws/sbjk/submit", &[("Content-Type", "application/json")], base.as_bytes()).await;
        assert_eq!(answer(&r).0, "E000");
        let r = must(addr, "GET", "/ws/sbjk/query", &[], b"").await;
        assert_eq!(r.status, 405);
        let r = must(addr, "POST", "/ws/other", XML, b"").await;
        assert_eq!(r.status, 404);
        assert_eq!(answer(&r).0, "E404");
        server.shutdown().await;
    }

    const ITEMS: &str = "<REQUEST><HEAD><JKBM>ITEMS</JKBM></HEAD><BODY><QHDM>430900</QHDM></BODY></REQUEST>";

    #[tokio::test]
    async fn faults() {
        let server = start("yiyang").await;
        let probe = Probe { method: "POST", path: "/ws/sbjk/items", headers: XML, body: ITEMS.as_bytes() };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 200);
            let (code, msg, _) = answer(r);
            assert_eq!((code.as_str(), msg.as_str()), ("E999", "系统繁忙"));
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("yiyang").await;
        let probe = Probe { method: "POST", path: "/ws/sbjk/items", headers: XML, body: ITEMS.as_bytes() };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
