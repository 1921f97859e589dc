//! End-to-end flows over real sockets: status round trips, native ingress between platforms of
//! different formats, retired region codes, the matter list and its agreements, matters.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Harness, canonical, golden_input, resident_id};
use serde_json::{Value, json};
use tongban::wire::charset::Charset;
use tongban::wire::xml::{self, Namespaces};

#[tokio::test]
async fn the_example_from_the_issue_routes_to_guizhou_cross_province() {
    let harness = Harness::start().await;
    let document = json!({
      "matter": {"code": "000104001000", "name": "户口迁移"},
      "handling_region": "520102",
      "accepting_region": "440106",
      "mode": "online",
      "applicant": {"kind": "natural_person", "name": "张三", "id_type": "resident_id",
                    "id_number": "11010519491231002X", "gender": "male", "birth_date": "1949-12-31",
                    "phone": "13800138000", "address": "广东省广州市天河区体育西路1号"},
      "materials": [],
      "form": {"reason": "务工"},
      "submitted_at": "2026-11-22T10:00:00+08:00"
    });
    let answer = harness.submit(&document).await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(
        body["route"],
        json!({"kind": "cross_province", "from": "440106", "to": "520102", "platform": "guizhou", "platform_title": "贵州政务服务网"})
    );
    assert!(body["province_case_id"].as_str().unwrap().starts_with("GZ2026"), "{body}");
    // The gateway assigned a time-ordered id (UUIDv7) and sent it as the external id.
    let id = body["application_id"].as_str().unwrap();
    assert_eq!(&id[14..15], "7", "a UUIDv7 is expected, got {id}");
    let received: Value = serde_json::from_slice(&harness.last_body("guizhou").await).unwrap();
    assert_eq!(received["wbbh"], id);
    harness.stop().await;
}

#[tokio::test]
async fn status_round_trip_by_external_id() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    let submitted = harness.submit(&input).await.json();
    let case_id = submitted["province_case_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/applications/{}?region=520102", input["application_id"].as_str().unwrap());

    let status = harness.get(&path).await;
    assert_eq!(status.status, 200, "{}", String::from_utf8_lossy(&status.body));
    let body = status.json();
    assert_eq!(body["province_case_id"], case_id.as_str());
    assert_eq!(body["state"], "received");
    assert_eq!(body["route"]["platform"], "guizhou");

    // The platform moves the case on (its own code 04 = 需补正). Within the cache's freshness the
    // gateway still answers from the cache; after a purge it asks the platform again.
    harness.set_state("guizhou", &case_id, "04").await;
    let cached = harness.get(&path).await;
    assert_eq!(cached.json()["state"], "received");
    assert!(cached.header("cache-status").unwrap().starts_with("tongban; hit"), "{:?}", cached.header("cache-status"));
    let purged =
        harness.admin("POST", "/admin/cache/purge", br#"{"target":"guizhou","operation":"status"}"#.to_vec()).await;
    assert_eq!(purged.json()["purged"], 1);
    let body = harness.get(&path).await.json();
    assert_eq!(body["state"], "supplement_required", "{body}");
    assert!(body["updated_at"].as_str().unwrap().ends_with("+08:00"), "{body}");

    // An unknown application is the platform's 404, told as a problem.
    let missing = harness.get("/v1/applications/no-such-app?region=520102").await;
    assert_eq!(missing.status, 404);
    let problem = missing.json();
    assert_eq!(problem["type"], "urn:tongban:problem:upstream-not-found");
    assert_eq!(problem["upstream"]["code"], "E404");
    harness.stop().await;
}

#[tokio::test]
async fn status_at_a_platform_that_looks_up_by_its_own_case_number() {
    let harness = Harness::start().await;
    let input = golden_input("hunan");
    let submitted = harness.submit(&input).await.json();
    let case_id = submitted["province_case_id"].as_str().unwrap().to_owned();
    let app = input["application_id"].as_str().unwrap();

    let without = harness.get(&format!("/v1/applications/{app}?region=430102")).await;
    assert_eq!(without.status, 422);
    let problem = without.json();
    assert_eq!(problem["type"], "urn:tongban:problem:missing-lookup-field");
    assert_eq!(problem["field"], "/province_case_id");
    assert!(problem["detail"].as_str().unwrap().contains("?case_id="), "{problem}");

    harness.set_state("hunan", &case_id, "办理中").await;
    let with = harness.get(&format!("/v1/applications/{app}?region=430102&case_id={case_id}")).await;
    assert_eq!(with.status, 200, "{}", String::from_utf8_lossy(&with.body));
    assert_eq!(with.json()["state"], "in_progress");
    harness.stop().await;
}

/// A Hunan window (GBK XML) accepts a Guangdong matter and submits it in its own format; the
/// Guangdong platform (JSON envelope) receives its own format; the window gets GBK XML back.
#[tokio::test]
async fn native_ingress_from_gbk_xml_to_a_json_envelope_platform() {
    let harness = Harness::start().await;
    let native = r#"<?xml version="1.0" encoding="GBK"?>
<sbxx>
  <wbbh>HN-WINDOW-0001</wbbh>
  <sx bm="000201002000" mc="营业执照设立登记"/>
  <qh bl="440106" sj="430102"/>
  <blms>异地代收代办</blms>
  <sqr lx="法人">
    <xm>湖南湘江科技有限公司</xm>
    <zj lx="统一社会信用代码" hm="91350100M000100Y43"/>
    <lxdh>0731-84440000</lxdh>
    <lxdz>湖南省长沙市芙蓉区五一大道1号</lxdz>
    <fr tyshxydm="91350100M000100Y43" fddbr="王五"/>
  </sqr>
  <cllb>
    <cl mc="公司章程" lx="application/pdf" sha256="3f0a377ba0a4a460ecb616f6507ce0d8cfa3e704025d4fda3ed0c5ca05468728" dx="20480" dz="https://files.zwfw.gov.cn/materials/3f0a377b.pdf"/>
  </cllb>
  <bdxx><registered_capital>500万元</registered_capital></bdxx>
  <sqsj>2026-11-22 11:00:00</sqsj>
</sbxx>"#;
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(native);
    assert!(!unmappable);
    let answer = harness
        .gateway(
            "POST",
            "/v1/native/hunan/submit",
            &[("content-type", "application/xml; charset=GBK")],
            gbk.into_owned(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("content-type"), Some("text/xml; charset=GBK"));

    // What Guangdong received, in its own format.
    let received: Value = serde_json::from_slice(&harness.last_body("guangdong").await).unwrap();
    assert_eq!(received["outerNo"], "HN-WINDOW-0001");
    assert_eq!(received["handleAreaCode"], "440106");
    assert_eq!(received["acceptAreaCode"], "430102");
    assert_eq!(received["handleMode"], "PROXY");
    assert_eq!(received["applicant"]["type"], "CORP");
    assert_eq!(received["applicant"]["name"], "湖南湘江科技有限公司");
    assert_eq!(received["applicant"]["legalPerson"], "王五");
    assert_eq!(received["materials"][0]["size"], 20480);
    assert_eq!(received["formData"], json!({"registered_capital": "500万元"}));
    assert_eq!(received["applyTime"], "2026-11-22T11:00:00+08:00");

    // What the Hunan window got back: its own answer format, in GBK, with Guangdong's case number.
    assert!(answer.body.starts_with(b"<?xml version=\"1.0\" encoding=\"GBK\"?>"));
    let reply = xml::parse(&answer.body, Charset::Gbk, &Namespaces::default()).unwrap();
    let text = |name: &str| reply.child(name).map(|e| e.text.clone()).unwrap_or_default();
    assert_eq!(reply.name, "fhxx");
    assert_eq!(text("jg"), "1");
    assert!(text("slbh").starts_with("GD2026"), "{reply:?}");
    assert_eq!(text("zt"), "已接收");
    harness.stop().await;
}

#[tokio::test]
async fn native_ingress_refuses_what_it_cannot_read() {
    let harness = Harness::start().await;
    let bad = harness.gateway("POST", "/v1/native/hunan/submit", &[], b"<sbxx><wbbh>1</sbxx>".to_vec()).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["type"], "urn:tongban:problem:unparseable");
    let missing = harness
        .gateway("POST", "/v1/native/hunan/submit", &[], "<?xml version=\"1.0\" encoding=\"GBK\"?><sbxx/>".into())
        .await;
    assert_eq!(missing.status, 422, "{}", String::from_utf8_lossy(&missing.body));
    assert_eq!(missing.json()["type"], "urn:tongban:problem:native-untranslatable");
    let unknown = harness.gateway("POST", "/v1/native/atlantis/submit", &[], Vec::new()).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["type"], "urn:tongban:problem:unknown-adapter");
    harness.stop().await;
}

#[tokio::test]
async fn a_retired_region_code_routes_to_its_successor() {
    let harness = Harness::start().await;
    let mut input = canonical("natural_person");
    input["application_id"] = "0194f3a0-7c00-7000-8000-0000000000r1".into();
    // 522201 (县级铜仁市) was retired in 2011; its successor is 520602 碧江区, in Guizhou.
    input["handling_region"] = "522201".into();
    // An ID number first issued under a retired code stays valid.
    input["applicant"]["id_number"] = resident_id("52220119800101001").into();
    let answer = harness.submit(&input).await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    let route = &answer.json()["route"];
    assert_eq!(route["platform"], "guizhou");
    assert_eq!(route["to"], "520602");
    assert_eq!(route["retired_codes"][0]["code"], "522201");
    assert_eq!(route["retired_codes"][0]["successor"], "520602");
    let received: Value = serde_json::from_slice(&harness.last_body("guizhou").await).unwrap();
    assert_eq!(received["blqh"], "520602", "the platform gets today's code");
    harness.stop().await;
}

#[tokio::test]
async fn a_city_platform_wins_over_its_province() {
    let harness = Harness::start().await;
    let mut input = golden_input("gansu");
    input["handling_region"] = "620902".into();
    input["accepting_region"] = "620102".into();
    let answer = harness.submit(&input).await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["route"]["platform"], "jiuquan");
    assert_eq!(answer.json()["route"]["kind"], "cross_region");
    harness.stop().await;
}

#[tokio::test]
async fn bilateral_agreements_open_cross_province_exchanges_between_two_cities() {
    let harness = Harness::start().await;
    let mut input = canonical("legal_person");
    // 营业执照 crosses provinces only inside its groups, none of which holds Gansu; but 益阳
    // (Hunan) handles and 酒泉 (Gansu) accepts: the 酒泉—益阳 agreement covers it.
    input["mode"] = "online".into();
    input["handling_region"] = "430902".into();
    input["accepting_region"] = "620902".into();
    let answer = harness.submit(&input).await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["route"]["platform"], "yiyang");

    // 兰州 (620102) has no agreement with 益阳: refused, naming the rule.
    input["application_id"] = "0194f3a0-7c00-7000-8000-0000000000b2".into();
    input["accepting_region"] = "620102".into();
    let refused = harness.submit(&input).await;
    assert_eq!(refused.status, 403);
    let problem = refused.json();
    assert_eq!(problem["type"], "urn:tongban:problem:outside-matter-list");
    assert!(problem["detail"].as_str().unwrap().contains("no group has both 620102 and 430902"), "{problem}");
    assert!(problem["rule"].as_str().unwrap().starts_with("config/matters.toml:"), "{problem}");
    harness.stop().await;
}

#[tokio::test]
async fn matters_come_from_the_platform_marked_by_the_list() {
    let harness = Harness::start().await;
    let answer = harness.get("/v1/matters?region=620902").await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    assert_eq!(body["route"]["platform"], "jiuquan");
    let matters = body["matters"].as_array().unwrap();
    let hukou = matters.iter().find(|m| m["code"] == "000104001000").expect("户口迁移 listed");
    assert_eq!(hukou["name"], "户口迁移");
    assert_eq!(hukou["on_matter_list"], true);
    assert!(matters.iter().all(|m| m["name"].as_str().is_some_and(|n| !n.is_empty())));
    let missing = harness.get("/v1/matters").await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["field"], "?region");
    harness.stop().await;
}

#[tokio::test]
async fn a_failed_uscc_check_is_refused_or_forwarded_with_a_warning_per_adapter() {
    let harness = Harness::start().await;
    let mut input = canonical("legal_person");
    // A code of the right shape whose check character is wrong (…Y43 is right).
    input["applicant"]["uscc"] = "91350100M000100Y44".into();
    input["applicant"]["id_number"] = "91350100M000100Y44".into();

    // 广东 enforces the check (the default).
    input["handling_region"] = "440106".into();
    let refused = harness.submit(&input).await;
    assert_eq!(refused.status, 422, "{}", String::from_utf8_lossy(&refused.body));
    let problem = refused.json();
    assert_eq!(problem["type"], "urn:tongban:problem:invalid");
    assert_eq!(problem["field"], "/applicant/id_number");
    assert_eq!(problem["errors"].as_array().map(Vec::len), Some(2), "both codes are named: {problem}");

    // 广西 accepts early codes that fail it (uscc_check = "warn"): forwarded, with a warning.
    input["handling_region"] = "450103".into();
    let accepted = harness.submit(&input).await;
    assert_eq!(accepted.status, 201, "{}", String::from_utf8_lossy(&accepted.body));
    let body = accepted.json();
    assert_eq!(body["route"]["platform"], "guangxi");
    assert_eq!(body["warnings"][0]["field"], "/applicant/id_number");
    assert_eq!(body["warnings"][1]["field"], "/applicant/uscc");
    let received: Value = serde_json::from_slice(&harness.last_body("guangxi").await).unwrap();
    assert_eq!(received["applicant"]["creditCode"], "91350100M000100Y44");
    harness.stop().await;
}

#[tokio::test]
async fn caller_headers_and_hop_by_hop_headers_never_reach_the_platform() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    let answer = harness
        .gateway(
            "POST",
            "/v1/applications",
            &[
                ("content-type", "application/json"),
                ("connection", "keep-alive, x-private"),
                ("x-private", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                ("upgrade", "h2c"),
                ("cookie", "session=abc"),
                ("authorization", "Bearer caller-token"),
            ],
            input.to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    for name in ["keep-alive", "proxy-authorization", "te", "upgrade", "x-private", "cookie", "authorization"] {
        assert!(answer.header(name).is_none(), "the answer carries {name}");
    }
    let received = harness.received("guizhou").await;
    let names: Vec<&str> =
        received.last().unwrap()["header_names"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["accept", "content-length", "content-type", "host", "user-agent", "x-request-id"],
        "the platform received {names:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_kept_alive() {
    let harness = Harness::start().await;
    let mut input = golden_input("guizhou");
    for n in 0..4 {
        input["application_id"] = format!("0194f3a0-7c00-7000-8000-00000000p00{n}").into();
        let answer = harness.submit(&input).await;
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    }
    let mock = harness.mocks["guizhou"].local_addr();
    let answer = harness.send("GET", &format!("http://{mock}/_mock/connections"), &[], Vec::new()).await;
    // One connection from the gateway's pool, one for this query from the test's own client.
    let accepted = answer.json()["accepted"].as_u64().unwrap();
    assert_eq!(accepted, 2, "four sequential submissions should share one pooled connection");
    assert_eq!(harness.received("guizhou").await.len(), 4);
    harness.stop().await;
}
