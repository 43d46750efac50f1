//! Request building from arbitrary methods, authorities, paths, headers
//! and query strings (`RequestFacts::from_raw`), and decisions on them,
//! against the shipped walk-around policies: never panics; an invalid
//! request is denied; the evaluator (`PolicyEngine`, on the policies
//! compiled by `meshward-policy-cedar`) decides as Cedar's own authorizer
//! (`CedarEngine`, the reference) does; a forwarded path is the one that
//! was decided.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use meshward_identity::SpiffeId;
use meshward_policy::{EscapedSlashes, PathOptions, PolicyEngine, RequestFacts, normalize_path};
use meshward_policy_cedar::CedarEngine;

const POLICIES: &str = include_str!("../../../../policies/walkaround.cedar");

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a [u8],
    authority: &'a [u8],
    path: &'a [u8],
    headers: Vec<(&'a str, &'a [u8])>,
    peer: Option<&'a str>,
    merge: bool,
    keep_escaped: bool,
    mtls: bool,
}

fuzz_target!(|input: Input<'_>| {
    static ENGINES: OnceLock<(PolicyEngine, CedarEngine)> = OnceLock::new();
    let (engine, cedar) = ENGINES.get_or_init(|| {
        (
            meshward_policy_cedar::engine_from_policies(POLICIES).expect("fixed policies"),
            CedarEngine::from_policies(POLICIES).expect("fixed policies"),
        )
    });
    let opts = PathOptions::default()
        .merge_slashes(input.merge)
        .escaped_slashes(if input.keep_escaped {
            EscapedSlashes::Keep
        } else {
            EscapedSlashes::Refuse
        });
    let mut facts = RequestFacts::from_raw(input.method, input.authority, input.path, &opts);
    for (k, v) in input.headers.iter().take(16) {
        facts.headers.push(*k, *v);
    }
    facts.mtls = input.mtls;
    if let Some(peer) = input.peer.and_then(|p| SpiffeId::parse(p).ok()) {
        facts = facts.with_peer(peer);
    }
    let decision = engine.decide(&facts);
    if facts.invalid().is_some() {
        assert!(!decision.allowed, "an invalid request was allowed");
    } else {
        // The decided path is a normal form, and it is what is forwarded.
        let decided = normalize_path(&facts.path, &opts).expect("decided path has a normal form");
        assert!(
            !decided.changed(),
            "decided on `{}`, not a normal form",
            facts.path
        );
        if let Some(forwarded) = facts.rewritten_path() {
            let f = normalize_path(forwarded, &opts).expect("forwarded path has a normal form");
            assert_eq!(
                f.path(),
                facts.path,
                "forwarded a path other than the decided one"
            );
        }
    }
    // Plain Cedar, every policy evaluated: no index on either side of
    // the comparison is trusted.
    let reference = cedar.decide_unindexed(&facts);
    assert_eq!(
        (
            decision.allowed,
            decision.reason,
            &decision.determining,
            decision.errors.len()
        ),
        (
            reference.allowed,
            reference.reason,
            &reference.determining,
            reference.errors.len()
        ),
        "the evaluator and Cedar disagree on {facts:?}: {decision:?} vs {reference:?}"
    );
});
