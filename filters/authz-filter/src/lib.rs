//! The authorization filter: a thin proxy-wasm `cdylib` over
//! `meshward-policy`, for Istio's AUTHZ phase.
//!
//! Per request it reads the peer identity (from the mTLS connection, or from
//! meshward's identity filter earlier in the chain), the request line,
//! headers and connection facts, asks the Cedar engine, and acts: continue,
//! answer with the configured denial, or, in dry-run mode, report the denial
//! and continue. Every decision is counted and, as configured, logged with
//! its determining policy ids.
//!
//! Fail-closed rules: a configuration that does not parse or validate is
//! refused and, until a valid one arrives, every request is denied; a peer
//! identity that cannot be read is no identity; nothing here panics on input.

#![forbid(unsafe_code)]

mod config;
mod outcome;

use std::net::SocketAddr;
use std::rc::Rc;

use base64::Engine as _;
use meshward_identity::SpiffeId;
use meshward_policy::RequestFacts;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use self::config::{DenyResponse, FilterConfig, PeerFrom};
use self::outcome::{Metrics, Outcome, Subject};

// The entry point lives in a private module: it is exported by name for the
// host, not part of a Rust API.
mod entry {
    use super::*;
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AuthzRoot::default()) });
    }}
}

#[derive(Default)]
struct AuthzRoot {
    config: Option<Rc<FilterConfig>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for AuthzRoot {}

impl RootContext for AuthzRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        if self.metrics.is_none() {
            self.metrics = Metrics::define().map(Rc::new);
        }
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                self.config = None;
                log(
                    LogLevel::Error,
                    &format!("meshward-authz: configuration refused, denying every request: {e}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AuthzStream {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuthzStream {
    config: Option<Rc<FilterConfig>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for AuthzStream {}

impl HttpContext for AuthzStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.act(&Outcome::Misconfigured, None, None);
        };
        let facts = self.facts(&config);
        let outcome = Outcome::new(config.engine.decide(&facts), config.engine.mode());
        self.act(&outcome, Some(&config), Some(&facts))
    }
}

impl AuthzStream {
    fn act(
        &mut self,
        outcome: &Outcome,
        config: Option<&FilterConfig>,
        facts: Option<&RequestFacts>,
    ) -> Action {
        if let Some(m) = self.metrics.as_deref() {
            for id in outcome.counters(m) {
                proxy_wasm::hostcalls::increment_metric(id, 1).ok();
            }
        }
        let request_id = self.get_http_request_header("x-request-id");
        let principal = facts.and_then(|f| f.peer.as_ref()).map(SpiffeId::as_str);
        let subject = Subject {
            principal,
            action: facts.map_or("", |f| f.method.as_str()),
            resource: facts.map_or("", |f| f.host.as_str()),
            path: facts.map_or("", |f| f.path.as_str()),
            request_id: request_id.as_deref(),
        };
        let log_setting = config.map(|c| c.decision_log).unwrap_or_default();
        if let Some((level, line)) = outcome.log_line(log_setting, &subject) {
            log(level, &line);
        }
        // Borrowed, not cloned: most requests are allowed and need no reply.
        let reply = match config {
            Some(c) => outcome.response(&c.deny),
            None => outcome.response(&DenyResponse::default()),
        };
        match reply {
            None => Action::Continue,
            Some(reply) => {
                let headers: Vec<(&str, &str)> = reply
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
                Action::Pause
            }
        }
    }

    /// Everything the engine may look at, read from the host.
    fn facts(&self, config: &FilterConfig) -> RequestFacts {
        let header = |name: &str| self.get_http_request_header(name).unwrap_or_default();
        let mut facts =
            RequestFacts::new(&header(":method"), &header(":authority"), &header(":path"));
        facts.headers = self
            .get_http_request_headers()
            .into_iter()
            .filter(|(name, _)| !name.starts_with(':'))
            .collect();
        facts.mtls = matches!(
            self.get_property(vec!["connection", "mtls"]).as_deref(),
            Some([b]) if *b != 0
        );
        facts.port = self
            .get_property(vec!["destination", "port"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .and_then(|b| u16::try_from(i64::from_le_bytes(b)).ok())
            .unwrap_or(0);
        facts.source = self
            .get_property(vec!["source", "address"])
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<SocketAddr>().ok());
        facts.sni = self
            .get_property(vec!["connection", "requested_server_name"])
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty());
        facts.time = self.get_current_time();
        match config.peer_from {
            PeerFrom::Connection => {
                // Only a verified client certificate names a peer; a
                // malformed SAN is no identity at all.
                if facts.mtls {
                    facts.peer = self
                        .get_property(vec!["connection", "uri_san_peer_certificate"])
                        .and_then(|b| SpiffeId::from_bytes(&b).ok());
                }
            }
            PeerFrom::IdentityFilter => {
                facts.peer = self
                    .get_http_request_header(&config.identity_headers.peer_id)
                    .and_then(|s| SpiffeId::parse(&s).ok());
                facts.jwt_claims = self
                    .get_http_request_header(&config.identity_headers.jwt_claims)
                    .and_then(|b64| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(b64)
                            .ok()
                    })
                    .and_then(|json| serde_json::from_slice(&json).ok());
            }
        }
        facts
    }
}

fn log(level: LogLevel, message: &str) {
    proxy_wasm::hostcalls::log(level, message).ok();
}
