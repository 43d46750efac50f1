//! `meshward test`: policy test suites (`*.cases.json`) against the
//! compiled authorization filter in the wasmtime harness, as Envoy would
//! run it behind the identity filter.
//!
//! [`SuiteFile`] and [`CompiledAuthz`] are public so the workspace's tests
//! run suites exactly as this command does instead of keeping a copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meshward_harness::{Filter, Host, PluginConfig, Request};
use meshward_policy::{Decide, Decision, PolicyId, Reason, RequestFacts, Suite};

use crate::authz_config::{Authoring, PeerFrom, authz_config};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Suite files (`*.cases.json`); their `policies` are read relative to
    /// each suite.
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// The authorization filter to test instead of the one compiled into
    /// `meshward`.
    #[arg(long)]
    filter: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let wasm = crate::modules::authz(args.filter.as_deref())?;
    eprintln!("meshward: compiling the authorization filter");
    let filter = Host::new()?
        .load(&wasm)
        .map_err(|e| format!("the authorization filter did not load: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    for path in &args.suites {
        let (p, f) = run_suite_file(&filter, path)?;
        passed += p;
        failed += f;
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(format!("{failed} case(s) failed").into());
    }
    Ok(())
}

/// A suite file with what `meshward test` builds from it: its policies
/// (read relative to the file), checked by the engine, and the
/// authorization filter's configuration for them.
#[derive(Debug, Clone)]
pub struct SuiteFile {
    /// The suite.
    pub suite: Suite,
    /// The suite's policy files, joined, as the filter is configured with.
    pub policies: String,
    /// The authorization filter's plugin configuration (policies compiled,
    /// the peer from the identity filter).
    pub authz_config: String,
    /// The ids of the policies, sorted.
    pub policy_ids: Vec<String>,
}

impl SuiteFile {
    /// Reads `path` and its policies; the errors name the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let suite = Suite::from_json(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut policies = Vec::new();
        for p in &suite.policies {
            let file = dir.join(p);
            policies.push(
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?,
            );
        }
        let policies = policies.join("\n");
        let mut authoring = Authoring::new(policies.clone(), PeerFrom::IdentityFilter);
        authoring.require_peer_identity = suite.require_peer_identity;
        // The engine validates the policies (with their places) and names them.
        let policy_ids = crate::authz_config::engine(&authoring)
            .map_err(|e| {
                format!(
                    "`{}`: the policies are refused: {}",
                    path.display(),
                    crate::one_line(&e.to_string())
                )
            })?
            .policy_ids()
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        let authz_config =
            authz_config(&authoring).map_err(|e| format!("`{}`: {e}", path.display()))?;
        Ok(Self {
            suite,
            policies,
            authz_config,
            policy_ids,
        })
    }
}

fn run_suite_file(filter: &Filter, path: &Path) -> Result<(usize, usize), String> {
    let file = SuiteFile::load(path)?;
    let suite = &file.suite;
    let mut wasm = CompiledAuthz::new(filter, file.authz_config.clone());
    println!("{}: {} cases", path.display(), suite.cases.len());
    let failures = meshward_policy::run_suite(&mut wasm, suite);
    for f in &failures {
        println!("  FAIL {f}");
    }
    let unexercised: Vec<&str> = file
        .policy_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !wasm.determined().contains(*id))
        .collect();
    if !unexercised.is_empty() {
        println!(
            "  policies no case exercised (never determining): {}",
            unexercised.join(", ")
        );
    }
    let failed = failures.len();
    Ok((suite.cases.len() - failed, failed))
}

/// What one case did in the compiled filter: the decision it logged and
/// the status the client got (the application's 200 when forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The decision, from the decision log line.
    pub decision: Decision,
    /// The response status the client saw.
    pub status: u16,
    /// The `x-meshward-deny-reason` header of a local reply.
    pub deny_reason: Option<String>,
}

/// The compiled authorization filter as one [`Decide`], as Envoy runs it
/// behind meshward's identity filter: a fresh plugin per case (each case
/// may set its own time), the peer and JWT claims handed over in the
/// identity filter's filter-state property, connection facts as
/// properties, the decision read back from the forwarded request or local
/// reply and the decision log line, which must agree.
pub struct CompiledAuthz<'a> {
    filter: &'a Filter,
    config: String,
    determined: BTreeSet<String>,
}

impl<'a> CompiledAuthz<'a> {
    /// The filter `filter` (a loaded authorization filter module) with the
    /// plugin configuration `config`.
    pub fn new(filter: &'a Filter, config: String) -> Self {
        Self {
            filter,
            config,
            determined: BTreeSet::new(),
        }
    }

    /// The ids of the policies that determined some decision so far.
    pub fn determined(&self) -> &BTreeSet<String> {
        &self.determined
    }

    /// Runs one request through the filter.
    pub fn run(&mut self, facts: &RequestFacts) -> Result<Outcome, String> {
        let mut plugin = self
            .filter
            .start(
                PluginConfig::new()
                    .root_id("meshward_authz")
                    .configuration(self.config.clone())
                    .time(facts.time),
            )
            .map_err(|e| format!("the filter did not start: {e}"))?;
        let path = if facts.query.is_empty() {
            facts.path.clone()
        } else {
            format!("{}?{}", facts.path, facts.query)
        };
        let mut req = Request::new(&facts.method, &path)
            .set_header(":authority", &facts.host)
            .property("connection.mtls", facts.mtls)
            .property("connection.peer_certificate_valid", facts.mtls)
            .property("destination.port", i64::from(facts.port));
        if let Some(source) = facts.source {
            req = req.property("source.address", source.to_string().as_str());
        }
        if let Some(sni) = &facts.sni {
            req = req.property("connection.requested_server_name", sni.as_str());
        }
        for (k, v) in facts.headers.iter() {
            let v = std::str::from_utf8(v).map_err(|_| format!("header `{k}` is not text"))?;
            req = req.header(k, v);
        }
        // The identity filter's hand-over, claims included, in the one
        // filter-state property the authorization filter reads.
        if let Some(peer) = &facts.peer {
            let handover = meshward_filter_glue::Handover {
                peer: peer.clone(),
                jwt_claims: match &facts.jwt_claims {
                    Some(serde_json::Value::Object(claims)) => Some(claims.clone()),
                    _ => None,
                },
            };
            req = req.property(meshward_filter_glue::PEER_ID_PROPERTY, handover.encode());
        }
        let exchange = plugin.send(req);
        let line = plugin
            .logs()
            .iter()
            .rev()
            .find_map(|l| l.message.strip_prefix("meshward-authz decision "))
            .ok_or("the filter logged no decision")?
            .to_owned();
        let logged: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("decision line: {e}"))?;
        let code = logged
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let reason = reason(code).ok_or_else(|| format!("unknown reason `{code}`"))?;
        // What the client saw must agree with what was logged.
        if exchange.forwarded() != reason.allows() {
            return Err(format!(
                "the filter forwarded={} but logged {line}",
                exchange.forwarded()
            ));
        }
        let deny_reason = exchange
            .response_header("x-meshward-deny-reason")
            .map(str::to_owned);
        if !exchange.forwarded() && deny_reason.as_deref() != Some(reason.code()) {
            return Err(format!(
                "the deny reason header {deny_reason:?} disagrees with the log line {line}"
            ));
        }
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let determining = strings(
            logged
                .get("determining")
                .unwrap_or(&serde_json::Value::Null),
        );
        self.determined.extend(determining.iter().cloned());
        Ok(Outcome {
            decision: Decision {
                allowed: exchange.forwarded(),
                reason,
                determining: determining
                    .iter()
                    .map(|s| PolicyId::from(s.as_str()))
                    .collect(),
                errors: strings(logged.get("errors").unwrap_or(&serde_json::Value::Null)),
            },
            // A forwarded request reaches the application, which answers 200.
            status: if exchange.forwarded() {
                200
            } else {
                exchange.status()
            },
            deny_reason,
        })
    }
}

impl Decide for CompiledAuthz<'_> {
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String> {
        self.run(facts).map(|o| o.decision)
    }
}

/// The reason a decision log line names.
fn reason(code: &str) -> Option<Reason> {
    [
        Reason::Permitted,
        Reason::Forbidden,
        Reason::PolicyError,
        Reason::NoPermit,
        Reason::NoPeerIdentity,
        Reason::BadRequest,
        Reason::InvalidRequest,
    ]
    .into_iter()
    .find(|r| r.code() == code)
}
