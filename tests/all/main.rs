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
mod differential;
mod envoy_configs;
mod faults;
mod fuzz_regressions;
mod harness_conformance;
mod identity_e2e;
mod istio;
mod layering;
mod policy_suites;
mod soak;
mod wasm_imports;
