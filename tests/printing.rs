//! Remote certificate printing (异地打证): certificates fetched from the issuing platform and
//! verified (Ed25519, SM2/SM3) before anything is rendered; print jobs queued for a window or
//! terminal; print once, reprints numbered; the QR code verifies; and the full loop "apply nearby,
//! handled remotely, certificate printed where you are".
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;
#[path = "common/pdf_inspect.rs"]
mod pdf_inspect;

use std::time::Duration;

use common::{Answer, Harness, canonical};
use serde_json::{Value, json};

const WINDOW: &str = "GD-TH-0007";

fn print_request(certificate_id: &str, issuer_region: &str) -> Value {
    json!({
        "certificate_id": certificate_id,
        "issuer_region": issuer_region,
        "site": { "id": WINDOW, "region": "440106" },
        "requested_by": "窗口 7 号 王五",
        "copies": 1,
    })
}

async fn post(harness: &Harness, path: &str, body: &Value) -> Answer {
    harness.gateway("POST", path, &[("content-type", "application/json")], body.to_string().into_bytes()).await
}

fn problem_type(answer: &Answer) -> String {
    answer.json()["type"].as_str().unwrap_or_default().trim_start_matches("urn:tongban:problem:").to_owned()
}

/// The token at the end of a verify URL.
fn token_of(verify_url: &str) -> &str {
    verify_url.rsplit('/').next().unwrap()
}

async fn verify(harness: &Harness, verify_url: &str) -> Value {
    let answer = harness.get(&format!("/v1/verify/{}", token_of(verify_url))).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()
}

async fn document(harness: &Harness, job: &Value) -> Vec<u8> {
    let answer = harness.get(job["document"].as_str().unwrap()).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("content-type"), Some("application/pdf"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    answer.body.to_vec()
}

async fn set_certificate_status(harness: &Harness, certificate_id: &str, zzzt: &str) {
    let mock = harness.mocks["guizhou"].local_addr();
    let body = json!({ "zzbh": certificate_id, "zzzt": zzzt }).to_string().into_bytes();
    let answer = harness
        .send("POST", &format!("http://{mock}/_mock/certificate"), &[("content-type", "application/json")], body)
        .await;
    assert!(answer.status < 300, "{}", String::from_utf8_lossy(&answer.body));
}

#[tokio::test]
async fn demo_certificates_verify_under_both_algorithms_and_forgeries_are_refused() {
    let harness = Harness::start().await;
    for (id, algorithm, key) in
        [("GZ-DEMO-0001", "ed25519", "gz-zzk-ed25519-2026"), ("GZ-DEMO-SM2-0001", "sm2_sm3", "gz-zzk-sm2-2026")]
    {
        let answer = harness.get(&format!("/v1/certificates/{id}?issuer_region=520103")).await;
        assert_eq!(answer.status, 200, "{id}: {}", String::from_utf8_lossy(&answer.body));
        let certificate = answer.json();
        assert_eq!(certificate["holder"]["name"], "张三");
        assert_eq!(certificate["holder"]["id_number"], "11010519491231002X");
        assert_eq!(certificate["signature"]["algorithm"], algorithm);
        assert_eq!(certificate["verification"]["verified"], true);
        assert_eq!(certificate["verification"]["key_id"], key);
        assert_eq!(certificate["verification"]["platform"], "guizhou");
    }
    for (id, verification) in
        [("GZ-DEMO-TAMPERED", "bad-signature"), ("GZ-DEMO-UNSIGNED", "unsigned"), ("GZ-DEMO-OLDKEY", "key-not-trusted")]
    {
        let answer = harness.get(&format!("/v1/certificates/{id}?issuer_region=520000")).await;
        assert_eq!(answer.status, 502, "{id}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
        let problem = answer.json();
        assert_eq!(problem_type(&answer), "certificate-unverified");
        assert_eq!(problem["verification"], verification, "{id}: {problem}");
        assert_eq!(problem["certificate_id"], id);
        assert!(problem["detail"].as_str().unwrap().contains("; "), "the detail carries the fix: {problem}");
    }
    // Unknown certificate, no issuer region, a region whose platform keeps no certificate library.
    let answer = harness.get("/v1/certificates/GZ-NOPE?issuer_region=520103").await;
    assert_eq!((answer.status, problem_type(&answer).as_str()), (404, "upstream-not-found"));
    let answer = harness.get("/v1/certificates/GZ-DEMO-0001").await;
    assert_eq!((answer.status, problem_type(&answer).as_str()), (400, "bad-query"));
    assert_eq!(answer.json()["field"], "?issuer_region");
    let answer = harness.get("/v1/certificates/GD-1?issuer_region=440106").await;
    assert_eq!((answer.status, problem_type(&answer).as_str()), (404, "no-certificate-library"));
    let answer = harness.get("/v1/certificates/bad%20id?issuer_region=520103").await;
    assert_eq!((answer.status, answer.json()["field"].as_str()), (422, Some("/certificate_id")));
    harness.stop().await;
}

#[tokio::test]
async fn a_print_job_holds_a_pdf_with_the_holder_the_number_and_a_qr_code_that_verifies() {
    let harness = Harness::start().await;
    let created = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-0001", "520103")).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let job = created.json();
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(created.header("location"), Some(format!("/v1/print-jobs/{job_id}").as_str()));
    assert_eq!(job["state"], "queued");
    assert_eq!(job["print_number"], 1);
    assert_eq!(job["certificate"]["holder"], "张*", "the queue shows a masked name");
    assert_eq!(job["certificate"]["key_id"], "gz-zzk-ed25519-2026");

    let pdf = document(&harness, &job).await;
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_inspect::extract_text(&pdf).unwrap();
    for expected in ["准予迁入证明", "张三", "GZ-DEMO-0001", "11010519491231002X", "贵阳市公安局云岩区分局", WINDOW]
    {
        assert!(text.contains(expected), "'{expected}' missing from the PDF text:\n{text}");
    }
    assert!(!text.contains("补打"), "a first print is not marked as a reprint");
    let verify_url = job["verify_url"].as_str().unwrap();
    assert!(verify_url.starts_with(&format!("http://{}/v1/verify/", harness.running.public)), "{verify_url}");
    assert_eq!(pdf_inspect::decode_qr_codes(&pdf).unwrap(), vec![verify_url.to_owned()]);

    let answer = verify(&harness, verify_url).await;
    assert_eq!(answer["status"], "genuine", "{answer}");
    assert_eq!(answer["genuine"], true);
    assert_eq!(answer["issuer_checked"], true);
    assert_eq!(answer["certificate"]["holder"], "张*");
    assert!(!answer.to_string().contains("11010519491231002X"), "no id number to anyone who scans: {answer}");

    // The window's queue, the confirmation, and a repeated confirmation that changes nothing.
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}")).await.json();
    assert_eq!(queue["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(queue["jobs"][0]["job_id"], job_id);
    let wrong_site = post(&harness, &format!("/v1/print-jobs/{job_id}/printed"), &json!({"site": "GD-OTHER"})).await;
    assert_eq!((wrong_site.status, problem_type(&wrong_site).as_str()), (409, "print-job-conflict"));
    let printed = post(&harness, &format!("/v1/print-jobs/{job_id}/printed"), &json!({"site": WINDOW})).await;
    assert_eq!(printed.status, 200, "{}", String::from_utf8_lossy(&printed.body));
    assert_eq!(printed.json()["state"], "printed");
    let first_time = printed.json()["printed_at"].clone();
    let again = post(&harness, &format!("/v1/print-jobs/{job_id}/printed"), &json!({"site": WINDOW})).await;
    assert_eq!(again.json()["printed_at"], first_time);
    let anonymous = post(&harness, &format!("/v1/print-jobs/{job_id}/printed"), &json!({})).await;
    assert_eq!((anonymous.status, anonymous.json()["field"].as_str()), (400, Some("/site")), "the site names itself");
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}")).await.json();
    assert!(queue["jobs"].as_array().unwrap().is_empty());
    let done = harness.get(&format!("/v1/print-jobs?site={WINDOW}&state=printed")).await.json();
    assert_eq!(done["jobs"][0]["job_id"], job_id);
    let shown = harness.get(&format!("/v1/print-jobs/{job_id}")).await.json();
    assert_eq!(shown["state"], "printed");
    assert_eq!(shown["verify_url"], verify_url);

    // The SM2 certificate prints too, with its own template.
    let created = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-SM2-0001", "520103")).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let pdf = document(&harness, &created.json()).await;
    let text = pdf_inspect::extract_text(&pdf).unwrap();
    assert!(text.contains("营业执照") && text.contains("张三") && text.contains("GZ-DEMO-SM2-0001"), "{text}");
    assert!(text.contains("长期"), "a long-term licence says so: {text}");
    harness.stop().await;
}

#[tokio::test]
async fn a_second_print_needs_a_reason_is_numbered_and_supersedes_the_first() {
    let harness = Harness::start().await;
    let first = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-0001", "520103")).await.json();
    let refused = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-0001", "520103")).await;
    assert_eq!((refused.status, problem_type(&refused).as_str()), (409, "reprint-reason-required"));
    assert_eq!(refused.json()["field"], "/reprint_reason");
    assert_eq!(refused.json()["printed"], 1);

    let mut request = print_request("GZ-DEMO-0001", "520103");
    request["reprint_reason"] = json!("原件遗失");
    let second = post(&harness, "/v1/print-jobs", &request).await;
    assert_eq!(second.status, 201, "{}", String::from_utf8_lossy(&second.body));
    let second = second.json();
    assert_eq!(second["print_number"], 2);
    assert_eq!(second["reprint_reason"], "原件遗失");
    let text = pdf_inspect::extract_text(&document(&harness, &second).await).unwrap();
    assert!(text.contains("补打（第2次打印）"), "{text}");

    let answer = verify(&harness, second["verify_url"].as_str().unwrap()).await;
    assert_eq!((answer["status"].as_str(), answer["print_number"].as_u64()), (Some("reprinted"), Some(2)));
    let answer = verify(&harness, first["verify_url"].as_str().unwrap()).await;
    assert_eq!(answer["status"], "superseded", "{answer}");
    assert_eq!(answer["latest_print_number"], 2);
    harness.stop().await;
}

#[tokio::test]
async fn refused_certificates_are_never_rendered_or_queued() {
    let harness = Harness::start().await;
    for (id, status, problem, reason) in [
        ("GZ-DEMO-CANCELLED", 409, "certificate-not-printable", "cancelled"),
        ("GZ-DEMO-EXPIRED", 409, "certificate-not-printable", "expired"),
        ("GZ-DEMO-TAMPERED", 502, "certificate-unverified", "bad-signature"),
        ("GZ-DEMO-UNSIGNED", 502, "certificate-unverified", "unsigned"),
        ("GZ-DEMO-OLDKEY", 502, "certificate-unverified", "key-not-trusted"),
    ] {
        let answer = post(&harness, "/v1/print-jobs", &print_request(id, "520103")).await;
        assert_eq!((answer.status, problem_type(&answer).as_str()), (status, problem), "{id}");
        let body = answer.json();
        assert_eq!(body["reason"].as_str().or(body["verification"].as_str()), Some(reason), "{id}: {body}");
    }
    // Revoked (吊销) at the issuer a moment ago: printing asks the issuer live, not the cache.
    let shown = harness.get("/v1/certificates/GZ-DEMO-SM2-0001?issuer_region=520103").await;
    assert_eq!(shown.json()["verification"]["printable"], true);
    set_certificate_status(&harness, "GZ-DEMO-SM2-0001", "3").await;
    let answer = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-SM2-0001", "520103")).await;
    assert_eq!((answer.status, problem_type(&answer).as_str()), (409, "certificate-not-printable"));
    assert_eq!((answer.json()["reason"].as_str(), answer.json()["field"].as_str()), (Some("revoked"), Some("/status")));
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}&state=all")).await.json();
    assert!(queue["jobs"].as_array().unwrap().is_empty(), "{queue}");
    harness.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_qr_answer_follows_the_issuer_and_forged_codes_are_unknown() {
    let harness = Harness::start().await;
    let job = post(&harness, "/v1/print-jobs", &print_request("GZ-DEMO-0001", "520103")).await.json();
    let url = job["verify_url"].as_str().unwrap();
    assert_eq!(verify(&harness, url).await["status"], "genuine");

    // The issuer cancels the certificate; once the cached copy ages out, scanners learn it.
    set_certificate_status(&harness, "GZ-DEMO-0001", "2").await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let answer = verify(&harness, url).await;
    assert_eq!(answer["status"], "cancelled", "{answer}");
    assert_eq!(answer["certificate"]["status"], "cancelled");

    // The issuer cannot be asked: the record still answers, and says so.
    harness.fault("guizhou", "down").await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let answer = verify(&harness, url).await;
    assert_eq!((answer["status"].as_str(), answer["issuer_checked"].as_bool()), (Some("genuine"), Some(false)));

    // A token altered by one character, another gateway's token, garbage.
    let token = token_of(url);
    let mut altered = token.as_bytes().to_vec();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    for forged in [String::from_utf8(altered).unwrap(), "AAAA.BBBB".into(), "x".into()] {
        let answer = harness.get(&format!("/v1/verify/{forged}")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["status"], "unknown", "{forged}");
        assert_eq!(answer.json()["genuine"], false);
    }
    harness.stop().await;
}

#[tokio::test]
async fn bad_print_requests_name_the_field_and_leave_nothing_behind() {
    let harness = Harness::start().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"certificate_id": "GZ-DEMO-0001"}), 400, "/"),
        (
            json!({"certificate_id": "GZ-DEMO-0001", "issuer_region": "520103", "site": {"id": "W"}, "requested_by": "x"}),
            400,
            "/site",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["color"] = json!("red");
                r
            },
            400,
            "/",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["copies"] = json!(0);
                r
            },
            422,
            "/copies",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["copies"] = json!(99);
                r
            },
            422,
            "/copies",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["site"]["region"] = json!("999999");
                r
            },
            422,
            "/site/region",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["site"]["id"] = json!("窗 口");
                r
            },
            422,
            "/site/id",
        ),
        (
            {
                let mut r = print_request("GZ-DEMO-0001", "520103");
                r["requested_by"] = json!(" ");
                r
            },
            422,
            "/requested_by",
        ),
        (print_request("GZ DEMO", "520103"), 422, "/certificate_id"),
        (print_request("GZ-DEMO-0001", "52"), 422, "/issuer_region"),
    ];
    for (body, status, field) in cases {
        let answer = post(&harness, "/v1/print-jobs", &body).await;
        assert_eq!(answer.status, status, "{body}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
        let problem = answer.json();
        if field != "/" {
            assert!(problem["field"].as_str().unwrap_or_default().starts_with(field), "{body}: {problem}");
        }
    }
    let answer = harness.gateway("POST", "/v1/print-jobs", &[], b"{not json".to_vec()).await;
    assert_eq!(answer.status, 400);
    let answer = harness.get("/v1/print-jobs").await;
    assert_eq!((answer.status, answer.json()["field"].as_str()), (400, Some("?site")));
    let answer = harness.get("/v1/print-jobs/0194f3a0-7c00-7000-8000-000000000000/document").await;
    assert_eq!((answer.status, problem_type(&answer).as_str()), (404, "unknown-print-job"));
    let answer = harness.gateway("DELETE", "/v1/print-jobs", &[], Vec::new()).await;
    assert_eq!(answer.status, 405);
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}&state=all")).await.json();
    assert!(queue["jobs"].as_array().unwrap().is_empty(), "{queue}");
    harness.stop().await;
}

/// 就近申请、远程办理、异地打证: a Guangdong window accepts a Guizhou matter, Guizhou approves it
/// and issues the certificate, the Guangdong window prints it, and the QR code verifies it.
#[tokio::test(start_paused = true)]
async fn the_full_loop_apply_nearby_handled_remotely_printed_where_you_are() {
    let harness = Harness::start().await;
    let mut application = canonical("natural_person");
    application["application_id"] = json!("0194f3a0-7c00-7000-8000-00000000c001");
    application["mode"] = json!("proxy_acceptance");
    let body = json!({ "accepting_site": { "window_id": WINDOW, "region": "440106" }, "application": application });
    let accepted = harness
        .gateway(
            "POST",
            "/v1/acceptances",
            &[("content-type", "application/json"), ("idempotency-key", "loop-1")],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", String::from_utf8_lossy(&accepted.body));
    let receipt = accepted.json()["receipt"].as_str().unwrap().to_owned();

    // Delivered to Guizhou by the worker.
    let mut record = Value::Null;
    for _ in 0..200 {
        record = harness.get(&format!("/v1/acceptances/{receipt}")).await.json();
        if record["province_case_id"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let case_id =
        record["province_case_id"].as_str().unwrap_or_else(|| panic!("never delivered: {record:#}")).to_owned();

    // Guizhou approves (办结) and issues the certificate; the status lookup names it.
    harness.set_state("guizhou", &case_id, "05").await;
    let status = harness
        .get(&format!("/v1/applications/0194f3a0-7c00-7000-8000-00000000c001?region=520102&case_id={case_id}"))
        .await;
    assert_eq!(status.status, 200, "{}", String::from_utf8_lossy(&status.body));
    let status = status.json();
    assert_eq!(status["state"], "approved");
    let certificate_id =
        status["certificate_id"].as_str().unwrap_or_else(|| panic!("no certificate: {status}")).to_owned();

    // Printed at the Guangdong window, verified by scanning.
    let job = post(&harness, "/v1/print-jobs", &print_request(&certificate_id, "520102")).await;
    assert_eq!(job.status, 201, "{}", String::from_utf8_lossy(&job.body));
    let job = job.json();
    let pdf = document(&harness, &job).await;
    let text = pdf_inspect::extract_text(&pdf).unwrap();
    assert!(text.contains("张三") && text.contains(&certificate_id), "{text}");
    let qr = pdf_inspect::decode_qr_codes(&pdf).unwrap();
    assert_eq!(qr, vec![job["verify_url"].as_str().unwrap().to_owned()]);
    let answer = verify(&harness, &qr[0]).await;
    assert_eq!(answer["status"], "genuine", "{answer}");
    assert_eq!(answer["certificate"]["certificate_id"], certificate_id.as_str());
    harness.stop().await;
}

/// A holder name with a character the print font lacks is refused by name, never printed blank.
#[tokio::test(start_paused = true)]
async fn a_character_missing_from_the_font_is_reported_not_dropped() {
    let harness = Harness::start().await;
    let mut application = canonical("natural_person");
    application["application_id"] = json!("0194f3a0-7c00-7000-8000-00000000c002");
    application["applicant"]["name"] = json!("张\u{20000}");
    let submitted = harness.submit(&application).await;
    assert_eq!(submitted.status, 201, "{}", String::from_utf8_lossy(&submitted.body));
    let case_id = submitted.json()["province_case_id"].as_str().unwrap().to_owned();
    harness.set_state("guizhou", &case_id, "05").await;
    let status = harness
        .get(&format!("/v1/applications/0194f3a0-7c00-7000-8000-00000000c002?region=520102&case_id={case_id}"))
        .await
        .json();
    let certificate_id = status["certificate_id"].as_str().unwrap().to_owned();
    let answer = post(&harness, "/v1/print-jobs", &print_request(&certificate_id, "520102")).await;
    assert_eq!(
        (answer.status, problem_type(&answer).as_str()),
        (500, "certificate-unprintable"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let problem = answer.json();
    assert_eq!(problem["field"], "/holder/name");
    assert_eq!(problem["reason"], "glyphs-missing");
    assert!(problem["detail"].as_str().unwrap().contains("U+20000"), "{problem}");
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}&state=all")).await.json();
    assert!(queue["jobs"].as_array().unwrap().is_empty());
    harness.stop().await;
}

/// Every printing endpoint but verification needs a partner, on any spelling of the path.
#[tokio::test]
async fn printing_needs_a_partner_key_and_only_verification_is_open() {
    let harness =
        Harness::start_with(common::demo_federation(), |federation| federation.identities.anonymous = false).await;
    let key = [("x-api-key", "gd-window-demo-key"), ("content-type", "application/json")];
    let created = harness
        .gateway("POST", "/v1/print-jobs", &key, print_request("GZ-DEMO-0001", "520103").to_string().into_bytes())
        .await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let job = created.json();
    assert_eq!(created.header("cache-control"), Some("no-store"), "personal data is not cached on the way");
    let job_id = job["job_id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/v1/print-jobs/{job_id}/document")),
        ("GET", format!("//v1/print-jobs/{job_id}/document")),
        ("GET", format!("/v1/print-jobs?site={WINDOW}")),
        ("GET", "/v1/certificates/GZ-DEMO-0001?issuer_region=520103".to_owned()),
        ("POST", "//v1/print-jobs".to_owned()),
    ] {
        let answer = harness.gateway(method, &path, &[], Vec::new()).await;
        assert_eq!(answer.status, 401, "{method} {path}");
    }
    let answer = harness.get(&format!("/v1/verify/{}", token_of(job["verify_url"].as_str().unwrap()))).await;
    assert_eq!((answer.status, answer.json()["status"].as_str()), (200, Some("genuine")));
    harness.stop().await;
}

/// Two windows asking for the first print of one certificate at once: one print 1, never two.
#[tokio::test]
async fn concurrent_first_prints_make_exactly_one_print_one() {
    let harness = Harness::start().await;
    let request = print_request("GZ-DEMO-0001", "520103");
    let (a, b) = tokio::join!(post(&harness, "/v1/print-jobs", &request), post(&harness, "/v1/print-jobs", &request));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", String::from_utf8_lossy(&a.body), String::from_utf8_lossy(&b.body));
    let refused = if a.status == 409 { &a } else { &b };
    assert!(matches!(problem_type(refused).as_str(), "reprint-reason-required" | "print-job-conflict"));
    let queue = harness.get(&format!("/v1/print-jobs?site={WINDOW}")).await.json();
    assert_eq!(queue["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(queue["jobs"][0]["print_number"], 1);
    harness.stop().await;
}
