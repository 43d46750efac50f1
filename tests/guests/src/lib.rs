//! Test rig: guest modules for the harness's tests and benches, built by
//! this crate's build script. They are not meshward's filters (those are in
//! `meshward-filter-modules`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The conformance filter (`tests/guests/conformance-filter`): exercises
/// every proxy-wasm host call so two hosts can be held to the same behaviour.
pub fn conformance_filter() -> PathBuf {
    dir().join("meshward_conformance_filter.wasm")
}

/// The fidelity filter (`tests/guests/fidelity-filter`, Rust SDK): logs
/// every callback and acts on `x-fid-*` request headers, for the recorded
/// differential corpus against real Envoy.
pub fn fidelity_filter() -> PathBuf {
    dir().join("meshward_fidelity_filter.wasm")
}

/// The folder the guests were built into.
pub fn dir() -> &'static Path {
    Path::new(env!("MESHWARD_WASM_DIR"))
}
