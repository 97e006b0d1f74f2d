//! `/metrics` render time with 10,000 series: 100 tenants × 25 routes × 4 methods of
//! `ges_http_requests_total`, plus every catalogue metric and the process collector, rendered the
//! way the handler renders them. `cargo bench --bench metrics_render`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringback::telemetry::{catalogue, process};

fn bench(c: &mut Criterion) {
    let handle = catalogue::install();
    for tenant in 0..100 {
        for route in 0..25 {
            for method in ["GET", "POST", "PUT", "DELETE"] {
                metrics::counter!(
                    catalogue::HTTP_REQUESTS,
                    "path" => format!("/engagement/v3/route-{route}"),
                    "method" => method,
                    "tenant" => format!("tenant-{tenant}")
                )
                .increment(1);
            }
        }
    }
    let text = handle.render() + &process::render();
    let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    println!("/metrics with {series} series: {} KiB", text.len() / 1024);
    c.bench_function("render /metrics (10,000 series)", |b| b.iter(|| black_box(handle.render() + &process::render())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
