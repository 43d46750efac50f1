//! The identity filter: a thin proxy-wasm `cdylib` over `meshward-identity`.
//!
//! It reads the peer's identity from the connection, asks the library whether
//! that peer may connect, and either lets the request continue (passing the
//! verified SPIFFE ID on in a header) or answers it locally with the reason.
//! Everything that decides lives in the library; this crate only moves bytes
//! between the host and it.
//!
//! Fail-closed rules: a configuration that does not parse leaves the filter
//! with no configuration, and then every request is denied; nothing here
//! panics on input.

#![forbid(unsafe_code)]

mod outcome;

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meshward_identity::{AuthnConfig, PeerFacts, authenticate};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use self::outcome::{Metrics, Outcome};

// The entry point lives in a private module: it is exported by name for the
// host, not part of a Rust API.
mod entry {
    use super::*;
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(IdentityRoot::default()) });
    }}
}

#[derive(Default)]
struct IdentityRoot {
    // `None` until a configuration has been accepted; requests that arrive
    // meanwhile, or after a rejected configuration, are denied.
    config: Option<Rc<AuthnConfig>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for IdentityRoot {}

impl RootContext for IdentityRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        if self.metrics.is_none() {
            self.metrics = Metrics::define().map(Rc::new);
        }
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match AuthnConfig::from_json(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                self.config = None;
                proxy_wasm::hostcalls::log(
                    LogLevel::Error,
                    &format!(
                        "meshward-identity: configuration refused, denying every request: {e}"
                    ),
                )
                .ok();
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(IdentityStream {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct IdentityStream {
    config: Option<Rc<AuthnConfig>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for IdentityStream {}

impl HttpContext for IdentityStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let outcome = match self.config.clone() {
            None => Outcome::Misconfigured,
            Some(config) => match authenticate(&config, &self.facts(&config), self.now()) {
                Ok(identity) => Outcome::Allowed(Box::new(identity)),
                Err(denial) => Outcome::Denied(denial),
            },
        };
        let request_id = self.get_http_request_header("x-request-id");
        outcome.record(self.metrics.as_deref(), request_id.as_deref());
        match outcome {
            Outcome::Allowed(identity) => {
                // Only an allowed request reaches the upstream, so this is
                // where client-supplied copies of every header this filter
                // vouches for are removed, before the verified values are
                // set.
                let forward = self
                    .config
                    .as_ref()
                    .map(|c| c.forward().clone())
                    .unwrap_or_default();
                self.set_http_request_header(&forward.peer_id, None);
                self.set_http_request_header(&forward.jwt_claims, None);
                for name in &identity.headers_to_remove {
                    self.set_http_request_header(name, None);
                }
                self.set_http_request_header(&forward.peer_id, Some(identity.peer.as_str()));
                if let Some(user) = &identity.end_user {
                    let json = serde_json::Value::Object(user.claims.clone()).to_string();
                    let encoded = URL_SAFE_NO_PAD.encode(json);
                    self.set_http_request_header(&forward.jwt_claims, Some(&encoded));
                }
                for (name, value) in &identity.headers_to_set {
                    self.set_http_request_header(name, Some(value));
                }
                Action::Continue
            }
            denied => {
                let (status, body) = denied.response();
                self.send_http_response(
                    status,
                    vec![
                        ("content-type", "text/plain"),
                        ("x-meshward-deny-reason", denied.code()),
                    ],
                    Some(body.as_bytes()),
                );
                Action::Pause
            }
        }
    }
}

impl IdentityStream {
    /// Reads exactly what the configuration needs from the host.
    fn facts(&self, config: &AuthnConfig) -> PeerFacts {
        let wanted = config.request_headers();
        let headers = if wanted.is_empty() {
            Vec::new()
        } else {
            self.get_http_request_headers()
                .into_iter()
                .filter(|(name, _)| wanted.iter().any(|w| w.eq_ignore_ascii_case(name)))
                .collect()
        };
        PeerFacts {
            mtls: self.get_property(vec!["connection", "mtls"]),
            uri_san: self.get_property(vec!["connection", "uri_san_peer_certificate"]),
            peer_certificate: if config.needs_peer_certificate() {
                self.get_property(vec!["connection", "peer_certificate"])
            } else {
                None
            },
            headers,
        }
    }

    /// The host's clock in Unix seconds. A clock before 1970 reads as 0,
    /// which makes every certificate and token look not yet valid: a denial,
    /// never an allow.
    fn now(&self) -> i64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}
