//! The workspace's layering, from `cargo metadata`: the folder says what a
//! crate is, product crates never depend on the test rig, the harness knows
//! no meshward crate, and ARCHITECTURE.md's crate graph is the real one.

use std::collections::BTreeSet;
use std::path::Path;

use meshward_tests::{Package, workspace_packages, workspace_root};

/// What a crate is, by its folder.
#[derive(Debug, PartialEq, Eq)]
enum Layer {
    Product,
    Rig,
}

fn layer(dir: &Path) -> Layer {
    if dir.starts_with("filters") || dir.starts_with("host-harness") {
        Layer::Product
    } else {
        Layer::Rig
    }
}

/// Product crates' normal and build dependencies must all be product crates;
/// dev-dependencies may use the rig (test code is not shipped).
fn layering_violations(packages: &[Package]) -> Vec<String> {
    let dir_of = |name: &str| {
        packages
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.dir.clone())
    };
    let mut bad = Vec::new();
    for p in packages.iter().filter(|p| layer(&p.dir) == Layer::Product) {
        for (dep, kind) in &p.deps {
            if kind == "dev" {
                continue;
            }
            if dir_of(dep).is_some_and(|d| layer(&d) == Layer::Rig) {
                bad.push(format!("{} ({kind}) -> {dep}", p.name));
            }
        }
    }
    bad
}

#[test]
fn product_crates_do_not_depend_on_the_test_rig() {
    let packages = workspace_packages();
    assert!(packages.len() > 5, "cargo metadata saw {packages:?}");
    let bad = layering_violations(&packages);
    assert!(
        bad.is_empty(),
        "product crates depend on the test rig: {bad:?}"
    );
}

#[test]
fn the_layering_check_catches_a_rig_dependency() {
    // The check itself must be able to fail: a product crate that gains a
    // rig dependency is reported.
    let mut packages = workspace_packages();
    let policy = packages
        .iter_mut()
        .find(|p| p.name == "meshward-policy")
        .unwrap();
    policy.deps.push(("meshward-envoy".into(), "normal".into()));
    assert_eq!(
        layering_violations(&packages),
        vec!["meshward-policy (normal) -> meshward-envoy".to_owned()]
    );
}

#[test]
fn the_harness_knows_no_meshward_crate() {
    let packages = workspace_packages();
    let harness = packages
        .iter()
        .find(|p| p.name == "meshward-harness")
        .unwrap();
    let own: Vec<_> = harness
        .deps
        .iter()
        .filter(|(_, kind)| kind != "dev")
        .collect();
    assert!(own.is_empty(), "meshward-harness depends on {own:?}");
}

#[test]
fn every_cdylib_is_a_shipped_filter_or_a_test_guest() {
    let built: BTreeSet<&str> = meshward_wasm_build::FILTERS
        .iter()
        .chain(meshward_wasm_build::GUESTS)
        .copied()
        .collect();
    // The native Envoy dynamic module is a shipped filter too, built for
    // the host by `scripts/build-native-module`, never for wasm32.
    for p in workspace_packages().iter().filter(|p| p.cdylib) {
        if meshward_tests::NATIVE_MODULES.contains(&p.name.as_str()) {
            assert!(
                p.dir.starts_with("filters"),
                "{}: shipped filters live in filters/",
                p.name
            );
            continue;
        }
        assert!(
            built.contains(p.name.as_str()),
            "{} builds a cdylib that meshward-wasm-build does not list",
            p.name
        );
        let shipped = meshward_wasm_build::FILTERS.contains(&p.name.as_str());
        assert_eq!(
            shipped,
            p.dir.starts_with("filters"),
            "{}: shipped filters live in filters/, test guests elsewhere",
            p.name
        );
    }
}

/// The edges of the crate graph in ARCHITECTURE.md: the lines `a -> b, c`
/// of its `crate-graph` block (normal dependencies between workspace crates).
fn documented_edges() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let block = doc
        .split("```crate-graph")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```crate-graph block");
    let mut edges = BTreeSet::new();
    for line in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (from, to) = line.split_once("->").expect("lines read `a -> b, c`");
        for dep in to.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            edges.insert((from.trim().to_owned(), dep.to_owned()));
        }
    }
    edges
}

#[test]
fn architecture_md_crate_graph_is_the_real_one() {
    let real: BTreeSet<(String, String)> = workspace_packages()
        .into_iter()
        .filter(|p| !matches!(p.name.as_str(), "meshward-tests" | "meshward-benches"))
        .flat_map(|p| {
            p.deps
                .into_iter()
                .filter(|(_, kind)| kind != "dev")
                .map(move |(dep, _)| (p.name.clone(), dep))
        })
        .collect();
    let documented = documented_edges();
    let missing: Vec<_> = real.difference(&documented).collect();
    let invented: Vec<_> = documented.difference(&real).collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "ARCHITECTURE.md's crate graph is wrong: missing {missing:?}, not in the code {invented:?}"
    );
}
