//! The engine's configuration, as the filter receives it: policies already
//! checked by Cedar and compiled (`meshward compile`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::ConfigDiagnostic;

/// What a filter does with a deny; the engine decides the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denied requests are stopped.
    #[default]
    Enforce,
    /// Denied requests are reported and let through.
    DryRun,
}

/// The version tag of the compiled form; a form this engine does not know
/// is refused.
pub const COMPILED_FORMAT: &str = "meshward-policy/1";

/// The compiled configuration:
///
/// ```json
/// {"format": "meshward-policy/1",
///  "policies": [{"id": "p1", "policy": <Cedar JSON policy (EST)>}],
///  "actions": {"GET": [{"type": "Mesh::Action", "id": "read"}], ...},
///  "mode": "enforce", "require_peer_identity": true}
/// ```
///
/// `actions` maps each `Mesh::Action` id of the schema to every action
/// group it is (transitively) in. Unknown fields are refused so that a typo
/// cannot silently turn a check off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[doc(hidden)]
pub struct CompiledConfig {
    /// [`COMPILED_FORMAT`].
    pub format: String,
    /// The policies, each with its id.
    pub policies: Vec<CompiledPolicy>,
    /// Each `Mesh::Action` id with every action group it is in.
    pub actions: BTreeMap<String, Vec<EntityRefJson>>,
    /// What the filter does with denies.
    #[serde(default)]
    pub mode: Mode,
    /// Whether a request without a peer identity is denied before any
    /// policy is evaluated (the default).
    #[serde(default = "yes")]
    pub require_peer_identity: bool,
}

/// One policy of the compiled form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[doc(hidden)]
pub struct CompiledPolicy {
    /// The policy's id (its `@id`, else Cedar's `policyN`).
    pub id: String,
    /// The policy in Cedar's JSON policy format.
    pub policy: serde_json::Value,
}

/// An entity uid as Cedar's JSON formats write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[doc(hidden)]
pub struct EntityRefJson {
    /// The entity type, with its namespace (`Mesh::Action`).
    #[serde(rename = "type")]
    pub ty: String,
    /// The entity id.
    pub id: String,
}

fn yes() -> bool {
    true
}

/// Why a configuration was rejected. Every variant denies all traffic in a
/// filter: there is no fallback policy.
///
/// Problems in the policies or the schema keep their places as
/// [`ConfigDiagnostic`]s, so a tool can say `file:line:column` without
/// reading it back out of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is not the expected JSON.
    #[error("invalid configuration: {0}")]
    Json(String),
    /// The configuration holds Cedar text: the filter loads only the
    /// compiled form.
    #[error(
        "the policies are Cedar text; the filter loads compiled policies: compile the configuration with `meshward compile`"
    )]
    NotCompiled,
    /// A policy uses a construct the filter's evaluator does not implement.
    #[error("policy `{policy}` uses {construct}, which the filter does not support")]
    Unsupported {
        /// The policy's id.
        policy: String,
        /// The construct, as Cedar names it.
        construct: String,
    },
    /// The schema does not parse or is inconsistent; places are in the
    /// schema text.
    #[error("invalid schema: {0}")]
    Schema(ConfigDiagnostic),
    /// The schema parses but lacks what the engine builds requests from.
    #[error("schema does not fit meshward's requests: {0}")]
    SchemaMismatch(String),
    /// The policies do not parse; one entry per error, places in the
    /// policies text.
    #[error("policies do not parse:\n{}", lines(.0))]
    Parse(Vec<ConfigDiagnostic>),
    /// Policies fail strict validation; one entry per error, naming the
    /// policy, places in the policies text.
    #[error("policies fail validation:\n{}", lines(.0))]
    Validation(Vec<ConfigDiagnostic>),
    /// Two policies have the same `@id`.
    #[error("two policies have the id `{0}`")]
    DuplicateId(String),
    /// A policy template: the engine links none, so it could never apply.
    #[error("policy `{0}` is a template; only static policies are supported")]
    Template(String),
}

impl ConfigError {
    /// The problems found in the policies text, with their places; empty
    /// for errors that are not about the policies.
    pub fn policy_diagnostics(&self) -> &[ConfigDiagnostic] {
        match self {
            Self::Parse(d) | Self::Validation(d) => d,
            Self::Json(_)
            | Self::NotCompiled
            | Self::Unsupported { .. }
            | Self::Schema(_)
            | Self::SchemaMismatch(_)
            | Self::DuplicateId(_)
            | Self::Template(_) => &[],
        }
    }
}

fn lines(diagnostics: &[ConfigDiagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
