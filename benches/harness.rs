//! The harness's per-request hot path: one request's headers into a
//! plugin (instance reused across requests), the decision out. Numbers in
//! BENCHMARKS.md.
//!
//! `wat-continue` is the smallest possible filter (its callbacks return at
//! once), so it measures the host: stream context creation, the callbacks,
//! `proxy_on_done`/`proxy_on_log`/`proxy_on_delete`. `conformance` runs the
//! conformance filter (Rust SDK, header edits through the ABI) when it has
//! been built with `scripts/build-wasm`.

#![allow(missing_docs)]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark with a broken input must stop, not measure something else"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meshward_harness::{Host, PluginConfig, Request, Step};

const TRIVIAL: &str = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (global.get $heap)
    (global.set $heap (i32.add (global.get $heap) (local.get 0))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))"#;

fn conformance_wasm() -> Option<Vec<u8>> {
    std::fs::read(meshward_test_guests::conformance_filter()).ok()
}

fn bench(c: &mut Criterion) {
    let host = Host::new().unwrap();
    let mut group = c.benchmark_group("harness");
    group.measurement_time(Duration::from_secs(5));

    let mut plugin = host
        .load(TRIVIAL)
        .unwrap()
        .start(PluginConfig::new())
        .unwrap();
    let headers = Request::get("/api").header("x-user", "alice").headers();
    group.bench_function("harness - request_headers - wat-continue", |b| {
        b.iter(|| {
            let mut s = plugin.stream();
            let step = s.request_headers(black_box(headers.clone()), true);
            assert_eq!(step, Step::Continue);
            black_box(s.finish())
        })
    });
    group.bench_function("harness - exchange - wat-continue", |b| {
        b.iter(|| black_box(plugin.send(Request::get("/api").header("x-user", "alice"))))
    });

    match conformance_wasm() {
        Some(wasm) => {
            let mut plugin = host.load(wasm).unwrap().start(PluginConfig::new()).unwrap();
            let headers = Request::get("/op/basic").header("x-in", "v").headers();
            group.bench_function("harness - request_headers - conformance-basic", |b| {
                b.iter(|| {
                    let mut s = plugin.stream();
                    let step = s.request_headers(black_box(headers.clone()), true);
                    let e = s.finish();
                    assert_eq!(step, Step::Continue, "{:?}", e.failure);
                    black_box(e)
                })
            });
            group.bench_function("harness - exchange - conformance-basic", |b| {
                b.iter(|| black_box(plugin.send(Request::get("/op/basic").header("x-in", "v"))))
            });
        }
        None => eprintln!("conformance filter not built (run scripts/build-wasm): skipping it"),
    }
    group.finish();

    c.bench_function("harness - load - wat-continue", |b| {
        b.iter(|| black_box(host.load(TRIVIAL).unwrap()))
    });
    let filter = host.load(TRIVIAL).unwrap();
    c.bench_function("harness - start - wat-continue", |b| {
        b.iter(|| black_box(filter.start(PluginConfig::new()).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
