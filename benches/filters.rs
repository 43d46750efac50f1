//! meshward's filters on their per-request hot path (request headers in,
//! decision out), natively and compiled to wasm in the harness, side by side
//! in one run. Numbers in BENCHMARKS.md.
//!
//! The compiled filters are read from where `meshward-filter-modules` built them
//! (`scripts/build-wasm`). To compare builds of the filters (e.g. opt-levels)
//! in one run, set `MESHWARD_BENCH_WASM_DIRS=label=dir,label=dir,...`.

#![allow(missing_docs)]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark with a broken input must stop, not measure something else"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use meshward_harness::{Host, PluginConfig, Properties, Request};
use meshward_identity::{AuthnConfig, PeerFacts, authenticate};
use meshward_policy::RequestFacts;
use meshward_policy_cedar::{compile_filter_config, engine_from_policies};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const POLICY: &str = include_str!("../policies/demo/orders.cedar");
const IDENTITY_CONFIG: &str = r#"{"allowed_trust_domains": ["example.org"], "allowed_ids": ["spiffe://example.org/ns/web/*"]}"#;

fn wasm_dirs() -> Vec<(String, PathBuf)> {
    match std::env::var("MESHWARD_BENCH_WASM_DIRS") {
        Ok(list) => list
            .split(',')
            .filter_map(|item| item.split_once('='))
            .map(|(label, dir)| (label.to_owned(), PathBuf::from(dir)))
            .collect(),
        Err(_) => vec![(
            "wasm".to_owned(),
            meshward_filter_modules::dir().to_path_buf(),
        )],
    }
}

fn authz_config() -> String {
    compile_filter_config(
        &serde_json::json!({"cedar": {"policies": POLICY}, "decision_log": "none"}).to_string(),
    )
    .unwrap()
}

/// `n` headers no policy reads, of 100-byte values, as proxies and
/// tracing libraries add them.
fn extra_headers(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("x-extra-{i}"), "v".repeat(100)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("filters");
    group.measurement_time(Duration::from_secs(4));

    // Native: the libraries the filters wrap, on the same inputs.
    let authn = AuthnConfig::from_json(IDENTITY_CONFIG.as_bytes()).unwrap();
    let facts = PeerFacts {
        mtls: Some(vec![1]),
        uri_san: Some(FRONTEND.as_bytes().to_vec()),
        ..PeerFacts::default()
    };
    let now = 1_800_000_000;
    group.bench_function("filters - identity/mtls-allow - native", |b| {
        b.iter(|| authenticate(black_box(&authn), black_box(&facts), now).unwrap())
    });
    let engine = engine_from_policies(POLICY).unwrap();
    let request = RequestFacts::new("GET", "orders.local", "/api/orders")
        .with_peer(FRONTEND.parse().unwrap())
        .with_header("user-agent", "bench");
    group.bench_function("filters - authz/permit - native", |b| {
        b.iter(|| assert!(engine.decide(black_box(&request)).allowed))
    });
    for n in [16, 64] {
        let mut request = request.clone();
        for (k, v) in extra_headers(n) {
            request = request.with_header(&k, &v);
        }
        group.bench_function(
            format!("filters - authz/permit, {n} more headers of 100 bytes - native"),
            |b| b.iter(|| assert!(engine.decide(black_box(&request)).allowed)),
        );
    }

    // Compiled: one VM per filter, reused across requests as Envoy does.
    let host = Host::new().unwrap();
    let props = Properties::istio_inbound_mtls(FRONTEND, "");
    for (label, dir) in wasm_dirs() {
        let Ok(identity) = host.load_file(dir.join("meshward_identity_filter.wasm")) else {
            eprintln!(
                "skipping {label}: no filters in {} (run scripts/build-wasm)",
                dir.display()
            );
            continue;
        };
        let mut plugin = identity
            .start(
                PluginConfig::new()
                    .configuration(IDENTITY_CONFIG)
                    .properties(&props)
                    .time(SystemTime::now()),
            )
            .unwrap();
        group.bench_function(format!("filters - identity/mtls-allow - {label}"), |b| {
            b.iter(|| {
                assert!(
                    plugin
                        .send(Request::get("/api/orders").header("user-agent", "bench"))
                        .forwarded()
                )
            })
        });

        let authz = host
            .load_file(dir.join("meshward_authz_filter.wasm"))
            .unwrap();
        let mut plugin = authz
            .start(
                PluginConfig::new()
                    .configuration(authz_config())
                    .properties(&props),
            )
            .unwrap();
        group.bench_function(format!("filters - authz/permit - {label}"), |b| {
            b.iter(|| {
                let req = Request::get("/api/orders")
                    .set_header(":authority", "orders.local")
                    .header("user-agent", "bench");
                assert!(plugin.send(req).forwarded())
            })
        });
        // How the cost grows with the request's headers: every header is
        // read across the host boundary, only those a policy reads are kept.
        for n in [16, 64] {
            let extra = extra_headers(n);
            group.bench_function(
                format!("filters - authz/permit, {n} more headers of 100 bytes - {label}"),
                |b| {
                    b.iter(|| {
                        let mut req = Request::get("/api/orders")
                            .set_header(":authority", "orders.local")
                            .header("user-agent", "bench");
                        for (k, v) in &extra {
                            req = req.header(k, v);
                        }
                        assert!(plugin.send(req).forwarded())
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
