//! The audit log (审计日志) end to end: every exchange through the running gateway — admitted or
//! refused — is one hash-chained record with partner, route, matter, operation, payload digests,
//! outcome and latency, never personal data in clear; `tongban audit verify` says intact, and
//! after an edit, a deletion or a reordering says where.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Harness, golden_input};
use serde_json::Value;

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn verify_cli(path: &std::path::Path) -> (i32, String) {
    verify_files(&[path])
}

fn verify_files(paths: &[&std::path::Path]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tongban")).args(["audit", "verify"]).args(paths).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn every_exchange_is_recorded_and_any_tampering_is_located() {
    let harness = Harness::start().await;
    let settings = harness.running.gateway.federation().audit.clone().unwrap();
    assert_eq!(
        settings.durability(),
        tongban::audit::Durability::Synced,
        "each batch reaches the disk before the next, unless the operator says otherwise"
    );
    let kept = tempfile::tempdir().unwrap();
    let path = kept.path().join("audit.log");

    let application = golden_input("guizhou");
    let answer = harness.submit(&application).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let mut refused = application.clone();
    refused["handling_region"] = Value::String("999999".into());
    assert_eq!(harness.submit(&refused).await.status, 422);
    let answer =
        harness.gateway("GET", "/v1/matters?region=520102", &[("x-api-key", "gd-window-demo-key")], Vec::new());
    assert_eq!(answer.await.status, 200);
    assert!(harness.running.gateway.audit.as_ref().unwrap().flush(Duration::from_secs(10)));
    // The harness's directory goes with it; keep the log.
    std::fs::copy(harness.store_dir.path().join("audit.log"), &path).unwrap();

    let log = records(&path);
    assert_eq!(log[0]["kind"], "start");
    assert_eq!(log[0]["alg"], "sm3");
    let exchanges: Vec<&Value> = log.iter().filter(|r| r["kind"] == "exchange").collect();
    assert_eq!(exchanges.len(), 3, "{log:#?}");
    let submitted = exchanges[0];
    assert_eq!(submitted["partner"], "anonymous");
    assert_eq!(submitted["to"], "guizhou");
    assert_eq!(submitted["to_region"], application["handling_region"]);
    assert_eq!(submitted["from"], application["accepting_region"]);
    assert_eq!(submitted["matter"], application["matter"]["code"]);
    assert_eq!(submitted["operation"], "submit");
    assert_eq!(submitted["path_kind"], "/v1/applications");
    assert_eq!(submitted["status"], 201);
    assert_eq!(submitted["request_digest"].as_str().unwrap().len(), 64);
    assert_eq!(submitted["response_digest"].as_str().unwrap().len(), 64);
    assert!(submitted["latency_us"].as_u64().is_some());
    let refusal = exchanges[1];
    assert_eq!(refusal["status"], 422);
    assert!(refusal["problem"].as_str().is_some(), "{refusal}");
    assert_eq!(exchanges[2]["partner"], "guangdong-window");
    assert_eq!(exchanges[2]["from"], "44", "a partner's province when the call names no region");
    assert_eq!(exchanges[2]["operation"], "matters");

    // Personal data never in clear: the applicant's name and id number are nowhere in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    let applicant = &application["applicant"];
    for personal in [applicant["name"].as_str().unwrap(), applicant["id_number"].as_str().unwrap()] {
        assert!(!text.contains(personal), "{personal} appears in the audit log");
    }
    harness.stop().await;

    // Intact, by the library and by the command.
    assert!(tongban::audit::verify(&path).unwrap().is_intact());
    let (code, text) = verify_cli(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("intact"), "{text}");

    let lines: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
    let write = |lines: &[String]| {
        let tampered = path.with_file_name("tampered.log");
        std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
        tampered
    };

    // A changed record: the status of line 3 rewritten.
    let mut changed = lines.clone();
    changed[2] = changed[2].replace("\"status\":422", "\"status\":201");
    assert_ne!(changed[2], lines[2]);
    let (code, text) = verify_cli(&write(&changed));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("line 3") && text.to_lowercase().contains("changed"), "{text}");

    // A removed record.
    let mut removed = lines.clone();
    removed.remove(2);
    let (code, text) = verify_cli(&write(&removed));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("line 3") && text.to_lowercase().contains("missing"), "{text}");

    // Two records swapped.
    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    let (code, text) = verify_cli(&write(&reordered));
    assert_eq!(code, 1, "{text}");
    assert!(text.to_lowercase().contains("seq"), "{text}");
}

#[tokio::test]
async fn a_restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    // Two gateways in turn on the same log (a restart).
    for _ in 0..2 {
        let path = log.clone();
        let harness = Harness::start_with(common::demo_federation(), move |federation| {
            if let Some(audit) = &mut federation.audit {
                audit.path = path.clone();
            }
        })
        .await;
        assert_eq!(harness.get("/v1/matters?region=520102").await.status, 200);
        harness.stop().await;
    }
    let report = tongban::audit::verify(&log).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.starts, 2);
    assert_eq!(report.records, 4, "{report}");
}

#[tokio::test]
async fn an_exchange_the_caller_abandons_is_still_recorded() {
    use tokio::io::AsyncWriteExt;
    let harness = Harness::start().await;
    // Guizhou answers after 60 s; the caller hangs up long before.
    harness.fault("guizhou", "slow").await;
    let application = golden_input("guizhou");
    let body = application.to_string();
    let mut socket = tokio::net::TcpStream::connect(harness.running.public).await.unwrap();
    let head = format!(
        "POST /v1/applications HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    // Bounded: each look is a round trip to the mock, so the gateway gets to forward meanwhile.
    for _ in 0..1_000 {
        if !harness.received("guizhou").await.is_empty() {
            break;
        }
    }
    assert_eq!(harness.received("guizhou").await.len(), 1, "the application reached the platform");
    drop(socket);

    // The gateway notices the hang-up and drops the handler; its guard still writes the record.
    let audit = harness.running.gateway.audit.as_ref().unwrap();
    let path = harness.store_dir.path().join("audit.log");
    let mut abandoned = None;
    for _ in 0..1_000 {
        assert!(audit.flush(Duration::from_secs(10)));
        abandoned = records(&path).into_iter().find(|record| record["kind"] == "exchange");
        if abandoned.is_some() {
            break;
        }
        harness.admin("GET", "/healthz", Vec::new()).await;
    }
    let abandoned = abandoned.expect("no audit record for the abandoned exchange");
    assert_eq!(abandoned["status"], 499, "{abandoned}");
    assert_eq!(abandoned["problem"], "client-closed");
    // What the stages had learnt: it was routed and sent to Guizhou.
    assert_eq!(abandoned["partner"], "anonymous");
    assert_eq!(abandoned["to"], "guizhou");
    assert_eq!(abandoned["from"], application["accepting_region"]);
    assert_eq!(abandoned["operation"], "submit");
    assert_eq!(abandoned["request_digest"].as_str().unwrap().len(), 64);
    assert!(abandoned["response_digest"].is_null(), "nothing was answered");
    let metrics = String::from_utf8_lossy(&harness.admin("GET", "/metrics", Vec::new()).await.body).into_owned();
    let counted =
        metrics.lines().any(|line| line.starts_with("tongban_requests_total") && line.contains("status=\"499\""));
    assert!(counted, "the abandoned request is counted:\n{metrics}");
    assert!(audit.flush(Duration::from_secs(10)));
    assert!(tongban::audit::verify(&path).unwrap().is_intact());
    harness.stop().await;
}

#[tokio::test]
async fn a_request_refused_for_its_framing_is_recorded_with_a_digest_of_what_was_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let harness = Harness::start().await;
    // A smuggling shape: both Content-Length and chunked. One small write: the guard holds it whole.
    let attempt =
        b"POST /v1/applications HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut socket = tokio::net::TcpStream::connect(harness.running.public).await.unwrap();
    socket.write_all(attempt).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let request_id = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("the refusal carries a request id")
        .to_owned();

    let audit = harness.running.gateway.audit.as_ref().unwrap();
    assert!(audit.flush(Duration::from_secs(10)));
    let path = harness.store_dir.path().join("audit.log");
    let log = records(&path);
    let refused = log.iter().find(|record| record["request_id"] == request_id.as_str()).expect("recorded");
    assert_eq!(refused["kind"], "exchange");
    assert_eq!(refused["status"], 400);
    assert_eq!(refused["problem"], "request-framing");
    assert_eq!(refused["partner"], "unidentified");
    assert_eq!(refused["method"], "POST");
    assert_eq!(refused["path_kind"], "/v1/applications");
    assert_eq!(refused["request_digest"], tongban::audit::Algorithm::Sm3.digest_hex(attempt));
    assert!(refused["to"].is_null() && refused["response_digest"].is_null());
    assert!(tongban::audit::verify(&path).unwrap().is_intact());
    harness.stop().await;
}

#[tokio::test]
async fn a_rotated_log_is_reopened_at_the_next_reload() {
    let harness = Harness::start().await;
    let path = harness.store_dir.path().join("audit.log");
    let moved = harness.store_dir.path().join("audit.log.1");
    let audit = harness.running.gateway.audit.as_ref().unwrap();
    let mut application = golden_input("guizhou");
    assert_eq!(harness.submit(&application).await.status, 201);
    assert!(audit.flush(Duration::from_secs(10)));

    // What logrotate does: move the file away, then SIGHUP (here the admin reload).
    std::fs::rename(&path, &moved).unwrap();
    let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    application["application_id"] = "0194f3a0-7c00-7000-8000-0000000b0052".into();
    assert_eq!(harness.submit(&application).await.status, 201);
    assert!(audit.flush(Duration::from_secs(10)));

    let old = records(&moved);
    let new = records(&path);
    assert_eq!(old.iter().filter(|r| r["kind"] == "exchange").count(), 1, "{old:#?}");
    assert_eq!(new[0]["kind"], "start");
    assert_eq!(new[0]["continues"]["hash"], old.last().unwrap()["hash"], "the new file names where the old one ended");
    assert_eq!(new.iter().filter(|r| r["kind"] == "exchange").count(), 1, "{new:#?}");
    // Oldest first, the two files are intact and linked; the other way round they are not.
    let (code, text) = verify_files(&[&moved, &path]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("continues") && text.contains("linked"), "{text}");
    let (code, text) = verify_files(&[&path, &moved]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does NOT continue"), "{text}");
    harness.stop().await;
}
