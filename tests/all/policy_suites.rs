//! Every policy suite in `policies/` through two implementations, the native
//! engine and the compiled authorization filter in the wasmtime harness
//! (run by `meshward test`'s own runner, [`CompiledAuthz`]), which must both
//! meet every expectation and agree case by case on the decision, its
//! reason, the determining policies and the error count.

use std::path::{Path, PathBuf};

use meshward_cli::CompiledAuthz;
use meshward_envoy::workspace_root;
use meshward_harness::Host;
use meshward_policy::{Decide, Suite, run_suite};
use meshward_tests::filter_wasm;

fn suites() -> Vec<(PathBuf, Suite, String)> {
    let dir = workspace_root().join("policies");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".cases.json") {
            continue;
        }
        let suite = Suite::from_json(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let policies: String = suite
            .policies
            .iter()
            .map(|p| std::fs::read_to_string(dir.join(p)).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        found.push((path, suite, policies));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        found.len() >= 4,
        "expected the policy library's suites in {}",
        dir.display()
    );
    found
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn native_engine_and_compiled_filter_agree_on_every_suite() {
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap();
    let mut checked = 0;
    for (path, suite, policies) in suites() {
        let engine_config = suite.config_json(&policies);
        let mut native = meshward_policy_cedar::engine_from_config(engine_config.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let filter_config = crate::compiled(format!(
            r#"{{"cedar": {engine_config}, "peer_from": "identity_filter"}}"#
        ));
        let mut wasm = CompiledAuthz::new(&filter, filter_config);

        let failures = run_suite(&mut native, &suite);
        assert!(
            failures.is_empty(),
            "{} natively: {failures:#?}",
            name(&path)
        );
        let failures = run_suite(&mut wasm, &suite);
        assert!(
            failures.is_empty(),
            "{} in the harness: {failures:#?}",
            name(&path)
        );

        for case in &suite.cases {
            let facts = case.request.to_facts().unwrap();
            let a = Decide::decide(&mut native, &facts).unwrap();
            let b = wasm.decide(&facts).unwrap();
            assert_eq!(a, b, "{}: case `{}` differs", name(&path), case.name);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} cases");
}

#[test]
fn the_comparison_sees_a_wrong_decision() {
    // A filter configured with a policy set that differs from the suite's
    // must fail the suite: the harness side is really deciding.
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap();
    let (path, suite, _) = suites().remove(0);
    let mut wasm = CompiledAuthz::new(
        &filter,
        crate::compiled(
            r#"{"cedar": {"policies": "@id(\"everyone\") permit(principal, action, resource);"}, "peer_from": "identity_filter"}"#,
        ),
    );
    assert!(
        !run_suite(&mut wasm, &suite).is_empty(),
        "{} passed with allow-all",
        name(&path)
    );
}
