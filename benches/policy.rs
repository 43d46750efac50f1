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

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, RequestFacts};

fn policy_set(n: usize) -> String {
    let namespaces = (n / 20).max(1);
    let mut text = String::new();
    text.push_str(
        "@id(\"global-ip\") forbid(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip(\"203.0.113.0/24\")) };\n\
         @id(\"global-debug\") forbid(principal, action, resource) when { context.headers.hasTag(\"x-debug\") && context.headers.getTag(\"x-debug\") == \"on\" };\n\
         @id(\"global-admin\") forbid(principal, action, resource) when { context.path like \"/admin/*\" } unless { context has user && context.user.hasTag(\"groups\") && context.user.getTag(\"groups\").contains(\"admins\") };\n",
    );
    for i in 3..n {
        let ns = i % namespaces;
        let host = format!("svc{}.ns{ns}.svc.cluster.local", i % 7);
        let group = if i % 3 == 0 { "write" } else { "read" };
        match i % 10 {
            0 => writeln!(
                text,
                "@id(\"p{i}\") forbid(principal == Mesh::Workload::\"spiffe://cluster.local/ns/ns{ns}/sa/sa{i}\", action, resource);"
            ),
            1 => writeln!(
                text,
                "@id(\"p{i}\") permit(principal in Mesh::Namespace::\"ns{ns}\", action in Mesh::Action::\"read\", resource == Mesh::Host::\"{host}\") when {{ context.path like \"/public/{i}/*\" }};"
            ),
            _ => writeln!(
                text,
                "@id(\"p{i}\") permit(principal in Mesh::ServiceAccount::\"ns{ns}/sa{i}\", action in Mesh::Action::\"{group}\", resource == Mesh::Host::\"{host}\") when {{ context.path like \"/api/{i}/*\" && context.mtls }};"
            ),
        }
        .unwrap_or_default();
    }
    text
}

/// A request that one policy of the set permits (`p5`'s service account,
/// host and path), against which every other policy must be checked.
fn request(n: usize) -> RequestFacts {
    let namespaces = (n / 20).max(1);
    let i = 5;
    let ns = i % namespaces;
    let peer = SpiffeId::parse(&format!("spiffe://cluster.local/ns/ns{ns}/sa/sa{i}"))
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut facts = RequestFacts::new(
        "GET",
        &format!("svc{}.ns{ns}.svc.cluster.local:8080", i % 7),
        &format!("/api/{i}/items?page=2"),
    )
    .with_peer(peer)
    .with_header("user-agent", "bench");
    facts.mtls = true;
    facts.port = 8080;
    facts.source = "10.0.0.9:41000".parse().ok();
    facts
}

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
