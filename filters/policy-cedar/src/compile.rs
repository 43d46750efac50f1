//! From Cedar text to the compiled form the filter loads.

use std::collections::BTreeMap;

use meshward_policy::{
    COMPILED_FORMAT, CompiledConfig, CompiledPolicy, ConfigError, EntityRefJson, Mode, PolicyEngine,
};
use serde::Deserialize;

use crate::reference::CedarEngine;

/// The configuration a policy author writes: Cedar text.
///
/// `{"policies": "<cedar>", "schema": "<cedar schema>"?, "mode":
/// "enforce"|"dry_run"?, "require_peer_identity": bool?}`; unknown fields
/// are refused so that a typo cannot silently turn a check off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthoringConfig {
    /// Cedar policies, as text.
    pub policies: String,
    /// A Cedar schema, as text; the shipped one when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// What the filter does with denies.
    #[serde(default)]
    pub mode: Mode,
    /// When true (the default) a request without a peer identity is denied
    /// before any policy is evaluated; when false its principal is
    /// `Mesh::Workload::"anonymous"`.
    #[serde(default = "yes")]
    pub require_peer_identity: bool,
}

fn yes() -> bool {
    true
}

impl AuthoringConfig {
    /// Policies alone: the shipped schema, enforce mode, a peer identity
    /// required.
    pub fn new(policies: &str) -> Self {
        Self {
            policies: policies.to_owned(),
            schema: None,
            mode: Mode::Enforce,
            require_peer_identity: true,
        }
    }
}

/// Checks an authoring configuration with Cedar (parse, strict validation
/// against the schema, the schema against meshward's request model) and
/// compiles it; the result is loaded once to make sure the filter accepts
/// every construct.
pub fn compile(config: &AuthoringConfig) -> Result<CompiledConfig, ConfigError> {
    let engine = CedarEngine::build(config)?;
    compiled_from(&engine, config.mode, config.require_peer_identity)
}

pub(crate) fn compiled_from(
    engine: &CedarEngine,
    mode: Mode,
    require_peer_identity: bool,
) -> Result<CompiledConfig, ConfigError> {
    let mut policies = Vec::new();
    for p in engine.policies().policies() {
        let id = p.id().to_string();
        let policy = p.to_json().map_err(|e| ConfigError::Unsupported {
            policy: id.clone(),
            construct: format!("something Cedar cannot write as JSON ({e})"),
        })?;
        policies.push(CompiledPolicy { id, policy });
    }
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    let mut actions: BTreeMap<String, Vec<EntityRefJson>> = BTreeMap::new();
    for (uid, groups) in engine.action_groups() {
        if uid.type_name().to_string() != "Mesh::Action" {
            continue;
        }
        let mut groups: Vec<EntityRefJson> = groups
            .iter()
            .map(|g| EntityRefJson {
                ty: g.type_name().to_string(),
                id: g.id().unescaped().to_owned(),
            })
            .collect();
        groups.sort_by(|a, b| (&a.ty, &a.id).cmp(&(&b.ty, &b.id)));
        actions.insert(uid.id().unescaped().to_owned(), groups);
    }
    let compiled = CompiledConfig {
        format: COMPILED_FORMAT.to_owned(),
        policies,
        actions,
        mode,
        require_peer_identity,
    };
    PolicyEngine::from_compiled(&compiled)?;
    Ok(compiled)
}

/// Compiles the Cedar text in a configuration, for every place that builds
/// one (tests, benches, tools, the CLI):
///
/// - an authz filter configuration (`{"cedar": {"policies": "<cedar>",
///   ...}, ...}`) comes back with `cedar` compiled and everything else as
///   it was;
/// - an authoring configuration (`{"policies": "<cedar>", ...}`) comes back
///   as the compiled engine configuration.
///
/// Already compiled policies are checked by loading them and passed
/// through, so compiling twice is harmless.
pub fn compile_filter_config(json: &str) -> Result<String, ConfigError> {
    let mut value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
    let slot = match value.get_mut("cedar") {
        Some(cedar) => cedar,
        None => &mut value,
    };
    *slot = compile_engine_value(slot)?;
    Ok(value.to_string())
}

fn compile_engine_value(v: &serde_json::Value) -> Result<serde_json::Value, ConfigError> {
    if v.get("policies").is_some_and(serde_json::Value::is_string) {
        let config: AuthoringConfig =
            serde_json::from_value(v.clone()).map_err(|e| ConfigError::Json(e.to_string()))?;
        let compiled = compile(&config)?;
        serde_json::to_value(compiled).map_err(|e| ConfigError::Json(e.to_string()))
    } else {
        PolicyEngine::from_config(v.to_string().as_bytes())?;
        Ok(v.clone())
    }
}

/// The filter's engine for an authoring configuration, compiled here.
pub fn engine_from_config(json: &[u8]) -> Result<PolicyEngine, ConfigError> {
    let config: AuthoringConfig =
        serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
    PolicyEngine::from_compiled(&compile(&config)?)
}

/// The filter's engine for policies alone (the shipped schema, enforce
/// mode, a peer identity required), compiled here.
pub fn engine_from_policies(policies: &str) -> Result<PolicyEngine, ConfigError> {
    PolicyEngine::from_compiled(&compile(&AuthoringConfig::new(policies))?)
}
