//! The authorization filter's JSON configuration through the compiled
//! filter: arbitrary bytes, or arbitrary policy text in an otherwise valid
//! configuration, compiled on the host first (the filter loads only
//! compiled policies; text that does not compile is handed over as it is,
//! and must be refused). A configuration whose policies the native
//! evaluator refuses lets no request through; one it loads, the filter
//! loads too; nothing fails the VM.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshward_harness::{Filter, Host, PluginConfig, Properties, Request};
use meshward_harness_fuzz::authz_config;
use meshward_policy::PolicyEngine;

const WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../target/wasm32-wasip1/filter/meshward_authz_filter.wasm"
);

fuzz_target!(|data: &[u8]| {
    static FILTER: OnceLock<Filter> = OnceLock::new();
    let filter = FILTER.get_or_init(|| {
        Host::new()
            .expect("engine")
            .load_file(WASM)
            .expect("run scripts/build-wasm first")
    });
    let config = match data.split_first() {
        Some((0, rest)) => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let authoring = serde_json::json!({"cedar": {"policies": text}});
            authz_config::try_authz_filter_config(&authoring)
                .unwrap_or_else(|_| authoring.to_string())
                .into_bytes()
        }
        Some((_, rest)) => rest.to_vec(),
        None => return,
    };
    // The native verdict on the engine part of the configuration.
    let native_ok = serde_json::from_slice::<serde_json::Value>(&config)
        .ok()
        .and_then(|v| v.get("cedar").map(ToString::to_string))
        .is_some_and(|cedar| PolicyEngine::from_config(cedar.as_bytes()).is_ok());
    let started = filter.start(PluginConfig::new().configuration(config).properties(
        &Properties::istio_inbound_mtls("spiffe://example.org/ns/shop/sa/web", ""),
    ));
    let mut plugin = match started {
        Ok(p) => p,
        // Refused: Envoy would not load the plugin either. Arbitrary bytes
        // may be refused for their other members; compiled policies alone
        // must load.
        Err(meshward_harness::Error::ConfigureRejected) => {
            assert!(
                !(native_ok && data.first() == Some(&0)),
                "the filter refused policies the compiler and the evaluator accept"
            );
            return;
        }
        Err(e) => panic!("the filter failed on a configuration: {e}"),
    };
    let e = plugin.send(Request::get("/").set_header(":authority", "catalog.shop.svc"));
    assert!(e.failure.is_none(), "the VM failed: {:?}", e.failure);
    if !native_ok {
        assert!(
            !e.forwarded(),
            "a configuration the engine refuses let a request through"
        );
    }
});
