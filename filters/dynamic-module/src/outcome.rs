//! Where a decision becomes a local reply and a log line, written to give
//! exactly the wasm filters' replies and lines (status, body, the
//! `x-meshward-deny-reason` header, the JSON decision line), so that a
//! client, a log reader and the equality test in `tests/all` cannot tell
//! the two forms apart.

use meshward_identity::{Denial, Identity};
use meshward_policy::{Decision, Mode};

use crate::config::{DecisionLog, DenyResponse};

/// A log level the module writes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    /// The module's own failures (only `abi.rs` writes them).
    #[cfg_attr(test, allow(dead_code))]
    Error,
}

/// A local reply that stops the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u32,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    /// A reply with meshward's plain-text body and reason header.
    fn plain(status: u32, code: &str) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type".to_owned(), "text/plain".to_owned()),
                ("x-meshward-deny-reason".to_owned(), code.to_owned()),
            ],
            body: format!("meshward: access denied: {code}\n"),
        }
    }

    #[cfg_attr(test, allow(dead_code, reason = "only `abi.rs` answers it"))]
    /// The answer when the module itself failed (a caught panic): the
    /// filter cannot serve, as when Envoy fails a plugin closed.
    pub(crate) fn filter_error() -> Self {
        Self::plain(503, "filter_error")
    }
}

/// What the identity stage decided (the wasm filters' `IdentityOutcome`).
pub(crate) enum IdentityOutcome {
    Allowed(Box<Identity>),
    Denied(Denial),
    /// A header the configuration reads is not text.
    NotText(String),
}

impl IdentityOutcome {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allowed",
            Self::Denied(d) => d.code(),
            Self::NotText(_) => "header_not_text",
        }
    }

    /// The local reply of a denial, as the wasm identity filter answers.
    pub(crate) fn reply(&self) -> Option<Reply> {
        let status = match self {
            Self::Allowed(_) => return None,
            // As the wasm filter: a missing or bad token is a failure to
            // authenticate (401), a known but refused peer is 403.
            Self::Denied(
                Denial::MissingJwt
                | Denial::InvalidJwt(_)
                | Denial::MissingJwtSvid
                | Denial::InvalidJwtSvid(_),
            ) => 401,
            Self::Denied(_) | Self::NotText(_) => 403,
        };
        Some(Reply::plain(status, self.code()))
    }

    pub(crate) fn level(&self) -> Level {
        match self {
            Self::Allowed(_) => Level::Info,
            Self::Denied(_) | Self::NotText(_) => Level::Warn,
        }
    }

    /// The decision log line.
    pub(crate) fn log_line(&self, request_id: Option<&str>) -> String {
        let line = serde_json::json!({
            "decision": if matches!(self, Self::Allowed(_)) { "allow" } else { "deny" },
            "reason": self.code(),
            "detail": match self {
                Self::Allowed(_) => String::new(),
                Self::Denied(d) => d.to_string(),
                Self::NotText(name) => format!("header `{name}` is not UTF-8"),
            },
            "peer": match self {
                Self::Allowed(id) => Some(&id.peer),
                Self::Denied(d) => d.peer(),
                Self::NotText(_) => None,
            },
            "request_id": request_id,
        });
        format!("meshward-identity decision {line}")
    }
}

/// What the authorization stage does with one request (the wasm filter's
/// `Outcome`; `Misconfigured` cannot happen here, as Envoy never runs a
/// filter whose configuration the module refused).
#[derive(Debug)]
pub(crate) enum Outcome {
    Allowed(Decision),
    Denied(Decision),
    DryRunDenied(Decision),
    /// The path is not in normal form and the configuration refuses those.
    NotNormal,
}

/// What was asked, for the log line.
pub(crate) struct Subject<'a> {
    pub(crate) principal: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) path: &'a str,
    pub(crate) request_id: Option<&'a str>,
}

impl Outcome {
    pub(crate) fn new(decision: Decision, mode: Mode) -> Self {
        match (decision.allowed, mode) {
            (true, _) => Self::Allowed(decision),
            (false, Mode::Enforce) => Self::Denied(decision),
            (false, Mode::DryRun) => Self::DryRunDenied(decision),
        }
    }

    fn decision(&self) -> Option<&Decision> {
        match self {
            Self::Allowed(d) | Self::Denied(d) | Self::DryRunDenied(d) => Some(d),
            Self::NotNormal => None,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotNormal => "path_not_normal",
            Self::Allowed(d) | Self::Denied(d) | Self::DryRunDenied(d) => d.reason.code(),
        }
    }

    fn verdict(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allow",
            Self::Denied(_) | Self::NotNormal => "deny",
            Self::DryRunDenied(_) => "dry_run_deny",
        }
    }

    /// The local reply, when the request is to be stopped.
    pub(crate) fn reply(&self, deny: &DenyResponse) -> Option<Reply> {
        match self {
            Self::Allowed(_) | Self::DryRunDenied(_) => None,
            Self::Denied(_) | Self::NotNormal => {
                let mut headers: Vec<(String, String)> = deny
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                headers.push(("content-type".to_owned(), "text/plain".to_owned()));
                headers.push(("x-meshward-deny-reason".to_owned(), self.code().to_owned()));
                Some(Reply {
                    status: deny.status,
                    headers,
                    body: deny.body.replace("{reason}", self.code()),
                })
            }
        }
    }

    /// The level of the decision log line, if `log` asks for one.
    pub(crate) fn log_level(&self, log: DecisionLog) -> Option<Level> {
        let wanted = match log {
            DecisionLog::All => true,
            DecisionLog::Denies => !matches!(self, Self::Allowed(_)),
            DecisionLog::None => false,
        };
        wanted.then_some(match self {
            Self::Allowed(_) => Level::Info,
            Self::Denied(_) | Self::DryRunDenied(_) | Self::NotNormal => Level::Warn,
        })
    }

    /// The decision log line.
    pub(crate) fn log_line(&self, subject: &Subject<'_>) -> String {
        let decision = self.decision();
        let line = serde_json::json!({
            "decision": self.verdict(),
            "reason": self.code(),
            "determining": decision.map(|d| d.determining.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
            "errors": decision.map(|d| &d.errors),
            "principal": subject.principal,
            "action": subject.action,
            "resource": subject.resource,
            "path": subject.path,
            "request_id": subject.request_id,
        });
        format!("meshward-authz decision {line}")
    }
}
