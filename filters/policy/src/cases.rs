//! Policy test cases as data, and the one runner every implementation shares.
//!
//! A suite is a JSON file next to the policies it tests:
//!
//! ```json
//! {
//!   "description": "what the policies are for",
//!   "policies": ["namespace-isolation.cedar"],
//!   "require_peer_identity": true,
//!   "cases": [{
//!     "name": "same namespace may call",
//!     "request": {"peer": "spiffe://cluster.local/ns/shop/sa/web",
//!                 "method": "GET", "host": "cart.shop", "path": "/items?x=1"},
//!     "expect": {"decision": "allow", "reason": "permitted",
//!                "determining": ["same-namespace"]}
//!   }]
//! }
//! ```
//!
//! `policies` are file names relative to the suite, concatenated in order;
//! reading them is the caller's business (this crate does no I/O). In
//! `expect`, only `decision` is required; `reason`, `determining` and `errors`
//! (a count) are checked when present.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::engine::{Decision, PolicyEngine};
use crate::facts::RequestFacts;

/// Something that decides requests: the native engine, or a compiled filter
/// driven through a host. Suites run through this trait so implementations
/// can be compared case by case.
pub trait Decide {
    /// Decides one request; `Err` when the implementation could not answer
    /// (which fails the case).
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String>;
}

impl Decide for PolicyEngine {
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String> {
        Ok(PolicyEngine::decide(self, facts))
    }
}

/// A policy test suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Suite {
    /// What the policies are for.
    #[serde(default)]
    pub description: String,
    /// Policy files, relative to the suite file, concatenated in order.
    pub policies: Vec<String>,
    /// The engine's `require_peer_identity`; the engine default when absent.
    #[serde(default)]
    pub require_peer_identity: Option<bool>,
    /// The cases.
    pub cases: Vec<Case>,
}

impl Suite {
    /// Parses a suite from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The engine configuration JSON for this suite, given the text of its
    /// policies, so every implementation is configured the same way.
    pub fn config_json(&self, policies: &str) -> String {
        let mut config = serde_json::json!({ "policies": policies });
        if let (Some(require), Some(map)) = (self.require_peer_identity, config.as_object_mut()) {
            map.insert("require_peer_identity".to_owned(), require.into());
        }
        config.to_string()
    }
}

/// One request and what must be decided for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Case {
    /// What the case shows.
    pub name: String,
    /// The request.
    pub request: CaseRequest,
    /// The expected decision.
    pub expect: Expect,
}

/// A request as written in a suite; see [`RequestFacts`] for the meaning of
/// each field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CaseRequest {
    /// The peer's SPIFFE ID; none for a request without identity.
    #[serde(default)]
    pub peer: Option<meshward_identity::SpiffeId>,
    /// The method.
    pub method: String,
    /// The authority.
    pub host: String,
    /// The `:path`, query included.
    pub path: String,
    /// The destination port; 80 when absent.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Headers by name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The source address, `ip:port`.
    #[serde(default)]
    pub source: Option<SocketAddr>,
    /// The TLS server name.
    #[serde(default)]
    pub sni: Option<String>,
    /// Whether the connection was mutual TLS; true when absent and a peer is
    /// given.
    #[serde(default)]
    pub mtls: Option<bool>,
    /// Verified JWT claims.
    #[serde(default)]
    pub jwt: Option<serde_json::Value>,
    /// The time, `YYYY-MM-DDTHH:MM:SSZ`; the Unix epoch when absent.
    #[serde(default)]
    pub time: Option<String>,
}

fn default_port() -> u16 {
    80
}

impl CaseRequest {
    /// The request facts this case describes.
    pub fn to_facts(&self) -> Result<RequestFacts, String> {
        let mut facts = RequestFacts::new(&self.method, &self.host, &self.path);
        facts.peer = self.peer.clone();
        facts.port = self.port;
        facts.headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        facts.source = self.source;
        facts.sni = self.sni.clone();
        facts.mtls = self.mtls.unwrap_or(self.peer.is_some());
        facts.jwt_claims = self.jwt.clone();
        if let Some(time) = &self.time {
            facts.time = parse_utc(time).ok_or_else(|| format!("bad time `{time}`"))?;
        }
        Ok(facts)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` to a time.
fn parse_utc(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b.get(19) != Some(&b'Z') || b.get(10) != Some(&b'T') {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil, the inverse of `model::civil_from_days`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// What a case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Expect {
    /// `allow` or `deny`.
    pub decision: Verdict,
    /// The [`Reason`](crate::Reason) code, e.g. `forbidden`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The determining policy ids, in any order.
    #[serde(default)]
    pub determining: Option<Vec<String>>,
    /// How many evaluation errors.
    #[serde(default)]
    pub errors: Option<usize>,
}

/// An expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The request proceeds.
    Allow,
    /// The request is stopped.
    Deny,
}

/// A case whose decision was not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// The case's name.
    pub case: String,
    /// What differed.
    pub message: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "case `{}`: {}", self.case, self.message)
    }
}

/// Runs every case of `suite` through `decider`; returns the failures.
pub fn run_suite(decider: &mut dyn Decide, suite: &Suite) -> Vec<CaseFailure> {
    suite
        .cases
        .iter()
        .filter_map(|case| {
            check(decider, case).err().map(|message| CaseFailure {
                case: case.name.clone(),
                message,
            })
        })
        .collect()
}

fn check(decider: &mut dyn Decide, case: &Case) -> Result<(), String> {
    let facts = case.request.to_facts()?;
    let d = decider.decide(&facts)?;
    let want = &case.expect;
    let mut problems = Vec::new();
    let allowed = want.decision == Verdict::Allow;
    if d.allowed != allowed {
        problems.push(format!(
            "expected {}, got {} ({})",
            verdict(allowed),
            verdict(d.allowed),
            d.reason
        ));
    }
    if let Some(reason) = &want.reason
        && reason != d.reason.code()
    {
        problems.push(format!("expected reason `{reason}`, got `{}`", d.reason));
    }
    if let Some(ids) = &want.determining {
        let mut want_ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        want_ids.sort_unstable();
        let got: Vec<&str> = d.determining.iter().map(|p| p.as_str()).collect();
        if want_ids != got {
            problems.push(format!("expected determining {want_ids:?}, got {got:?}"));
        }
    }
    if let Some(n) = want.errors
        && n != d.errors.len()
    {
        problems.push(format!("expected {n} errors, got {:?}", d.errors));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_parsing() {
        let t = parse_utc("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(crate::view::cedar_datetime(t), "2024-02-29T23:59:59Z");
        assert_eq!(
            parse_utc("1970-01-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert!(parse_utc("2024-13-01T00:00:00Z").is_none());
        assert!(parse_utc("2024-01-01 00:00:00").is_none());
    }
}
