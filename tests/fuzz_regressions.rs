//! Every input a fuzz target ever crashed on stays a test: the files of
//! `tests/fixtures/fuzz-regressions/` (named `<target>-<short hash>.bin`) go through the same code
//! path as the target that found them, and the seed corpus of `tests/fuzz/seeds/<target>/`
//! through its target, on stable, without libFuzzer. The code paths are `tests/fuzz/src/lib.rs`,
//! shared with the fuzz targets; see tests/fuzz/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

#[path = "fuzz/src/lib.rs"]
mod paths;

use std::path::{Path, PathBuf};

/// A fuzz target: its name and its code path.
type Target = (&'static str, fn(&[u8]));

/// Every target.
const TARGETS: [Target; 4] = [
    ("json_decode", paths::json_decode),
    ("xml_decode", paths::xml_decode),
    ("gbk_decode", paths::gbk_decode),
    ("mapping", paths::mapping),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of a directory, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).filter(|path| path.is_file()).collect();
    files.sort();
    files
}

/// The target a regression file belongs to, from its name.
fn target_of(file: &Path) -> Option<Target> {
    let name = file.file_name()?.to_str()?;
    let (target, _hash) = name.strip_suffix(".bin")?.rsplit_once('-')?;
    TARGETS.into_iter().find(|(t, _)| *t == target)
}

#[test]
fn every_seed_goes_through_its_target() {
    for (target, run) in TARGETS {
        let seeds = files(&root().join("tests/fuzz/seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for {target} in tests/fuzz/seeds/{target}/");
        for seed in seeds {
            run(&std::fs::read(&seed).unwrap());
        }
    }
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    for file in files(&root().join("tests/fixtures/fuzz-regressions")) {
        if file.file_name().is_some_and(|name| name == "README.md") {
            continue;
        }
        let Some((_, run)) = target_of(&file) else {
            panic!(
                "{}: name regression inputs <target>-<short hash>.bin, target one of json_decode, xml_decode, gbk_decode, mapping",
                file.display()
            );
        };
        run(&std::fs::read(&file).unwrap());
    }
}

/// The seeds are real documents, so the mapping path must get all the way through them: a seed
/// that stopped decoding or mapping would leave the fuzzer starting from nothing.
#[test]
fn mapping_seeds_translate() {
    use tongban::adapter::Operation;
    use tongban::mapping::MessageKind;
    use tongban::wire;

    let federation = paths::federation();
    let adapters: Vec<_> = federation.adapters.values().collect();
    for seed in files(&root().join("tests/fuzz/seeds/mapping")) {
        let bytes = std::fs::read(&seed).unwrap();
        let source = adapters[usize::from(bytes[0]) % adapters.len()];
        let name = seed.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{}-", source.name)), "{name}: byte 0 picks {}", source.name);
        let kind = if bytes[1] & 0x80 == 0 { MessageKind::Request } else { MessageKind::Response };
        let operation = if name.contains("-submit-") { Operation::Submit } else { Operation::Status };
        let mapping = &source.operations[&operation].mapping;
        let doc = wire::decode(&bytes[3..], source.format, source.charset, &mapping.namespaces)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        mapping.to_canonical(kind, &doc).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
