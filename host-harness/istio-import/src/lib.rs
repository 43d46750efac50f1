//! Translates Istio AuthorizationPolicy YAML into equivalent Cedar policies
//! for meshward's schema (`policies/meshward.cedarschema`).
//!
//! ALLOW and DENY policies translate with their sources (principals,
//! namespaces, IP blocks, request principals), operations (hosts, ports,
//! methods, paths with prefix, suffix and presence matches), `when`
//! conditions (headers, claims, source address and namespace, destination
//! port, SNI...) and every `not` form. What has no equivalent (CUSTOM and
//! AUDIT actions, `remoteIpBlocks`, path templates, gateway `targetRef`s,
//! prefix matches on list-valued claims) is an error naming the policy, never
//! a silent approximation: an authorization policy that is almost right is
//! wrong.
//!
//! Differences that remain, by design: hosts are matched without their port
//! (the schema's `Mesh::Host`), trust-domain aliases are not applied to
//! principals, and requests without a peer identity are denied by the engine
//! unless it is configured with `require_peer_identity: false`, where Istio
//! would evaluate them.

#![forbid(unsafe_code)]

mod model;
mod translate;

use std::collections::BTreeMap;

/// Which policies to translate: by default all of them, as if they all applied
/// to the workload; with a `workload`, only those Istio would apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Istio's root namespace, whose policies apply mesh-wide.
    pub root_namespace: String,
    /// The workload the filter will run in front of.
    pub workload: Option<Workload>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            root_namespace: "istio-system".to_owned(),
            workload: None,
        }
    }
}

/// A workload, as Istio selects it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// Its pod labels.
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// A workload in `namespace` with these labels.
    pub fn new(namespace: &str, labels: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            labels: labels.into_iter().collect(),
        }
    }
}

/// A translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Imported {
    /// The Cedar policies, validated against meshward's schema. Each has the
    /// id `<namespace>/<name>/<rule index>`.
    pub cedar: String,
    /// The policies translated, as `<namespace>/<name>`.
    pub translated: Vec<String>,
    /// Documents left out, each with why (another kind, or a policy that does
    /// not apply to the workload).
    pub skipped: Vec<String>,
}

/// Why a translation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is not YAML of the expected shape.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// The policy uses something with no Cedar equivalent here.
    #[error("policy `{policy}`: {what} cannot be translated")]
    Unsupported {
        /// `<namespace>/<name>`.
        policy: String,
        /// What.
        what: String,
    },
    /// A value is malformed.
    #[error("policy `{policy}`: `{field}` value `{value}` {reason}")]
    BadValue {
        /// `<namespace>/<name>`.
        policy: String,
        /// The field or condition key.
        field: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The translation does not validate (a bug in this importer).
    #[error("the translation does not validate: {0}")]
    Invalid(String),
}

/// Translates a YAML stream of AuthorizationPolicy documents (or `kind: List`)
/// into Cedar.
pub fn import(yaml: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    translate::import(yaml, options)
}

#[cfg(test)]
mod tests;
