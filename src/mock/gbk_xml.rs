//! Style D `gbk-xml` (legacy 网上办事大厅, 湖南/重庆): XML in GBK (`encoding="GBK"`,
//! `text/xml; charset=GBK`), lower-case pinyin element names, attributes for paired values
//! (`<sx bm mc/>`, `<qh bl sj/>`, `<zj lx hm/>`), Chinese words as codes (男/女/未知, 已接收 …),
//! HTTP 200 with `<fhxx><jg>1</jg>…</fhxx>` or `<fhxx><jg>0</jg><cwdm/><sm/></fhxx>`.
//!
//! - Submit `POST /zwfw/sbjs.do` → `fhxx{jg,sm,slbh,wbbh,zt,jssj}`.
//! - Status `GET /zwfw/cx.do?slbh=…` — ONLY by the platform's own 受理编号 → `fhxx{…,gxsj,yj?}`.
//! - Matters `GET /zwfw/sxlb.do?qh=…` → `fhxx{jg,sm,sxlb@zs{sx@bm@mc@ssbm*}}`.
//!
//! Bodies that are not valid GBK, or that declare another encoding, are refused (E00).
//! Full description: `docs/platforms/gbk-xml.md`.

use http::{Method, StatusCode};

use super::server::{Ctx, Reply, Req, state_code};
use super::state::{Case, CaseState};
use super::validate::{
    self, DateFmt, DateTimeFmt, Dialect, IdType, Kind, MaterialNames, Mode, Names, RawApplicant, RawMaterial,
    RawSubmission, Reject, RejectKind,
};
use super::xml::{self, At, Node, esc, leaf};

/// 办件状态 words (zt).
pub(crate) const STATES: &[(&str, CaseState)] = &[
    ("已接收", CaseState::Received),
    ("已受理", CaseState::Accepted),
    ("办理中", CaseState::InProgress),
    ("需补正", CaseState::SupplementRequired),
    ("办结", CaseState::Approved),
    ("不予受理", CaseState::Rejected),
    ("已撤回", CaseState::Withdrawn),
];

const MODES: &[(&str, Mode)] =
    &[("全程网办", Mode::Online), ("异地代收代办", Mode::Proxy), ("多地联办", Mode::MultiSite)];
const KINDS: &[(&str, Kind)] = &[("自然人", Kind::Natural), ("法人", Kind::Legal)];
const ID_TYPES: &[(&str, IdType)] = &[
    ("身份证", IdType::ResidentId),
    ("护照", IdType::Passport),
    ("港澳通行证", IdType::HkMacaoPermit),
    ("台湾通行证", IdType::TaiwanPermit),
    ("外国人永久居留证", IdType::ForeignPermanentResident),
    ("统一社会信用代码", IdType::Uscc),
];
const GENDERS: &[&str] = &["男", "女", "未知", "未说明"];

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";
const CONTENT_TYPE: &str = "text/xml; charset=GBK";
/// Material content is the element's text; this names it in paths.
const TEXT: &str = "文本内容";

fn fhxx(status: StatusCode, inner: &str) -> Reply {
    let text = format!("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<fhxx>{inner}</fhxx>");
    // Characters GBK cannot hold become numeric character references, which XML reads back.
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    Reply { status, content_type: CONTENT_TYPE, body: bytes.into_owned() }
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    fhxx(status, &format!("<jg>0</jg>{}{}", leaf("cwdm", code), leaf("sm", message)))
}

fn success(inner: &str) -> Reply {
    fhxx(StatusCode::OK, &format!("<jg>1</jg><sm>成功</sm>{inner}"))
}

/// Renders a refusal as `<fhxx><jg>0</jg><cwdm/><sm/></fhxx>`.
pub(crate) fn reject(r: &Reject) -> Reply {
    let ok = StatusCode::OK;
    match r.kind {
        RejectKind::Malformed => error(ok, "E00", &format!("报文格式错误：{}", r.message)),
        RejectKind::Missing | RejectKind::UnknownField | RejectKind::Invalid => {
            error(ok, "E01", &format!("校验失败：{}", r.message))
        }
        RejectKind::UnknownMatter => error(ok, "E02", &r.message),
        RejectKind::OutOfRegion => error(ok, "E03", &r.message),
        RejectKind::NotFound => error(ok, "E04", &r.message),
        RejectKind::NoRoute => error(StatusCode::NOT_FOUND, "E04", "接口不存在"),
        RejectKind::MethodNotAllowed => error(StatusCode::METHOD_NOT_ALLOWED, "E05", "请求方法不支持"),
        RejectKind::TooLarge => error(StatusCode::PAYLOAD_TOO_LARGE, "E13", "报文过大"),
    }
}

/// The platform's "system busy" answer (cwdm E99).
pub(crate) fn busy() -> Reply {
    error(StatusCode::OK, "E99", "系统繁忙")
}

const SUBMIT: &str = "/zwfw/sbjs.do";
const QUERY: &str = "/zwfw/cx.do";
const ITEMS: &str = "/zwfw/sxlb.do";

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

/// Decodes a GBK body strictly: any invalid byte sequence refuses the request.
fn decode_gbk(body: &[u8]) -> Result<String, Reject> {
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(body)
        .map(|s| s.into_owned())
        .ok_or_else(|| Reject::malformed("报文不是合法的 GBK 编码"))
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
        external_id: "wbbh".into(),
        matter_code: "sx/@bm".into(),
        matter_name: "sx/@mc".into(),
        handling_region: "qh/@bl".into(),
        accepting_region: "qh/@sj".into(),
        mode: "blms".into(),
        kind: "sqr/@lx".into(),
        applicant_name: "sqr/xm".into(),
        id_type: "sqr/zj/@lx".into(),
        id_number: "sqr/zj/@hm".into(),
        gender: "sqr/xb".into(),
        birth_date: "sqr/csrq".into(),
        phone: "sqr/lxdh".into(),
        address: "sqr/lxdz".into(),
        credit_code: "sqr/fr/@tyshxydm".into(),
        legal_rep: "sqr/fr/@fddbr".into(),
        submitted_at: "sqsj".into(),
    }
}

fn submit(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    validate::require_content_type(req.content_type.as_deref(), &["text/xml"], "GBK", true)?;
    let text = decode_gbk(&req.body)?;
    let doc = xml::parse(&text)?;
    match &doc.encoding {
        Some(enc) if enc.eq_ignore_ascii_case("GBK") => {}
        Some(enc) => {
            return Err(Reject::malformed(format!("XML 声明的编码必须是 GBK（收到 {enc}）")));
        }
        None => {
            return Err(Reject::malformed("缺少 XML 声明 <?xml version=\"1.0\" encoding=\"GBK\"?>"));
        }
    }
    if doc.root.name != "sbxx" {
        return Err(Reject::malformed(format!("根元素必须是 sbxx（收到 {}）", doc.root.name)));
    }
    xml::check_namespace(&doc.root, None, "sbxx")?;

    let root = At::new(&doc.root, "");
    let b = root.node();
    b.allow(&["wbbh", "sx", "qh", "blms", "sqr", "cllb", "bdxx", "sqsj"], &[])?;
    let sx = b.child("sx")?.ok_or_else(|| Reject::missing("sx"))?;
    empty(sx.node(), &["bm", "mc"])?;
    let qh = b.child("qh")?.ok_or_else(|| Reject::missing("qh"))?;
    empty(qh.node(), &["bl", "sj"])?;
    let sqr = b.child("sqr")?.ok_or_else(|| Reject::missing("sqr"))?;
    let sqr = sqr.node();
    sqr.allow(&["xm", "zj", "xb", "csrq", "lxdh", "lxdz", "fr"], &["lx"])?;
    let zj = sqr.child("zj")?.ok_or_else(|| Reject::missing("sqr/zj"))?;
    empty(zj.node(), &["lx", "hm"])?;
    let fr = sqr.child("fr")?;
    if let Some(fr) = &fr {
        empty(fr.node(), &["tyshxydm", "fddbr"])?;
    }
    let mut raw = RawSubmission {
        external_id: b.leaf("wbbh")?,
        matter_code: sx.node().attr("bm"),
        matter_name: sx.node().attr("mc"),
        handling_region: qh.node().attr("bl"),
        accepting_region: qh.node().attr("sj"),
        mode: b.leaf("blms")?,
        applicant: RawApplicant {
            kind: sqr.attr("lx"),
            name: sqr.leaf("xm")?,
            id_type: zj.node().attr("lx"),
            id_number: zj.node().attr("hm"),
            gender: sqr.leaf("xb")?,
            birth_date: sqr.leaf("csrq")?,
            phone: sqr.leaf("lxdh")?,
            address: sqr.leaf("lxdz")?,
            credit_code: fr.as_ref().and_then(|f| f.node().attr("tyshxydm")),
            legal_rep: fr.as_ref().and_then(|f| f.node().attr("fddbr")),
        },
        submitted_at: b.leaf("sqsj")?,
        ..RawSubmission::default()
    };
    if let Some(list) = b.child("cllb")? {
        let list = list.node();
        list.allow(&["cl"], &[])?;
        for cl in list.children("cl") {
            let cl = cl.node();
            cl.allow(&[], &["mc", "lx", "sha256", "dx", "dz"])?;
            raw.materials.push(RawMaterial {
                name: cl.attr("mc"),
                media_type: cl.attr("lx"),
                sha256: cl.attr("sha256"),
                size: cl.attr("dx"),
                content: cl.text()?,
                reference: cl.attr("dz"),
            });
        }
    }
    if let Some(bd) = b.child("bdxx")? {
        raw.form = bd.node().form()?;
    }

    let dialect = Dialect {
        names: names(),
        material_names: MaterialNames {
            name: "mc",
            media_type: "lx",
            sha256: "sha256",
            size: "dx",
            content: TEXT,
            reference: "dz",
        },
        material_path: &|i, leaf| {
            if leaf == TEXT { format!("cllb/cl[{}]", i + 1) } else { format!("cllb/cl[{}]/@{leaf}", i + 1) }
        },
        form_path: &|key| format!("bdxx/{key}"),
        modes: MODES,
        kinds: KINDS,
        id_types: ID_TYPES,
        genders: GENDERS,
        date: DateFmt::Dashed,
        datetime: DateTimeFmt::Spaced,
        base64_whitespace: true,
    };
    let accepted = validate::submission(ctx.platform, &raw, &dialect)?;
    let (case, created) = ctx.store().submit(ctx.platform.case_prefix, &accepted);
    tracing::info!(platform = ctx.platform.name, case = %case.case_number, created, "Submission accepted.");
    Ok(success(
        &[
            leaf("slbh", &case.case_number),
            leaf("wbbh", &case.external_id),
            leaf("zt", state_code(STATES, case.state)),
            leaf("jssj", &case.created.format(DATETIME).to_string()),
        ]
        .concat(),
    ))
}

fn status_inner(case: &Case) -> String {
    let mut inner = [
        leaf("slbh", &case.case_number),
        leaf("wbbh", &case.external_id),
        leaf("zt", state_code(STATES, case.state)),
        leaf("gxsj", &case.updated.format(DATETIME).to_string()),
    ]
    .concat();
    if let Some(yj) = &case.opinion {
        inner.push_str(&leaf("yj", yj));
    }
    inner
}

fn status(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let slbh = validate::single_param(req.query.as_deref(), "slbh")?.ok_or_else(|| Reject::missing("slbh"))?;
    let store = ctx.store();
    // This old platform knows its cases only by its own 受理编号.
    let case = store.by_number(&slbh).ok_or_else(|| Reject::not_found(&slbh))?;
    Ok(success(&status_inner(case)))
}

fn matters(ctx: &Ctx<'_>, req: &Req) -> Result<Reply, Reject> {
    let qh = validate::single_param(req.query.as_deref(), "qh")?.ok_or_else(|| Reject::missing("qh"))?;
    validate::check_region(&qh).map_err(|why| Reject::invalid("qh", why))?;
    let list: Vec<String> = if ctx.platform.serves_region(&qh) {
        ctx.platform
            .catalogue()
            .iter()
            .map(|m| format!("<sx bm=\"{}\" mc=\"{}\" ssbm=\"{}\"/>", esc(m.code), esc(m.name), esc(m.department)))
            .collect()
    } else {
        Vec::new()
    };
    let sxlb = if list.is_empty() {
        "<sxlb zs=\"0\"/>".to_owned()
    } else {
        format!("<sxlb zs=\"{}\">{}</sxlb>", list.len(), list.concat())
    };
    Ok(success(&sxlb))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::mock::testutil::{Probe, Resp, check_faults, check_slow, must, received, set_state, start};
    use crate::mock::xml::{At, Element, parse};

    const GBK: &[(&str, &str)] = &[("Content-Type", "text/xml; charset=GBK")];

    const VALID: &str = r#"<?xml version="1.0" encoding="GBK"?>
<sbxx>
  <wbbh>TB-20261122-000004</wbbh>
  <sx bm="000104001000" mc="户口迁移"/>
  <qh bl="430102" sj="520102"/>
  <blms>全程网办</blms>
  <sqr lx="自然人">
    <xm>刘洋</xm>
    <zj lx="身份证" hm="430102198801011231"/>
    <xb>男</xb>
    <csrq>1988-01-01</csrq>
    <lxdh>13607310000</lxdh>
    <lxdz>湖南省长沙市芙蓉区五一大道1号</lxdz>
  </sqr>
  <cllb>
    <cl mc="居民户口簿" lx="application/pdf" sha256="a17eaf8af28faebc06dea2e3f9d76ddcde80da0109ee8c7feec89bb6445a42a9" dx="57">JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKJSVFT0YK</cl>
    <cl mc="准予迁入证明" lx="image/png" sha256="4c4b6a3be1314ab86138bef4314dde022e600960d8689a2c8f8631802d20dab6" dx="8" dz="https://files.example.gov.cn/cl/20261122/zyqrzm.png"/>
  </cllb>
  <bdxx>
    <reason>务工</reason>
  </bdxx>
  <sqsj>2026-11-22 10:00:00</sqsj>
</sbxx>"#;

    fn gbk(s: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(s);
        assert!(!unmappable);
        bytes.into_owned()
    }

    /// Decodes a GBK answer and returns its `fhxx` root.
    fn answer(r: &Resp) -> Element {
        assert_eq!(r.header("content-type"), Some("text/xml; charset=GBK"));
        let (text, _, bad) = encoding_rs::GBK.decode(&r.body);
        assert!(!bad);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"GBK\"?>"));
        let doc = parse(&text).expect("answer is XML");
        assert_eq!(doc.root.name, "fhxx");
        doc.root
    }

    fn get(el: &Element, name: &str) -> Option<String> {
        let at = At::new(el, "");
        at.node().leaf(name).ok().flatten()
    }

    async fn post(addr: SocketAddr, body: &str) -> Resp {
        must(addr, "POST", "/zwfw/sbjs.do", GBK, &gbk(body)).await
    }

    #[tokio::test]
    async fn submit_status_matters_and_received() {
        let server = start("hunan").await;
        let addr = server.local_addr();

        let r = post(addr, VALID).await;
        assert_eq!(r.status, 200);
        let a = answer(&r);
        assert_eq!(get(&a, "jg").as_deref(), Some("1"), "{a:?}");
        assert_eq!(get(&a, "slbh").as_deref(), Some("HN2026000001"));
        assert_eq!(get(&a, "zt").as_deref(), Some("已接收"));

        let again = answer(&post(addr, VALID).await);
        assert_eq!(get(&again, "slbh").as_deref(), Some("HN2026000001"));

        let corp = VALID.replace("TB-20261122-000004", "TB-corp-4").replace(
            r#"<sqr lx="自然人">
    <xm>刘洋</xm>
    <zj lx="身份证" hm="430102198801011231"/>
    <xb>男</xb>
    <csrq>1988-01-01</csrq>"#,
            r#"<sqr lx="法人">
    <xm>长沙湘信科技有限公司</xm>
    <zj lx="统一社会信用代码" hm="91430102MA4R8K7P26"/>
    <fr tyshxydm="91430102MA4R8K7P26" fddbr="谭军"/>"#,
        );
        let c = answer(&post(addr, &corp).await);
        assert_eq!(get(&c, "jg").as_deref(), Some("1"), "{c:?}");
        assert_eq!(get(&c, "slbh").as_deref(), Some("HN2026000002"));

        let s = answer(&must(addr, "GET", "/zwfw/cx.do?slbh=HN2026000001", &[], b"").await);
        assert_eq!(get(&s, "wbbh").as_deref(), Some("TB-20261122-000004"));
        assert_eq!(get(&s, "yj"), None);
        assert_eq!(set_state(addr, "HN2026000001", "需补正", Some("请补充户口簿首页")).await.status, 200);
        let s = answer(&must(addr, "GET", "/zwfw/cx.do?slbh=HN2026000001", &[], b"").await);
        assert_eq!(get(&s, "zt").as_deref(), Some("需补正"));
        assert_eq!(get(&s, "yj").as_deref(), Some("请补充户口簿首页"));
        // Only the platform's own number is a key.
        let by_ext = answer(&must(addr, "GET", "/zwfw/cx.do?slbh=TB-20261122-000004", &[], b"").await);
        assert_eq!(get(&by_ext, "cwdm").as_deref(), Some("E04"));
        let by_wbbh = answer(&must(addr, "GET", "/zwfw/cx.do?wbbh=TB-20261122-000004", &[], b"").await);
        assert_eq!(get(&by_wbbh, "cwdm").as_deref(), Some("E01"));

        let m = must(addr, "GET", "/zwfw/sxlb.do?qh=430000", &[], b"").await;
        let root = answer(&m);
        let sxlb = root.children.iter().find(|c| c.name == "sxlb").expect("sxlb");
        assert_eq!(sxlb.attrs[0], ("zs".to_owned(), "5".to_owned()));
        assert_eq!(sxlb.children[0].attrs[1], ("mc".to_owned(), "户口迁移".to_owned()));
        assert_eq!(sxlb.children[0].attrs[2], ("ssbm".to_owned(), "湖南省公安厅".to_owned()));

        let log = received(addr).await;
        assert_eq!(log[0]["body"], VALID);
        assert_eq!(log[0]["headers"]["content-type"], "text/xml; charset=GBK");
        server.shutdown().await;
    }

    async fn refused_bytes(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8], code: &str, field: &str) {
        let r = must(addr, "POST", "/zwfw/sbjs.do", headers, body).await;
        assert_eq!(r.status, 200);
        let a = answer(&r);
        assert_eq!(get(&a, "jg").as_deref(), Some("0"));
        let sm = get(&a, "sm").unwrap_or_default();
        assert_eq!(get(&a, "cwdm").as_deref(), Some(code), "{sm}");
        assert!(sm.contains(field), "{sm}");
    }

    async fn refused(addr: SocketAddr, body: &str, code: &str, field: &str) {
        refused_bytes(addr, GBK, &gbk(body), code, field).await;
    }

    #[tokio::test]
    async fn invalid_submissions_are_refused() {
        let server = start("chongqing").await;
        let addr = server.local_addr();
        let base = VALID.replace(r#"bl="430102""#, r#"bl="500103""#);
        refused(addr, &base.replace("011231", "011232"), "E01", "sqr/zj/@hm").await;
        refused(addr, &base.replace("<xb>男</xb>", "<xb>M</xb>"), "E01", "sqr/xb").await;
        refused(addr, &base.replace("<csrq>1988-01-01", "<csrq>19880101"), "E01", "sqr/csrq").await;
        refused(addr, &base.replace("<sqsj>2026-11-22 10:00:00", "<sqsj>2026-11-22T10:00:00"), "E01", "sqsj").await;
        refused(addr, &base.replace("<blms>", "<bz/><blms>"), "E01", "bz").await;
        refused(addr, &base.replace(r#"mc="户口迁移""#, r#"mc="户口迁移" lx="1""#), "E01", "sx/@lx").await;
        refused(addr, &base.replace(r#" dx="8""#, ""), "E01", "cllb/cl[2]/@dx").await;
        refused(
            addr,
            &base.replace("<xb>男</xb>", "<xb>男</xb><fr tyshxydm=\"91430102MA4R8K7P26\" fddbr=\"谭军\"/>"),
            "E01",
            "sqr/fr/@tyshxydm",
        )
        .await;
        refused(addr, &base.replace("000104001000", "000301003000"), "E02", "sx/@bm").await;
        refused(addr, VALID, "E03", "qh/@bl").await;
        // Wrong declarations and encodings.
        refused(addr, &base.replace(r#"encoding="GBK""#, r#"encoding="UTF-8""#), "E00", "GBK").await;
        refused(addr, &base.replace("<?xml version=\"1.0\" encoding=\"GBK\"?>\n", ""), "E00", "XML").await;
        refused_bytes(addr, &[("Content-Type", "text/xml; charset=UTF-8")], &gbk(&base), "E00", "GBK").await;
        refused_bytes(addr, &[("Content-Type", "text/xml")], &gbk(&base), "E00", "GBK").await;
        refused_bytes(addr, &[("Content-Type", "application/xml; charset=GBK")], &gbk(&base), "E00", "text/xml").await;
        let mut broken = gbk(&base);
        broken.splice(60..60, [0xff, 0xff]);
        refused_bytes(addr, GBK, &broken, "E00", "GBK").await;

        let r = must(addr, "GET", "/zwfw/sbjs.do", &[], b"").await;
        assert_eq!(r.status, 405);
        let r = must(addr, "GET", "/zwfw/none.do", &[], b"").await;
        assert_eq!(r.status, 404);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn faults() {
        let server = start("hunan").await;
        let probe = Probe { method: "GET", path: "/zwfw/sxlb.do?qh=430000", headers: &[], body: b"" };
        check_faults(&server, &probe, |r| {
            assert_eq!(r.status, 200);
            let a = answer(r);
            assert_eq!(get(&a, "jg").as_deref(), Some("0"));
            assert_eq!(get(&a, "cwdm").as_deref(), Some("E99"));
        })
        .await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_waits_then_answers() {
        let server = start("chongqing").await;
        let probe = Probe { method: "GET", path: "/zwfw/sxlb.do?qh=500000", headers: &[], body: b"" };
        check_slow(&server, &probe).await;
        server.shutdown().await;
    }
}
