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
//! [`cases`](Suite) is the policy test-case format, run through the
//! [`Decide`] trait so that another implementation (the compiled filter in a
//! host) can be checked against the same cases.

#![forbid(unsafe_code)]

mod authority;
mod cases;
mod config;
mod diag;
mod engine;
mod facts;
mod index;
mod model;
mod path;

pub use self::{
    authority::AuthorityError,
    cases::{Case, CaseFailure, CaseRequest, Decide, Expect, Suite, Verdict, run_suite},
    config::{ConfigError, Mode, SHIPPED_SCHEMA},
    engine::{Decision, PolicyEngine, PolicyId, Reason},
    facts::{Headers, InvalidRequest, RequestFacts},
    path::{EscapedSlashes, NormalPath, PathError, PathOptions, normalize_path},
};
