//! Configuring from the compiled text: the policies are lowered as they are
//! read, and the refusals are the ones the whole set gives.

use super::*;

fn permit(effect: &str, body: &str) -> String {
    format!(
        r#"{{"effect": "{effect}", "principal": {{"op": "All"}}, "action": {{"op": "All"}},
            "resource": {{"op": "All"}}, "conditions": [{{"kind": "when", "body": {body}}}]}}"#
    )
}

fn config(format: &str, policies: &[(&str, String)]) -> String {
    let policies: Vec<String> = policies
        .iter()
        .map(|(id, p)| format!(r#"{{"id": "{id}", "policy": {p}}}"#))
        .collect();
    format!(
        r#"{{"format": "{format}", "policies": [{}], "actions": {{"GET": []}}}}"#,
        policies.join(",")
    )
}

const TRUE: &str = r#"{"Value": true}"#;
const READS_TAG: &str = r#"{"hasTag": {"left": {".": {"left": {"Var": "context"}, "attr": "headers"}}, "right": {"Value": "x-team"}}}"#;

#[test]
fn a_streamed_configuration_decides_as_the_compiled_one() {
    let text = config(
        COMPILED_FORMAT,
        &[
            ("a", permit("permit", TRUE)),
            ("b", permit("forbid", READS_TAG)),
        ],
    );
    let streamed = PolicyEngine::from_config(text.as_bytes()).unwrap();
    let compiled: CompiledConfig = serde_json::from_str(&text).unwrap();
    let whole = PolicyEngine::from_compiled(&compiled).unwrap();
    assert_eq!(streamed.policy_ids(), whole.policy_ids());
    assert_eq!(streamed.policy_ids().len(), 2);
    // The tag names come from every policy, read one at a time.
    assert!(streamed.tags.keeps("x-team"));
    assert!(!streamed.tags.keeps("x-other"));
    assert_eq!(format!("{:?}", streamed.tags), format!("{:?}", whole.tags));
}

#[test]
fn a_duplicate_id_is_refused_after_streaming() {
    let text = config(
        COMPILED_FORMAT,
        &[
            ("a", permit("permit", TRUE)),
            ("b", permit("permit", TRUE)),
            ("a", permit("forbid", TRUE)),
        ],
    );
    let e = PolicyEngine::from_config(text.as_bytes()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::DuplicateId(id) if id == "a"),
        "{e:?}"
    );
}

#[test]
fn the_first_refusal_wins_and_later_policies_are_only_read() {
    let text = config(
        COMPILED_FORMAT,
        &[
            ("ok", permit("permit", TRUE)),
            ("odd", permit("maybe", TRUE)),
            ("ok", permit("permit", TRUE)),
        ],
    );
    let e = PolicyEngine::from_config(text.as_bytes()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Unsupported { policy, construct } if policy == "odd" && construct.contains("maybe")),
        "{e:?}"
    );
}

#[test]
fn an_unknown_format_is_refused_before_its_policies() {
    let text = config("meshward-policy/9", &[("odd", permit("maybe", TRUE))]);
    let e = PolicyEngine::from_config(text.as_bytes()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Json(m) if m.contains("unknown compiled format")),
        "{e:?}"
    );
}

#[test]
fn a_policy_list_that_is_not_a_list_is_a_json_error() {
    let text = format!(r#"{{"format": "{COMPILED_FORMAT}", "policies": {{}}, "actions": {{}}}}"#);
    let e = PolicyEngine::from_config(text.as_bytes()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Json(m) if m.contains("a list of compiled policies")),
        "{e:?}"
    );
}

#[test]
fn reads_header_names_the_headers_a_policy_reads_in_any_case() {
    let text = config(COMPILED_FORMAT, &[("b", permit("forbid", READS_TAG))]);
    let engine = PolicyEngine::from_config(text.as_bytes()).unwrap();
    for name in ["x-team", "X-Team", "X-TEAM"] {
        assert!(engine.reads_header(name), "{name}");
    }
    for name in ["x-teams", "user-agent", ""] {
        assert!(!engine.reads_header(name), "{name}");
    }
}

#[test]
fn a_header_read_by_a_policy_is_found_whatever_its_case() {
    let text = config(COMPILED_FORMAT, &[("b", permit("forbid", READS_TAG))]);
    let engine = PolicyEngine::from_config(text.as_bytes()).unwrap();
    let spiffe = meshward_identity::SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap();
    let plain = RequestFacts::new("GET", "svc.local", "/").with_peer(spiffe);
    // No permit applies either way; the forbid's `hasTag` decides whether
    // the forbid is the reason.
    let without = engine.decide(&plain);
    assert_eq!(without.reason, Reason::NoPermit, "{without:?}");
    let with = engine.decide(&plain.clone().with_header("X-Team", "core"));
    assert_eq!(with.reason, Reason::Forbidden, "{with:?}");
    // An unread header that is not UTF-8 makes no request invalid.
    let odd = engine.decide(&plain.with_header("x-other", [0xff_u8]));
    assert_eq!(odd.reason, Reason::NoPermit, "{odd:?}");
}

#[test]
fn headers_read_keeps_only_what_a_policy_reads() {
    let text = config(COMPILED_FORMAT, &[("b", permit("forbid", READS_TAG))]);
    let engine = PolicyEngine::from_config(text.as_bytes()).unwrap();
    let all: Vec<(String, Vec<u8>)> = [
        (":path", "/"),
        ("x-team", "core"),
        ("X-Team", "ops"),
        ("user-agent", "curl"),
        ("x-team-copy", "no"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
    .collect();
    let read = engine.headers_read(&all, &[]);
    let kept: Vec<(&str, &[u8])> = read.iter().collect();
    assert_eq!(
        kept,
        [("x-team", &b"core"[..]), ("X-Team", &b"ops"[..])],
        "in arrival order, any case"
    );
    // A name left out is left out whatever a policy reads.
    let read = engine.headers_read(&all, &["X-Team"]);
    let kept: Vec<(&str, &[u8])> = read.iter().collect();
    assert_eq!(kept, [("x-team", &b"core"[..])]);
}
