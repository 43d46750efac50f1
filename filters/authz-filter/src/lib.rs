//! The authorization filter: a thin proxy-wasm `cdylib` over
//! `meshward-policy`, for Istio's AUTHZ phase.
//!
//! The module serves three root ids: `meshward_authz` (and any other) is
//! this filter; `meshward_identity` is the identity filter, so that the two
//! plugins of a chain can load this one module and share one VM; and
//! `meshward` runs both in one HTTP context (identity, then authorization
//! on the identity it verified), which halves the per-request calls across
//! the host boundary ([`chain`]).
//!
//! Per request it reads the peer identity (from the mTLS connection, or from
//! the hand-over meshward's identity filter published in Envoy's filter
//! state), the request line, headers and connection facts, all as bytes,
//! asks the Cedar engine, and acts: continue, answer with the configured
//! denial, or, in dry-run mode, report the denial and continue. Every
//! decision is counted and, as configured, logged with its determining
//! policy ids.
//!
//! The decision and the upstream see the same request: the engine decides
//! on the path in normal form, and a request that continues carries exactly
//! that path (`:path` is rewritten), or is refused (`path_not_normal:
//! refuse`). A request that continues also carries the verified identity in
//! the application's identity headers, after every client copy in every
//! spelling is removed.
//!
//! Fail-closed rules: a configuration that does not parse or validate is
//! refused and, until a valid one arrives, every request is denied; a peer
//! identity that cannot be read is no identity; a value the decision needs
//! that is not text is a denial; nothing here panics on input.

#![forbid(unsafe_code)]

mod chain;
mod config;
mod outcome;

use std::net::SocketAddr;

use meshward_filter_glue::{
    self as glue, Connection, Filter, Handover, IdentityHeaders, IdentityStream, Shared, Wants,
};
use meshward_identity::SpiffeId;
use meshward_policy::RequestFacts;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::Action;

use self::chain::ChainStream;
use self::config::{DenyResponse, FilterConfig, FilterConfigError, PathNotNormal, PeerFrom};
use self::outcome::{Metrics, Outcome, Subject};

/// The root id of the identity filter, which this module also serves, so
/// that a chain of both filters can share one VM (Envoy shares a VM only
/// between plugins of the same code, `vm_id` and VM configuration).
pub const IDENTITY_ROOT_ID: &str = "meshward_identity";
/// The root id of identity and authorization in one HTTP context
/// (configuration `{"identity": {...}, "authz": {...}}`).
pub const CHAIN_ROOT_ID: &str = "meshward";

// The entry point lives in a private module: it is exported by name for the
// host, not part of a Rust API.
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_| super::root_for_plugin());
    }}
}

/// The root context for the plugin's `root_id`: the identity filter, the
/// chain, or (any other id, as before this module served several) the
/// authorization filter. A root id that cannot be read is the
/// authorization filter, which refuses any other filter's configuration
/// and then denies every request.
fn root_for_plugin() -> Box<dyn RootContext> {
    let root_id = glue::property(&["plugin_root_id"]).unwrap_or_default();
    if root_id == IDENTITY_ROOT_ID.as_bytes() {
        glue::root::<IdentityStream>()
    } else if root_id == CHAIN_ROOT_ID.as_bytes() {
        glue::root::<ChainStream>()
    } else {
        glue::root::<AuthzStream>()
    }
}

struct AuthzStream {
    shared: Shared<Self>,
}

impl Filter for AuthzStream {
    const NAME: &'static str = "meshward-authz";
    type Config = FilterConfig;
    type Error = FilterConfigError;
    type Metrics = Metrics;

    fn configure(bytes: &[u8]) -> Result<FilterConfig, FilterConfigError> {
        FilterConfig::from_json(bytes)
    }

    fn define_metrics() -> Option<Metrics> {
        Metrics::define()
    }

    fn stream(shared: Shared<Self>) -> Self {
        Self { shared }
    }
}

impl Context for AuthzStream {}

impl HttpContext for AuthzStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let metrics = self.shared.metrics.as_deref();
        let Some(config) = self.shared.config.clone() else {
            return act(metrics, &Outcome::Misconfigured, None, None);
        };
        let headers = glue::request_headers();
        let conn = glue::connection(&self.shared.connections, AUTHZ_WANTS);
        let mut facts = facts(&config, &headers, &conn);
        match config.peer_from {
            PeerFrom::Connection => {
                // A malformed SAN is no identity at all.
                if facts.mtls {
                    facts.peer = conn
                        .uri_san
                        .as_deref()
                        .and_then(|b| SpiffeId::from_bytes(b).ok());
                }
            }
            PeerFrom::IdentityFilter => {
                if let Some(handover) = Handover::read() {
                    facts.peer = Some(handover.peer);
                    facts.jwt_claims = handover.jwt_claims.map(serde_json::Value::Object);
                }
            }
        }
        let outcome = decide(&config, &facts);
        let action = act(metrics, &outcome, Some(&config), Some(&facts));
        if action == Action::Continue {
            rewrite_path(&facts);
            forward(&config, &facts, &headers);
        }
        action
    }
}

/// What the authorization filter reads about the connection.
const AUTHZ_WANTS: Wants = Wants {
    peer_certificate: false,
    addresses: true,
};

/// The engine's verdict on `facts`, or the refusal of a path not in normal
/// form when the configuration refuses those.
fn decide(config: &FilterConfig, facts: &RequestFacts) -> Outcome {
    if facts.rewritten_path().is_some() && config.path_not_normal == PathNotNormal::Refuse {
        Outcome::NotNormal
    } else {
        Outcome::new(config.engine.decide(facts), config.engine.mode())
    }
}

/// A request that continues carries the path that was decided on.
fn rewrite_path(facts: &RequestFacts) {
    if let Some(path) = facts.rewritten_path() {
        glue::set_request_header(":path", Some(path.as_bytes()));
    }
}

/// What a request that continues carries to the upstream: the verified
/// identity in the application's headers (and no client copy of them).
fn forward(config: &FilterConfig, facts: &RequestFacts, headers: &[(String, Vec<u8>)]) {
    let names = IdentityHeaders {
        peer_id: &config.identity_headers.peer_id,
        jwt_claims: &config.identity_headers.jwt_claims,
        others: &[],
    };
    names.scrub(headers);
    if let Some(peer) = &facts.peer {
        let jwt_claims = match &facts.jwt_claims {
            Some(serde_json::Value::Object(map)) => Some(map.clone()),
            _ => None,
        };
        names.write(&Handover {
            peer: peer.clone(),
            jwt_claims,
        });
    }
}

/// Counts the outcome, logs it as configured (and only if the host keeps
/// lines at its level), and answers the request when it is to be stopped.
fn act(
    metrics: Option<&Metrics>,
    outcome: &Outcome,
    config: Option<&FilterConfig>,
    facts: Option<&RequestFacts>,
) -> Action {
    if let Some(m) = metrics {
        for id in outcome.counters(m) {
            glue::increment(id);
        }
    }
    let log_setting = config.map(|c| c.decision_log).unwrap_or_default();
    if outcome
        .log_level(log_setting)
        .is_some_and(glue::log_enabled)
    {
        let request_id =
            glue::request_header("x-request-id").map(|b| String::from_utf8_lossy(&b).into_owned());
        let principal = facts.and_then(|f| f.peer.as_ref()).map(SpiffeId::as_str);
        let subject = Subject {
            principal,
            action: facts.map_or("", |f| f.method.as_str()),
            resource: facts.map_or("", |f| f.host.as_str()),
            path: facts.map_or("", |f| f.path.as_str()),
            request_id: request_id.as_deref(),
        };
        if let Some((level, line)) = outcome.log_line(log_setting, &subject) {
            glue::log(level, &line);
        }
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
            glue::reply(reply.status, &headers, reply.body.as_bytes());
            Action::Pause
        }
    }
}

/// Everything the engine may look at but the peer, read from the host as
/// bytes (the connection's facts once per connection).
fn facts(config: &FilterConfig, headers: &[(String, Vec<u8>)], conn: &Connection) -> RequestFacts {
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, v)| v.as_slice())
    };
    let mut facts = RequestFacts::from_raw(
        pseudo(":method"),
        pseudo(":authority"),
        pseudo(":path"),
        &config.path_normalization,
    );
    let ours = IdentityHeaders {
        peer_id: &config.identity_headers.peer_id,
        jwt_claims: &config.identity_headers.jwt_claims,
        others: &[],
    };
    let copies = ours.client_copies(headers);
    // A client's copy of an identity header is no fact: the verified
    // identity is the principal, and the copy is removed before forwarding.
    // Headers no policy reads cannot change the decision: not copying them
    // keeps a request's cost from growing with its headers.
    facts.headers = config.engine.headers_read(headers, &copies);
    // `connection.mtls` says a certificate was presented; only with Envoy's
    // verdict that its chain validated is it a verified peer.
    facts.mtls = conn.verified_mtls();
    facts.port = conn
        .destination_port
        .as_deref()
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .and_then(|b| u16::try_from(i64::from_le_bytes(b)).ok())
        .unwrap_or(0);
    facts.source = conn
        .source_address
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse::<SocketAddr>().ok());
    facts.sni = conn
        .requested_server_name
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    facts.time = glue::now();
    facts
}
