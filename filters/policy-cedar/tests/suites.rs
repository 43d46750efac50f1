//! Runs every policy suite in `policies/` (`*.cases.json`) through Cedar
//! (indexed and unindexed) and through the compiled evaluator the filter
//! runs, with the same `Decide` runner the compiled filter is driven by.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::path::{Path, PathBuf};

use meshward_policy::{Decide, Decision, PolicyEngine, RequestFacts, Suite, run_suite};
use meshward_policy_cedar::{CedarEngine, engine_from_config};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn suites(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            suites(&path, out);
        } else if path.to_string_lossy().ends_with(".cases.json") {
            out.push(path);
        }
    }
}

/// Cedar, indexed.
struct Indexed(CedarEngine);

impl Decide for Indexed {
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String> {
        Ok(self.0.decide(facts))
    }
}

/// Cedar without the index: every policy evaluated.
struct Unindexed(CedarEngine);

impl Decide for Unindexed {
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String> {
        Ok(self.0.decide_unindexed(facts))
    }
}

fn load(path: &Path) -> (Suite, String) {
    let suite = Suite::from_json(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().unwrap();
    let policies: String = suite
        .policies
        .iter()
        .map(|p| std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect::<Vec<_>>()
        .join("\n");
    let config = suite.config_json(&policies);
    (suite, config)
}

#[test]
fn every_suite_passes_through_cedar_and_the_evaluator() {
    let mut paths = Vec::new();
    suites(&policies_dir(), &mut paths);
    paths.sort();
    assert!(paths.len() >= 4, "suites found: {paths:?}");
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in &paths {
        let (suite, config) = load(path);
        assert!(!suite.cases.is_empty(), "{} has no cases", path.display());
        cases += suite.cases.len();
        let engine = CedarEngine::from_config(config.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut indexed = Indexed(engine);
        for f in run_suite(&mut indexed, &suite) {
            failures.push(format!("{} (cedar indexed): {f}", path.display()));
        }
        let mut evaluator: PolicyEngine = engine_from_config(config.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for f in run_suite(&mut evaluator, &suite) {
            failures.push(format!("{} (evaluator): {f}", path.display()));
        }
        let mut unindexed = Unindexed(CedarEngine::from_config(config.as_bytes()).unwrap());
        for f in run_suite(&mut unindexed, &suite) {
            failures.push(format!("{} (unindexed): {f}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} suites, {cases} cases", paths.len());
}

#[test]
fn the_shipped_schema_is_the_file_in_policies() {
    let on_disk = std::fs::read_to_string(policies_dir().join("meshward.cedarschema")).unwrap();
    assert_eq!(on_disk, meshward_policy_cedar::SHIPPED_SCHEMA);
}

#[test]
fn a_failing_case_is_reported() {
    let suite = Suite::from_json(
        r#"{"policies": [], "cases": [{"name": "wrong", "request": {"peer": "spiffe://td/ns/a/sa/b",
            "method": "GET", "host": "h", "path": "/"}, "expect": {"decision": "allow"}}]}"#,
    )
    .unwrap();
    let mut engine = engine_from_config(suite.config_json("").as_bytes()).unwrap();
    let failures = run_suite(&mut engine, &suite);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].to_string().contains("expected allow, got deny"),
        "{}",
        failures[0]
    );
}
