//! meshward's integration tests, in one binary.

mod authz_e2e;
mod authz_harness;
mod envoy_configs;
mod harness_conformance;
mod identity_e2e;
mod policy_suites;
mod wasm_imports;
