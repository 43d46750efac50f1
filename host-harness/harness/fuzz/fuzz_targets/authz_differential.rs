//! The compiled authorization filter in the harness decides as the native
//! engine does (see `src/authz_diff.rs` for the oracle). Slow: every input
//! goes through wasmtime.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use meshward_harness::{Host, Plugin};
use meshward_harness_fuzz::{authz_config, authz_diff};
use meshward_policy::PolicyEngine;

/// The authorization filter built by `scripts/build-wasm`.
const WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../target/wasm32-wasip1/filter/meshward_authz_filter.wasm"
);

thread_local! {
    static STATE: RefCell<(PolicyEngine, Plugin)> = RefCell::new({
        let filter = Host::new().expect("a wasm engine").load_file(WASM).expect("run scripts/build-wasm first");
        let config = authz_diff::config(authz_config::authz_filter_config);
        let cedar = serde_json::from_str::<serde_json::Value>(&config).expect("json")["cedar"].to_string();
        (PolicyEngine::from_config(cedar.as_bytes()).expect("policies"), authz_diff::plugin(&filter, &config))
    });
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let (engine, plugin) = &mut *s.borrow_mut();
        authz_diff::check(engine, plugin, data);
    });
});
