//! Every policy suite in `policies/` through two implementations, the native
//! engine and the compiled authorization filter in the wasmtime harness,
//! which must both meet every expectation and agree case by case on the
//! decision, its reason, the determining policies and the error count.

use std::path::{Path, PathBuf};

use meshward_envoy::workspace_root;
use meshward_harness::{Filter, Host, PluginConfig, Request};
use meshward_policy::{Decide, Decision, PolicyId, Reason, RequestFacts, Suite, run_suite};
use meshward_tests::filter_wasm;

/// The authorization filter as Envoy would run it behind meshward's identity
/// filter: the peer and JWT claims arrive in the identity filter's headers,
/// connection facts as properties, the decision comes back as a forwarded
/// request or a local reply plus a decision log line.
struct WasmAuthz<'a> {
    filter: &'a Filter,
    config: String,
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
            .ok_or("no decision log line")?
            .to_owned();
        let logged: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let reason = reason(logged["reason"].as_str().unwrap_or_default())?;
        // What the client saw must agree with what was logged.
        if exchange.forwarded() != reason.allows() {
            return Err(format!(
                "forwarded={} but logged {line}",
                exchange.forwarded()
            ));
        }
        if !exchange.forwarded()
            && exchange.response_header("x-meshward-deny-reason") != Some(reason.code())
        {
            return Err(format!(
                "deny reason header disagrees with the log line {line}"
            ));
        }
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        Ok(Decision {
            allowed: exchange.forwarded(),
            reason,
            determining: strings(&logged["determining"])
                .into_iter()
                .map(policy_id)
                .collect(),
            errors: strings(&logged["errors"]),
        })
    }
}

fn reason(code: &str) -> Result<Reason, String> {
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
    .ok_or_else(|| format!("unknown reason `{code}`"))
}

fn policy_id(id: String) -> PolicyId {
    PolicyId::from(id.as_str())
}

fn suites() -> Vec<(PathBuf, Suite, String)> {
    let dir = workspace_root().join("policies");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".cases.json") {
            continue;
        }
        let suite = Suite::from_json(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let policies: String = suite
            .policies
            .iter()
            .map(|p| std::fs::read_to_string(dir.join(p)).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        found.push((path, suite, policies));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        found.len() >= 4,
        "expected the policy library's suites in {}",
        dir.display()
    );
    found
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn native_engine_and_compiled_filter_agree_on_every_suite() {
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap();
    let mut checked = 0;
    for (path, suite, policies) in suites() {
        let engine_config = suite.config_json(&policies);
        let mut native = meshward_policy_cedar::engine_from_config(engine_config.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let filter_config = crate::compiled(format!(
            r#"{{"cedar": {engine_config}, "peer_from": "identity_filter"}}"#
        ));
        let mut wasm = WasmAuthz {
            filter: &filter,
            config: filter_config,
        };

        let failures = run_suite(&mut native, &suite);
        assert!(
            failures.is_empty(),
            "{} natively: {failures:#?}",
            name(&path)
        );
        let failures = run_suite(&mut wasm, &suite);
        assert!(
            failures.is_empty(),
            "{} in the harness: {failures:#?}",
            name(&path)
        );

        for case in &suite.cases {
            let facts = case.request.to_facts().unwrap();
            let a = Decide::decide(&mut native, &facts).unwrap();
            let b = wasm.decide(&facts).unwrap();
            assert_eq!(a, b, "{}: case `{}` differs", name(&path), case.name);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} cases");
}

#[test]
fn the_comparison_sees_a_wrong_decision() {
    // A filter configured with a policy set that differs from the suite's
    // must fail the suite: the harness side is really deciding.
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-authz-filter"))
        .unwrap();
    let (path, suite, _) = suites().remove(0);
    let mut wasm = WasmAuthz {
        filter: &filter,
        config: crate::compiled(
            r#"{"cedar": {"policies": "@id(\"everyone\") permit(principal, action, resource);"}, "peer_from": "identity_filter"}"#,
        ),
    };
    assert!(
        !run_suite(&mut wasm, &suite).is_empty(),
        "{} passed with allow-all",
        name(&path)
    );
}
