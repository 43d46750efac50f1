//! The ready-to-run bootstraps of `envoy-config/examples/`: each passes
//! `envoy --mode validate` and serves real traffic, run as shipped except
//! for two rewrites a test needs: the relative `certs/` and `modules/` file
//! names point into a scratch directory holding real files, and the fixed
//! ports become free ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshward_certs::{SpiffeCa, Svid};
use meshward_envoy::{EchoUpstream, Envoy, Request, send, validate, workspace_root};
use meshward_tests::filter_wasm;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const OTHER: &str = "spiffe://example.org/ns/web/sa/other";
const GATEWAY: &str = "spiffe://example.org/ns/edge/sa/gateway";
const BACKEND: &str = "spiffe://example.org/ns/shop/sa/backend";

/// The files an example expects beside it, written for real.
struct Files {
    dir: tempfile::TempDir,
    ca: SpiffeCa,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = SpiffeCa::new("example.org").unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("ca.pem"), ca.cert_pem()).unwrap();
        let backend = ca.issue_local_server(BACKEND).unwrap();
        std::fs::write(certs.join("cert.pem"), &backend.cert_pem).unwrap();
        std::fs::write(certs.join("key.pem"), &backend.key_pem).unwrap();
        let gateway = ca.issue_local_server(GATEWAY).unwrap();
        std::fs::write(certs.join("gateway.pem"), &gateway.cert_pem).unwrap();
        std::fs::write(certs.join("gateway-key.pem"), &gateway.key_pem).unwrap();
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(&modules).unwrap();
        for package in [
            "meshward-identity-filter",
            "meshward-authz-filter",
            "meshward-mtls-filter",
        ] {
            let from = filter_wasm(package);
            std::fs::copy(&from, modules.join(from.file_name().unwrap())).unwrap();
        }
        Self { dir, ca }
    }

    /// The example's text with its files in the scratch directory and its
    /// ports replaced as `ports` says; fails if a port is not in the text.
    fn render(&self, name: &str, ports: &BTreeMap<u16, u16>) -> String {
        let path = workspace_root().join("envoy-config/examples").join(name);
        let mut text = std::fs::read_to_string(&path).unwrap();
        let root = self.dir.path().display().to_string();
        for dir in ["certs/", "modules/"] {
            let from = format!("filename: {dir}");
            assert!(
                text.contains(&from) || dir == "modules/",
                "{name}: no {from}"
            );
            text = text.replace(&from, &format!("filename: {root}/{dir}"));
        }
        for (from, to) in ports {
            let from = format!("port_value: {from} }}");
            assert!(text.contains(&from), "{name}: no `{from}`");
            text = text.replace(&from, &format!("port_value: {to} }}"));
        }
        text
    }

    fn client(&self, id: &str) -> Svid {
        self.ca.issue(id, &[]).unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("envoy-config/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_example_validates() {
    let files = Files::new();
    let all = examples();
    assert!(all.len() >= 4, "{all:?}");
    for path in all {
        let name = name(&path);
        let rendered = files.dir.path().join(&name);
        std::fs::write(&rendered, files.render(&name, &BTreeMap::new())).unwrap();
        validate(&rendered).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

async fn start(files: &Files, name: &str, ports: &BTreeMap<u16, u16>) -> Envoy {
    Envoy::start(&files.render(name, ports))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn at(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_example_decides_on_the_peer() {
    let files = Files::new();
    let app = EchoUpstream::start().await.unwrap();
    let listener = free_port();
    let ports = BTreeMap::from([
        (15000, free_port()),
        (15006, listener),
        (8080, app.addr().port()),
    ]);
    let _envoy = start(&files, "sidecar-inbound.yaml", &ports).await;
    let send_as = |id: &str, req: Request| {
        let tls = files.client(id).client_config(&files.ca).unwrap();
        async move { send(at(listener), Some(tls), &req).await.unwrap() }
    };
    assert_eq!(
        send_as(FRONTEND, Request::get("/api/orders/1"))
            .await
            .status,
        200
    );
    assert_eq!(
        send_as(FRONTEND, Request::new("POST", "/api/orders"))
            .await
            .status,
        403
    );
    assert_eq!(
        send_as(OTHER, Request::get("/api/orders/1")).await.status,
        403
    );
    // No client certificate: the handshake itself fails.
    let anonymous = meshward_certs::anonymous_client_config(&files.ca).unwrap();
    assert!(
        send(at(listener), Some(anonymous), &Request::get("/api/orders"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_example_reports_beside_rbac_shadow_rules() {
    let files = Files::new();
    let app = EchoUpstream::start().await.unwrap();
    let listener = free_port();
    let ports = BTreeMap::from([
        (15000, free_port()),
        (15006, listener),
        (8080, app.addr().port()),
    ]);
    let envoy = start(&files, "dry-run-shadow.yaml", &ports).await;
    let frontend = files.client(FRONTEND).client_config(&files.ca).unwrap();
    let other = files.client(OTHER).client_config(&files.ca).unwrap();
    let anonymous = meshward_certs::anonymous_client_config(&files.ca).unwrap();
    // Nothing is blocked; both engines record the two would-be denials.
    for (tls, path) in [
        (frontend.clone(), "/api/orders/1"),
        (frontend, "/admin"),
        (other, "/api/orders/1"),
        (anonymous, "/api/orders/1"),
    ] {
        let resp = send(at(listener), Some(tls), &Request::get(path))
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    }
    let stat = |name: &'static str| {
        let envoy = &envoy;
        async move { envoy.stat(name).await.unwrap() }
    };
    assert_eq!(
        stat("wasmcustom.meshward_authz_dry_run_denied").await,
        Some(3)
    );
    assert_eq!(stat("wasmcustom.meshward_authz_allowed").await, Some(1));
    // Envoy's RBAC shadow counters, under the rules' stat prefix.
    let stats = envoy.admin_get("/stats").await.unwrap();
    let shadow = |suffix: &str| {
        stats
            .lines()
            .find(|l| l.contains("istio_dry_run_allow_") && l.contains(suffix))
            .and_then(|l| l.rsplit(": ").next())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert_eq!(shadow("shadow_denied"), Some(3), "{stats}");
    assert_eq!(shadow("shadow_allowed"), Some(1), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_example_forwards_the_client_to_a_backend_that_trusts_it() {
    let files = Files::new();
    let app = EchoUpstream::start().await.unwrap();
    let (edge, backend) = (free_port(), free_port());
    let _backend = start(
        &files,
        "backend-xfcc.yaml",
        &BTreeMap::from([
            (15000, free_port()),
            (15006, backend),
            (8080, app.addr().port()),
        ]),
    )
    .await;
    let _gateway = start(
        &files,
        "edge-gateway.yaml",
        &BTreeMap::from([(15001, free_port()), (8443, edge), (15006, backend)]),
    )
    .await;
    let frontend = files.client(FRONTEND).client_config(&files.ca).unwrap();
    let other = files.client(OTHER).client_config(&files.ca).unwrap();

    // Through the gateway, the backend decides on the end client.
    let resp = send(
        at(edge),
        Some(frontend.clone()),
        &Request::get("/api/orders/1"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(seen["headers"]["x-meshward-peer-id"], FRONTEND, "{seen}");
    let resp = send(
        at(edge),
        Some(other.clone()),
        &Request::get("/api/orders/1"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    // A client forging XFCC through the gateway is replaced by its own.
    let forged =
        Request::get("/api/orders/1").header("x-forwarded-client-cert", &format!("URI={FRONTEND}"));
    let resp = send(at(edge), Some(other.clone()), &forged).await.unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    // Straight to the backend, a peer that is not the gateway names nobody,
    // whatever XFCC it sends.
    let resp = send(at(backend), Some(other), &forged).await.unwrap();
    assert_ne!(resp.status, 200, "{}", resp.text());
    let resp = send(at(backend), Some(frontend), &forged).await.unwrap();
    assert_ne!(resp.status, 200, "{}", resp.text());
}
