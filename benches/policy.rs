//! Policy decision time as policy sets grow: meshward's indexed engine and
//! plain Cedar evaluating every policy, side by side. Numbers in
//! BENCHMARKS.md.
//!
//! The sets model a mesh of services: each policy permits one service
//! account (or, for some, a namespace) one action group on one host's path
//! prefix, a tenth are forbids for single workloads, and three global
//! policies (a break-glass IP block, a header check, a JWT rule) name no
//! scope entity and so are evaluated for every request by both engines.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, RequestFacts};

use self::mesh::{policy_set, request};

mod mesh;

fn bench(c: &mut Criterion) {
    for n in [10, 100, 1_000, 10_000] {
        let engine = PolicyEngine::from_policies(&policy_set(n))
            .unwrap_or_else(|e| unreachable!("generated policies must validate: {e}"));
        let facts = request(n);
        let d = engine.decide(&facts);
        assert!(d.allowed, "{d:?}");
        assert_eq!(d, engine.decide_unindexed(&facts));
        c.bench_function(&format!("policy - decide {n} policies - indexed"), |b| {
            b.iter(|| black_box(engine.decide(black_box(&facts))))
        });
        c.bench_function(&format!("policy - decide {n} policies - cedar full"), |b| {
            b.iter(|| black_box(engine.decide_unindexed(black_box(&facts))))
        });
    }
    // The engine caches request entities per peer, host and the headers,
    // parameters and claims policies read; a peer that changes every request
    // (more peers than the cache holds) measures the uncached path.
    let engine = PolicyEngine::from_policies(&policy_set(1_000))
        .unwrap_or_else(|e| unreachable!("generated policies must validate: {e}"));
    let peers: Vec<RequestFacts> = (0..512)
        .map(|i| {
            let mut f = request(1_000);
            f.peer = SpiffeId::parse(&format!("spiffe://cluster.local/ns/other/sa/p{i}")).ok();
            f
        })
        .collect();
    let mut next = peers.iter().cycle();
    c.bench_function(
        "policy - decide 1000 policies - indexed, new peer each request",
        |b| b.iter(|| black_box(next.next().map(|f| engine.decide(black_box(f))))),
    );
    let text = policy_set(1_000);
    c.bench_function(
        "policy - configure 1000 policies - validate and index",
        |b| b.iter(|| black_box(PolicyEngine::from_policies(black_box(&text)).is_ok())),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
