//! Support for meshward's integration tests: where the built filters are,
//! and what a filter module may import.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use meshward_envoy::workspace_root;

/// The folder `scripts/build-wasm` writes the filters to, or
/// `$MESHWARD_WASM_DIR`.
pub fn wasm_dir() -> PathBuf {
    std::env::var_os("MESHWARD_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/filter"))
}

/// The built module of the filter package `package` (e.g.
/// `meshward-identity-filter`).
///
/// # Panics
///
/// When the module has not been built: the tests need it, and a skipped
/// test would read as a pass.
pub fn filter_wasm(package: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: build the filters first with scripts/build-wasm (scripts/test does it)",
        path.display()
    );
    path
}

/// Every filter package in the workspace, i.e. every package with a
/// `cdylib` target, read from the crate manifests so a new filter cannot be
/// forgotten.
pub fn filter_packages() -> Vec<String> {
    let mut found = Vec::new();
    let root = workspace_root();
    for dir in ["filters", "host-harness"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(manifest) = std::fs::read_to_string(entry.path().join("Cargo.toml")) else {
                continue;
            };
            if !manifest.contains("\"cdylib\"") {
                continue;
            }
            let name = manifest.lines().find_map(|l| {
                let rest = l.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_owned())
            });
            found.extend(name);
        }
    }
    found.sort();
    found
}

/// Whether a module import is one Envoy provides to filters: the proxy-wasm
/// ABI in module `env` and WASI preview1.
pub fn import_allowed(module: &str, name: &str) -> bool {
    (module == "env" && name.starts_with("proxy_")) || module == "wasi_snapshot_preview1"
}
