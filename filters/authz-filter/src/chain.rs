//! Identity and authorization in one HTTP context (root id `meshward`).
//!
//! Two plugins cost every request two HTTP contexts' worth of calls across
//! the host boundary (create, request headers, response headers, log, done,
//! delete), two reads of the request headers and the connection's
//! properties, two header scrubs and a filter-state hand-over. Here the
//! identity check and the decision share one context and one read of each:
//! the identity the first stage verified is the principal of the second,
//! handed over in memory, so `peer_from` of the `authz` part has no effect
//! (nothing but the identity stage can name the peer). The two stages keep
//! their own counters, log lines and local replies, so a denial reads the
//! same as from the two filters chained.
//!
//! Configuration: `{"identity": <identity filter configuration>, "authz":
//! <authorization filter configuration>}`; either part refused refuses the
//! whole, and then every request is denied.

use meshward_filter_glue::{
    self as glue, Filter, Handover, IdentityHeaders, IdentityMetrics, IdentityOutcome, Shared,
    Wants,
};
use meshward_identity::{AuthnConfig, AuthnConfigError};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use serde::Deserialize;

use crate::config::{FilterConfig, FilterConfigError};
use crate::outcome::{Metrics, Outcome};

/// The accepted configuration of both stages.
pub(crate) struct ChainConfig {
    identity: AuthnConfig,
    authz: FilterConfig,
}

/// Why a chain configuration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainConfigError {
    #[error("invalid configuration: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`identity`: {0}")]
    Identity(#[from] AuthnConfigError),
    #[error("`authz`: {0}")]
    Authz(#[from] FilterConfigError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr<'a> {
    #[serde(borrow)]
    identity: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    authz: &'a serde_json::value::RawValue,
}

impl ChainConfig {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, ChainConfigError> {
        let repr: Repr<'_> = serde_json::from_slice(bytes)?;
        // Each part goes through its filter's own parser, so a part means
        // exactly what it means to that filter alone. The parts are handed
        // on as the text they are, never as a tree printed again: the linear
        // memory a VM grows to while configuring stays resident.
        Ok(Self {
            identity: AuthnConfig::from_json(repr.identity.get().as_bytes())?,
            authz: FilterConfig::from_json(repr.authz.get().as_bytes())?,
        })
    }
}

/// Both stages' counters.
pub(crate) struct ChainMetrics {
    identity: IdentityMetrics,
    authz: Metrics,
}

pub(crate) struct ChainStream {
    shared: Shared<Self>,
}

impl Filter for ChainStream {
    const NAME: &'static str = "meshward";
    type Config = ChainConfig;
    type Error = ChainConfigError;
    type Metrics = ChainMetrics;

    fn configure(bytes: &[u8]) -> Result<ChainConfig, ChainConfigError> {
        ChainConfig::from_json(bytes)
    }

    fn define_metrics() -> Option<ChainMetrics> {
        Some(ChainMetrics {
            identity: IdentityMetrics::define()?,
            authz: Metrics::define()?,
        })
    }

    fn stream(shared: Shared<Self>) -> Self {
        Self { shared }
    }
}

impl Context for ChainStream {}

impl HttpContext for ChainStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let metrics = self.shared.metrics.as_deref();
        let Some(config) = self.shared.config.clone() else {
            // Counted and answered as the identity filter would: the first
            // stage cannot run.
            let outcome = IdentityOutcome::Misconfigured;
            outcome.record(metrics.map(|m| &m.identity));
            return outcome.deny();
        };
        let headers = glue::request_headers();
        let wants = Wants {
            peer_certificate: config.identity.needs_peer_certificate(),
            addresses: true,
        };
        let conn = glue::connection(&self.shared.connections, wants);
        let verdict = glue::identify(Some(&config.identity), &headers, Some(&conn));
        verdict.record(metrics.map(|m| &m.identity));
        let IdentityOutcome::Allowed(identity) = verdict else {
            return verdict.deny();
        };
        let handover = Handover {
            peer: identity.peer.clone(),
            jwt_claims: identity.end_user.as_ref().map(|u| u.claims.clone()),
        };
        let mut facts = crate::facts(&config.authz, &headers, &conn);
        facts.peer = Some(handover.peer.clone());
        facts.jwt_claims = handover.jwt_claims.clone().map(serde_json::Value::Object);
        let outcome: Outcome = crate::decide(&config.authz, &facts);
        let action = crate::act(
            metrics.map(|m| &m.authz),
            &outcome,
            Some(&config.authz),
            Some(&facts),
        );
        if action == Action::Continue {
            crate::rewrite_path(&facts);
            glue::forward_identity(&config.identity, &identity, &handover, &headers);
            // The authorization filter's own identity headers, when they
            // are named differently from the identity filter's.
            let ours = &config.authz.identity_headers;
            let theirs = config.identity.forward();
            if ours.peer_id != theirs.peer_id || ours.jwt_claims != theirs.jwt_claims {
                let names = IdentityHeaders {
                    peer_id: &ours.peer_id,
                    jwt_claims: &ours.jwt_claims,
                    others: &[],
                };
                names.scrub(&headers);
                names.write(&handover);
            }
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERMIT: &str = r#"@id(\"all\") permit(principal, action, resource);"#;

    /// The authz part as `meshward compile` hands it to the filter.
    fn authz() -> String {
        meshward_policy_cedar::compile_filter_config(&format!(
            r#"{{"cedar": {{"policies": "{PERMIT}"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn accepts_both_parts_and_refuses_either_bad_part() {
        let authz = authz();
        let good = format!(
            r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {authz}}}"#
        );
        assert!(ChainConfig::from_json(good.as_bytes()).is_ok());
        for bad in [
            String::new(),
            "{}".to_owned(),
            format!(r#"{{"identity": {{"allowed_trust_domains": []}}, "authz": {authz}}}"#),
            // Cedar text: the authz part must be compiled.
            format!(
                r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {{"cedar": {{"policies": "{PERMIT}"}}}}}}"#
            ),
            format!(
                r#"{{"identity": {{"allowed_trust_domains": ["example.org"]}}, "authz": {authz}, "extra": 1}}"#
            ),
            r#"{"identity": {"allowed_trust_domains": ["example.org"]}}"#.to_owned(),
        ] {
            assert!(
                ChainConfig::from_json(bad.as_bytes()).is_err(),
                "accepted {bad}"
            );
        }
    }
}
