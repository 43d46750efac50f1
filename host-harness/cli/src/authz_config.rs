//! The one place the CLI turns what a policy author writes (Cedar text,
//! optionally a schema, a mode) into the authorization filter's plugin
//! configuration. `serve`, `test`, `demo` and `demo --envoy` all call it,
//! so the filter's configuration format is known here only: the Cedar text
//! is checked and compiled on the host (`meshward-policy-cedar`), and the
//! filter is handed the compiled form.

use meshward_policy::{ConfigError, PolicyEngine};

/// Where the authorization filter takes the peer from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerFrom {
    /// The connection's verified certificate (the filter alone).
    Connection,
    /// The identity filter before it in the chain.
    IdentityFilter,
}

/// What an author writes.
#[derive(Clone, Debug)]
pub(crate) struct Authoring {
    /// Cedar policy text.
    pub(crate) policies: String,
    /// A Cedar schema; the shipped one when none.
    pub(crate) schema: Option<String>,
    /// Deny requests without a peer before any policy (the engine's
    /// default when none).
    pub(crate) require_peer_identity: Option<bool>,
    pub(crate) peer_from: PeerFrom,
}

impl Authoring {
    pub(crate) fn new(policies: impl Into<String>, peer_from: PeerFrom) -> Self {
        Self {
            policies: policies.into(),
            schema: None,
            require_peer_identity: None,
            peer_from,
        }
    }
}

/// The engine's part (`cedar`) of the configuration.
pub(crate) fn engine_config(a: &Authoring) -> serde_json::Value {
    let mut cedar = serde_json::json!({ "policies": a.policies });
    if let Some(map) = cedar.as_object_mut() {
        if let Some(schema) = &a.schema {
            map.insert("schema".into(), schema.clone().into());
        }
        if let Some(require) = a.require_peer_identity {
            map.insert("require_peer_identity".into(), require.into());
        }
    }
    cedar
}

/// The engine the filter builds from [`authz_config`], built natively
/// after Cedar has checked and compiled the policies.
pub(crate) fn engine(a: &Authoring) -> Result<PolicyEngine, ConfigError> {
    meshward_policy_cedar::engine_from_config(engine_config(a).to_string().as_bytes())
}

/// The authorization filter's plugin configuration, its policies compiled.
pub(crate) fn authz_config(a: &Authoring) -> Result<String, String> {
    let peer_from = match a.peer_from {
        PeerFrom::Connection => "connection",
        PeerFrom::IdentityFilter => "identity_filter",
    };
    let authoring = serde_json::json!({ "cedar": engine_config(a), "peer_from": peer_from });
    meshward_policy_cedar::compile_filter_config(&authoring.to_string()).map_err(|e| {
        format!(
            "the policies are refused: {}",
            crate::one_line(&e.to_string())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_filter_configuration() {
        let mut a = Authoring::new(
            "permit(principal, action, resource);",
            PeerFrom::IdentityFilter,
        );
        a.require_peer_identity = Some(false);
        let v: serde_json::Value = serde_json::from_str(&authz_config(&a).unwrap()).unwrap();
        assert_eq!(v["peer_from"], "identity_filter");
        assert_eq!(v["cedar"]["require_peer_identity"], false);
        // Compiled: the filter is never handed Cedar text.
        assert!(!v["cedar"]["policies"].is_string(), "{v}");
    }
}
