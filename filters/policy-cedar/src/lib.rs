//! meshward's policies checked and compiled by Cedar, on the host.
//!
//! Policies are written in Cedar. Here, and only here (the CLI, tests and
//! tools link this crate; the filters never do), they are parsed and
//! strictly validated against the schema by Cedar itself, then compiled
//! into the form the filter loads ([`compile`], [`compile_filter_config`],
//! `meshward compile`): each policy in Cedar's JSON policy format (the
//! EST of `cedar_policy::Policy::to_json`) with its id, plus the action
//! hierarchy of the schema. Compiling also loads the result into
//! `meshward_policy::PolicyEngine`, so a policy the filter's evaluator
//! does not implement is refused here, naming the construct.
//!
//! [`CedarEngine`] decides with Cedar's own authorizer over Cedar entities
//! built from the request: the reference the evaluator is tested against
//! (see `tests/differential.rs`), with the same fail-closed rule for a
//! forbid whose evaluation errors.

#![forbid(unsafe_code)]

mod compile;
mod index;
mod located;
mod model;
mod reference;

pub use self::{
    compile::{
        AuthoringConfig, compile, compile_filter_config, engine_from_config, engine_from_policies,
    },
    reference::CedarEngine,
};

/// The schema shipped with meshward, used when a configuration names none.
pub const SHIPPED_SCHEMA: &str = include_str!("../../../policies/meshward.cedarschema");
