//! The built `meshward` runs from a folder that is not its checkout: it
//! validates policies with the schema compiled into it, and says where a
//! policy is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn meshward_in_empty_folder(args: &[&str], files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meshward"))
        .current_dir(dir.path())
        // Nothing may lead it back to the source tree.
        .env_remove("CARGO_MANIFEST_DIR")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn validates_a_good_policy_from_an_empty_folder() {
    let (ok, text) = meshward_in_empty_folder(
        &["validate", "p.cedar"],
        &[(
            "p.cedar",
            "permit(principal, action == Mesh::Action::\"GET\", resource);\n",
        )],
    );
    assert!(ok, "{text}");
}

#[test]
fn refuses_a_bad_policy_with_its_location() {
    let (ok, text) = meshward_in_empty_folder(
        &["validate", "p.cedar"],
        &[(
            "p.cedar",
            "permit(principal, action, resource)\n  when { context.nope == 1 };\n",
        )],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("p.cedar:"), "no file:line:column in {text}");
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let (ok, text) = meshward_in_empty_folder(&["validate", "absent.cedar"], &[]);
    assert!(!ok);
    assert!(text.contains("absent.cedar"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// `meshward` copied out of the build (as `cargo install` would put it),
/// run from an empty folder with a bare environment: it issues certificates,
/// validates, tests a suite, explains a decision and runs the demo on the
/// data path, needing neither the checkout nor the target folder.
#[test]
fn an_installed_copy_works_from_an_empty_folder() {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("meshward");
    std::fs::copy(env!("CARGO_BIN_EXE_meshward"), &bin).unwrap();
    let work = tempfile::tempdir().unwrap();
    let policy = r#"@id("frontend-reads")
permit (principal == Mesh::Workload::"spiffe://example.org/ns/web/sa/frontend", action in Mesh::Action::"read", resource);
"#;
    let suite = r#"{"description": "d", "policies": ["p.cedar"], "cases": [
  {"name": "reads", "request": {"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "GET", "host": "a", "path": "/x"},
   "expect": {"decision": "allow", "determining": ["frontend-reads"]}},
  {"name": "writes", "request": {"peer": "spiffe://example.org/ns/web/sa/frontend", "method": "POST", "host": "a", "path": "/x"},
   "expect": {"decision": "deny", "reason": "no_permit"}}
]}"#;
    std::fs::write(work.path().join("p.cedar"), policy).unwrap();
    std::fs::write(work.path().join("s.cases.json"), suite).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .current_dir(work.path())
            .env_clear()
            .env("HOME", work.path())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "meshward {args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        text
    };
    run(&[
        "certs",
        "--san",
        "localhost",
        "spiffe://example.org/ns/web/sa/frontend",
    ]);
    assert!(work.path().join("meshward-certs/ca.pem").is_file());
    run(&["validate", "p.cedar"]);
    let text = run(&["test", "s.cases.json"]);
    assert!(text.contains("2 passed, 0 failed"), "{text}");
    let text = run(&[
        "explain",
        "p.cedar",
        "--peer",
        "spiffe://example.org/ns/web/sa/frontend",
        "--path",
        "/x",
    ]);
    assert!(text.contains("decision: ALLOW"), "{text}");
    let text = run(&["demo"]);
    assert!(text.contains("DENIED"), "{text}");
    assert!(text.contains("ALLOWED"), "{text}");
}
