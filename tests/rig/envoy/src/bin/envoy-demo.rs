//! `envoy-demo` (`./scripts/demo`): the filters deciding real mTLS traffic in
//! real Envoy.
//!
//! The identity filter (who is the peer?) and the authorization filter (may
//! it do this?) run in that order in one Envoy, as Istio's AUTHN and AUTHZ
//! phases would place them, in front of an echo application.

#![forbid(unsafe_code)]
// A demo binary: a failed step ends it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use meshward_envoy::{FilterSpec, Request, Sidecar, SidecarSpec};
use meshward_filter_modules::{AUTHZ, IDENTITY, Module};

const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const INTRUDER: &str = "spiffe://example.org/ns/web/sa/intruder";
/// Shipped in `policies/demo/orders.cedar`; compiled in so the binary runs
/// from anywhere.
const POLICY: &str = include_str!("../../../../../policies/demo/orders.cedar");

fn main() -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Into::into)
        .and_then(|rt| rt.block_on(demo()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn filter(module: &Module, config: serde_json::Value) -> Result<FilterSpec, String> {
    let wasm = module.path();
    if !wasm.is_file() {
        return Err(format!(
            "{} is missing: run scripts/build-wasm first",
            wasm.display()
        ));
    }
    Ok(FilterSpec {
        wasm,
        root_id: module.root_id.to_owned(),
        plugin_config: config.to_string(),
    })
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let identity = filter(
        &IDENTITY,
        serde_json::json!({
            "allowed_trust_domains": [TRUST_DOMAIN],
            "allowed_ids": ["spiffe://example.org/ns/web/*"],
        }),
    )?;
    // The filter loads compiled policies, as `meshward compile` makes them.
    let authz_config = meshward_policy_cedar::compile_filter_config(
        &serde_json::json!({
            "cedar": {"policies": POLICY},
            "peer_from": "identity_filter",
        })
        .to_string(),
    )
    .map_err(|e| e.to_string())?;
    let authz = filter(
        &AUTHZ,
        serde_json::from_str(&authz_config).map_err(|e| e.to_string())?,
    )?;
    println!("meshward demo: a SPIFFE CA for `{TRUST_DOMAIN}`, real Envoy, two meshward filters");
    println!("  1. identity filter {}", identity.wasm.display());
    println!("     {}", identity.plugin_config);
    println!("  2. authz filter    {}", authz.wasm.display());
    println!("     Cedar policy policies/demo/orders.cedar:");
    for line in POLICY
        .lines()
        .filter(|l| !l.starts_with("//") && !l.trim().is_empty())
    {
        println!("       {line}");
    }
    let sidecar = Sidecar::start(&SidecarSpec {
        filters: vec![identity, authz],
        trust_domain: TRUST_DOMAIN.to_owned(),
    })
    .await?;
    println!(
        "  Envoy: mTLS listener on {}, echo application behind it on {}",
        sidecar.listener_addr(),
        sidecar.upstream_addr()
    );
    println!();

    let frontend = sidecar.ca.issue(FRONTEND, &[])?;
    let intruder = sidecar.ca.issue(INTRUDER, &[])?;
    let cases = [
        (Some(&frontend), FRONTEND, "GET", "/api/orders", 200),
        (Some(&frontend), FRONTEND, "DELETE", "/api/orders", 403),
        (Some(&frontend), FRONTEND, "GET", "/admin/users", 403),
        (Some(&intruder), INTRUDER, "GET", "/api/orders", 403),
        (None, "(no client certificate)", "GET", "/api/orders", 403),
    ];
    let mut wrong = Vec::new();
    for (svid, who, method, path, expected) in cases {
        let resp = sidecar.request(svid, &Request::new(method, path)).await?;
        let verdict = match resp.header("x-meshward-deny-reason") {
            Some(reason) => format!("DENIED  {} {reason}", resp.status),
            None => {
                let app: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                format!(
                    "ALLOWED {} (the application saw x-meshward-peer-id: {})",
                    resp.status,
                    app.pointer("/headers/x-meshward-peer-id")
                        .cloned()
                        .unwrap_or_default()
                )
            }
        };
        println!("  {method:<6} {path:<12} as {who:<40} -> {verdict}");
        if resp.status != expected {
            wrong.push(format!(
                "{method} {path} as {who}: {} (expected {expected})",
                resp.status
            ));
        }
    }

    println!();
    println!("decisions logged by the filters inside Envoy:");
    for line in sidecar.envoy.logs().lines() {
        for tag in ["meshward-identity decision ", "meshward-authz decision "] {
            if let Some((_, json)) = line.split_once(tag) {
                println!("  {}{json}", tag.trim_end_matches("decision "));
            }
        }
    }
    println!("Envoy stats:");
    for stat in [
        "wasmcustom.meshward_identity_allowed",
        "wasmcustom.meshward_identity_denied",
        "wasmcustom.meshward_authz_allowed",
        "wasmcustom.meshward_authz_denied",
    ] {
        println!("  {stat}: {}", sidecar.envoy.stat(stat).await?.unwrap_or(0));
    }
    if !wrong.is_empty() {
        return Err(format!("unexpected decisions: {}", wrong.join("; ")).into());
    }
    Ok(())
}
