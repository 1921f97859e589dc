//! Access control (访问控制) over real sockets: a partner calls only the operations, target
//! regions and matters its `[partner.allow]` lists, and a refusal is a 403 problem naming the
//! missing right and where to grant it. Nothing refused reaches a platform or a store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use common::{Harness, golden_input};
use serde_json::Value;

const HUNAN: &str = "hn-window-demo-key";

fn assert_forbidden(answer: &common::Answer, kind: &str, value: &str) {
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    let problem = answer.json();
    assert_eq!(problem["type"], "urn:tongban:problem:forbidden");
    assert_eq!(problem["partner"], "hunan-window");
    assert_eq!(problem["missing_right"]["kind"], kind);
    assert_eq!(problem["missing_right"]["value"], value);
    let list = match kind {
        "region" => "regions",
        "matter" => "matters",
        "from" => "from",
        _ => "operations",
    };
    assert_eq!(problem["missing_right"]["list"], format!("allow.{list}"));
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(value) && detail.contains(&format!("[partner.allow] {list}")), "{detail}");
}

async fn submit_as(harness: &Harness, key: &str, application: &Value) -> common::Answer {
    harness
        .gateway(
            "POST",
            "/v1/applications",
            &[("x-api-key", key), ("content-type", "application/json")],
            application.to_string().into_bytes(),
        )
        .await
}

#[tokio::test]
async fn a_partner_calls_only_what_its_allow_table_lists() {
    let harness = Harness::start().await;

    // Allowed: submit to Guizhou (52), accepted in its own province (长沙市芙蓉区).
    let mut guizhou = golden_input("guizhou");
    guizhou["accepting_region"] = "430102".into();
    let answer = submit_as(&harness, HUNAN, &guizhou).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(harness.received("guizhou").await.len(), 1);

    // Not allowed: the same application claimed as accepted in Guangdong (广州市越秀区) — a
    // Hunan window cannot present another province's acceptance as its own.
    guizhou["accepting_region"] = "440104".into();
    guizhou["application_id"] = "0194f3a0-7c00-7000-8000-0000000a0052".into();
    let answer = submit_as(&harness, HUNAN, &guizhou).await;
    assert_forbidden(&answer, "from", "440104");
    assert_eq!(answer.json()["field"], "/accepting_region");
    assert_eq!(harness.received("guizhou").await.len(), 1, "a refused call never reaches the platform");

    // Not allowed: a target region outside 52/53 — refused before the platform sees it.
    let guangdong = golden_input("guangdong");
    let region = guangdong["handling_region"].as_str().unwrap().to_owned();
    let answer = submit_as(&harness, HUNAN, &guangdong).await;
    assert_forbidden(&answer, "region", &region);
    assert!(harness.received("guangdong").await.is_empty(), "a refused call never reaches the platform");

    // Not allowed: an operation it was not given.
    let answer = harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", HUNAN)], Vec::new()).await;
    assert_forbidden(&answer, "operation", "matters");
    let answer = harness.gateway("GET", "/v1/print-jobs?site=x", &[("x-api-key", HUNAN)], Vec::new()).await;
    assert_forbidden(&answer, "operation", "print");
    let answer = harness
        .gateway("GET", "/v1/certificates/GZ-DEMO-0001?issuer_region=520102", &[("x-api-key", HUNAN)], Vec::new())
        .await;
    assert_forbidden(&answer, "operation", "certificate");

    // A partner without an allow table (identified by API key) keeps every right.
    let answer =
        harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", "gd-window-demo-key")], Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    harness.stop().await;
}

#[tokio::test]
async fn matters_outside_the_list_are_refused() {
    use tongban::access::{Allowed, Right, Rights};

    let guizhou = golden_input("guizhou");
    let matter = guizhou["matter"]["code"].as_str().unwrap().to_owned();
    let rights = Rights {
        operations: Allowed::Only([Right::Submit].into_iter().collect()),
        regions: Allowed::Any,
        matters: Allowed::Only(["000000000000".to_owned()].into_iter().collect()),
        from: Allowed::Any,
    };
    let harness = with_partner(rights, false).await;
    let answer = submit_as(&harness, HUNAN, &guizhou).await;
    assert_forbidden(&answer, "matter", &matter);
    assert!(harness.received("guizhou").await.is_empty());
    // Anonymous callers are refused outright here: the table admits none.
    let answer = harness.gateway("GET", "/v1/matters?region=520102", &[], Vec::new()).await;
    assert_eq!(answer.status, 401);
    harness.stop().await;
}

/// A federation with one partner, `HUNAN`, holding `rights`; anonymous callers, when admitted,
/// keep every right (they create the records the partner then tries to reach).
async fn with_partner(rights: tongban::access::Rights, anonymous: bool) -> Harness {
    use std::sync::Arc;
    use tongban::identity::{IdentifyBy, Identities, Partner, PartnerEntry};
    Harness::start_with(common::demo_federation(), move |federation| {
        let partner = Partner {
            name: "hunan-window".into(),
            title: "湖南".into(),
            province: Some("43".into()),
            agency: None,
            rate: None,
            operations: Default::default(),
            rights: rights.clone(),
        };
        let entry = PartnerEntry { partner: Arc::new(partner), api_keys: vec![HUNAN.into()], tls_names: Vec::new() };
        federation.identities = Identities::new(vec![entry], anonymous, IdentifyBy::ApiKey);
    })
    .await
}

fn rights(operations: &[tongban::access::Right], regions: &[&str]) -> tongban::access::Rights {
    use tongban::access::{Allowed, Rights};
    Rights {
        operations: Allowed::Only(operations.iter().copied().collect()),
        regions: Allowed::Only(regions.iter().map(|r| r.to_string()).collect()),
        matters: Allowed::Any,
        from: Allowed::Any,
    }
}

#[tokio::test]
async fn stored_acceptances_are_reached_only_within_the_partners_regions() {
    use tongban::access::Right;
    // Rights over Yunnan only; the acceptance is handled in Guizhou.
    let harness = with_partner(rights(&[Right::Accept, Right::Decide], &["53"]), true).await;
    let mut application = common::canonical("natural_person");
    application["mode"] = "proxy_acceptance".into();
    let body = serde_json::json!({ "accepting_site": { "window_id": "GD-TH-0007", "region": "440106" }, "application": application });
    let json = [("content-type", "application/json")];
    let created = harness.gateway("POST", "/v1/acceptances", &json, body.to_string().into_bytes()).await;
    assert_eq!(created.status, 202, "{}", created.text());
    let receipt = created.json()["receipt"].as_str().unwrap().to_owned();
    let handling = application["handling_region"].as_str().unwrap().to_owned();

    let path = format!("/v1/acceptances/{receipt}");
    let answer = harness.gateway("GET", &path, &[("x-api-key", HUNAN)], Vec::new()).await;
    assert_forbidden(&answer, "region", &handling);
    let decision = br#"{"state":"approved"}"#.to_vec();
    let headers = [("x-api-key", HUNAN), ("content-type", "application/json")];
    let answer = harness.gateway("POST", &format!("{path}/events"), &headers, decision).await;
    assert_forbidden(&answer, "region", &handling);
    let state = harness.gateway("GET", &path, &[], Vec::new()).await.json()["state"].clone();
    assert_ne!(state, "approved", "a refused decision changes nothing");

    // Without the accept right, a multipart upload is refused before anything is stored.
    harness.stop().await;
    let harness = with_partner(rights(&[Right::Status], &["52"]), true).await;
    let headers = [("x-api-key", HUNAN), ("content-type", "multipart/form-data; boundary=b")];
    let upload =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF\r\n--b--\r\n".to_vec();
    let answer = harness.gateway("POST", "/v1/acceptances", &headers, upload).await;
    assert_forbidden(&answer, "operation", "accept");
    let materials = harness.store_dir.path().join("materials");
    // The store keeps files in fan-out directories: count the files inside them.
    let stored: usize = std::fs::read_dir(&materials)
        .unwrap()
        .map(|sub| std::fs::read_dir(sub.unwrap().path()).map(|files| files.count()).unwrap_or(0))
        .sum();
    assert_eq!(stored, 0, "nothing reached the material store");
    harness.stop().await;
}

#[tokio::test]
async fn print_jobs_are_reached_only_within_the_partners_regions() {
    use tongban::access::Right;
    // Print rights for Guangdong only; the certificate is issued in Guizhou.
    let harness = with_partner(rights(&[Right::Print, Right::Certificate], &["44"]), true).await;
    let request = serde_json::json!({
        "certificate_id": "GZ-DEMO-0001",
        "issuer_region": "520103",
        "site": { "id": "GD-TH-0007", "region": "440106" },
        "requested_by": "窗口 7 号 王五",
        "copies": 1,
    });
    let json = [("content-type", "application/json")];
    let created = harness.gateway("POST", "/v1/print-jobs", &json, request.to_string().into_bytes()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let job = created.json()["job_id"].as_str().unwrap().to_owned();

    let key = [("x-api-key", HUNAN)];
    let listed = harness.gateway("GET", "/v1/print-jobs?site=GD-TH-0007", &key, Vec::new()).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["jobs"], serde_json::json!([]), "the queue hides jobs outside the rights");
    for path in [format!("/v1/print-jobs/{job}"), format!("/v1/print-jobs/{job}/document")] {
        let answer = harness.gateway("GET", &path, &key, Vec::new()).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.text());
    }
    // The certificate itself: the right is for its issuing authority, not the region asked.
    let answer = harness.gateway("GET", "/v1/certificates/GZ-DEMO-0001?issuer_region=520103", &key, Vec::new()).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    harness.stop().await;
}

#[tokio::test]
async fn a_partner_acts_only_from_its_own_regions() {
    use tongban::access::{Allowed, Rights};
    // Every right, but its windows and print sites are in Hunan (43) only.
    let rights = Rights { from: Allowed::Only(vec!["43".into()]), ..Rights::all() };
    let harness = with_partner(rights, true).await;
    let as_hunan = [("x-api-key", HUNAN), ("content-type", "application/json")];

    // A print job for a site in Guangdong: refused before the issuer is asked.
    let print = |site_region: &str| {
        serde_json::json!({
            "certificate_id": "GZ-DEMO-0001",
            "issuer_region": "520103",
            "site": { "id": "GD-TH-0007", "region": site_region },
            "requested_by": "窗口 7 号 王五",
            "copies": 1,
        })
        .to_string()
        .into_bytes()
    };
    let answer = harness.gateway("POST", "/v1/print-jobs", &as_hunan, print("440106")).await;
    assert_forbidden(&answer, "from", "440106");
    assert_eq!(answer.json()["field"], "/site/region");
    assert!(harness.received("guizhou").await.is_empty(), "the issuer was not asked for the certificate");

    // A job a Guangdong site queued (here anonymously) stays out of reach, and out of its queue.
    let json = [("content-type", "application/json")];
    let created = harness.gateway("POST", "/v1/print-jobs", &json, print("440106")).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let job = created.json()["job_id"].as_str().unwrap().to_owned();
    let key = [("x-api-key", HUNAN)];
    let answer = harness.gateway("GET", &format!("/v1/print-jobs/{job}"), &key, Vec::new()).await;
    assert_forbidden(&answer, "from", "440106");
    let listed = harness.gateway("GET", "/v1/print-jobs?site=GD-TH-0007", &key, Vec::new()).await;
    assert_eq!(listed.json()["jobs"], serde_json::json!([]));
    // Its own site prints (a reprint: the Guangdong site printed it first).
    let mut own = serde_json::from_slice::<Value>(&print("430102")).unwrap();
    own["reprint_reason"] = "原件遗失".into();
    let answer = harness.gateway("POST", "/v1/print-jobs", &as_hunan, own.to_string().into_bytes()).await;
    assert_eq!(answer.status, 201, "{}", answer.text());

    // A proxy acceptance whose window stands in Guangdong: refused, no receipt. (Last in this
    // test: an accepted one is delivered to Guizhou in the background.)
    let mut application = common::canonical("natural_person");
    application["mode"] = "proxy_acceptance".into();
    application["accepting_region"] = "440106".into();
    let acceptance = |window_region: &str, application: &Value| {
        serde_json::json!({ "accepting_site": { "window_id": "HN-CS-0001", "region": window_region }, "application": application })
            .to_string()
            .into_bytes()
    };
    let answer = harness.gateway("POST", "/v1/acceptances", &as_hunan, acceptance("440106", &application)).await;
    assert_forbidden(&answer, "from", "440106");
    assert_eq!(answer.json()["field"], "/accepting_site/region");
    let receipt = answer.json()["receipt"].clone();
    assert!(receipt.is_null(), "no receipt for a refused acceptance");
    // From its own window (长沙市芙蓉区) the same application is accepted.
    application["accepting_region"] = "430102".into();
    let answer = harness.gateway("POST", "/v1/acceptances", &as_hunan, acceptance("430102", &application)).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    harness.stop().await;
}

#[test]
fn a_partner_acts_from_its_province_unless_allow_from_says_otherwise() {
    use tongban::access::Allowed;
    let (federation, _) = tongban::config::load(&common::root().join("config/tongban.toml")).unwrap();
    let from = |name: &str| {
        let partner = federation.identities.partners().find(|partner| partner.name == name).unwrap();
        partner.rights.from.clone()
    };
    // `province = "44"`, no allow table; `province = "43"` with an allow table but no `from`.
    assert_eq!(from("guangdong-window"), Allowed::Only(vec!["44".into()]));
    assert_eq!(from("hunan-window"), Allowed::Only(vec!["43".into()]));
    // Neither a province nor `from`, identified by API key: any region, as before.
    assert_eq!(from("demo-limited"), Allowed::Any);
}

/// Partners identified by API key (`<name>-key`), each acting only from its own province, with
/// every operation but `decide` unless it is the handling side; anonymous callers are refused.
async fn with_windows(windows: &[(&'static str, &'static str, bool)]) -> Harness {
    use std::sync::Arc;
    use tongban::access::{Allowed, Right, Rights};
    use tongban::identity::{IdentifyBy, Identities, Partner, PartnerEntry};
    let windows = windows.to_vec();
    Harness::start_with(common::demo_federation(), move |federation| {
        let entries = windows
            .iter()
            .map(|(name, province, decides)| {
                let operations = Right::ALL.into_iter().filter(|right| *decides || *right != Right::Decide);
                let partner = Partner {
                    name: (*name).into(),
                    title: (*name).into(),
                    province: Some((*province).into()),
                    agency: None,
                    rate: None,
                    operations: Default::default(),
                    rights: Rights {
                        operations: Allowed::Only(operations.collect()),
                        from: Allowed::Only(vec![(*province).into()]),
                        ..Rights::all()
                    },
                };
                PartnerEntry {
                    partner: Arc::new(partner),
                    api_keys: vec![format!("{name}-key")],
                    tls_names: Vec::new(),
                }
            })
            .collect();
        federation.identities = Identities::new(entries, false, IdentifyBy::ApiKey);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn an_acceptance_is_read_by_its_window_and_the_handling_side_and_decided_only_by_the_handling_side() {
    // Two windows and the handling side; a second Hunan window too (same province as the first).
    let windows = [
        ("hunan-window", "43", false),
        ("hunan-window-2", "43", false),
        ("guangdong-window", "44", false),
        ("guizhou-platform", "52", true),
    ];
    let harness = with_windows(&windows).await;
    let as_partner =
        |name: &'static str| [("x-api-key", format!("{name}-key")), ("content-type", "application/json".into())];
    let send = |name: &'static str, method: &'static str, path: String, body: Vec<u8>| {
        let harness = &harness;
        async move {
            let headers = as_partner(name);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            harness.gateway(method, &path, &headers, body).await
        }
    };
    // A Hunan window (长沙市芙蓉区) accepts a Guizhou matter.
    let mut application = common::canonical("natural_person");
    application["mode"] = "proxy_acceptance".into();
    application["accepting_region"] = "430102".into();
    let body = serde_json::json!({ "accepting_site": { "window_id": "HN-CS-0001", "region": "430102" }, "application": application });
    let created = send("hunan-window", "POST", "/v1/acceptances".into(), body.to_string().into_bytes()).await;
    assert_eq!(created.status, 202, "{}", created.text());
    let receipt = created.json()["receipt"].as_str().unwrap().to_owned();
    let path = format!("/v1/acceptances/{receipt}");

    // Its own window reads it; other windows do not — in another province or in the same one —
    // although their `accept` right covers Guizhou: reading others' acceptances is `decide`.
    assert_eq!(send("hunan-window", "GET", path.clone(), Vec::new()).await.status, 200);
    for other in ["guangdong-window", "hunan-window-2"] {
        let answer = send(other, "GET", path.clone(), Vec::new()).await;
        assert_eq!(answer.status, 403, "{other}: {}", answer.text());
        assert_eq!(answer.json()["missing_right"]["value"], "decide");
    }

    // Another window cannot take its application id either, nor learn its receipt.
    let stolen = send("guangdong-window", "POST", "/v1/acceptances".into(), {
        let mut theirs = body.clone();
        theirs["accepting_site"]["region"] = "440106".into();
        theirs["application"]["accepting_region"] = "440106".into();
        theirs.to_string().into_bytes()
    })
    .await;
    assert_eq!(stolen.status, 409, "{}", stolen.text());
    assert_eq!(stolen.json()["type"], "urn:tongban:problem:acceptance-conflict");
    assert!(!stolen.text().contains(&receipt), "another partner's receipt is never told: {}", stolen.text());

    // The handling side (acting from Guizhou) reads it and, once delivered, decides; the window
    // that accepted it does not decide.
    // Paused time: each wait lets the delivery worker run; at most 400 rounds.
    let mut state = Value::Null;
    for _ in 0..400 {
        state = send("guizhou-platform", "GET", path.clone(), Vec::new()).await.json()["state"].clone();
        if state == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(state, "delivered", "{}", send("guizhou-platform", "GET", path.clone(), Vec::new()).await.text());
    let decision = br#"{"state":"approved"}"#.to_vec();
    for window in ["hunan-window-2", "guangdong-window"] {
        let answer = send(window, "POST", format!("{path}/events"), decision.clone()).await;
        assert_eq!(answer.status, 403, "{window}: {}", answer.text());
    }
    let answer = send("hunan-window", "POST", format!("{path}/events"), decision.clone()).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.json()["missing_right"]["kind"], "own", "the window that accepted it never decides it");
    assert_eq!(answer.json()["missing_right"]["list"], "none");
    let answer = send("guizhou-platform", "POST", format!("{path}/events"), decision).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let read = send("hunan-window", "GET", path.clone(), Vec::new()).await.json();
    assert_eq!(read["state"], "approved");
    harness.stop().await;
}
