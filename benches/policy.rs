//! Policy decision time as policy sets grow: the filter's evaluator over
//! compiled policies, and Cedar's authorizer (the reference) indexed and
//! evaluating every policy, side by side. Numbers in BENCHMARKS.md.
//!
//! The sets model a mesh of services: each policy permits one service
//! account (or, for some, a namespace) one action group on one host's path
//! prefix, a tenth are forbids for single workloads, and three global
//! policies (a break-glass IP block, a header check, a JWT rule) name no
//! scope entity and so are evaluated for every request by every engine.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, RequestFacts};
use meshward_policy_cedar::{CedarEngine, compile_filter_config};

use self::mesh::{policy_set, request};

mod mesh;

fn compiled(n: usize) -> String {
    compile_filter_config(&serde_json::json!({ "policies": policy_set(n) }).to_string())
        .unwrap_or_else(|e| unreachable!("generated policies must compile: {e}"))
}

fn bench(c: &mut Criterion) {
    for n in [10, 100, 1_000, 10_000] {
        let json = compiled(n);
        let engine = PolicyEngine::from_config(json.as_bytes())
            .unwrap_or_else(|e| unreachable!("compiled policies must load: {e}"));
        let cedar = CedarEngine::from_policies(&policy_set(n))
            .unwrap_or_else(|e| unreachable!("generated policies must validate: {e}"));
        let facts = request(n);
        let d = engine.decide(&facts);
        assert!(d.allowed, "{d:?}");
        assert_eq!(d, cedar.decide_unindexed(&facts));
        c.bench_function(&format!("policy - decide {n} policies - evaluator"), |b| {
            b.iter(|| black_box(engine.decide(black_box(&facts))))
        });
        c.bench_function(
            &format!("policy - decide {n} policies - cedar indexed"),
            |b| b.iter(|| black_box(cedar.decide(black_box(&facts)))),
        );
        if n <= 1_000 {
            c.bench_function(&format!("policy - decide {n} policies - cedar full"), |b| {
                b.iter(|| black_box(cedar.decide_unindexed(black_box(&facts))))
            });
        }
    }
    // A peer that changes every request.
    let engine = PolicyEngine::from_config(compiled(1_000).as_bytes())
        .unwrap_or_else(|e| unreachable!("compiled policies must load: {e}"));
    let peers: Vec<RequestFacts> = (0..512)
        .map(|i| {
            let mut f = request(1_000);
            f.peer = SpiffeId::parse(&format!("spiffe://cluster.local/ns/other/sa/p{i}")).ok();
            f
        })
        .collect();
    let mut next = peers.iter().cycle();
    c.bench_function(
        "policy - decide 1000 policies - evaluator, new peer each request",
        |b| b.iter(|| black_box(next.next().map(|f| engine.decide(black_box(f))))),
    );
    let json = compiled(1_000);
    c.bench_function("policy - configure 1000 policies - load compiled", |b| {
        b.iter(|| black_box(PolicyEngine::from_config(black_box(json.as_bytes())).is_ok()))
    });
    let authoring = serde_json::json!({ "policies": policy_set(1_000) }).to_string();
    c.bench_function("policy - compile 1000 policies - cedar validate", |b| {
        b.iter(|| black_box(compile_filter_config(black_box(&authoring)).is_ok()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
