//! The filter's JSON configuration: the Cedar engine's own configuration plus
//! what the filter does around each decision.

use std::collections::BTreeMap;

use meshward_identity::{AuthnConfigError, ForwardHeaders};
use meshward_policy::{ConfigError, PathOptions, PolicyEngine};
use serde::Deserialize;

/// Where the peer's identity comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PeerFrom {
    /// The mTLS connection itself (`connection.uri_san_peer_certificate`,
    /// when Envoy says the chain validated), so the filter works alone.
    #[default]
    Connection,
    /// The hand-over meshward's identity filter published in Envoy's filter
    /// state earlier in the same chain ([`meshward_filter_glue::Handover`]).
    /// Never a request header: without the identity filter in front (or
    /// with it after this one, or failed) there is no identity.
    IdentityFilter,
}

/// What to do with a `:path` that is not in normal form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PathNotNormal {
    /// Decide on the normal form and forward exactly that form (`:path` is
    /// rewritten), as Envoy's `normalize_path` does.
    #[default]
    Rewrite,
    /// Deny the request (`path_not_normal`), for applications that must
    /// see every byte the client sent.
    Refuse,
}

/// Which decisions get a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DecisionLog {
    /// Every decision.
    #[default]
    All,
    /// Denials and dry-run denials only.
    Denies,
    /// None (counters still count).
    None,
}

/// The local reply for a denied request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DenyResponse {
    #[serde(default = "forbidden")]
    pub(crate) status: u32,
    /// The body; `{reason}` is replaced by the reason code. Policy ids and
    /// policy text are never sent to the client, only logged.
    #[serde(default = "default_body")]
    pub(crate) body: String,
    /// Extra response headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
}

impl Default for DenyResponse {
    fn default() -> Self {
        Self {
            status: forbidden(),
            body: default_body(),
            headers: BTreeMap::new(),
        }
    }
}

fn forbidden() -> u32 {
    403
}

fn default_body() -> String {
    "meshward: access denied: {reason}\n".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    /// The compiled policies (`meshward compile`), passed verbatim to
    /// `PolicyEngine::from_config`; Cedar text is refused with a message
    /// saying to compile it.
    cedar: Box<serde_json::value::RawValue>,
    #[serde(default)]
    peer_from: PeerFrom,
    /// The headers that carry the verified identity to the application
    /// (the identity filter's `forward`; the same defaults). Client copies
    /// are removed in every spelling and the verified values written, on
    /// every request this filter lets through, whatever `peer_from` says.
    #[serde(default)]
    identity_headers: ForwardHeaders,
    /// How paths are normalised (`merge_slashes`, `escaped_slashes`); the
    /// default is the strict form.
    #[serde(default)]
    path_normalization: PathOptions,
    /// What happens to a path that is not in normal form.
    #[serde(default)]
    path_not_normal: PathNotNormal,
    #[serde(default)]
    deny: DenyResponse,
    #[serde(default)]
    decision_log: DecisionLog,
}

/// A configuration the filter accepted.
pub(crate) struct FilterConfig {
    pub(crate) engine: PolicyEngine,
    pub(crate) peer_from: PeerFrom,
    pub(crate) identity_headers: ForwardHeaders,
    pub(crate) path_normalization: PathOptions,
    pub(crate) path_not_normal: PathNotNormal,
    pub(crate) deny: DenyResponse,
    pub(crate) decision_log: DecisionLog,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterConfigError {
    #[error("invalid configuration: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Engine(#[from] ConfigError),
    #[error("deny status `{0}` is not a 4xx or 5xx status")]
    Status(u32),
    #[error("`identity_headers`: {0}")]
    Headers(#[from] AuthnConfigError),
}

impl FilterConfig {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, FilterConfigError> {
        let repr: Repr = serde_json::from_slice(bytes)?;
        // A 2xx or 3xx "denial" would look like success to clients and to
        // Envoy's own stats.
        if !(400..600).contains(&repr.deny.status) {
            return Err(FilterConfigError::Status(repr.deny.status));
        }
        repr.identity_headers.check()?;
        let engine = PolicyEngine::from_config(repr.cedar.get().as_bytes())?;
        Ok(Self {
            engine,
            peer_from: repr.peer_from,
            identity_headers: repr.identity_headers,
            path_normalization: repr.path_normalization,
            path_not_normal: repr.path_not_normal,
            deny: repr.deny,
            decision_log: repr.decision_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration with its Cedar text compiled, as `meshward
    /// compile` hands it to the filter.
    fn compiled(json: &str) -> String {
        meshward_policy_cedar::compile_filter_config(json).unwrap()
    }

    const PERMIT: &str = r#"@id(\"all\") permit(principal, action, resource);"#;

    #[test]
    fn accepts_a_full_configuration() {
        let json = format!(
            r#"{{"cedar": {{"policies": "{PERMIT}", "mode": "dry_run"}},
                "peer_from": "identity_filter",
                "identity_headers": {{"peer_id": "x-peer"}},
                "deny": {{"status": 401, "body": "no: {{reason}}", "headers": {{"x-a": "b"}}}},
                "decision_log": "denies",
                "path_normalization": {{"merge_slashes": false, "escaped_slashes": "keep"}},
                "path_not_normal": "refuse"}}"#
        );
        let c = FilterConfig::from_json(compiled(&json).as_bytes()).unwrap();
        assert_eq!(c.peer_from, PeerFrom::IdentityFilter);
        assert_eq!(c.identity_headers.peer_id, "x-peer");
        assert_eq!(c.identity_headers.jwt_claims, "x-meshward-jwt-claims");
        assert_eq!(c.deny.status, 401);
        assert_eq!(c.decision_log, DecisionLog::Denies);
        assert_eq!(c.engine.mode(), meshward_policy::Mode::DryRun);
        assert_eq!(c.path_not_normal, PathNotNormal::Refuse);
        assert!(!c.path_normalization.merges_slashes());
    }

    #[test]
    fn defaults_are_the_strict_ones() {
        let json = format!(r#"{{"cedar": {{"policies": "{PERMIT}"}}}}"#);
        let c = FilterConfig::from_json(compiled(&json).as_bytes()).unwrap();
        assert_eq!(c.peer_from, PeerFrom::Connection);
        assert_eq!(c.deny, DenyResponse::default());
        assert_eq!(c.engine.mode(), meshward_policy::Mode::Enforce);
        assert_eq!(c.path_not_normal, PathNotNormal::Rewrite);
        assert_eq!(c.path_normalization, PathOptions::default());
    }

    #[test]
    fn cedar_text_is_refused_with_how_to_compile_it() {
        let json = format!(r#"{{"cedar": {{"policies": "{PERMIT}"}}}}"#);
        let e = FilterConfig::from_json(json.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("meshward compile"), "{e}");
    }

    #[test]
    fn refuses_bad_configurations() {
        // The compiled engine configuration, so each case is refused for
        // its own fault.
        let cedar = compiled(&format!(r#"{{"policies": "{PERMIT}"}}"#));
        let audit = cedar.replacen(r#""mode":"enforce""#, r#""mode":"audit""#, 1);
        assert_ne!(audit, cedar);
        for bad in [
            String::new(),
            "{}".to_owned(),
            r#"{"cedar": {"policies": "permit(principal, action, resource"}}"#.to_owned(),
            r#"{"cedar": {"policies": "permit(principal, action, resource) when { context.nope };"}}"#
                .to_owned(),
            format!(r#"{{"cedar": {cedar}, "peer_from": "header"}}"#),
            format!(r#"{{"cedar": {cedar}, "deny": {{"status": 200}}}}"#),
            format!(r#"{{"cedar": {cedar}, "decison_log": "all"}}"#),
            format!(r#"{{"cedar": {cedar}, "path_not_normal": "ignore"}}"#),
            format!(r#"{{"cedar": {cedar}, "path_normalization": {{"merge": true}}}}"#),
            format!(r#"{{"cedar": {audit}}}"#),
            format!(r#"{{"cedar": {cedar}, "identity_headers": {{"peer_id": "X-Peer"}}}}"#),
            format!(r#"{{"cedar": {cedar}, "identity_headers": {{"peer_id": "x-a", "jwt_claims": "x-a"}}}}"#),
        ] {
            assert!(FilterConfig::from_json(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }
}
