//! Live policy updates without a restart: the authorization filter's
//! configuration comes from Envoy's extension configuration discovery
//! (ECDS), here read from a file (`path_config_source`), the mechanism
//! istiod uses to push WasmPlugin configuration. A new policy changes
//! decisions while requests keep flowing, none failing; an invalid one is
//! refused by Envoy (the filter refuses to configure), counted as
//! `config_fail`, logged, and the last valid policy keeps deciding.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meshward_envoy::{Envoy, Request, send};
use meshward_tests::filter_wasm;
use serde_json::json;

/// The authorization filter's configuration for Cedar policies, as every
/// other test here builds it (peer from the connection; plaintext peers
/// evaluated).
fn authz_filter_config(cedar: &str) -> String {
    let config = json!({
        "cedar": {"policies": cedar, "require_peer_identity": false},
        "peer_from": "connection",
        "decision_log": "denies",
    });
    crate::compiled(config)
}

fn permit_path(path: &str) -> String {
    format!(
        "@id(\"live\")\npermit (principal, action, resource) when {{ context.path == \"{path}\" }};\n"
    )
}

/// Writes the discovery response atomically (a rename into the watched
/// directory), as a control plane's file drop should.
fn publish(dir: &Path, configuration: &str) {
    let wasm = filter_wasm("meshward-authz-filter").display().to_string();
    let response = json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "meshward_authz",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "meshward_authz",
                    "root_id": "meshward_authz",
                    "fail_open": false,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": configuration,
                    },
                    "vm_config": {
                        "vm_id": "meshward_authz",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm}},
                    },
                },
            },
        }],
    });
    let tmp = dir.join("authz.json.tmp");
    std::fs::write(&tmp, response.to_string()).unwrap();
    std::fs::rename(&tmp, dir.join("authz.json")).unwrap();
}

fn bootstrap(dir: &Path) -> String {
    let path = dir.join("authz.json").display().to_string();
    let watched = dir.display().to_string();
    json!({
        // Discovery needs a node, as istiod's proxies have.
        "node": {"id": "sidecar~127.0.0.1~app.shop~shop.svc.cluster.local", "cluster": "app.shop"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "inbound",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "inbound",
                    "route_config": {"virtual_hosts": [{
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                    }]},
                    "http_filters": [
                        {
                            "name": "meshward_authz",
                            "config_discovery": {
                                "config_source": {"path_config_source": {
                                    "path": path,
                                    "watched_directory": {"path": watched},
                                }},
                                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                            },
                        },
                        {
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                        },
                    ],
                },
            }]}],
        }]},
    })
    .to_string()
}

/// The value of the first stat whose name contains `part`.
async fn stat_containing(envoy: &Envoy, part: &str) -> Option<u64> {
    let stats = envoy.admin_get("/stats").await.unwrap();
    stats
        .lines()
        .find(|l| l.contains(part))
        .and_then(|l| l.rsplit(": ").next())
        .and_then(|v| v.trim().parse().ok())
}

async fn status(addr: std::net::SocketAddr, path: &str) -> u16 {
    send(addr, None, &Request::get(path)).await.unwrap().status
}

/// Waits until `path` is decided `want`, for at most a minute.
async fn until(addr: std::net::SocketAddr, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(addr, path).await != want {
        assert!(Instant::now() < deadline, "{path} never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_updates_reach_a_running_envoy_and_invalid_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &authz_filter_config(&permit_path("/a")));
    let envoy = Envoy::start(&bootstrap(dir.path())).await.unwrap();
    let addr = envoy.listener("inbound").await.unwrap();
    until(addr, "/a", 200).await;
    assert_eq!(status(addr, "/b").await, 403);

    // Requests keep flowing while the policy changes: each is decided by
    // one whole configuration or the other (200 or 403), none fails.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 5_000 {
                let path = if n % 2 == 0 { "/a" } else { "/b" };
                let s = send(addr, None, &Request::get(path))
                    .await
                    .map(|r| r.status);
                seen.push((path, s.map_err(|e| e.to_string())));
                n += 1;
            }
            seen
        })
    };
    publish(dir.path(), &authz_filter_config(&permit_path("/b")));
    until(addr, "/b", 200).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    assert!(!seen.is_empty());
    for (path, s) in &seen {
        assert!(
            matches!(s, Ok(200 | 403)),
            "{path} during the update: {s:?}"
        );
    }
    eprintln!(
        "ecds: {} requests during the update, none failed",
        seen.len()
    );
    assert_eq!(status(addr, "/a").await, 403);
    let reloads = stat_containing(&envoy, "meshward_authz.config_reload:").await;
    assert!(reloads >= Some(2), "config_reload {reloads:?}");

    // An invalid policy: refused, counted and logged; `/b` stays permitted.
    let fails_before = stat_containing(&envoy, "meshward_authz.config_fail:")
        .await
        .unwrap_or(0);
    // Broken Cedar cannot be compiled, so the update carries the text as
    // is: the filter takes only compiled policies and refuses it.
    let invalid = json!({
        "cedar": {"policies": "permit (principal,", "require_peer_identity": false},
        "peer_from": "connection",
    });
    publish(dir.path(), &invalid.to_string());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fails = stat_containing(&envoy, "meshward_authz.config_fail:")
            .await
            .unwrap_or(0);
        if fails > fails_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the invalid update was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(addr, "/b").await, 200);
    assert_eq!(status(addr, "/a").await, 403);
    let logs = envoy.logs();
    assert!(logs.contains("configuration refused"), "{logs}");
}
