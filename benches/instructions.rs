//! The native hot paths, each in its own never-inlined function, for
//! instruction counts under callgrind (`benches/callgrind` runs it and
//! prints instructions per call): on a machine shared with other builds,
//! wall-clock medians move by a third between runs, instruction counts by
//! well under a percent. Numbers in BENCHMARKS.md.
//!
//! Run plainly (as `cargo test --benches` does in CI) it runs every case a
//! few times and prints wall-clock time per call, as a check that it works.

#![allow(missing_docs)]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark with a broken input must stop, not measure something else"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use meshward_harness::{Filter, Host, LogLevel, Plugin, PluginConfig, Properties, Request};
use meshward_identity::{AuthnConfig, PeerFacts, SpiffeId, authenticate};
use meshward_policy::{PolicyEngine, RequestFacts};
use meshward_policy_cedar::{CedarEngine, compile_filter_config};

use self::mesh::{policy_set, request};

mod mesh;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const IDENTITY_CONFIG: &str = r#"{"allowed_trust_domains": ["example.org"], "allowed_ids": ["spiffe://example.org/ns/web/*"]}"#;

// Each `case_` function runs its path `n` times; callgrind's inclusive count
// for it divided by `n` is the cost of one call. Callgrind counts per
// function, so each policy-set size gets its own wrappers (`sized!`); the
// script finds them by name, which `run` prints.

#[inline(never)]
fn case_identity_mtls_allow(config: &AuthnConfig, facts: &PeerFacts, n: u64) {
    for _ in 0..n {
        black_box(authenticate(black_box(config), black_box(facts), 1_800_000_000).is_ok());
    }
}

fn decide_indexed(engine: &PolicyEngine, facts: &RequestFacts, n: u64) {
    for _ in 0..n {
        assert!(engine.decide(black_box(facts)).allowed);
    }
}

fn decide_cedar_full(engine: &CedarEngine, facts: &RequestFacts, n: u64) {
    for _ in 0..n {
        assert!(engine.decide_unindexed(black_box(facts)).allowed);
    }
}

fn decide_new_peer(engine: &PolicyEngine, peers: &[RequestFacts], n: u64) {
    for f in peers.iter().cycle().take(usize::try_from(n).unwrap()) {
        black_box(engine.decide(black_box(f)));
    }
}

/// What the filter does in `on_configure`: load the compiled policies.
fn configure(compiled: &str, n: u64) {
    for _ in 0..n {
        assert!(PolicyEngine::from_config(black_box(compiled).as_bytes()).is_ok());
    }
}

/// What `meshward compile` does on the host: Cedar parses and validates,
/// then the compiled form is written and loaded once.
#[inline(never)]
fn case_compile_10(config: &str, n: u64) {
    for _ in 0..n {
        assert!(compile_filter_config(black_box(config)).is_ok());
    }
}

struct Sized {
    indexed: fn(&PolicyEngine, &RequestFacts, u64),
    full: fn(&CedarEngine, &RequestFacts, u64),
    new_peer: fn(&PolicyEngine, &[RequestFacts], u64),
    configure: fn(&str, u64),
}

// The size goes through `black_box` in each wrapper only to make the
// wrappers differ: rustc merges identical functions into one symbol, and
// callgrind would then count every size under the first one's name.
macro_rules! sized {
    ($size:literal, $indexed:ident, $full:ident, $new_peer:ident, $configure:ident) => {{
        #[inline(never)]
        fn $indexed(e: &PolicyEngine, f: &RequestFacts, n: u64) {
            black_box($size);
            decide_indexed(e, f, n)
        }
        #[inline(never)]
        fn $full(e: &CedarEngine, f: &RequestFacts, n: u64) {
            black_box($size);
            decide_cedar_full(e, f, n)
        }
        #[inline(never)]
        fn $new_peer(e: &PolicyEngine, p: &[RequestFacts], n: u64) {
            black_box($size);
            decide_new_peer(e, p, n)
        }
        #[inline(never)]
        fn $configure(t: &str, n: u64) {
            black_box($size);
            configure(t, n)
        }
        (
            [
                stringify!($indexed),
                stringify!($full),
                stringify!($new_peer),
                stringify!($configure),
            ],
            Sized {
                indexed: $indexed,
                full: $full,
                new_peer: $new_peer,
                configure: $configure,
            },
        )
    }};
}

fn sized(size: usize) -> ([&'static str; 4], Sized) {
    match size {
        10 => sized!(
            10,
            case_decide_10_indexed,
            case_decide_10_cedar_full,
            case_decide_10_new_peer,
            case_configure_10
        ),
        1_000 => sized!(
            1_000,
            case_decide_1000_indexed,
            case_decide_1000_cedar_full,
            case_decide_1000_new_peer,
            case_configure_1000
        ),
        _ => sized!(
            10_000,
            case_decide_10000_indexed,
            case_decide_10000_cedar_full,
            case_decide_10000_new_peer,
            case_configure_10000
        ),
    }
}

// The compiled filters' request path in the harness (wasmtime, one VM
// reused across requests as in Envoy), at Istio's default log level
// (`warning`): host calls, the filter glue and the library, as wasm.

#[inline(never)]
fn case_wasm_identity(plugin: &mut Plugin, n: u64) {
    wasm_requests(plugin, n)
}

#[inline(never)]
fn case_wasm_identity_alt(plugin: &mut Plugin, n: u64) {
    black_box(1);
    wasm_requests(plugin, n)
}

#[inline(never)]
fn case_wasm_authz(plugin: &mut Plugin, n: u64) {
    black_box(2);
    wasm_requests(plugin, n)
}

#[inline(never)]
fn case_wasm_both(identity: &mut Plugin, authz: &mut Plugin, n: u64) {
    for _ in 0..n {
        let exchange = identity.send(mesh_request());
        assert!(exchange.forwarded());
        // The authz filter reads the peer the identity filter published in
        // filter state (the harness runs one plugin at a time, so the test
        // hands it over as Envoy's filter state would).
        let req = mesh_request().property(meshward_filter_glue::PEER_ID_PROPERTY, PEER);
        assert!(authz.send(req).forwarded());
    }
}

const PEER: &str = "spiffe://cluster.local/ns/ns0/sa/sa5";

fn mesh_request() -> Request {
    Request::get("/api/5/items?page=2")
        .set_header(":authority", "svc5.ns0.svc.cluster.local:8080")
        .header("user-agent", "bench")
}

fn wasm_requests(plugin: &mut Plugin, n: u64) {
    for _ in 0..n {
        assert!(plugin.send(mesh_request()).forwarded());
    }
}

fn start(filter: &Filter, config: &str) -> Plugin {
    let props = Properties::istio_inbound_mtls(PEER, "");
    let config = PluginConfig::new()
        .configuration(config)
        .properties(&props)
        .log_level(LogLevel::Warn)
        .time(SystemTime::now());
    filter.start(config).unwrap()
}

fn wasm_cases(scale: impl Fn(u64) -> u64) {
    let dir = std::env::var_os("MESHWARD_INSTR_WASM_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/filter"),
        PathBuf::from,
    );
    let identity_config = r#"{"allowed_trust_domains": ["cluster.local"]}"#;
    let authz_config = |peer_from: &str| {
        compile_filter_config(
            &serde_json::json!({
                "cedar": {"policies": policy_set_for_wasm()},
                "peer_from": peer_from,
                "decision_log": "denies",
            })
            .to_string(),
        )
        .unwrap()
    };
    let host = Host::new().unwrap();
    let Ok(identity) = host.load_file(dir.join("meshward_identity_filter.wasm")) else {
        println!(
            "no filters in {} (scripts/build-wasm): skipping the wasm cases",
            dir.display()
        );
        return;
    };
    let mut identity = start(&identity, identity_config);
    run("case_wasm_identity", scale(200), |n| {
        case_wasm_identity(&mut identity, n)
    });
    if let Some(alt) = std::env::var_os("MESHWARD_INSTR_ALT_DIR") {
        let wasm = Path::new(&alt).join("meshward_identity_filter.wasm");
        let mut alt = start(&host.load_file(wasm).unwrap(), identity_config);
        run("case_wasm_identity_alt", scale(200), |n| {
            case_wasm_identity_alt(&mut alt, n)
        });
    }
    let authz = host
        .load_file(dir.join("meshward_authz_filter.wasm"))
        .unwrap();
    let mut alone = start(&authz, &authz_config("connection"));
    run("case_wasm_authz", scale(200), |n| {
        case_wasm_authz(&mut alone, n)
    });
    let mut chained = start(&authz, &authz_config("identity_filter"));
    run("case_wasm_both", scale(200), |n| {
        case_wasm_both(&mut identity, &mut chained, n)
    });
}

/// The 10-policy set the Envoy bench uses: `request(10)`'s peer, host and
/// path are permitted by it, as `PEER` and `mesh_request` are.
fn policy_set_for_wasm() -> String {
    policy_set(10)
}

/// Runs `f(n)` and prints wall-clock time per call (the number callgrind
/// replaces); `label` names the case and its `case_` function.
fn run(label: &str, n: u64, f: impl FnOnce(u64)) {
    let t = Instant::now();
    f(n);
    let per = t.elapsed().as_secs_f64() / n as f64;
    println!("{label:<48} {n:>6} calls {:>10.2} µs/call", per * 1e6);
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (`cargo test`) is a
    // smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let scale = |n: u64| if full { n } else { 1 };
    // 10,000 policies take seconds to validate natively, minutes under
    // callgrind: only on request.
    let sizes: &[usize] = if std::env::var_os("MESHWARD_INSTR_10K").is_some() {
        &[10, 1_000, 10_000]
    } else {
        &[10, 1_000]
    };

    if std::env::var_os("MESHWARD_INSTR_SKIP_WASM").is_none() {
        wasm_cases(scale);
    }

    let authn = AuthnConfig::from_json(IDENTITY_CONFIG.as_bytes()).unwrap();
    let peer = PeerFacts {
        mtls: Some(vec![1]),
        uri_san: Some(FRONTEND.as_bytes().to_vec()),
        ..PeerFacts::default()
    };
    run("case_identity_mtls_allow", scale(2_000), |n| {
        case_identity_mtls_allow(&authn, &peer, n)
    });

    for &size in sizes {
        let text = policy_set(size);
        let authoring = serde_json::json!({ "policies": text }).to_string();
        let compiled = compile_filter_config(&authoring).unwrap();
        // The filter's evaluator; Cedar's authorizer is the reference the
        // `cedar_full` cases measure.
        let engine = PolicyEngine::from_config(compiled.as_bytes()).unwrap();
        let cedar = CedarEngine::from_policies(&text).unwrap();
        let facts = request(size);
        assert!(engine.decide(&facts).allowed);
        assert!(cedar.decide(&facts).allowed);
        let ([indexed, full_name, new_peer, configure_name], f) = sized(size);
        run(indexed, scale(500), |n| (f.indexed)(&engine, &facts, n));
        if size <= 1_000 {
            run(full_name, scale(50), |n| (f.full)(&cedar, &facts, n));
        }
        let peers: Vec<RequestFacts> = (0..512)
            .map(|i| {
                let mut p = request(size);
                p.peer = SpiffeId::parse(&format!("spiffe://cluster.local/ns/other/sa/p{i}")).ok();
                p
            })
            .collect();
        run(new_peer, scale(500), |n| (f.new_peer)(&engine, &peers, n));
        let times = scale(if size > 100 { 5 } else { 50 });
        run(configure_name, times, |n| (f.configure)(&compiled, n));
        if size == 10 {
            run("case_compile_10", scale(20), |n| {
                case_compile_10(&authoring, n)
            });
        }
    }
}
