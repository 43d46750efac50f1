//! The identity filter: a thin proxy-wasm `cdylib` over `meshward-identity`.
//!
//! It reads the peer's identity from the connection, asks the library whether
//! that peer may connect, and either lets the request continue or answers it
//! locally with the reason. A request it lets through carries the verified
//! identity in two places: Envoy's filter state, for meshward's
//! authorization filter later in the chain (the hand-over a client cannot
//! forge, [`meshward_filter_glue::Handover`]), and request headers for the
//! application, written after every client copy in any spelling is removed.
//! Everything that decides lives in the library; this crate only moves bytes
//! between the host and it.
//!
//! Fail-closed rules: a configuration that does not parse leaves the filter
//! with no configuration, and then every request is denied; a client
//! certificate Envoy did not validate is no identity; a header the library
//! needs that is not text is a denial; nothing here panics on input.

#![forbid(unsafe_code)]

mod outcome;

use std::time::UNIX_EPOCH;

use meshward_filter_glue::{self as glue, Filter, Handover, IdentityHeaders, Shared};
use meshward_identity::{AuthnConfig, AuthnConfigError, PeerFacts, authenticate};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use self::outcome::{Metrics, Outcome};

// The entry point lives in a private module: it is exported by name for the
// host, not part of a Rust API.
mod entry {
    proxy_wasm::main! {{
        meshward_filter_glue::install::<super::IdentityStream>();
    }}
}

struct IdentityStream {
    shared: Shared<Self>,
}

impl Filter for IdentityStream {
    const NAME: &'static str = "meshward-identity";
    type Config = AuthnConfig;
    type Error = AuthnConfigError;
    type Metrics = Metrics;

    fn configure(bytes: &[u8]) -> Result<AuthnConfig, AuthnConfigError> {
        AuthnConfig::from_json(bytes)
    }

    fn define_metrics() -> Option<Metrics> {
        Metrics::define()
    }

    fn stream(shared: Shared<Self>) -> Self {
        Self { shared }
    }
}

impl Context for IdentityStream {}

impl HttpContext for IdentityStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = glue::request_headers();
        let config = self.shared.config.clone();
        let outcome = match config.as_deref() {
            None => Outcome::Misconfigured,
            Some(config) => match facts(config, &headers) {
                Err(outcome) => outcome,
                Ok(facts) => match authenticate(config, &facts, self.now()) {
                    Ok(identity) => Outcome::Allowed(Box::new(identity)),
                    Err(denial) => Outcome::Denied(denial),
                },
            },
        };
        let request_id =
            glue::request_header("x-request-id").map(|b| String::from_utf8_lossy(&b).into_owned());
        outcome.record(self.shared.metrics.as_deref(), request_id.as_deref());
        match (outcome, config.as_deref()) {
            (Outcome::Allowed(identity), Some(config)) => {
                let handover = Handover {
                    peer: identity.peer.clone(),
                    jwt_claims: identity.end_user.as_ref().map(|u| u.claims.clone()),
                };
                if handover.publish().is_err() {
                    return self.deny(&Outcome::Misconfigured);
                }
                // Only an allowed request reaches the upstream, so this is
                // where client-supplied copies of every header this filter
                // vouches for are removed, before the verified values are
                // set.
                let names = IdentityHeaders {
                    peer_id: &config.forward().peer_id,
                    jwt_claims: &config.forward().jwt_claims,
                    others: &identity.headers_to_remove,
                };
                names.scrub(&headers);
                names.write(&handover);
                for (name, value) in &identity.headers_to_set {
                    glue::set_request_header(name, Some(value.as_bytes()));
                }
                Action::Continue
            }
            (denied, _) => self.deny(&denied),
        }
    }
}

/// Reads exactly what the configuration needs from what the host said.
fn facts(config: &AuthnConfig, headers: &[(String, Vec<u8>)]) -> Result<PeerFacts, Outcome> {
    let wanted = config.request_headers();
    let mut text = Vec::new();
    for (name, value) in headers {
        if wanted.iter().any(|w| w.eq_ignore_ascii_case(name)) {
            // A credential that is not text cannot be a valid one; say so
            // rather than guess at a lossy reading.
            let value =
                String::from_utf8(value.clone()).map_err(|_| Outcome::NotText(name.clone()))?;
            text.push((name.clone(), value));
        }
    }
    // `connection.mtls` only says a certificate was presented; with
    // `trust_chain_verification: ACCEPT_UNTRUSTED` Envoy accepts a
    // certificate that does not chain to the trust bundle. Only Envoy's
    // verdict that the chain validated makes it an identity.
    let presented = glue::property_is_true(&["connection", "mtls"]);
    if presented && !glue::property_is_true(&["connection", "peer_certificate_valid"]) {
        return Err(Outcome::UnverifiedCertificate);
    }
    Ok(PeerFacts {
        mtls: glue::property(&["connection", "mtls"]),
        uri_san: glue::property(&["connection", "uri_san_peer_certificate"]),
        peer_certificate: if config.needs_peer_certificate() {
            glue::property(&["connection", "peer_certificate"])
        } else {
            None
        },
        headers: text,
    })
}

impl IdentityStream {
    fn deny(&self, outcome: &Outcome) -> Action {
        let (status, body) = outcome.response();
        glue::reply(
            status,
            &[
                ("content-type", "text/plain"),
                ("x-meshward-deny-reason", outcome.code()),
            ],
            body.as_bytes(),
        );
        Action::Pause
    }

    /// The host's clock in Unix seconds. A clock before 1970 reads as 0,
    /// which makes every certificate and token look not yet valid: a denial,
    /// never an allow.
    fn now(&self) -> i64 {
        glue::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}
