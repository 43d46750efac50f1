//! The harness-level fuzz oracles (`host-harness/harness/fuzz/src`) in the
//! normal test suite: every kept input in `tests/data/fuzz/<target>/`
//! (interesting corpus entries and any crash, once fixed), then a short
//! seeded random run, so a change that breaks an oracle fails here without
//! a fuzzer.

#[path = "../../host-harness/harness/fuzz/src/abi_guest.rs"]
mod abi_guest;
#[path = "../../host-harness/harness/fuzz/src/authz_diff.rs"]
mod authz_diff;

use meshward_harness::Host;
use meshward_policy::PolicyEngine;
use meshward_tests::{authz_filter_config, filter_wasm, workspace_root};
use rand::{Rng, SeedableRng};

/// The kept inputs of fuzz target `target`.
fn kept(target: &str) -> Vec<Vec<u8>> {
    let dir = workspace_root().join("tests/data/fuzz").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn random_inputs(seed: u64, n: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(0..max_len);
            (0..len).map(|_| rng.r#gen()).collect()
        })
        .collect()
}

#[test]
fn abi_boundary_kept_and_random_inputs() {
    let host = Host::new().unwrap();
    let inputs = kept("abi_boundary");
    assert!(!inputs.is_empty());
    for data in inputs.iter().chain(&random_inputs(14, 64, 400)) {
        abi_guest::check(&host, data);
    }
}

/// The oracle can fail: a module whose guest traps on a status the ABI
/// defines is reported.
#[test]
#[should_panic(expected = "the VM failed")]
fn abi_boundary_oracle_reports_a_failed_vm() {
    let host = Host::new().unwrap();
    // `proxy_grpc_cancel(0)` from `proxy_on_request_headers` names no call
    // and returns an error status; the check is made stricter than the ABI
    // (only 0 passes), so the guest traps and the oracle must say so.
    let wat = abi_guest::module(&[0, 0xc0, 28, 5]).replace("(i32.const 12)) ", "(i32.const 0)) ");
    let filter = host.load(wat.as_bytes()).unwrap();
    let mut plugin = filter.start(meshward_harness::PluginConfig::new()).unwrap();
    let e = plugin.send(meshward_harness::Request::get("/"));
    assert!(e.failure.is_none(), "the VM failed: {:?}", e.failure);
}

#[test]
fn authz_differential_kept_and_random_inputs() {
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap();
    // The filter's configuration, its Cedar compiled on the host; the
    // native evaluator loads the very compiled policies the filter gets.
    let config = authz_diff::config(authz_filter_config);
    let compiled = serde_json::from_str::<serde_json::Value>(&config).unwrap()["cedar"].to_string();
    let engine = PolicyEngine::from_config(compiled.as_bytes()).unwrap();
    let mut plugin = authz_diff::plugin(&filter, &config);
    let inputs = kept("authz_differential");
    assert!(!inputs.is_empty());
    for data in inputs.iter().chain(&random_inputs(14, 300, 40)) {
        authz_diff::check(&engine, &mut plugin, data);
    }
}
