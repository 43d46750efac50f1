//! The engine's configuration, as the filter receives it.

use serde::Deserialize;

use crate::diag::ConfigDiagnostic;

/// The schema shipped with meshward, used when a configuration names none.
pub const SHIPPED_SCHEMA: &str = include_str!("../../../policies/meshward.cedarschema");

/// What a filter does with a deny; the engine decides the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denied requests are stopped.
    #[default]
    Enforce,
    /// Denied requests are reported and let through.
    DryRun,
}

/// The engine's configuration: JSON, unknown fields rejected so that a typo
/// cannot silently turn a check off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EngineConfig {
    /// Cedar policies, as text.
    pub(crate) policies: String,
    /// A Cedar schema, as text; the shipped one when absent.
    #[serde(default)]
    pub(crate) schema: Option<String>,
    #[serde(default)]
    pub(crate) mode: Mode,
    /// When true (the default) a request without a peer identity is denied
    /// before any policy is evaluated; when false its principal is
    /// `Mesh::Workload::"anonymous"`.
    #[serde(default = "yes")]
    pub(crate) require_peer_identity: bool,
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
