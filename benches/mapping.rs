//! The mapping engine on the hot path: a 30-field application arriving as native JSON (贵州,
//! pinyin-json), translated to canonical and on to GBK XML (湖南, gbk-xml) — what native ingress
//! does between two platforms. Run with `cargo bench --bench mapping`; the figure is in README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

use std::hint::black_box;

/// The same allocator as the `tongban` binary, so the figure is the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use tongban::adapter::Operation;
use tongban::mapping::MessageKind;
use tongban::wire;

/// 14 applicant and matter fields, one material of 6 fields, and 10 form fields: 30 in all.
const NATIVE_JSON: &str = r#"{
  "wbbh": "0194f3a0-7c00-7000-8000-000000000052", "sxbm": "000104001000", "sxmc": "户口迁移",
  "blqh": "430102", "sjqh": "520102", "blms": "2", "sqrlx": "1", "sqrxm": "张三", "zjlx": "111",
  "zjhm": "11010519491231002X", "xb": "1", "csrq": "1949-12-31", "lxdh": "13800138000",
  "lxdz": "广东省广州市天河区体育西路1号",
  "cl": [{"clmc": "居民户口簿", "wjlx": "application/pdf",
          "zy": "e5c62df5dab5c87b6a015ef3d43597074d1eec433b15f51aec63b8582d0e4ab4", "dx": 9, "nr": "JVBERi0xLjQK"}],
  "bdxx": {"reason": "务工", "qrd": "湖南省长沙市芙蓉区", "qcd": "贵州省贵阳市南明区", "yhzgx": "本人",
           "hh": "520102000123", "hzxm": "张大山", "qyrs": "1", "zzbh": "ZZ2026000123", "sqr": "张三", "bz": "无"},
  "sqsj": "2026-11-22 10:00:00"
}"#;

fn bench(c: &mut Criterion) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/tongban.toml");
    let federation = match tongban::config::load(&config) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("{diagnostics}"),
    };
    let from = &federation.adapters["guizhou"];
    let to = &federation.adapters["hunan"];
    let from_mapping = &from.operations[&Operation::Submit].mapping;
    let to_mapping = &to.operations[&Operation::Submit].mapping;
    let bytes = NATIVE_JSON.as_bytes();

    let translate = || {
        let native = wire::decode(bytes, from.format, from.charset, &from_mapping.namespaces).unwrap();
        let canonical = from_mapping.to_canonical(MessageKind::Request, &native).unwrap();
        let target = to_mapping.to_native(MessageKind::Request, &canonical).unwrap();
        wire::encode(&target, to.charset, &to_mapping.namespaces).unwrap()
    };
    // The translation must be complete, or the figure would flatter it.
    let out = translate();
    let text = encoding_rs::GBK.decode(&out).0;
    assert!(text.contains("<xm>张三</xm>") && text.contains("<qrd>湖南省长沙市芙蓉区</qrd>"), "{text}");

    c.bench_function("json_to_canonical_to_gbk_xml_30_fields", |b| b.iter(|| black_box(translate())));

    // The canonical API's path: the caller sends canonical JSON, which is parsed once and
    // mapped to the handling platform's GBK XML (validation is measured separately below).
    let canonical_bytes = {
        let native = wire::decode(bytes, from.format, from.charset, &from_mapping.namespaces).unwrap();
        from_mapping.to_canonical(MessageKind::Request, &native).unwrap().to_string().into_bytes()
    };
    let canonical_path = || {
        let canonical: serde_json::Value = serde_json::from_slice(&canonical_bytes).unwrap();
        let target = to_mapping.to_native(MessageKind::Request, &canonical).unwrap();
        wire::encode(&target, to.charset, &to_mapping.namespaces).unwrap()
    };
    assert_eq!(canonical_path(), out, "both paths must produce the same document");
    c.bench_function("canonical_json_to_gbk_xml_30_fields", |b| b.iter(|| black_box(canonical_path())));
    let parsed: serde_json::Value = serde_json::from_slice(&canonical_bytes).unwrap();
    c.bench_function("validate_canonical_application", |b| {
        b.iter(|| {
            let mut doc = parsed.clone();
            black_box(tongban::proxy::decode::validated(&mut doc, federation.regions).unwrap().1.errors.len())
        })
    });

    // The stages on their own, to see where the time goes.
    let native = wire::decode(bytes, from.format, from.charset, &from_mapping.namespaces).unwrap();
    let canonical = from_mapping.to_canonical(MessageKind::Request, &native).unwrap();
    let target = to_mapping.to_native(MessageKind::Request, &canonical).unwrap();
    let mut stages = c.benchmark_group("stages");
    stages.bench_function("decode_json", |b| {
        b.iter(|| black_box(wire::decode(bytes, from.format, from.charset, &from_mapping.namespaces).unwrap()))
    });
    stages.bench_function("to_canonical", |b| {
        b.iter(|| black_box(from_mapping.to_canonical(MessageKind::Request, &native).unwrap()))
    });
    stages.bench_function("to_native_xml", |b| {
        b.iter(|| black_box(to_mapping.to_native(MessageKind::Request, &canonical).unwrap()))
    });
    stages.bench_function("encode_gbk_xml", |b| {
        b.iter(|| black_box(wire::encode(&target, to.charset, &to_mapping.namespaces).unwrap()))
    });
    stages.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
