//! Zero-trust L7 authorization in Cedar, for meshward's filters.
//!
//! A [`PolicyEngine`] is built once per configuration: the Cedar schema
//! (`policies/meshward.cedarschema` unless the configuration brings its own)
//! is parsed, the policies are parsed and strictly validated against it, and
//! indexed by the entities their scopes name. Each request, described by
//! host-agnostic [`RequestFacts`], then gets a [`Decision`] with its reason:
//! the determining policy ids, or the errors.
//!
//! Cedar's semantics hold throughout: default deny, a satisfied forbid wins
//! over any permit, and a policy whose evaluation errors is not satisfied, so
//! errors never allow. There is no proxy-wasm and no I/O here: the same code
//! runs natively, in the wasmtime harness and inside Envoy.
//!
//! With the `testing` feature (for tests, benches and tools, never for a
//! filter) the crate also exports the policy test-case format (`Suite`), run
//! through the `Decide` trait so that another implementation (the compiled
//! filter in a host) can be checked against the same cases, and
//! `PolicyEngine::decide_unindexed`, the reference decision the index is
//! checked against.

#![forbid(unsafe_code)]

mod authority;
#[cfg(any(test, feature = "testing"))]
mod cases;
mod config;
mod diag;
mod engine;
mod facts;
mod index;
mod model;
mod path;

#[cfg(any(test, feature = "testing"))]
pub use self::cases::{Case, CaseFailure, CaseRequest, Decide, Expect, Suite, Verdict, run_suite};
pub use self::{
    authority::AuthorityError,
    config::{ConfigError, Mode, SHIPPED_SCHEMA},
    diag::{ConfigDiagnostic, SourceLocation},
    engine::{Decision, PolicyEngine, PolicyId, Reason},
    facts::{Headers, InvalidRequest, RequestFacts},
    path::{EscapedSlashes, NormalPath, PathError, PathOptions, normalize_path},
};
