//! `meshward explain`: one request in; the decision, the policies that
//! determined it, and the entities and context Cedar evaluated.

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
    println!(
        "decision: {}  (reason {})",
        if explained.decision.allowed {
            "ALLOW"
        } else {
            "DENY"
        },
        explained.decision.reason.code()
    );
    let ids: Vec<&str> = explained
        .decision
        .determining
        .iter()
        .map(|p| p.as_str())
        .collect();
    println!(
        "determining policies: {}",
        if ids.is_empty() {
            "(none)".to_owned()
        } else {
            ids.join(", ")
        }
    );
    for e in &explained.decision.errors {
        println!("evaluation error: {e}");
    }
    println!("what Cedar saw:");
    println!(
        "{}",
        serde_json::to_string_pretty(&explained.view).unwrap_or_default()
    );
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

/// The engine call behind `explain`, in one place so it can be pointed at
/// another engine (or a compiled policy form) without touching the command.
pub(crate) mod engine {
    use meshward_policy::{Decision, RequestFacts};

    use crate::authz_config::Authoring;

    pub(crate) struct Explained {
        pub(crate) decision: Decision,
        /// The principal, action, resource and context, following the
        /// entity model in `policies/README.md`.
        pub(crate) view: serde_json::Value,
    }

    pub(crate) fn explain(a: &Authoring, facts: &RequestFacts) -> Result<Explained, String> {
        let engine = crate::authz_config::engine(a).map_err(|e| {
            format!(
                "the policies are refused: {}",
                crate::one_line(&e.to_string())
            )
        })?;
        let decision = engine.decide(facts);
        Ok(Explained {
            view: view(facts, decision.reason.code() == "no_peer_identity"),
            decision,
        })
    }

    /// The entities and context as the engine builds them from `facts`.
    /// The engine does not hand its Cedar request out, so this follows the
    /// documented model; tests check it against decisions that depend on
    /// each part.
    fn view(facts: &RequestFacts, before_policies: bool) -> serde_json::Value {
        use serde_json::json;
        if let Some(invalid) = facts.invalid() {
            return json!({"not evaluated": format!("the request is invalid: {invalid}")});
        }
        if before_policies {
            return json!({"not evaluated": "no peer identity, and one is required"});
        }
        let principal = match &facts.peer {
            Some(id) => {
                let mut attrs = json!({
                    "spiffe_id": id.as_str(),
                    "trust_domain": id.trust_domain_name(),
                    "path": id.path(),
                    "authenticated": true,
                });
                let mut parents =
                    vec![format!("Mesh::TrustDomain::\"{}\"", id.trust_domain_name())];
                if let (Some(ns), Some(sa), Some(map)) =
                    (id.namespace(), id.service_account(), attrs.as_object_mut())
                {
                    map.insert("namespace".into(), ns.into());
                    map.insert("service_account".into(), sa.into());
                    parents.push(format!("Mesh::Namespace::\"{ns}\""));
                    parents.push(format!("Mesh::ServiceAccount::\"{ns}/{sa}\""));
                }
                json!({"uid": format!("Mesh::Workload::\"{}\"", id.as_str()), "attrs": attrs, "parents": parents})
            }
            None => {
                json!({"uid": "Mesh::Workload::\"anonymous\"", "attrs": {"authenticated": false}, "parents": []})
            }
        };
        let m = facts.method.as_str();
        let known = [
            "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE",
        ];
        let action = if known.contains(&m) { m } else { "OTHER" };
        let group = match action {
            "GET" | "HEAD" | "OPTIONS" => vec!["Mesh::Action::\"read\""],
            "TRACE" => vec![],
            _ => vec!["Mesh::Action::\"write\""],
        };
        let host = canonical_host(&facts.host);
        let headers: serde_json::Map<String, serde_json::Value> = facts
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned().into()))
            .collect();
        let mut context = json!({
            "method": facts.method, "host": host, "authority": facts.host,
            "path": facts.path, "query": facts.query, "port": facts.port,
            "headers": headers, "mtls": facts.mtls,
            "time": humantime(facts.time),
        });
        if let Some(map) = context.as_object_mut() {
            if let Some(s) = facts.source {
                map.insert("source_ip".into(), s.ip().to_string().into());
                map.insert("source_port".into(), s.port().into());
            }
            if let Some(sni) = &facts.sni {
                map.insert("sni".into(), sni.clone().into());
            }
            if let Some(claims) = &facts.jwt_claims {
                map.insert("user (claims)".into(), claims.clone());
            }
        }
        json!({
            "principal": principal,
            "action": {"uid": format!("Mesh::Action::\"{action}\""), "parents": group},
            "resource": {"uid": format!("Mesh::Host::\"{host}\""), "attrs": {"name": host}},
            "context": context,
        })
    }

    fn canonical_host(authority: &str) -> String {
        let lower = authority.to_ascii_lowercase();
        let host = if lower.starts_with('[') {
            lower
                .split_once(']')
                .map_or(lower.clone(), |(h, _)| format!("{h}]"))
        } else {
            lower
                .rsplit_once(':')
                .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
                .map_or(lower.clone(), |(h, _)| h.to_owned())
        };
        host.trim_end_matches('.').to_owned()
    }

    fn humantime(t: std::time::SystemTime) -> String {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{secs} s after the Unix epoch")
    }
}
