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
