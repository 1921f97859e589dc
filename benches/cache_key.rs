//! The response cache on the lookup path (`pipeline::lookup`): building the `CacheKey` of a
//! status query (办件查询) and of a matter catalogue lookup (事项目录) as the gateway does —
//! the canonical request serialised with sorted keys — hashing it as moka does (std
//! `RandomState`, SipHash-1-3), a fresh hit in `ResponseCache` and the `Cache-Status` value the
//! hit adds. Every status or catalogue lookup of an adapter with a `[cache]` pays the key and
//! its hash, and a repeated one is answered by the hit instead of the platform. Run with
//! `cargo bench --bench cache_key`; the figures are in README.md.
//!
//! The cache is async (moka's `future::Cache`) and criterion's `async_tokio` feature is not
//! enabled, so a hit is measured through `Runtime::block_on` on a current-thread runtime;
//! `block_on_empty` measures that harness alone, to be subtracted. `answer_clone_*` measures the
//! copy of the stored answer that every hit hands out, its share of the hit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a bench is a failed assertion

use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tongban::adapter::{Adapter, Operation};
use tongban::cache::{CacheKey, CacheOutcome, CachePolicy, ResponseCache, StaleOnError};
use tongban::mapping::MessageKind;
use tongban::wire;

/// The same allocator as the `tongban` binary, so the figure is the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A partner, for adapters that keep one entry per caller (none in the demo).
const PARTNER: &str = "guangdong-window";

/// The key `pipeline::lookup` builds for a lookup of `request` on `adapter`.
fn key(adapter: &Adapter, operation: Operation, request: &Value) -> CacheKey {
    let partner = if adapter.cache_caller_scoped { Some(PARTNER.to_owned()) } else { None };
    // Object keys serialise sorted, so equal requests make equal keys.
    CacheKey {
        target: adapter.name.clone(),
        operation: operation.as_str().to_owned(),
        request: request.to_string(),
        partner,
    }
}

/// The canonical answer the gateway would store: Guizhou's native answer through its mapping.
fn canonical_answer(adapter: &Adapter, operation: Operation, native: &Value) -> Value {
    let mapping = &adapter.operations[&operation].mapping;
    let bytes = native.to_string();
    let doc = wire::decode(bytes.as_bytes(), adapter.format, adapter.charset, &mapping.namespaces).unwrap();
    mapping.to_canonical(MessageKind::Response, &doc).unwrap()
}

fn bench(c: &mut Criterion) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/tongban.toml");
    let federation = match tongban::config::load(&config) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("{diagnostics}"),
    };
    let guizhou = &federation.adapters["guizhou"];

    // `GET /v1/applications/{id}?region=520102&case_id=GZ2026000001` and
    // `GET /v1/matters?region=520102`, as `status` and `matters` hand them to `lookup`.
    let status_request = json!({
        "application_id": "0194f3a0-7c00-7000-8000-000000000052",
        "handling_region": "520102",
        "province_case_id": "GZ2026000001",
    });
    let matters_request = json!({ "region": "520102" });
    let status_key = key(guizhou, Operation::Status, &status_request);
    let matters_key = key(guizhou, Operation::Matters, &matters_request);
    assert_eq!(
        status_key.request,
        r#"{"application_id":"0194f3a0-7c00-7000-8000-000000000052","handling_region":"520102","province_case_id":"GZ2026000001"}"#
    );

    let mut group = c.benchmark_group("cache_key");
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_status", |b| {
        b.iter(|| black_box(key(guizhou, Operation::Status, black_box(&status_request))))
    });
    group.bench_function("build_matters", |b| {
        b.iter(|| black_box(key(guizhou, Operation::Matters, black_box(&matters_request))))
    });
    // moka hashes the key once per get and insert with the cache's `BuildHasher`: std's
    // `RandomState`, as `Cache::builder()` leaves it.
    let hasher = RandomState::new();
    group.bench_function("hash_status", |b| b.iter(|| black_box(hasher.hash_one(black_box(&status_key)))));
    group.bench_function("hash_matters", |b| b.iter(|| black_box(hasher.hash_one(black_box(&matters_key)))));
    group.finish();

    // What Guizhou's platform answers (its mock, docs/platforms/pinyin-json.md), in canonical
    // form as stored: a status in supplement_required with an opinion, and its 4-matter catalogue.
    let status_answer = canonical_answer(
        guizhou,
        Operation::Status,
        &json!({"zt": "1", "xx": "成功", "sj": {"bjbh": "GZ2026000001", "wbbh": status_request["application_id"],
            "bjzt": "04", "gxsj": "2026-11-23 09:30:00", "yj": "请补充提交准予迁入证明"}}),
    );
    let catalogue = tongban::mock::find("guizhou").unwrap().catalogue();
    let items: Vec<Value> =
        catalogue.iter().map(|m| json!({"sxbm": m.code, "sxmc": m.name, "ssbm": m.department})).collect();
    let matters_answer = canonical_answer(
        guizhou,
        Operation::Matters,
        &json!({"zt": "1", "xx": "成功", "zs": items.len(), "sj": items}),
    );
    assert_eq!(matters_answer["matters"].as_array().map(Vec::len), Some(4));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cache = ResponseCache::new(federation.cache_max_bytes, |_| {});
    // Freshness is decided with the caller's policy at lookup time and does not change the cost
    // of a hit; the status ttl (5 s in the demo) is stretched so the entry stays fresh through
    // the run. The catalogue's (10 min) already does.
    let status_policy = CachePolicy { ttl: Duration::from_secs(3600), ..guizhou.cache[&Operation::Status] };
    let matters_policy = guizhou.cache[&Operation::Matters];
    let refuse = |_: &String| StaleOnError::Refuse;
    // The first lookup of each key misses and stores the platform's answer.
    let store = |key: CacheKey, policy: CachePolicy, answer: &Value| {
        let answer = answer.clone();
        runtime.block_on(cache.get_or_fetch_with(key, policy, refuse, || async move { Ok(answer) }))
    };
    let (_, stored) = store(status_key.clone(), status_policy, &status_answer);
    assert_eq!(stored, CacheOutcome::Miss);
    let (_, stored) = store(matters_key.clone(), matters_policy, &matters_answer);
    assert_eq!(stored, CacheOutcome::Miss);

    let mut group = c.benchmark_group("response_cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("block_on_empty", |b| b.iter(|| runtime.block_on(async { black_box(()) })));
    let hits = [
        ("hit_status", &status_key, status_policy, &status_answer),
        ("hit_matters", &matters_key, matters_policy, &matters_answer),
    ];
    for (name, key, policy, answer) in hits {
        // The key is moved into the lookup, as the gateway moves the one it built; its copy is
        // made outside the timing. A miss would reach the platform: here, an error and a failed run.
        let hit = |key: CacheKey| {
            let (value, outcome) = runtime.block_on(cache.get_or_fetch_with(key, policy, refuse, || async {
                Err::<Value, String>("a hit must not reach the platform".to_owned())
            }));
            assert!(matches!(outcome, CacheOutcome::Hit { .. }), "{outcome:?}");
            value
        };
        assert_eq!(hit(key.clone()).as_ref(), Ok(answer));
        group
            .bench_function(name, |b| b.iter_batched(|| key.clone(), |key| black_box(hit(key)), BatchSize::SmallInput));
        // A hit hands out a copy of the stored answer: that copy alone, to see its share.
        let clone = name.replace("hit_", "answer_clone_");
        group.bench_function(clone, |b| b.iter_batched(|| (), |()| black_box(answer.clone()), BatchSize::SmallInput));
    }
    let outcome = CacheOutcome::Hit { ttl_left: Duration::from_millis(4_270) };
    assert_eq!(outcome.header_value(), "tongban; hit; ttl=4");
    group.bench_function("cache_status_header_hit", |b| b.iter(|| black_box(black_box(&outcome).header_value())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
