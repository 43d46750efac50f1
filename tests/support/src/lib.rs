//! Test rig: what meshward's integration tests share: where the built
//! modules are, what a filter module may import, and the workspace's crate
//! graph as `cargo metadata` reports it.

#![forbid(unsafe_code)]
// Test rig: a broken precondition (cargo cannot describe the workspace, a
// module is missing) must stop the test with its message, not be skipped.
#![allow(clippy::panic, clippy::indexing_slicing)]

mod authz_config;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

pub use self::authz_config::{authz_filter_config, try_authz_filter_config};
pub use meshward_envoy::workspace_root;

/// The built module of the filter or guest package `package` (e.g.
/// `meshward-identity-filter`), built by `meshward-filter-modules` or
/// `meshward-test-guests` before this crate was compiled.
///
/// # Panics
///
/// When `package` is neither a shipped filter nor a test guest: a typo must
/// fail the test, not skip it.
pub fn filter_wasm(package: &str) -> PathBuf {
    if let Some(module) = meshward_filter_modules::by_package(package) {
        return module.path();
    }
    let path = meshward_test_guests::dir().join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.is_file(),
        "{package} is neither a shipped filter nor a test guest ({} is missing)",
        path.display()
    );
    path
}

/// One workspace package as `cargo metadata` describes it.
#[derive(Debug, Clone)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its folder, relative to the workspace root.
    pub dir: PathBuf,
    /// Whether it builds a `cdylib` (a filter module).
    pub cdylib: bool,
    /// The workspace packages it depends on, as `(name, kind)` where kind is
    /// `normal`, `build` or `dev`.
    pub deps: Vec<(String, String)>,
}

/// Every workspace package, from `cargo metadata`.
///
/// # Panics
///
/// When cargo cannot describe the workspace.
pub fn workspace_packages() -> Vec<Package> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
            let dir = manifest
                .parent()
                .and_then(|d| d.strip_prefix(&root).ok())
                .map(PathBuf::from)
                .unwrap_or_default();
            let cdylib = p["targets"].as_array().into_iter().flatten().any(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == "cdylib"))
            });
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    names.contains(name).then(|| {
                        let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                        (name.to_owned(), kind)
                    })
                })
                .collect();
            Package {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                dir,
                cdylib,
                deps,
            }
        })
        .collect()
}

/// The shipped filters that are native shared objects for Envoy (dynamic
/// modules, `scripts/build-native-module`), never wasm.
pub const NATIVE_MODULES: &[&str] = &["meshward-dynamic-module"];

/// Every wasm filter package in the workspace (every package with a
/// `cdylib` target but the [`NATIVE_MODULES`]), read from the manifests so
/// a new filter cannot be forgotten.
pub fn filter_packages() -> Vec<String> {
    let mut found: Vec<String> = workspace_packages()
        .into_iter()
        .filter(|p| p.cdylib && !NATIVE_MODULES.contains(&p.name.as_str()))
        .map(|p| p.name)
        .collect();
    found.sort();
    found
}

/// Whether a module import is one Envoy provides to filters: the proxy-wasm
/// ABI in module `env` and WASI preview1.
pub fn import_allowed(module: &str, name: &str) -> bool {
    (module == "env" && name.starts_with("proxy_")) || module == "wasi_snapshot_preview1"
}
