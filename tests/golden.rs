//! Every demo platform receives exactly the native payload its API description calls for,
//! compared with golden payloads written by hand (tests/fixtures/golden/), and every exchange
//! is classified as local, cross-region or cross-province.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Harness, golden_input, root};
use tongban::wire::charset::Charset;
use tongban::wire::xml::{self, Element, Namespaces};

/// Platform, and the kind its golden exchange must be classified as.
const PLATFORMS: [(&str, &str); 12] = [
    ("guizhou", "cross_province"),
    ("yunnan", "cross_province"),
    ("sichuan", "cross_province"),
    ("guangdong", "cross_province"),
    ("guangxi", "cross_province"),
    ("anhui", "local"),
    ("yiyang", "cross_region"),
    ("hunan", "cross_province"),
    ("chongqing", "cross_province"),
    ("gansu", "cross_region"),
    ("jiayuguan", "cross_region"),
    ("jiuquan", "cross_region"),
];

/// Attribute order and whitespace between elements carry no meaning.
fn normalized(element: &Element) -> Element {
    let mut copy = element.clone();
    copy.attributes.sort();
    copy.children = copy.children.iter().map(normalized).collect();
    copy
}

#[tokio::test]
async fn every_platform_receives_its_golden_payload() {
    let harness = Harness::start().await;
    for (platform, kind) in PLATFORMS {
        let input = golden_input(platform);
        let answer = harness.submit(&input).await;
        assert_eq!(
            answer.status,
            201,
            "{platform}: expected 201, got {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let body = answer.json();
        assert_eq!(body["route"]["platform"], platform, "{platform}: routed elsewhere: {body}");
        assert_eq!(body["route"]["kind"], kind, "{platform}: wrong classification: {body}");
        assert_eq!(body["application_id"], input["application_id"]);
        let case_id = body["province_case_id"].as_str().unwrap_or_default();
        assert!(!case_id.is_empty(), "{platform}: no case number in {body}");
        assert_eq!(body["state"], "received", "{platform}: {body}");

        let received = harness.last_body(platform).await;
        let dir = root().join("tests/fixtures/golden").join(platform);
        if dir.join("submit.json").exists() {
            let golden = common::read_json(&dir.join("submit.json"));
            let actual: serde_json::Value = serde_json::from_slice(&received).unwrap();
            assert_eq!(
                actual, golden,
                "{platform}: the platform received\n{actual:#}\nbut its API description calls for\n{golden:#}"
            );
        } else {
            let text = std::fs::read_to_string(dir.join("submit.xml")).unwrap();
            let gbk = text.contains("encoding=\"GBK\"");
            let charset = if gbk { Charset::Gbk } else { Charset::Utf8 };
            let none = Namespaces::default();
            let golden = xml::parse(text.as_bytes(), Charset::Utf8, &none).unwrap();
            let actual = xml::parse(&received, charset, &none)
                .unwrap_or_else(|e| panic!("{platform}: the body is not {charset:?} XML: {e}"));
            if gbk {
                assert!(
                    std::str::from_utf8(&received).is_err(),
                    "{platform}: a GBK body with Chinese text cannot be valid UTF-8"
                );
                assert!(
                    received.starts_with(b"<?xml version=\"1.0\" encoding=\"GBK\"?>"),
                    "{platform}: missing GBK declaration"
                );
            }
            assert_eq!(
                normalized(&actual),
                normalized(&golden),
                "{platform}: the platform received\n{}\nbut its API description calls for\n{}",
                xml::to_string(&actual, &none),
                xml::to_string(&golden, &none)
            );
        }
    }
    harness.stop().await;
}

#[tokio::test]
async fn request_id_and_trace_context_reach_the_platform() {
    let harness = Harness::start().await;
    let input = golden_input("guizhou");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = harness
        .gateway(
            "POST",
            "/v1/applications",
            &[("content-type", "application/json"), ("x-request-id", "req-42"), ("traceparent", traceparent)],
            input.to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("x-request-id"), Some("req-42"));
    let received = harness.received("guizhou").await;
    let headers = &received.last().unwrap()["headers"];
    assert_eq!(headers["x-request-id"], "req-42");
    assert_eq!(headers["traceparent"], traceparent);
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");

    // Without one, the gateway makes a request id and still sends it upstream.
    let mut second = input.clone();
    second["application_id"] = "0194f3a0-7c00-7000-8000-0000000000a2".into();
    let answer = harness.submit(&second).await;
    let generated = answer.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID is expected, got {generated}");
    let received = harness.received("guizhou").await;
    assert_eq!(received.last().unwrap()["headers"]["x-request-id"], generated.as_str());
    assert!(received.last().unwrap()["headers"]["traceparent"].is_null());
    harness.stop().await;
}
