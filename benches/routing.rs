//! Routing on the request path, with the demo federation's twelve adapters and its matter list:
//! the handling region's code to a platform by longest prefix (county, city, province), the
//! exchange's kind (`classify`), the matter list's permission (`MatterList::permit`), and the
//! route stage as a submission and a status lookup run it. Every request pays these before any
//! platform is called, so they must stay far below the mapping engine's microseconds. Run with
//! `cargo bench --bench routing`; the figures are in README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a bench is a failed assertion

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tongban::canonical::Mode;
use tongban::proxy::route;
use tongban::routing::matters::Exchange;
use tongban::routing::{RouteKind, classify};

/// The same allocator as the `tongban` binary, so the figure is the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 户口迁移, on the matter list for the southwest and pan-Pearl-River groups.
const HUKOU: &str = "000104001000";
/// 社会保障卡申领, listed for cross-region handling inside a province only.
const SOCIAL_SECURITY_CARD: &str = "000301003000";
/// 医保关系转移接续, which 酒泉 and 益阳 allow between them by bilateral agreement.
const MEDICAL_INSURANCE: &str = "000401004000";

fn bench(c: &mut Criterion) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/tongban.toml");
    let federation = match tongban::config::load(&config) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("{diagnostics}"),
    };
    let router = &federation.router;

    // The demo's prefixes are provinces (52, 44, …) and three cities (6202, 6209, 4309): a code
    // served by a city platform is found at the second probe, one served by its province at the
    // third, and one no platform serves (北京 11) misses all three.
    let cases = [
        ("city_platform_620902", "620902", Some("jiuquan")),
        ("province_platform_440106", "440106", Some("guangdong")),
        ("no_route_110101", "110101", None),
    ];
    let mut group = c.benchmark_group("route_region");
    group.throughput(Throughput::Elements(1));
    for (name, code, expected) in cases {
        assert_eq!(router.route(code).map(|a| a.name.as_str()), expected, "{code}");
        group.bench_function(name, |b| b.iter(|| black_box(router.route(black_box(code)))));
    }
    group.finish();

    // Local compares province and city digits; cross-province stops at the province digits.
    let pairs = [
        ("local", "340103", "340102", RouteKind::Local),
        ("cross_region", "620200", "620902", RouteKind::CrossRegion),
        ("cross_province", "440106", "520102", RouteKind::CrossProvince),
    ];
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(1));
    for (name, accepting, handling, expected) in pairs {
        assert_eq!(classify(accepting, handling), expected);
        group.bench_function(name, |b| b.iter(|| black_box(classify(black_box(accepting), black_box(handling)))));
    }
    group.finish();

    // A Guangzhou window accepting for Guiyang (the README's walk-through): allowed through the
    // second group searched; 酒泉 → 益阳 allowed by the agreement before any entry is read; and a
    // refusal, which formats the rule that refused it into the 403's detail.
    let exchanges = [
        ("group_allowed", HUKOU, "440106", "520102", true),
        ("agreement_allowed", MEDICAL_INSURANCE, "620902", "430902", true),
        ("refused", SOCIAL_SECURITY_CARD, "440106", "520102", false),
    ];
    let mut group = c.benchmark_group("permit");
    group.throughput(Throughput::Elements(1));
    for (name, matter, accepting, handling, allowed) in exchanges {
        let exchange =
            Exchange { matter, mode: Mode::Online, accepting, handling, kind: classify(accepting, handling) };
        assert_eq!(federation.matters.permit(&exchange).is_ok(), allowed, "{name}");
        group.bench_function(name, |b| b.iter(|| black_box(federation.matters.permit(black_box(&exchange)))));
    }
    group.finish();

    // The route stage whole. A submission arrives with its regions already resolved by
    // validation: classify, route, permit, and the Route it answers with (the resolved codes
    // are moved into it, so each iteration gets its own copy, made outside the timing). A status
    // lookup resolves the code of its query string first, then routes it.
    let accepting = federation.regions.resolve("440106").unwrap();
    let handling = federation.regions.resolve("520102").unwrap();
    let submission = || (accepting.clone(), handling.clone());
    let (from, to) = submission();
    let routed = route::application(&federation, HUKOU, Mode::ProxyAcceptance, from, to).unwrap();
    assert_eq!((routed.adapter.name.as_str(), routed.kind), ("guizhou", Some(RouteKind::CrossProvince)));
    let status = || {
        let handling = route::query_region(&federation, Some("520102"), "region").unwrap();
        route::platform(&federation, handling).unwrap()
    };
    assert_eq!(status().adapter.name, "guizhou");
    let mut group = c.benchmark_group("route_stage");
    group.throughput(Throughput::Elements(1));
    group.bench_function("submission_440106_to_520102", |b| {
        b.iter_batched(
            submission,
            |(from, to)| black_box(route::application(&federation, HUKOU, Mode::ProxyAcceptance, from, to).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("status_query_520102", |b| b.iter(|| black_box(status())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
