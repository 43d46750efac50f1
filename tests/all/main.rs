//! meshward's integration tests, in one binary.

// Test code: a failed step should stop the test with its message, and the
// helpers outside `#[test]` functions are test code too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial;
mod authz_e2e;
mod authz_harness;
mod chain_harness;
mod differential;
mod dynamic_module;
mod envoy_configs;
mod envoy_ecds;
mod envoy_examples;
mod faults;
mod fidelity;
mod fuzz_regressions;
mod harness_conformance;
mod identity_e2e;
mod istio;
mod istio_rbac;
mod layering;
mod mtls_module;
mod policy_suites;
mod soak;
mod suites_three_ways;
mod wasm_imports;

/// An authz filter configuration with its Cedar text compiled, as
/// `meshward compile` hands it to the filter.
pub(crate) fn compiled(config: impl std::fmt::Display) -> String {
    meshward_policy_cedar::compile_filter_config(&config.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}
