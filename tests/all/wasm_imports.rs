//! Envoy can load a module only if every import is one it provides. Some
//! crates pull in wasm-bindgen on wasm32 targets; this catches that before a
//! user's Envoy does.

use meshward_tests::{filter_packages, filter_wasm, import_allowed};
use wasmparser::{Parser, Payload, TypeRef};

fn imports(bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ImportSection(reader) = payload.expect("the module parses") {
            for import in reader {
                let import = import.expect("the import parses");
                if matches!(import.ty, TypeRef::Func(_)) {
                    out.push((import.module.to_owned(), import.name.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn every_filter_imports_only_proxy_wasm_and_wasi() {
    let packages = filter_packages();
    assert!(
        packages.iter().any(|p| p == "meshward-identity-filter"),
        "found filters: {packages:?}"
    );
    for package in packages {
        let bytes = std::fs::read(filter_wasm(&package)).unwrap();
        let all = imports(&bytes);
        assert!(
            !all.is_empty(),
            "{package} imports nothing: not a proxy-wasm filter?"
        );
        let bad: Vec<_> = all.iter().filter(|(m, n)| !import_allowed(m, n)).collect();
        assert!(
            bad.is_empty(),
            "{package} imports functions Envoy does not provide: {bad:?}"
        );
    }
}

#[test]
fn the_check_rejects_foreign_imports() {
    assert!(import_allowed("env", "proxy_log"));
    assert!(import_allowed("wasi_snapshot_preview1", "fd_write"));
    assert!(!import_allowed(
        "__wbindgen_placeholder__",
        "__wbindgen_describe"
    ));
    assert!(!import_allowed("env", "abort"));
    assert!(!import_allowed("wasi_snapshot_preview2", "fd_write"));
}
