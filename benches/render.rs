//! Rendering one certificate to PDF (异地打证): template layout, glyph checks, CJK subset
//! embedding and the QR code, as `POST /v1/print-jobs` does for every job. Run with
//! `cargo bench --bench render`; the figure is in README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a bench is a failed assertion

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tongban::certificate::Certificate;
use tongban::certificate::template::PrintFacts;

/// The same allocator as the `tongban` binary, so the figure is the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/tongban.toml");
    let federation = match tongban::config::load(&config) {
        Ok((federation, _)) => federation,
        Err(diagnostics) => panic!("{diagnostics}"),
    };
    let templates = federation.printing.as_ref().expect("[printing] in the demo config").templates.clone();
    let certificate = Certificate::from_canonical(&json!({
        "certificate_id": "GZ-DEMO-0001",
        "type": {"code": "household_transfer_permit", "name": "准予迁入证明"},
        "holder": {"name": "张三", "id_type": "resident_id", "id_number": "11010519491231002X"},
        "issuer": {"name": "贵阳市公安局云岩区分局", "region": "520103"},
        "issued_on": "2026-11-20", "valid_from": "2026-11-20", "valid_until": "2036-11-19",
        "status": "valid",
        "fields": {"move_from_address": "北京市西城区西长安街1号", "move_to_address": "贵州省贵阳市云岩区中华北路1号", "reason": "投靠亲属"},
        "signature": {"algorithm": "ed25519", "key_id": "gz-zzk-ed25519-2026", "value": "AAAA"}
    }))
    .unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let url = "http://127.0.0.1:8080/v1/verify/AZTzoHwAcACAAAAAAAAAAQ.Wk9oN3lGc1Z4b0lqVUJ0a2VnT2c5V2Y2c0x6eVVQRmRtUzVfR1BsQ2pVNnRrbmRxZ0xyS1dRZ2hkM2lWdmc";
    let facts = PrintFacts {
        number: 1,
        site: "GD-TH-0007",
        date,
        job: "0194f3a0-7c00-7000-8000-000000000001",
        verify_url: url,
    };
    let pdf = templates.render(&certificate, &facts).unwrap();
    println!("one document: {} bytes", pdf.len());
    c.bench_function("render certificate PDF (A4, CJK subset, QR)", |b| {
        b.iter(|| black_box(templates.render(black_box(&certificate), black_box(&facts)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
