//! `meshward demo`: the filters deciding real mTLS traffic in real Envoy.

use std::path::PathBuf;

use meshward_envoy::{Request, Sidecar, SidecarSpec};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Folder holding the built filters (scripts/build-wasm).
    #[arg(long, default_value_os_t = super::default_wasm_dir())]
    wasm_dir: PathBuf,
}

const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const INTRUDER: &str = "spiffe://example.org/ns/web/sa/intruder";

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(demo(args))
}

async fn demo(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let wasm = args.wasm_dir.join("meshward_identity_filter.wasm");
    if !wasm.is_file() {
        return Err(format!(
            "{} is missing: run scripts/build-wasm first",
            wasm.display()
        )
        .into());
    }
    let plugin_config = serde_json::json!({
        "allowed_trust_domains": [TRUST_DOMAIN],
        "allowed_ids": [FRONTEND],
    });
    println!(
        "meshward demo: a SPIFFE CA for `{TRUST_DOMAIN}`, real Envoy, and the identity filter"
    );
    println!("  filter:  {}", wasm.display());
    println!("  config:  {plugin_config}");
    let sidecar = Sidecar::start(&SidecarSpec {
        wasm,
        root_id: "meshward_identity".to_owned(),
        plugin_config: plugin_config.to_string(),
        trust_domain: TRUST_DOMAIN.to_owned(),
    })
    .await?;
    println!(
        "  Envoy:   mTLS listener on {}, application behind it on {}",
        sidecar.listener_addr(),
        sidecar.upstream_addr()
    );
    println!();

    let frontend = sidecar.ca.issue(FRONTEND, &[])?;
    let intruder = sidecar.ca.issue(INTRUDER, &[])?;
    let cases = [
        (Some(&frontend), FRONTEND),
        (Some(&intruder), INTRUDER),
        (None, "(no client certificate)"),
    ];
    let mut statuses = Vec::new();
    for (svid, who) in cases {
        let resp = sidecar.request(svid, &Request::get("/api/orders")).await?;
        let verdict = match resp.header("x-meshward-deny-reason") {
            Some(reason) => format!("DENIED  {} {reason}", resp.status),
            None => {
                let app: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                format!(
                    "ALLOWED {} (the application saw x-meshward-peer-id: {})",
                    resp.status, app["headers"]["x-meshward-peer-id"]
                )
            }
        };
        println!("  GET /api/orders as {who:<42} -> {verdict}");
        statuses.push(resp.status);
    }

    println!();
    println!("decisions logged by the filter inside Envoy:");
    for line in sidecar.envoy.logs().lines() {
        if let Some((_, json)) = line.split_once("meshward-identity decision ") {
            println!("  {json}");
        }
    }
    let allowed = sidecar
        .envoy
        .stat("wasmcustom.meshward_identity_allowed")
        .await?;
    let denied = sidecar
        .envoy
        .stat("wasmcustom.meshward_identity_denied")
        .await?;
    println!(
        "Envoy stats: wasmcustom.meshward_identity_allowed {} wasmcustom.meshward_identity_denied {}",
        allowed.unwrap_or(0),
        denied.unwrap_or(0)
    );
    if statuses != [200, 403, 403] {
        return Err(format!("expected 200, 403, 403 but got {statuses:?}").into());
    }
    Ok(())
}
