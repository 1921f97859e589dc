//! `tongban check`: the shipped configuration loads and every mapping's own test cases pass;
//! broken configurations are refused with exactly the expected messages (golden error tests).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::process::Command;

use common::root;

fn check(config: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tongban"))
        .args(["check", "--config", config])
        .current_dir(root())
        .output()
        .expect("tongban runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_configuration_passes_check_with_every_mapping_test() {
    let (ok, stdout, stderr) = check("config/tongban.toml");
    assert!(ok, "tongban check failed:\n{stderr}");
    assert!(stdout.starts_with("ok: 12 adapters, 19 mappings, "), "{stdout}");
    // Runs the same load in-process, where each mapping's tests are visible.
    let federation = common::demo_federation();
    for (name, mapping) in &federation.mappings {
        assert!(!mapping.tests.is_empty(), "mapping {name} carries no test cases");
        assert!(mapping.run_tests().is_empty(), "mapping {name} has failing tests");
    }
    assert!(federation.mapping_tests >= 18 * 2, "only {} mapping tests", federation.mapping_tests);
}

#[test]
fn every_sample_config_loads() {
    // The mutual-TLS demo needs the demo certificates, which are generated, never committed.
    let tls = root().join("config/tls");
    if !tls.join("ca.pem").exists() {
        let partners = ["guangdong-window", "hunan-window"];
        tongban::tls::generate_demo_pki(&tls, &partners, &[], false).unwrap();
    } else if !tls.join("crl.pem").exists() {
        // Made by an older `certs init`: the revocation list came later.
        tongban::tls::revoke_demo_partners(&tls, &[]).unwrap();
    }
    for entry in std::fs::read_dir(root().join("config")).unwrap().flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Gateway configs are the files with a [paths] or [server] table; the rest are included by them.
        if path.extension().is_some_and(|e| e == "toml") && (text.contains("[paths]") || text.contains("[server]")) {
            let shown = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
            let (ok, _, stderr) = check(&shown);
            assert!(ok, "{shown} does not load:\n{stderr}");
        }
    }
}

#[test]
fn broken_configurations_are_refused_with_every_error_located() {
    let bad = root().join("tests/fixtures/bad");
    let mut cases = 0;
    for entry in std::fs::read_dir(&bad).unwrap().flatten() {
        let dir = entry.path();
        if !dir.join("tongban.toml").exists() {
            continue;
        }
        cases += 1;
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, _, stderr) = check(&format!("tests/fixtures/bad/{name}/tongban.toml"));
        assert!(!ok, "{name}: check must fail");
        let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        assert_eq!(stderr, expected, "{name}: check printed\n{stderr}\nbut expected.txt says\n{expected}");
    }
    assert!(cases >= 3, "the bad fixtures are missing");
}
