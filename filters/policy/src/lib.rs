//! Zero-trust L7 authorization for meshward's filters, over policies
//! written in Cedar and compiled on the host.
//!
//! Policies are parsed and strictly validated by Cedar itself on the host
//! (`meshward-policy-cedar`, `meshward compile`), and reach the filter in
//! Cedar's JSON policy format, with the action hierarchy of the schema. A
//! [`PolicyEngine`] is built once per configuration: the policies are
//! lowered to a compact form (literals such as `ip(...)` and
//! `datetime(...)` parsed once, `like` patterns split) and indexed by the
//! entities their scopes name; a policy using a construct the evaluator
//! does not implement is refused, never approximated. Each request,
//! described by host-agnostic [`RequestFacts`], then gets a [`Decision`]
//! with its reason: the determining policy ids, or the errors. Nothing of
//! the request is built as Cedar values; attributes are computed from the
//! facts when a policy reads them.
//!
//! Cedar's semantics hold throughout, and a differential test holds the
//! evaluator to Cedar's own answers: default deny, a satisfied forbid wins
//! over any permit, and a permit whose evaluation errors is not satisfied.
//! One rule is added: a forbid whose evaluation errors denies
//! ([`Reason::PolicyError`]), since the filter cannot re-check what it is
//! handed against the schema; the Cedar reference applies the same rule.
//! There is no Cedar, no proxy-wasm and no I/O here.
//!
//! With the `testing` feature (for tests, benches and tools, never for a
//! filter) the crate also exports the policy test-case format (`Suite`), run
//! through the `Decide` trait so that other implementations (the Cedar
//! reference, the compiled filter in a host) are checked against the same
//! cases.

#![forbid(unsafe_code)]

mod authority;
#[cfg(any(test, feature = "testing"))]
mod cases;
mod config;
mod diag;
mod engine;
mod eval;
mod facts;
mod path;
pub mod view;

#[cfg(any(test, feature = "testing"))]
pub use self::cases::{Case, CaseFailure, CaseRequest, Decide, Expect, Suite, Verdict, run_suite};
pub use self::{
    authority::AuthorityError,
    config::{COMPILED_FORMAT, CompiledConfig, CompiledPolicy, ConfigError, EntityRefJson, Mode},
    diag::{ConfigDiagnostic, SourceLocation, line_column},
    engine::{Decision, Explanation, PolicyEngine, PolicyId, Reason, precheck},
    facts::{Headers, InvalidRequest, RequestFacts},
    path::{EscapedSlashes, NormalPath, PathError, PathOptions, normalize_path},
};
