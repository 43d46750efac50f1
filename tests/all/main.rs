//! meshward's integration tests, in one binary.

mod envoy_configs;
mod identity_e2e;
mod wasm_imports;
