//! The one place where a decision becomes a response, a log line and a
//! metric, so the three can never disagree.

use meshward_identity::{Denial, Identity};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

/// What the filter decided for one request.
pub(crate) enum Outcome {
    Allowed(Box<Identity>),
    Denied(Denial),
    /// No accepted configuration: deny rather than guess.
    Misconfigured,
}

/// Counters that appear in Envoy's stats under `wasmcustom.`.
pub(crate) struct Metrics {
    allowed: u32,
    denied: u32,
    errors: u32,
}

impl Metrics {
    pub(crate) fn define() -> Option<Self> {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
        Some(Self {
            allowed: counter("meshward_identity_allowed")?,
            denied: counter("meshward_identity_denied")?,
            errors: counter("meshward_identity_errors")?,
        })
    }
}

impl Outcome {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allowed",
            Self::Denied(d) => d.code(),
            Self::Misconfigured => "filter_misconfigured",
        }
    }

    /// Status and body of the local reply. The body names the reason code
    /// only: enough for the client to act on, nothing about the rules.
    pub(crate) fn response(&self) -> (u32, String) {
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
            Self::Denied(_) => 403,
            // The filter cannot serve at all, as when Envoy fails a plugin
            // closed.
            Self::Misconfigured => 503,
        };
        (
            status,
            format!("meshward: access denied: {}\n", self.code()),
        )
    }

    /// Writes the decision log line and bumps the matching counter.
    pub(crate) fn record(&self, metrics: Option<&Metrics>, request_id: Option<&str>) {
        let line = serde_json::json!({
            "decision": if matches!(self, Self::Allowed(_)) { "allow" } else { "deny" },
            "reason": self.code(),
            "detail": match self {
                Self::Allowed(_) => String::new(),
                Self::Denied(d) => d.to_string(),
                Self::Misconfigured => "the filter has no valid configuration".to_owned(),
            },
            "peer": match self {
                Self::Allowed(id) => Some(&id.peer),
                Self::Denied(d) => d.peer(),
                Self::Misconfigured => None,
            },
            "request_id": request_id,
        });
        let level = match self {
            Self::Allowed(_) => LogLevel::Info,
            Self::Denied(_) | Self::Misconfigured => LogLevel::Warn,
        };
        hostcalls::log(level, &format!("meshward-identity decision {line}")).ok();
        if let Some(m) = metrics {
            let id = match self {
                Self::Allowed(_) => m.allowed,
                Self::Denied(_) => m.denied,
                Self::Misconfigured => m.errors,
            };
            hostcalls::increment_metric(id, 1).ok();
        }
    }
}
