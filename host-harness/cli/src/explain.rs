//! `meshward explain`: one request in; the decision, the policies that
//! determined it, and the entities and context the engine evaluated them
//! on, as the engine itself reports them.

use std::path::PathBuf;

use meshward_policy::CaseRequest;

use crate::authz_config::{Authoring, PeerFrom};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Cedar policy files, evaluated together.
    #[arg(required = true)]
    policies: Vec<PathBuf>,
    /// The peer's SPIFFE ID; none for a request without identity.
    #[arg(long)]
    peer: Option<String>,
    /// The method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The `:path`, query included.
    #[arg(long, default_value = "/")]
    path: String,
    /// The authority.
    #[arg(long, default_value = "example.com")]
    host: String,
    /// The destination port.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// A header, `name=value` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// The source address, `ip:port`.
    #[arg(long)]
    source: Option<String>,
    /// The request arrived without mutual TLS (the peer came another way).
    #[arg(long)]
    no_mtls: bool,
    /// Verified JWT claims, as JSON.
    #[arg(long)]
    jwt: Option<String>,
    /// The time, `YYYY-MM-DDTHH:MM:SSZ`.
    #[arg(long)]
    time: Option<String>,
    /// Let requests without a peer reach the policies (as principal
    /// `Mesh::Workload::"anonymous"`).
    #[arg(long)]
    allow_anonymous: bool,
    /// A request as JSON in the test-suite format (`peer`, `method`,
    /// `host`, `path`, ...) instead of the flags.
    #[arg(long, conflicts_with_all = ["peer", "headers", "source", "jwt", "time"])]
    request: Option<String>,
    /// Print one JSON object (`decision`, `reason`, `determining`,
    /// `errors`, `request`) instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut text = Vec::new();
    for p in &args.policies {
        text.push(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?,
        );
    }
    let mut authoring = Authoring::new(text.join("\n"), PeerFrom::IdentityFilter);
    if args.allow_anonymous {
        authoring.require_peer_identity = Some(false);
    }
    let request: CaseRequest = match &args.request {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("--request: {e}"))?,
        None => {
            serde_json::from_value(request_json(&args)?).map_err(|e| format!("the request: {e}"))?
        }
    };
    let facts = request.to_facts()?;
    let explained = engine::explain(&authoring, &facts)?;
    let decision = &explained.decision;
    let ids: Vec<&str> = decision.determining.iter().map(|p| p.as_str()).collect();
    if args.json {
        let out = serde_json::json!({
            "decision": if decision.allowed { "allow" } else { "deny" },
            "reason": decision.reason.code(),
            "determining": ids,
            "errors": decision.errors,
            "request": explained.request,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "decision: {}  (reason {})",
        if decision.allowed { "ALLOW" } else { "DENY" },
        decision.reason.code()
    );
    println!(
        "determining policies: {}",
        if ids.is_empty() {
            "(none)".to_owned()
        } else {
            ids.join(", ")
        }
    );
    for e in &decision.errors {
        println!("evaluation error: {e}");
    }
    match &explained.request {
        Some(request) => {
            println!(
                "what the engine evaluated (Cedar JSON; headers, query parameters and claims only where a policy reads them):"
            );
            println!("{}", serde_json::to_string_pretty(request)?);
        }
        None => println!("no policy was evaluated: the request was decided before any policy"),
    }
    Ok(())
}

fn request_json(args: &Args) -> Result<serde_json::Value, String> {
    let mut headers = serde_json::Map::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| format!("--header `{h}`: expected NAME=VALUE"))?;
        headers.insert(k.to_ascii_lowercase(), v.into());
    }
    let mut r = serde_json::json!({
        "method": args.method, "host": args.host, "path": args.path,
        "port": args.port, "headers": headers,
    });
    if let Some(map) = r.as_object_mut() {
        if let Some(peer) = &args.peer {
            map.insert("peer".into(), peer.clone().into());
        }
        if let Some(source) = &args.source {
            map.insert("source".into(), source.clone().into());
        }
        if args.no_mtls {
            map.insert("mtls".into(), false.into());
        }
        if let Some(jwt) = &args.jwt {
            let claims: serde_json::Value =
                serde_json::from_str(jwt).map_err(|e| format!("--jwt: {e}"))?;
            map.insert("jwt".into(), claims);
        }
        if let Some(time) = &args.time {
            map.insert("time".into(), time.clone().into());
        }
    }
    Ok(r)
}

/// The engine call behind `explain`: the decision and the request as the
/// engine saw it, both from one call on the engine the authorization
/// filter runs ([`meshward_policy::PolicyEngine::explain`]).
pub(crate) mod engine {
    use meshward_policy::{Explanation, RequestFacts};

    use crate::authz_config::Authoring;

    pub(crate) fn explain(a: &Authoring, facts: &RequestFacts) -> Result<Explanation, String> {
        let engine = crate::authz_config::engine(a).map_err(|e| {
            format!(
                "the policies are refused: {}",
                crate::one_line(&e.to_string())
            )
        })?;
        Ok(engine.explain(facts))
    }
}
