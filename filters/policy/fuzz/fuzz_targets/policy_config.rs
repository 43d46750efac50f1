//! The authorization filter's Cedar configuration: arbitrary bytes as the
//! engine's JSON configuration, and arbitrary text as the policies of an
//! otherwise valid one (built by the tests' one configuration function).
//! Never panics; an engine that builds decides a fixed set of requests
//! without panicking, and with the default `require_peer_identity` never
//! allows a request that has no peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::SpiffeId;
use meshward_policy::{PolicyEngine, RequestFacts};

#[path = "../../../../tests/support/src/authz_config.rs"]
mod authz_config;

fn requests() -> Vec<(RequestFacts, bool)> {
    let peer = SpiffeId::parse("spiffe://example.org/ns/shop/sa/web").expect("fixed id");
    vec![
        (
            RequestFacts::new("GET", "catalog.shop.svc", "/api/items?x=1").with_peer(peer.clone()),
            true,
        ),
        (
            RequestFacts::new("DELETE", "admin.example.com:8443", "/admin")
                .with_peer(peer)
                .with_header("x-debug", "1"),
            true,
        ),
        (RequestFacts::new("GET", "catalog.shop.svc", "/"), false),
    ]
}

fuzz_target!(|data: &[u8]| {
    let (engine, peer_required) = match data.split_first() {
        Some((0, rest)) => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let authoring = serde_json::json!({"cedar": {"policies": text}});
            let filter: serde_json::Value =
                serde_json::from_str(&authz_config::authz_filter_config(&authoring))
                    .expect("own output");
            let cedar = filter.get("cedar").expect("a cedar member").to_string();
            (PolicyEngine::from_config(cedar.as_bytes()), true)
        }
        Some((_, rest)) => (PolicyEngine::from_config(rest), false),
        None => return,
    };
    let Ok(engine) = engine else { return };
    let _ = engine.policy_ids();
    for (facts, has_peer) in requests() {
        let d = engine.decide(&facts);
        if peer_required && !has_peer {
            assert!(!d.allowed, "a request with no peer was allowed");
        }
    }
});
