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
    let output = Command::new(env!("CARGO_BIN_EXE_tongban")).args(["audit", "verify"]).arg(path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn every_exchange_is_recorded_and_any_tampering_is_located() {
    let harness = Harness::start().await;
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
