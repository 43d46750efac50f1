//! The authorization filter inside a real Envoy: Cedar decisions on real
//! mTLS traffic, alone and behind the identity filter.

use meshward_envoy::{FilterSpec, Request, Sidecar, SidecarSpec};
use meshward_tests::filter_wasm;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const POLICY: &str = include_str!("../../policies/demo/orders.cedar");

use crate::compiled;

fn authz(config: serde_json::Value) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-authz-filter"),
        root_id: "meshward_authz".to_owned(),
        plugin_config: compiled(&config),
    }
}

/// What the filter is handed as is: not compiled.
fn authz_raw(config: &serde_json::Value) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-authz-filter"),
        root_id: "meshward_authz".to_owned(),
        plugin_config: config.to_string(),
    }
}

fn identity() -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-identity-filter"),
        root_id: "meshward_identity".to_owned(),
        plugin_config: serde_json::json!({"allowed_trust_domains": ["example.org"]}).to_string(),
    }
}

async fn start(filters: Vec<FilterSpec>) -> Sidecar {
    Sidecar::start(&SidecarSpec {
        filters,
        trust_domain: "example.org".to_owned(),
    })
    .await
    .unwrap()
}

fn decisions(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| {
            l.split_once("meshward-authz decision ")
                .map(|(_, json)| json)
        })
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforces_cedar_on_the_mtls_peer() {
    let sidecar = start(vec![authz(
        serde_json::json!({"cedar": {"policies": POLICY}}),
    )])
    .await;
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    let other = sidecar
        .ca
        .issue("spiffe://example.org/ns/web/sa/other", &[])
        .unwrap();

    let cases = [
        (Some(&frontend), "GET", "/api/orders", 200, None),
        (Some(&frontend), "HEAD", "/api/orders", 200, None),
        (
            Some(&frontend),
            "DELETE",
            "/api/orders",
            403,
            Some("no_permit"),
        ),
        (
            Some(&frontend),
            "GET",
            "/admin/users",
            403,
            Some("forbidden"),
        ),
        (Some(&other), "GET", "/api/orders", 403, Some("no_permit")),
        (None, "GET", "/api/orders", 403, Some("no_peer_identity")),
    ];
    for (svid, method, path, status, reason) in cases {
        let resp = sidecar
            .request(svid, &Request::new(method, path))
            .await
            .unwrap();
        assert_eq!(resp.status, status, "{method} {path}: {}", resp.text());
        assert_eq!(
            resp.header("x-meshward-deny-reason"),
            reason,
            "{method} {path}"
        );
    }

    let logged = decisions(&sidecar.envoy.logs());
    assert_eq!(logged.len(), cases.len());
    assert_eq!(
        logged[0]["determining"],
        serde_json::json!(["frontend-reads-api"])
    );
    assert_eq!(logged[0]["principal"], FRONTEND);
    assert_eq!(
        logged[3]["determining"],
        serde_json::json!(["no-admin-paths"])
    );
    assert_eq!(logged[5]["principal"], serde_json::Value::Null);

    let stat = |name: &'static str| {
        let envoy = &sidecar.envoy;
        async move { envoy.stat(name).await.unwrap() }
    };
    assert_eq!(stat("wasmcustom.meshward_authz_allowed").await, Some(2));
    assert_eq!(stat("wasmcustom.meshward_authz_denied").await, Some(4));
    assert_eq!(
        stat("wasmcustom.meshward_authz_dry_run_denied").await,
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_but_never_blocks() {
    let config = serde_json::json!({
        "cedar": {"policies": POLICY, "mode": "dry_run"},
        "decision_log": "denies",
    });
    let sidecar = start(vec![authz(config)]).await;
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    for (method, path) in [
        ("GET", "/api/orders"),
        ("DELETE", "/api/orders"),
        ("GET", "/admin/x"),
    ] {
        let resp = sidecar
            .request(Some(&frontend), &Request::new(method, path))
            .await
            .unwrap();
        assert_eq!(
            resp.status, 200,
            "{method} {path} was blocked in dry-run mode"
        );
    }
    let logged = decisions(&sidecar.envoy.logs());
    assert_eq!(logged.len(), 2, "only denies are logged: {logged:?}");
    assert!(logged.iter().all(|d| d["decision"] == "dry_run_deny"));
    assert_eq!(logged[1]["reason"], "forbidden");
    let dry = sidecar
        .envoy
        .stat("wasmcustom.meshward_authz_dry_run_denied")
        .await
        .unwrap();
    assert_eq!(dry, Some(2));
    let denied = sidecar
        .envoy
        .stat("wasmcustom.meshward_authz_denied")
        .await
        .unwrap();
    assert_eq!(denied, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_deny_response_is_sent() {
    let config = serde_json::json!({
        "cedar": {"policies": POLICY},
        "deny": {"status": 451, "body": "blocked ({reason})", "headers": {"x-policy-owner": "platform"}},
    });
    let sidecar = start(vec![authz(config)]).await;
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    let resp = sidecar
        .request(Some(&frontend), &Request::new("GET", "/admin"))
        .await
        .unwrap();
    assert_eq!(resp.status, 451);
    assert_eq!(resp.text(), "blocked (forbidden)");
    assert_eq!(resp.header("x-policy-owner"), Some("platform"));
    assert!(
        !resp.text().contains("no-admin-paths"),
        "policy ids are not sent to clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policy_is_refused() {
    // `context.nope` is not in the schema: strict validation refuses it
    // when compiling, and the filter refuses Cedar text it is handed
    // uncompiled, and Envoy with it.
    let bad = serde_json::json!({"cedar": {"policies": "permit(principal, action, resource) when { context.nope };"}});
    assert!(meshward_policy_cedar::compile_filter_config(&bad.to_string()).is_err());
    let err = match Sidecar::start(&SidecarSpec {
        filters: vec![authz_raw(&bad)],
        trust_domain: "example.org".to_owned(),
    })
    .await
    {
        Ok(_) => panic!("Envoy started with a policy that fails validation"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("meshward-authz: configuration refused"),
        "{err}"
    );
    assert!(err.contains("Unable to create Wasm plugin"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_identity_filter_a_spoofed_peer_header_is_ignored() {
    // The two filters agree on configured header names (not the defaults).
    let mut identity = identity();
    identity.plugin_config = serde_json::json!({
        "allowed_trust_domains": ["example.org"],
        "forward": {"peer_id": "x-spiffe-id"},
    })
    .to_string();
    let config = serde_json::json!({
        "cedar": {"policies": POLICY},
        "peer_from": "identity_filter",
        "identity_headers": {"peer_id": "x-spiffe-id"},
    });
    let sidecar = start(vec![identity, authz(config)]).await;
    let other = sidecar
        .ca
        .issue("spiffe://example.org/ns/web/sa/other", &[])
        .unwrap();
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();

    // `other` claims to be the frontend in the header the authz filter
    // trusts; the identity filter replaces it with the verified ID.
    let spoof = Request::get("/api/orders").header("x-spiffe-id", FRONTEND);
    let resp = sidecar.request(Some(&other), &spoof).await.unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.header("x-meshward-deny-reason"), Some("no_permit"));

    let resp = sidecar
        .request(Some(&frontend), &Request::get("/api/orders"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let app: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(app["headers"]["x-spiffe-id"], FRONTEND);
    assert!(app["headers"].get("x-meshward-peer-id").is_none());

    let logged = decisions(&sidecar.envoy.logs());
    assert_eq!(
        logged[0]["principal"],
        "spiffe://example.org/ns/web/sa/other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_root_id_runs_identity_then_cedar_in_one_context() {
    // One plugin of the authorization module under root id `meshward`:
    // Envoy hands the module its root id, the module picks the chain.
    let chain = FilterSpec {
        wasm: filter_wasm("meshward-authz-filter"),
        root_id: meshward_filter_modules::CHAIN.root_id.to_owned(),
        plugin_config: serde_json::json!({
            "identity": {"allowed_trust_domains": ["example.org"]},
            "authz": serde_json::from_str::<serde_json::Value>(&compiled(
                serde_json::json!({"cedar": {"policies": POLICY}})
            ))
            .unwrap(),
        })
        .to_string(),
    };
    let sidecar = start(vec![chain]).await;
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    let other = sidecar
        .ca
        .issue("spiffe://example.org/ns/web/sa/other", &[])
        .unwrap();
    // Peers alternate, each on its own connection: the facts kept per
    // connection never answer for another one.
    let cases = [
        (Some(&frontend), "GET", "/api/orders", 200, None),
        (Some(&other), "GET", "/api/orders", 403, Some("no_permit")),
        (None, "GET", "/api/orders", 403, Some("no_peer_identity")),
        (Some(&frontend), "GET", "/api/orders", 200, None),
        (
            Some(&frontend),
            "DELETE",
            "/api/orders",
            403,
            Some("no_permit"),
        ),
    ];
    for (svid, method, path, status, reason) in cases {
        let resp = sidecar
            .request(
                svid,
                &Request::new(method, path).header("x-meshward-peer-id", FRONTEND),
            )
            .await
            .unwrap();
        assert_eq!(resp.status, status, "{method} {path}: {}", resp.text());
        assert_eq!(
            resp.header("x-meshward-deny-reason"),
            reason,
            "{method} {path}"
        );
    }
    let stat = |name: &'static str| {
        let envoy = &sidecar.envoy;
        async move { envoy.stat(name).await.unwrap() }
    };
    assert_eq!(stat("wasmcustom.meshward_identity_denied").await, Some(1));
    assert_eq!(stat("wasmcustom.meshward_authz_allowed").await, Some(2));
    assert_eq!(stat("wasmcustom.meshward_authz_denied").await, Some(2));
}
