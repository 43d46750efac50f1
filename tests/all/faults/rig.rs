//! A real Envoy running meshward's two-filter chain, as the fault and soak
//! tests need it and the shared sidecar rig does not offer: a fixed
//! listener port (so Envoy can be restarted under a client that keeps
//! sending), and the listener served from a watched LDS file (so its
//! filters' configuration can be swapped under load).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshward_certs::SpiffeCa;
use meshward_envoy::{
    EchoUpstream, Envoy, FilterSpec, Request, Sidecar, Template, send, yaml_quote,
};
use meshward_tests::{filter_wasm, try_authz_filter_config};

pub(crate) const TRUST_DOMAIN: &str = "example.org";
pub(crate) const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
pub(crate) const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";
/// The demo policy: the frontend may read `/api/*`; nobody reaches `/admin*`.
pub(crate) const ORDERS: &str = include_str!("../../../policies/demo/orders.cedar");

/// The identity filter, with its default configuration.
pub(crate) fn identity_filter(config: serde_json::Value) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-identity-filter"),
        root_id: "meshward_identity".to_owned(),
        plugin_config: config.to_string(),
    }
}

/// The authz filter's configuration with `policies` compiled; policies that
/// do not compile are handed over as Cedar text, which the filter refuses
/// as it refuses any bad configuration (the faults need a refused one).
pub(crate) fn authz_config_or_text(policies: &str) -> String {
    let authoring = serde_json::json!({
        "cedar": {"policies": policies},
        "peer_from": "identity_filter",
    });
    try_authz_filter_config(&authoring).unwrap_or_else(|_| authoring.to_string())
}

/// The authorization filter behind the identity filter, with `policies`.
pub(crate) fn authz_filter(policies: &str) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-authz-filter"),
        root_id: "meshward_authz".to_owned(),
        plugin_config: authz_config_or_text(policies),
    }
}

/// The test guest that traps on demand (`tests/guests/fault-filter`).
pub(crate) fn fault_filter(words: &str) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-fault-filter"),
        root_id: "meshward_fault".to_owned(),
        plugin_config: words.to_owned(),
    }
}

/// How the listener is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// In the bootstrap (`static_resources`).
    Static,
    /// From an LDS file Envoy watches.
    Lds,
}

/// Certificates, the application and a fixed port, outliving any one Envoy.
pub(crate) struct Rig {
    upstream: EchoUpstream,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    pub(crate) fail_open: bool,
    frontend: Arc<rustls::ClientConfig>,
    backend: Arc<rustls::ClientConfig>,
}

impl Rig {
    pub(crate) async fn new() -> Self {
        let ca = SpiffeCa::new(TRUST_DOMAIN).unwrap();
        let server = ca
            .issue_local_server("spiffe://example.org/ns/default/sa/app")
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("meshward-faults-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.path().join("server-key.pem"), &server.key_pem).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let frontend = ca.issue(FRONTEND, &[]).unwrap().client_config(&ca).unwrap();
        let backend = ca.issue(BACKEND, &[]).unwrap().client_config(&ca).unwrap();
        Self {
            upstream: EchoUpstream::start().await.unwrap(),
            dir,
            port,
            fail_open: false,
            frontend,
            backend,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A file of the rig's folder (`ca.pem`, `server.pem`,
    /// `server-key.pem`, or one a test writes there).
    pub(crate) fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The application behind the proxy.
    pub(crate) fn upstream_addr(&self) -> SocketAddr {
        self.upstream.addr()
    }

    /// The rendered two-filter sidecar bootstrap, as YAML.
    fn rendered(&self, filters: &[FilterSpec]) -> serde_yaml_ng::Value {
        let mut text =
            std::fs::read_to_string(Sidecar::template_path(filters.len()).unwrap()).unwrap();
        if self.fail_open {
            assert!(text.contains("fail_open: false"));
            text = text.replace("fail_open: false", "fail_open: true");
        }
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        let mut values = std::collections::BTreeMap::new();
        values.insert("CA", file("ca.pem"));
        values.insert("CERT", file("server.pem"));
        values.insert("KEY", file("server-key.pem"));
        values.insert("UPSTREAM_PORT", self.upstream.addr().port().to_string());
        let keys: Vec<[String; 3]> = (0..filters.len())
            .map(|n| {
                [
                    format!("WASM_{n}"),
                    format!("ROOT_ID_{n}"),
                    format!("PLUGIN_CONFIG_{n}"),
                ]
            })
            .collect();
        for (f, [wasm, root, config]) in filters.iter().zip(&keys) {
            values.insert(wasm.as_str(), f.wasm.display().to_string());
            values.insert(root.as_str(), f.root_id.clone());
            values.insert(config.as_str(), yaml_quote(&f.plugin_config));
        }
        let text = Template::from_text(text).render(&values).unwrap();
        let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        yaml["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] =
            self.port.into();
        yaml
    }

    /// The bootstrap for `filters`; with [`Listener::Lds`] the listener is
    /// written to the LDS file instead.
    pub(crate) fn bootstrap(&self, filters: &[FilterSpec], listener: Listener) -> String {
        let mut yaml = self.rendered(filters);
        if listener == Listener::Lds {
            self.write_lds(filters);
            let statics = yaml["static_resources"].as_mapping_mut().unwrap();
            statics.remove("listeners");
            let lds = self.dir.path().join("lds.yaml").display().to_string();
            // Envoy takes dynamic listeners only from a named node.
            yaml["node"] =
                serde_yaml_ng::from_str("{id: meshward-faults, cluster: meshward-faults}").unwrap();
            yaml["dynamic_resources"] = serde_yaml_ng::from_str(&format!(
                "lds_config:\n  resource_api_version: V3\n  path_config_source:\n    path: {lds}\n    watched_directory: {{ path: {} }}\n",
                self.dir.path().display()
            ))
            .unwrap();
        }
        serde_yaml_ng::to_string(&yaml).unwrap()
    }

    /// Replaces the LDS file atomically (a rename, which Envoy's directory
    /// watch sees as one change) with the listener for `filters`.
    pub(crate) fn write_lds(&self, filters: &[FilterSpec]) {
        let yaml = self.rendered(filters);
        let mut listener = yaml["static_resources"]["listeners"][0].clone();
        listener.as_mapping_mut().unwrap().insert(
            "@type".into(),
            "type.googleapis.com/envoy.config.listener.v3.Listener".into(),
        );
        let mut doc = serde_yaml_ng::Mapping::new();
        doc.insert(
            "resources".into(),
            serde_yaml_ng::Value::Sequence(vec![listener]),
        );
        let tmp = self.dir.path().join("lds.yaml.next");
        std::fs::write(&tmp, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("lds.yaml")).unwrap();
    }

    /// Starts Envoy and waits until the listener answers.
    pub(crate) async fn start(&self, config: &str) -> Envoy {
        let envoy = Envoy::start(config).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while envoy.listener("inbound_mtls").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the listener never came up:\n{}",
                envoy.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        envoy
    }

    /// Sends `probe` on a new connection.
    pub(crate) async fn send(&self, probe: &Probe) -> Result<u16, String> {
        let tls = match probe.peer {
            Peer::Frontend => self.frontend.clone(),
            Peer::Backend => self.backend.clone(),
        };
        let mut req = Request::new(probe.method, probe.path);
        for (k, v) in probe.headers {
            req = req.header(k, v);
        }
        send(self.addr(), Some(tls), &req)
            .await
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    Frontend,
    Backend,
}

/// A request and the status the orders policy gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) peer: Peer,
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) headers: &'static [(&'static str, &'static str)],
    /// Under the orders policy.
    pub(crate) allowed: bool,
}

/// The fixed probe set: allowed and denied requests, including spellings
/// that walk around naive checks.
pub(crate) const PROBES: &[Probe] = &[
    Probe {
        peer: Peer::Frontend,
        method: "GET",
        path: "/api/orders",
        headers: &[],
        allowed: true,
    },
    Probe {
        peer: Peer::Frontend,
        method: "HEAD",
        path: "/api/orders/7",
        headers: &[],
        allowed: true,
    },
    Probe {
        peer: Peer::Frontend,
        method: "GET",
        path: "/admin",
        headers: &[],
        allowed: false,
    },
    Probe {
        peer: Peer::Frontend,
        method: "GET",
        path: "/api/../admin",
        headers: &[],
        allowed: false,
    },
    Probe {
        peer: Peer::Frontend,
        method: "DELETE",
        path: "/api/orders",
        headers: &[],
        allowed: false,
    },
    Probe {
        peer: Peer::Frontend,
        method: "GET",
        path: "/api/orders",
        headers: &[("x-meshward-peer-id", BACKEND)],
        allowed: true,
    },
    Probe {
        peer: Peer::Backend,
        method: "GET",
        path: "/api/orders",
        headers: &[],
        allowed: false,
    },
    Probe {
        peer: Peer::Backend,
        method: "GET",
        path: "/api/orders",
        headers: &[("x-meshward-peer-id", FRONTEND)],
        allowed: false,
    },
];
