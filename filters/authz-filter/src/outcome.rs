//! The one place where a decision becomes a response, a log line and the
//! counters, so the three can never disagree.

use meshward_filter_glue as glue;
use meshward_policy::{Decision, Mode};
use proxy_wasm::types::LogLevel;

use crate::config::{DecisionLog, DenyResponse};

/// What the filter does with one request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Cedar permitted it.
    Allowed(Decision),
    /// Cedar denied it, in enforce mode: stop it.
    Denied(Decision),
    /// Cedar denied it, in dry-run mode: report it, let it through.
    DryRunDenied(Decision),
    /// No accepted configuration: deny rather than guess.
    Misconfigured,
    /// The path is not in normal form and the configuration refuses such
    /// paths (`path_not_normal: refuse`), in either mode.
    NotNormal,
}

/// The local reply that stops a denied request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u32,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// What was asked, for the log line.
pub(crate) struct Subject<'a> {
    pub(crate) principal: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) path: &'a str,
    pub(crate) request_id: Option<&'a str>,
}

/// Counters that appear in Envoy's stats under `wasmcustom.`.
pub(crate) struct Metrics {
    allowed: u32,
    denied: u32,
    dry_run_denied: u32,
    errors: u32,
}

impl Metrics {
    pub(crate) fn define() -> Option<Self> {
        Some(Self {
            allowed: glue::counter("meshward_authz_allowed")?,
            denied: glue::counter("meshward_authz_denied")?,
            dry_run_denied: glue::counter("meshward_authz_dry_run_denied")?,
            errors: glue::counter("meshward_authz_errors")?,
        })
    }
}

impl Outcome {
    pub(crate) fn new(decision: Decision, mode: Mode) -> Self {
        match (decision.allowed, mode) {
            (true, _) => Self::Allowed(decision),
            (false, Mode::Enforce) => Self::Denied(decision),
            (false, Mode::DryRun) => Self::DryRunDenied(decision),
        }
    }

    pub(crate) fn decision(&self) -> Option<&Decision> {
        match self {
            Self::Allowed(d) | Self::Denied(d) | Self::DryRunDenied(d) => Some(d),
            Self::Misconfigured | Self::NotNormal => None,
        }
    }

    /// A short stable reason code, safe to show the client.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Misconfigured => "filter_misconfigured",
            Self::NotNormal => "path_not_normal",
            Self::Allowed(d) | Self::Denied(d) | Self::DryRunDenied(d) => d.reason.code(),
        }
    }

    fn verdict(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allow",
            Self::Denied(_) | Self::Misconfigured | Self::NotNormal => "deny",
            Self::DryRunDenied(_) => "dry_run_deny",
        }
    }

    /// The local reply, when the request is to be stopped.
    pub(crate) fn response(&self, deny: &DenyResponse) -> Option<Reply> {
        let (status, body) = match self {
            Self::Allowed(_) | Self::DryRunDenied(_) => return None,
            Self::Denied(_) | Self::NotNormal => {
                (deny.status, deny.body.replace("{reason}", self.code()))
            }
            // The filter cannot serve at all, as when Envoy fails a plugin
            // closed; the configured response belongs to a working filter.
            Self::Misconfigured => (503, format!("meshward: access denied: {}\n", self.code())),
        };
        let mut headers: Vec<(String, String)> = deny
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.push(("content-type".to_owned(), "text/plain".to_owned()));
        headers.push(("x-meshward-deny-reason".to_owned(), self.code().to_owned()));
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    /// The level of the decision log line, if `log` asks for one.
    pub(crate) fn log_level(&self, log: DecisionLog) -> Option<LogLevel> {
        let wanted = match log {
            DecisionLog::All => true,
            DecisionLog::Denies => !matches!(self, Self::Allowed(_)),
            DecisionLog::None => false,
        };
        if !wanted {
            return None;
        }
        Some(match self {
            Self::Allowed(_) => LogLevel::Info,
            Self::Denied(_) | Self::DryRunDenied(_) | Self::Misconfigured | Self::NotNormal => {
                LogLevel::Warn
            }
        })
    }

    /// The decision log line, if `log` asks for one.
    pub(crate) fn log_line(
        &self,
        log: DecisionLog,
        subject: &Subject<'_>,
    ) -> Option<(LogLevel, String)> {
        let level = self.log_level(log)?;
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
        Some((level, format!("meshward-authz decision {line}")))
    }

    /// Which counters this outcome bumps: exactly one of allowed, denied and
    /// dry-run denied, plus errors when evaluation erred or the filter has
    /// no configuration.
    pub(crate) fn counters(&self, m: &Metrics) -> Vec<u32> {
        let main = match self {
            Self::Allowed(_) => m.allowed,
            Self::Denied(_) | Self::Misconfigured | Self::NotNormal => m.denied,
            Self::DryRunDenied(_) => m.dry_run_denied,
        };
        let erred = match self {
            Self::NotNormal => false,
            _ => self.decision().is_none_or(|d| !d.errors.is_empty()),
        };
        let mut ids = vec![main];
        if erred {
            ids.push(m.errors);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshward_policy::RequestFacts;

    fn decision(policies: &str) -> Decision {
        let engine = meshward_policy_cedar::engine_from_policies(policies).unwrap();
        let facts = RequestFacts::new("GET", "api.local", "/x")
            .with_peer("spiffe://example.org/ns/a/sa/b".parse().unwrap());
        engine.decide(&facts)
    }

    fn subject() -> Subject<'static> {
        Subject {
            principal: Some("spiffe://example.org/ns/a/sa/b"),
            action: "GET",
            resource: "api.local",
            path: "/x",
            request_id: Some("r1"),
        }
    }

    const PERMIT: &str = r#"@id("allow-everyone") permit(principal, action, resource);"#;
    const FORBID: &str = r#"@id("deny-everyone") forbid(principal, action, resource);"#;

    #[test]
    fn only_a_permit_allows_and_only_enforce_stops() {
        let allow = Outcome::new(decision(PERMIT), Mode::Enforce);
        assert!(matches!(allow, Outcome::Allowed(_)));
        assert!(allow.response(&DenyResponse::default()).is_none());

        let deny = Outcome::new(decision(FORBID), Mode::Enforce);
        let Reply {
            status,
            headers,
            body,
        } = deny.response(&DenyResponse::default()).unwrap();
        assert_eq!(status, 403);
        assert_eq!(body, "meshward: access denied: forbidden\n");
        assert!(headers.contains(&("x-meshward-deny-reason".to_owned(), "forbidden".to_owned())));
        let all: String = headers.iter().map(|(k, v)| format!("{k}{v}")).collect();
        assert!(
            !format!("{body}{all}").contains("deny-everyone"),
            "policy ids stay in the logs"
        );

        let dry = Outcome::new(decision(FORBID), Mode::DryRun);
        assert!(matches!(dry, Outcome::DryRunDenied(_)));
        assert!(dry.response(&DenyResponse::default()).is_none());

        let none = Outcome::new(decision(""), Mode::Enforce);
        assert_eq!(none.code(), "no_permit");
        assert!(none.response(&DenyResponse::default()).is_some());

        let reply = Outcome::Misconfigured
            .response(&DenyResponse::default())
            .unwrap();
        assert_eq!(reply.status, 503);
    }

    #[test]
    fn log_lines_follow_the_setting_and_name_policies() {
        let deny = Outcome::new(decision(FORBID), Mode::Enforce);
        let allow = Outcome::new(decision(PERMIT), Mode::Enforce);
        assert!(allow.log_line(DecisionLog::Denies, &subject()).is_none());
        assert!(deny.log_line(DecisionLog::None, &subject()).is_none());
        let (_, line) = deny.log_line(DecisionLog::Denies, &subject()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("meshward-authz decision ").unwrap()).unwrap();
        assert_eq!(json["decision"], "deny");
        assert_eq!(json["determining"], serde_json::json!(["deny-everyone"]));
        assert_eq!(json["principal"], "spiffe://example.org/ns/a/sa/b");
        assert_eq!(json["request_id"], "r1");
    }

    #[test]
    fn counters_are_exclusive() {
        let m = Metrics {
            allowed: 1,
            denied: 2,
            dry_run_denied: 3,
            errors: 4,
        };
        assert_eq!(
            Outcome::new(decision(PERMIT), Mode::Enforce).counters(&m),
            [1]
        );
        assert_eq!(
            Outcome::new(decision(FORBID), Mode::Enforce).counters(&m),
            [2]
        );
        assert_eq!(
            Outcome::new(decision(FORBID), Mode::DryRun).counters(&m),
            [3]
        );
        assert_eq!(Outcome::Misconfigured.counters(&m), [2, 4]);
    }
}
