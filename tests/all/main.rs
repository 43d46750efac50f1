//! meshward's integration tests, in one binary.

mod envoy_configs;
mod harness_conformance;
mod identity_e2e;
mod wasm_imports;
