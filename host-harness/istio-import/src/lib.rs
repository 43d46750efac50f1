//! Translates Istio AuthorizationPolicy YAML into equivalent Cedar policies
//! for meshward's schema (`policies/meshward.cedarschema`).
//!
//! ALLOW and DENY policies translate with their sources (principals,
//! namespaces, service accounts, IP blocks, request principals), operations
//! (hosts, ports, methods, paths with prefix, suffix and presence matches),
//! `when` conditions (headers, claims, source address and namespace,
//! destination port, SNI...) and every `not` form, each matched as the RBAC
//! configuration Istio generates for it matches in Envoy: namespaces as
//! `/ns/<ns>/` anywhere in the peer's SPIFFE ID, request principals split at
//! the last `/` into issuer and subject, hosts against the authority as
//! sent (port included, case ignored), headers against their repeated values
//! joined with `,`, principals rewritten for the mesh's trust domain aliases.
//! `istio.io/dry-run` policies become a dry-run configuration.
//!
//! What has no exact equivalent (CUSTOM and AUDIT actions, `remoteIpBlocks`,
//! path templates, gateway `targetRef`s, prefix, suffix and presence matches
//! on claims, claim values a number or boolean would also spell, dry-run and
//! enforced policies in one import...) is an error naming the policy and the
//! field, never a silent approximation: an authorization policy that is almost
//! right is wrong.
//!
//! Requests without a peer identity (Istio's PERMISSIVE mode) are evaluated,
//! as Istio evaluates them, when the engine runs with
//! [`Imported::engine_config`], which sets `require_peer_identity: false`.

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
    /// The mesh's trust domain (Istio's `meshConfig.trustDomain`).
    pub trust_domain: String,
    /// Its aliases (`meshConfig.trustDomainAliases`): principals naming the
    /// trust domain, an alias or `cluster.local` also match the others, as
    /// Istio rewrites them.
    pub trust_domain_aliases: Vec<String>,
    /// Translate `request.headers[...]` conditions other than presence,
    /// which cannot be exact: Envoy matches each value of a repeated header
    /// on its own, and Cedar cannot test every element of a set. With this,
    /// a condition is exact on a header sent once with no `,` in its value;
    /// on any other, an ALLOW rule does not match and a DENY rule does
    /// (fail closed). Without it, such conditions are refused.
    pub headers_fail_closed: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            root_namespace: "istio-system".to_owned(),
            workload: None,
            trust_domain: "cluster.local".to_owned(),
            trust_domain_aliases: Vec::new(),
            headers_fail_closed: false,
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
    /// Every translated policy carries `istio.io/dry-run: "true"`: the
    /// policies are reported, never enforced, as Istio's shadow rules are.
    pub dry_run: bool,
}

impl Imported {
    /// The engine configuration (the authorization filter's `cedar` object)
    /// that decides as Istio does: the policies, dry-run mode for dry-run
    /// policies, and requests without a peer identity evaluated (as
    /// Istio's PERMISSIVE mode evaluates plaintext requests) rather than
    /// denied before any policy runs.
    pub fn engine_config(&self) -> serde_json::Value {
        serde_json::json!({
            "policies": self.cedar,
            "mode": if self.dry_run { "dry_run" } else { "enforce" },
            "require_peer_identity": false,
        })
    }
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
