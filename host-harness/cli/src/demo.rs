//! `meshward demo`: the README's main job on the embedded default, the
//! reference data path: a SPIFFE CA and SVIDs, the identity and
//! authorization filters compiled into `meshward`, real mTLS on 127.0.0.1
//! in front of an echo application, allowed and denied workloads with
//! their reasons. `--envoy` runs the same through real Envoy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use meshward_certs::{SpiffeCa, Svid};
use meshward_data_path::{
    Client, ClientAuth, ClientResponse, Config, DataPath, EchoUpstream, FilterSpec, Limits,
    TlsSettings, TrustBundle, Upstream,
};
use meshward_filter_modules::{AUTHZ, IDENTITY};

use crate::authz_config::{Authoring, PeerFrom, authz_config};

pub(crate) const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const INTRUDER: &str = "spiffe://example.org/ns/web/sa/intruder";
/// `policies/demo/orders.cedar`, compiled in so the demo runs anywhere.
pub(crate) const POLICY: &str = include_str!("../../../policies/demo/orders.cedar");

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run the same demo through real Envoy instead of the data path.
    #[arg(long)]
    envoy: bool,
    /// The Envoy binary (else `$MESHWARD_ENVOY`, `envoy` on the PATH, or
    /// `.venv/lib/envoy-bin/envoy` here or in a folder above).
    #[arg(long)]
    envoy_bin: Option<PathBuf>,
}

/// The identity filter's configuration in the demo.
pub(crate) fn identity_config() -> String {
    serde_json::json!({
        "allowed_trust_domains": [TRUST_DOMAIN],
        "allowed_ids": ["spiffe://example.org/ns/web/*"],
    })
    .to_string()
}

pub(crate) fn authz_demo_config() -> Result<String, String> {
    authz_config(&Authoring::new(POLICY, PeerFrom::IdentityFilter))
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    crate::logging::init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        if args.envoy {
            crate::demo_envoy::run(args.envoy_bin).await
        } else {
            data_path().await
        }
    })
}

async fn data_path() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "meshward demo: a SPIFFE CA for `{TRUST_DOMAIN}`, meshward's data path, two meshward filters"
    );
    print_chain();
    let ca = SpiffeCa::new(TRUST_DOMAIN)?;
    let server = ca.issue_local_server("spiffe://example.org/ns/orders/sa/orders")?;
    let upstream = EchoUpstream::start().await?;
    eprintln!("meshward: compiling the filters and starting the data path");
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_listen: None,
        tls: TlsSettings {
            cert_chain_pem: server.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
            trust_bundles: vec![TrustBundle {
                trust_domain: TRUST_DOMAIN.into(),
                ca_pem: ca.cert_pem(),
            }],
            // Optional, so the peerless request reaches the filters and is
            // denied with a reason, as in the Envoy demo.
            client_auth: ClientAuth::Optional,
        },
        filters: vec![
            FilterSpec {
                name: "identity".into(),
                wasm: Arc::from(IDENTITY.bytes),
                root_id: IDENTITY.root_id.into(),
                vm_id: String::new(),
                configuration: identity_config(),
                fail_open: false,
            },
            FilterSpec {
                name: "authz".into(),
                wasm: Arc::from(AUTHZ.bytes),
                root_id: AUTHZ.root_id.into(),
                vm_id: String::new(),
                configuration: authz_demo_config()?,
                fail_open: false,
            },
        ],
        upstream: Upstream::Http {
            addr: upstream.addr().to_string(),
        },
        limits: Limits::default(),
    };
    let dp = DataPath::start(config).await?;
    println!(
        "  data path: mTLS listener on {}, echo application behind it on {}",
        dp.local_addr(),
        upstream.addr()
    );
    println!();
    let wrong = run_cases(&ca, dp.local_addr()).await?;
    println!();
    println!("data path metrics (decisions):");
    for line in dp.metrics().render().lines() {
        if line.starts_with("meshward_decisions_total")
            || line.starts_with("meshward_requests_total")
        {
            println!("  {line}");
        }
    }
    dp.shutdown().await;
    finish(wrong)
}

pub(crate) fn print_chain() {
    println!(
        "  1. identity filter (embedded), root_id {}",
        IDENTITY.root_id
    );
    println!("     {}", identity_config());
    println!("  2. authz filter (embedded), root_id {}", AUTHZ.root_id);
    println!("     Cedar policy policies/demo/orders.cedar:");
    for line in POLICY
        .lines()
        .filter(|l| !l.starts_with("//") && !l.trim().is_empty())
    {
        println!("       {line}");
    }
}

pub(crate) fn finish(wrong: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected decisions: {}", wrong.join("; ")).into())
    }
}

/// Sends the five demo requests to `addr` and prints each decision;
/// returns the ones that were not as expected.
pub(crate) async fn run_cases(
    ca: &SpiffeCa,
    addr: SocketAddr,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let frontend = ca.issue(FRONTEND, &[])?;
    let intruder = ca.issue(INTRUDER, &[])?;
    let cases: [(Option<&Svid>, &str, &str, &str, u16); 5] = [
        (Some(&frontend), FRONTEND, "GET", "/api/orders", 200),
        (Some(&frontend), FRONTEND, "DELETE", "/api/orders", 403),
        (Some(&frontend), FRONTEND, "GET", "/admin/users", 403),
        (Some(&intruder), INTRUDER, "GET", "/api/orders", 403),
        (None, "(no client certificate)", "GET", "/api/orders", 403),
    ];
    let mut wrong = Vec::new();
    for (svid, who, method, path, expected) in cases {
        let config = match svid {
            Some(s) => s.client_config(ca)?,
            None => meshward_certs::anonymous_client_config(ca)?,
        };
        let mut client = Client::connect(addr, config, "localhost", false).await?;
        let r = client.send(method, path, &[]).await?;
        println!("  {method:<6} {path:<12} as {who:<40} -> {}", verdict(&r));
        if r.status != expected {
            wrong.push(format!(
                "{method} {path} as {who}: {} (expected {expected})",
                r.status
            ));
        }
    }
    Ok(wrong)
}

fn verdict(r: &ClientResponse) -> String {
    match r.header("x-meshward-deny-reason") {
        Some(reason) => format!("DENIED  {} {reason}", r.status),
        None => {
            let app: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            format!(
                "ALLOWED {} (the application saw x-meshward-peer-id: {})",
                r.status,
                app.pointer("/headers/x-meshward-peer-id")
                    .cloned()
                    .unwrap_or_default()
            )
        }
    }
}
