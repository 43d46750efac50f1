//! The identity filter's work on one request, shared by the identity
//! module (root id `meshward_identity`) and the module that runs identity
//! and authorization in one HTTP context: read the peer's identity from the
//! connection (and the headers the configuration names), ask
//! `meshward-identity` whether that peer may connect, and turn the verdict
//! into a response, a log line and a counter, so the three can never
//! disagree. A request it lets through carries the verified identity to
//! the application in request headers, written after every client copy in
//! any spelling is removed.
//!
//! Fail-closed rules: no accepted configuration denies every request; a
//! client certificate Envoy did not validate is no identity; a header the
//! library needs that is not text is a denial; nothing here panics on input.

use std::time::UNIX_EPOCH;

use meshward_identity::{AuthnConfig, AuthnConfigError, Denial, Identity, PeerFacts, authenticate};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use crate::connection::{Connection, Wants, connection};
use crate::{self as glue, Filter, Handover, IdentityHeaders, Shared};

/// The identity filter's HTTP context (root id `meshward_identity`).
pub struct IdentityStream {
    shared: Shared<Self>,
}

impl Filter for IdentityStream {
    const NAME: &'static str = "meshward-identity";
    type Config = AuthnConfig;
    type Error = AuthnConfigError;
    type Metrics = IdentityMetrics;

    fn configure(bytes: &[u8]) -> Result<AuthnConfig, AuthnConfigError> {
        AuthnConfig::from_json(bytes)
    }

    fn define_metrics() -> Option<IdentityMetrics> {
        IdentityMetrics::define()
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
        let conn = config
            .as_deref()
            .map(|c| connection(&self.shared.connections, identity_wants(c)));
        let outcome = identify(config.as_deref(), &headers, conn.as_deref());
        outcome.record(self.shared.metrics.as_deref());
        match (outcome, config.as_deref()) {
            (IdentityOutcome::Allowed(identity), Some(config)) => {
                let handover = Handover {
                    peer: identity.peer.clone(),
                    jwt_claims: identity.end_user.as_ref().map(|u| u.claims.clone()),
                };
                if handover.publish().is_err() {
                    return IdentityOutcome::Misconfigured.deny();
                }
                forward_identity(config, &identity, &handover, &headers);
                Action::Continue
            }
            (denied, _) => denied.deny(),
        }
    }
}

/// What the identity check needs to know about the connection.
pub fn identity_wants(config: &AuthnConfig) -> Wants {
    Wants {
        peer_certificate: config.needs_peer_certificate(),
        addresses: false,
    }
}

/// The identity check of one request, from its headers and its
/// connection's facts (`None` only without a configuration).
pub fn identify(
    config: Option<&AuthnConfig>,
    headers: &[(String, Vec<u8>)],
    conn: Option<&Connection>,
) -> IdentityOutcome {
    let (Some(config), Some(conn)) = (config, conn) else {
        return IdentityOutcome::Misconfigured;
    };
    match facts(config, headers, conn) {
        Err(outcome) => outcome,
        Ok(facts) => match authenticate(config, &facts, now()) {
            Ok(identity) => IdentityOutcome::Allowed(Box::new(identity)),
            Err(denial) => IdentityOutcome::Denied(denial),
        },
    }
}

/// Only an allowed request reaches the upstream, so this is where
/// client-supplied copies of every header the identity filter vouches for
/// are removed, before the verified values are set.
pub fn forward_identity(
    config: &AuthnConfig,
    identity: &Identity,
    handover: &Handover,
    headers: &[(String, Vec<u8>)],
) {
    let names = IdentityHeaders {
        peer_id: &config.forward().peer_id,
        jwt_claims: &config.forward().jwt_claims,
        others: &identity.headers_to_remove,
    };
    names.scrub(headers);
    names.write(handover);
    for (name, value) in &identity.headers_to_set {
        glue::set_request_header(name, Some(value.as_bytes()));
    }
}

/// Exactly what the configuration needs from what the host said.
fn facts(
    config: &AuthnConfig,
    headers: &[(String, Vec<u8>)],
    conn: &Connection,
) -> Result<PeerFacts, IdentityOutcome> {
    let wanted = config.request_headers();
    let mut text = Vec::new();
    if !wanted.is_empty() {
        for (name, value) in headers {
            if wanted.iter().any(|w| w.eq_ignore_ascii_case(name)) {
                // A credential that is not text cannot be a valid one; say
                // so rather than guess at a lossy reading.
                let value = String::from_utf8(value.clone())
                    .map_err(|_| IdentityOutcome::NotText(name.clone()))?;
                text.push((name.clone(), value));
            }
        }
    }
    // `connection.mtls` only says a certificate was presented; with
    // `trust_chain_verification: ACCEPT_UNTRUSTED` Envoy accepts a
    // certificate that does not chain to the trust bundle. Only Envoy's
    // verdict that the chain validated makes it an identity.
    if conn.presented() && !conn.peer_certificate_valid {
        return Err(IdentityOutcome::UnverifiedCertificate);
    }
    Ok(PeerFacts {
        mtls: conn.mtls.clone(),
        uri_san: conn.uri_san.clone(),
        peer_certificate: if config.needs_peer_certificate() {
            conn.peer_certificate.clone()
        } else {
            None
        },
        headers: text,
    })
}

/// The host's clock in Unix seconds. A clock before 1970 reads as 0, which
/// makes every certificate and token look not yet valid: a denial, never an
/// allow.
fn now() -> i64 {
    glue::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the identity check decided for one request.
pub enum IdentityOutcome {
    /// The peer (and every configured token) was verified.
    Allowed(Box<Identity>),
    /// It was not, and this is why.
    Denied(Denial),
    /// No accepted configuration: deny rather than guess.
    Misconfigured,
    /// A header the configuration reads (a token, XFCC) is not text, so it
    /// cannot hold a valid credential.
    NotText(String),
    /// The client presented a certificate Envoy did not validate
    /// (`connection.peer_certificate_valid` is not true).
    UnverifiedCertificate,
}

/// The identity filter's counters, in Envoy's stats under `wasmcustom.`.
pub struct IdentityMetrics {
    allowed: u32,
    denied: u32,
    errors: u32,
}

impl IdentityMetrics {
    /// Defines the counters; `None` if the host refused one.
    pub fn define() -> Option<Self> {
        Some(Self {
            allowed: glue::counter("meshward_identity_allowed")?,
            denied: glue::counter("meshward_identity_denied")?,
            errors: glue::counter("meshward_identity_errors")?,
        })
    }
}

impl IdentityOutcome {
    /// A short stable reason code, safe to show the client.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allowed",
            Self::Denied(d) => d.code(),
            Self::Misconfigured => "filter_misconfigured",
            Self::NotText(_) => "header_not_text",
            Self::UnverifiedCertificate => "peer_certificate_unverified",
        }
    }

    /// Status and body of the local reply. The body names the reason code
    /// only: enough for the client to act on, nothing about the rules.
    pub fn response(&self) -> (u32, String) {
        let status = match self {
            Self::Allowed(_) => 200,
            // A missing or bad token is a failure to authenticate, answered
            // 401 as Istio's RequestAuthentication does; a peer that is
            // known but not admitted is 403, as Istio's RBAC answers.
            Self::Denied(
                Denial::MissingJwt
                | Denial::InvalidJwt(_)
                | Denial::MissingJwtSvid
                | Denial::InvalidJwtSvid(_),
            ) => 401,
            Self::Denied(_) | Self::NotText(_) | Self::UnverifiedCertificate => 403,
            // The filter cannot serve at all, as when Envoy fails a plugin
            // closed.
            Self::Misconfigured => 503,
        };
        (
            status,
            format!("meshward: access denied: {}\n", self.code()),
        )
    }

    /// Writes the decision log line (when the host keeps lines at its
    /// level) and bumps the matching counter.
    pub fn record(&self, metrics: Option<&IdentityMetrics>) {
        let level = match self {
            Self::Allowed(_) => LogLevel::Info,
            Self::Denied(_)
            | Self::Misconfigured
            | Self::NotText(_)
            | Self::UnverifiedCertificate => LogLevel::Warn,
        };
        if let Some(m) = metrics {
            let id = match self {
                Self::Allowed(_) => m.allowed,
                Self::Denied(_) | Self::NotText(_) | Self::UnverifiedCertificate => m.denied,
                Self::Misconfigured => m.errors,
            };
            glue::increment(id);
        }
        if !glue::log_enabled(level) {
            return;
        }
        let request_id =
            glue::request_header("x-request-id").map(|b| String::from_utf8_lossy(&b).into_owned());
        let request_id = request_id.as_deref();
        let line = serde_json::json!({
            "decision": if matches!(self, Self::Allowed(_)) { "allow" } else { "deny" },
            "reason": self.code(),
            "detail": match self {
                Self::Allowed(_) => String::new(),
                Self::Denied(d) => d.to_string(),
                Self::Misconfigured => "the filter has no valid configuration".to_owned(),
                Self::NotText(name) => format!("header `{name}` is not UTF-8"),
                Self::UnverifiedCertificate => {
                    "the client certificate did not validate against the trust bundle".to_owned()
                }
            },
            "peer": match self {
                Self::Allowed(id) => Some(&id.peer),
                Self::Denied(d) => d.peer(),
                Self::Misconfigured | Self::NotText(_) | Self::UnverifiedCertificate => None,
            },
            "request_id": request_id,
        });
        glue::log(level, &format!("meshward-identity decision {line}"));
    }

    /// Answers the request locally with this outcome's status and reason.
    pub fn deny(&self) -> Action {
        let (status, body) = self.response();
        glue::reply(
            status,
            &[
                ("content-type", "text/plain"),
                ("x-meshward-deny-reason", self.code()),
            ],
            body.as_bytes(),
        );
        Action::Pause
    }
}
