//! The module's configuration: the wasm chain's, `{"identity": <identity
//! filter configuration>, "authz": <authorization filter configuration>}`.
//! Either part refused refuses the whole.

use meshward_identity::{AuthnConfig, AuthnConfigError};
use serde::Deserialize;

use crate::config::{FilterConfig, FilterConfigError};

/// The accepted configuration of both stages.
pub(crate) struct ChainConfig {
    pub(crate) identity: AuthnConfig,
    pub(crate) authz: FilterConfig,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainConfigError {
    #[error("invalid configuration: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`identity`: {0}")]
    Identity(#[from] AuthnConfigError),
    #[error("`authz`: {0}")]
    Authz(#[from] FilterConfigError),
    #[error("unknown filter name `{0}`: this module serves `meshward`")]
    FilterName(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    identity: serde_json::Value,
    authz: serde_json::Value,
}

impl ChainConfig {
    /// The configuration of filter `name` from its JSON text.
    pub(crate) fn from_json(name: &str, bytes: &[u8]) -> Result<Self, ChainConfigError> {
        if name != crate::FILTER_NAME {
            return Err(ChainConfigError::FilterName(name.to_owned()));
        }
        let repr: Repr = serde_json::from_slice(bytes)?;
        // Each part goes through its filter's own parser, as in the wasm
        // chain, so a part means exactly what it means there.
        Ok(Self {
            identity: AuthnConfig::from_json(repr.identity.to_string().as_bytes())?,
            authz: FilterConfig::from_json(repr.authz.to_string().as_bytes())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERMIT: &str = r#"@id(\"all\") permit(principal, action, resource);"#;

    fn authz() -> String {
        meshward_policy_cedar::compile_filter_config(&format!(
            r#"{{"cedar": {{"policies": "{PERMIT}"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn accepts_the_wasm_chains_configuration_and_refuses_bad_parts() {
        let authz = authz();
        let good = format!(
            r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {authz}}}"#
        );
        assert!(ChainConfig::from_json("meshward", good.as_bytes()).is_ok());
        assert!(ChainConfig::from_json("meshward_authz", good.as_bytes()).is_err());
        for bad in [
            String::new(),
            "{}".to_owned(),
            format!(r#"{{"identity": {{"allowed_trust_domains": []}}, "authz": {authz}}}"#),
            format!(
                r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {{"cedar": {{"policies": "{PERMIT}"}}}}}}"#
            ),
            format!(
                r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {authz}, "extra": 1}}"#
            ),
        ] {
            assert!(
                ChainConfig::from_json("meshward", bad.as_bytes()).is_err(),
                "accepted {bad}"
            );
        }
    }
}
