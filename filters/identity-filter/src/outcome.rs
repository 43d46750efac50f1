//! The one place where a decision becomes a response, a log line and a
//! metric, so the three can never disagree.

use meshward_filter_glue as glue;
use meshward_identity::{Denial, Identity};
use proxy_wasm::types::LogLevel;

/// What the filter decided for one request.
pub(crate) enum Outcome {
    Allowed(Box<Identity>),
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

/// Counters that appear in Envoy's stats under `wasmcustom.`.
pub(crate) struct Metrics {
    allowed: u32,
    denied: u32,
    errors: u32,
}

impl Metrics {
    pub(crate) fn define() -> Option<Self> {
        Some(Self {
            allowed: glue::counter("meshward_identity_allowed")?,
            denied: glue::counter("meshward_identity_denied")?,
            errors: glue::counter("meshward_identity_errors")?,
        })
    }
}

impl Outcome {
    pub(crate) fn code(&self) -> &'static str {
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

    /// Writes the decision log line and bumps the matching counter.
    pub(crate) fn record(&self, metrics: Option<&Metrics>, request_id: Option<&str>) {
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
        let level = match self {
            Self::Allowed(_) => LogLevel::Info,
            Self::Denied(_)
            | Self::Misconfigured
            | Self::NotText(_)
            | Self::UnverifiedCertificate => LogLevel::Warn,
        };
        glue::log(level, &format!("meshward-identity decision {line}"));
        if let Some(m) = metrics {
            let id = match self {
                Self::Allowed(_) => m.allowed,
                Self::Denied(_) | Self::NotText(_) | Self::UnverifiedCertificate => m.denied,
                Self::Misconfigured => m.errors,
            };
            glue::increment(id);
        }
    }
}
