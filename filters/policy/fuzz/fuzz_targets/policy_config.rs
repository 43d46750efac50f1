//! The authorization filter's policy configuration, on both sides of
//! compilation:
//!
//! - first byte 0: the rest as Cedar text in an otherwise valid filter
//!   configuration, compiled by the tests' one configuration function
//!   (`meshward_policy_cedar::compile_filter_config`). Never panics; what
//!   compiles loads into the evaluator, and on a fixed set of requests the
//!   evaluator decides as Cedar's own authorizer (`CedarEngine`) does;
//! - first byte 1: the rest as any JSON handed to the compiler: never
//!   panics, and what it returns loads;
//! - otherwise: the rest as the evaluator's compiled configuration
//!   (`PolicyEngine::from_config`, what the filter runs on arbitrary
//!   plugin configuration bytes): never panics; an engine that loads
//!   decides the fixed requests without panicking.
//!
//! With `require_peer_identity` at its default, no engine allows a request
//! that has no peer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, RequestFacts};
use meshward_policy_cedar::CedarEngine;

#[path = "../../../../tests/support/src/authz_config.rs"]
#[expect(dead_code, reason = "only the fallible form is used here")]
mod authz_config;

fn requests() -> &'static [(RequestFacts, bool)] {
    static REQUESTS: OnceLock<Vec<(RequestFacts, bool)>> = OnceLock::new();
    REQUESTS.get_or_init(|| {
        let peer = SpiffeId::parse("spiffe://example.org/ns/shop/sa/web").expect("fixed id");
        vec![
            (
                RequestFacts::new("GET", "catalog.shop.svc", "/api/items?x=1")
                    .with_peer(peer.clone()),
                true,
            ),
            (
                RequestFacts::new("DELETE", "admin.example.com:8443", "/admin")
                    .with_peer(peer.clone())
                    .with_header("x-debug", "1"),
                true,
            ),
            (
                RequestFacts::new("POST", "catalog.shop.svc:8080", "/api/orders/../admin")
                    .with_peer(peer),
                true,
            ),
            (RequestFacts::new("GET", "catalog.shop.svc", "/"), false),
        ]
    })
}

fn decide_all(engine: &PolicyEngine) {
    let _ = engine.policy_ids();
    for (facts, has_peer) in requests() {
        let d = engine.decide(facts);
        if engine.requires_peer_identity() && !has_peer {
            assert!(!d.allowed, "a request with no peer was allowed");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let authoring = serde_json::json!({"cedar": {"policies": text}});
            // Most text does not compile; Cedar's own engine (which parses
            // the schema again) is built only for what does.
            let Ok(compiled) = authz_config::try_authz_filter_config(&authoring) else {
                return;
            };
            let reference = CedarEngine::from_policies(text)
                .expect("Cedar refuses policies the compiler accepted");
            let filter: serde_json::Value =
                serde_json::from_str(&compiled).expect("the compiler's output is JSON");
            let cedar = filter.get("cedar").expect("a cedar member").to_string();
            let engine = PolicyEngine::from_config(cedar.as_bytes())
                .expect("the evaluator refuses the compiler's output");
            assert!(
                engine.requires_peer_identity(),
                "the default is to require a peer"
            );
            decide_all(&engine);
            for (facts, _) in requests() {
                let (d, r) = (engine.decide(facts), reference.decide(facts));
                assert_eq!(
                    (d.allowed, d.reason, &d.determining),
                    (r.allowed, r.reason, &r.determining),
                    "the evaluator and Cedar disagree on {facts:?}: {d:?} vs {r:?}"
                );
            }
        }
        Some((1, rest)) => {
            let Ok(json) = std::str::from_utf8(rest) else {
                return;
            };
            let Ok(out) = meshward_policy_cedar::compile_filter_config(json) else {
                return;
            };
            let value: serde_json::Value =
                serde_json::from_str(&out).expect("the compiler's output is JSON");
            let part = value.get("cedar").unwrap_or(&value).to_string();
            let engine = PolicyEngine::from_config(part.as_bytes())
                .expect("the evaluator refuses the compiler's output");
            decide_all(&engine);
        }
        Some((_, rest)) => {
            if let Ok(engine) = PolicyEngine::from_config(rest) {
                decide_all(&engine);
            }
        }
        None => {}
    }
});
