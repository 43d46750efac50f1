//! `meshward test`: policy test suites (`*.cases.json`) against the
//! compiled authorization filter in the wasmtime harness, as Envoy would
//! run it behind the identity filter.

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

fn run_suite_file(filter: &Filter, path: &Path) -> Result<(usize, usize), String> {
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
    let mut authoring = Authoring::new(policies.join("\n"), PeerFrom::IdentityFilter);
    authoring.require_peer_identity = suite.require_peer_identity;
    // The engine validates the policies (with their places) and names them.
    let ids = crate::authz_config::engine(&authoring)
        .map_err(|e| {
            format!(
                "`{}`: the policies are refused: {}",
                path.display(),
                crate::one_line(&e.to_string())
            )
        })?
        .policy_ids();
    let mut wasm = WasmAuthz {
        filter,
        config: authz_config(&authoring)?,
        determined: BTreeSet::new(),
    };
    println!("{}: {} cases", path.display(), suite.cases.len());
    let failures = meshward_policy::run_suite(&mut wasm, &suite);
    for f in &failures {
        println!("  FAIL {f}");
    }
    let unexercised: Vec<&str> = ids
        .iter()
        .map(PolicyId::as_str)
        .filter(|id| !wasm.determined.contains(*id))
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

/// The compiled filter as one [`Decide`]: a fresh plugin per case (each
/// case may set its own time), the peer handed over in filter state, the
/// decision read back from the response and the decision log line.
struct WasmAuthz<'a> {
    filter: &'a Filter,
    config: String,
    determined: BTreeSet<String>,
}

impl Decide for WasmAuthz<'_> {
    fn decide(&mut self, facts: &RequestFacts) -> Result<Decision, String> {
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
        let reason = [
            Reason::Permitted,
            Reason::Forbidden,
            Reason::NoPermit,
            Reason::NoPeerIdentity,
            Reason::BadRequest,
            Reason::InvalidRequest,
        ]
        .into_iter()
        .find(|r| r.code() == code)
        .ok_or_else(|| format!("unknown reason `{code}`"))?;
        if exchange.forwarded() != reason.allows() {
            return Err(format!(
                "the filter forwarded={} but logged {line}",
                exchange.forwarded()
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
        Ok(Decision {
            allowed: exchange.forwarded(),
            reason,
            determining: determining
                .iter()
                .map(|s| PolicyId::from(s.as_str()))
                .collect(),
            errors: strings(logged.get("errors").unwrap_or(&serde_json::Value::Null)),
        })
    }
}
