//! The data path end to end: real TLS on 127.0.0.1, the compiled meshward
//! filters, an echo upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshward_certs::{KeyType, SpiffeCa, Svid, SvidOptions, Validity};
use meshward_data_path::{
    Client, ClientAuth, ClientResponse, Config, DataPath, EchoUpstream, FilterSpec, Limits,
    TlsSettings, TrustBundle, Upstream,
};
use meshward_filter_modules::{AUTHZ, IDENTITY};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const INTRUDER: &str = "spiffe://example.org/ns/web/sa/intruder";
const PARTNER: &str = "spiffe://partner.net/ns/shop/sa/client";
const POLICY: &str = r#"
@id("frontend-reads-api")
permit (principal == Mesh::Workload::"spiffe://example.org/ns/web/sa/frontend", action in Mesh::Action::"read", resource)
when { context.path like "/api/*" };
@id("partner-reads-api")
permit (principal == Mesh::Workload::"spiffe://partner.net/ns/shop/sa/client", action in Mesh::Action::"read", resource)
when { context.path like "/api/*" };
@id("no-admin-paths")
forbid (principal, action, resource) when { context.path like "/admin*" };
"#;

struct Rig {
    ca: SpiffeCa,
    partner: SpiffeCa,
    server: Svid,
    upstream: EchoUpstream,
}

impl Rig {
    async fn new() -> Self {
        let ca = SpiffeCa::new("example.org").unwrap();
        let partner = SpiffeCa::new("partner.net").unwrap();
        let server = ca
            .issue_local_server("spiffe://example.org/ns/orders/sa/server")
            .unwrap();
        Self {
            ca,
            partner,
            server,
            upstream: EchoUpstream::start().await.unwrap(),
        }
    }

    fn config(&self, policy: &str, upstream: Upstream) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            tls: TlsSettings {
                cert_chain_pem: self.server.cert_pem.clone(),
                key_pem: self.server.key_pem.clone(),
                trust_bundles: vec![
                    TrustBundle {
                        trust_domain: "example.org".into(),
                        ca_pem: self.ca.cert_pem(),
                    },
                    TrustBundle {
                        trust_domain: "partner.net".into(),
                        ca_pem: self.partner.cert_pem(),
                    },
                ],
                client_auth: ClientAuth::Required,
            },
            filters: chain(policy),
            upstream,
            limits: Limits::default(),
        }
    }

    fn http_upstream(&self) -> Upstream {
        Upstream::Http {
            addr: self.upstream.addr().to_string(),
        }
    }

    async fn start(&self) -> DataPath {
        DataPath::start(self.config(POLICY, self.http_upstream()))
            .await
            .unwrap()
    }

    async fn send(
        &self,
        dp: &DataPath,
        svid: Option<&Svid>,
        method: &str,
        path: &str,
        http2: bool,
    ) -> Result<ClientResponse, String> {
        let config = match svid {
            Some(s) => s.client_config(&self.ca).unwrap(),
            None => meshward_certs::anonymous_client_config(&self.ca).unwrap(),
        };
        let mut client = Client::connect(dp.local_addr(), config, "localhost", http2).await?;
        client.send(method, path, &[]).await
    }
}

fn chain(policy: &str) -> Vec<FilterSpec> {
    vec![
        FilterSpec {
            name: "identity".into(),
            wasm: Arc::from(IDENTITY.bytes),
            root_id: IDENTITY.root_id.into(),
            vm_id: "meshward".into(),
            configuration: serde_json::json!({
                "allowed_trust_domains": ["example.org", "partner.net"],
            })
            .to_string(),
            fail_open: false,
        },
        FilterSpec {
            name: "authz".into(),
            wasm: Arc::from(AUTHZ.bytes),
            root_id: AUTHZ.root_id.into(),
            vm_id: "meshward".into(),
            // The filter takes policies compiled on the host. Policies that
            // do not compile are handed over as text, which the filter
            // refuses as it refuses any bad configuration: the tests of
            // refused configurations rely on that.
            configuration: {
                let authoring = serde_json::json!({
                    "cedar": {"policies": policy},
                    "peer_from": "identity_filter",
                })
                .to_string();
                meshward_policy_cedar::compile_filter_config(&authoring).unwrap_or(authoring)
            },
            fail_open: false,
        },
    ]
}

fn echoed_header(r: &ClientResponse, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v.pointer(&format!("/headers/{name}"))?
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_workloads_over_http1_and_http2() {
    let rig = Rig::new().await;
    let dp = rig.start().await;
    let frontend = rig.ca.issue(FRONTEND, &[]).unwrap();
    let intruder = rig.ca.issue(INTRUDER, &[]).unwrap();
    for http2 in [false, true] {
        let ok = rig
            .send(&dp, Some(&frontend), "GET", "/api/orders", http2)
            .await
            .unwrap();
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(
            ok.version,
            if http2 { "HTTP/2.0" } else { "HTTP/1.1" },
            "ALPN"
        );
        // The verified peer reached the application, as in Envoy.
        assert_eq!(
            echoed_header(&ok, "x-meshward-peer-id").as_deref(),
            Some(FRONTEND)
        );
        let write = rig
            .send(&dp, Some(&frontend), "DELETE", "/api/orders", http2)
            .await
            .unwrap();
        assert_eq!(write.status, 403);
        assert_eq!(write.header("x-meshward-deny-reason"), Some("no_permit"));
        let admin = rig
            .send(&dp, Some(&frontend), "GET", "/admin/users", http2)
            .await
            .unwrap();
        assert_eq!(admin.header("x-meshward-deny-reason"), Some("forbidden"));
        let other = rig
            .send(&dp, Some(&intruder), "GET", "/api/orders", http2)
            .await
            .unwrap();
        assert_eq!(other.status, 403);
        assert_eq!(other.header("x-meshward-deny-reason"), Some("no_permit"));
    }
    let metrics = reqwest_metrics(dp.metrics_addr().unwrap()).await;
    assert!(
        metrics.contains("meshward_decisions_total{decision=\"deny\",reason=\"forbidden\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshward_requests_total{result=\"forwarded\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshward_request_duration_seconds_count 8"),
        "{metrics}"
    );
    dp.shutdown().await;
}

/// The metrics endpoint over a plain HTTP/1.1 GET.
async fn reqwest_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_trust_domain_is_verified_against_its_own_bundle() {
    let rig = Rig::new().await;
    let dp = rig.start().await;
    let partner = rig.partner.issue(PARTNER, &[]).unwrap();
    let ok = rig
        .send(&dp, Some(&partner), "GET", "/api/orders", false)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    // A partner.net ID signed by example.org's CA: the chain is good for
    // example.org, but the ID's trust domain names partner.net's bundle.
    let forged = rig.ca.issue(PARTNER, &[]).unwrap();
    // The handshake fails; with TLS 1.3 the client sees it at its first
    // read, whatever step that is.
    let refused = rig
        .send(&dp, Some(&forged), "GET", "/api/orders", false)
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_without_a_valid_client_certificate_fail() {
    let rig = Rig::new().await;
    let dp = rig.start().await;
    // No certificate: with TLS 1.3 the client learns at its first read.
    let none = rig.send(&dp, None, "GET", "/api/orders", false).await;
    assert!(none.is_err(), "{none:?}");
    // A CA nobody configured.
    let stranger = SpiffeCa::new("example.org").unwrap();
    let untrusted = stranger.issue(FRONTEND, &[]).unwrap();
    let r = rig
        .send(&dp, Some(&untrusted), "GET", "/api/orders", false)
        .await;
    assert!(r.is_err(), "{r:?}");
    // An SVID that expired yesterday, as `meshward certs --not-before
    // --not-after` issues it.
    let now = time::OffsetDateTime::now_utc();
    let expired = rig
        .ca
        .issue_with_options(
            FRONTEND,
            &[],
            &SvidOptions {
                validity: Some(
                    Validity::new(now - time::Duration::days(2), now - time::Duration::days(1))
                        .unwrap(),
                ),
                ..SvidOptions::default()
            },
        )
        .unwrap();
    let r = rig
        .send(&dp, Some(&expired), "GET", "/api/orders", false)
        .await;
    assert!(r.is_err(), "{r:?}");
    // Control: the same rig accepts a valid SVID.
    let frontend = rig.ca.issue(FRONTEND, &[]).unwrap();
    assert_eq!(
        rig.send(&dp, Some(&frontend), "GET", "/api/orders", false)
            .await
            .unwrap()
            .status,
        200
    );
    let metrics = dp.metrics().render();
    assert!(
        metrics.contains("meshward_tls_handshakes_total{result=\"failed\"} 3"),
        "{metrics}"
    );
}

/// Each key type `meshward certs --key-type` issues, as the CA, the server
/// SVID and the client SVID at once: the handshake verifies and the filters
/// see the peer. One start; a reload per key type (the modules stay
/// compiled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_of_meshward_certs_is_accepted() {
    let rig = Rig::new().await;
    let dp = rig.start().await;
    for key_type in KeyType::ALL {
        let options = SvidOptions {
            key_type,
            validity: None,
        };
        let ca = SpiffeCa::with_options("example.org", &options).unwrap();
        let server = ca
            .issue_with_options(
                "spiffe://example.org/ns/orders/sa/server",
                &["localhost"],
                &options,
            )
            .unwrap();
        let frontend = ca.issue_with_options(FRONTEND, &[], &options).unwrap();
        let mut config = rig.config(POLICY, rig.http_upstream());
        config.tls.cert_chain_pem = server.cert_pem.clone();
        config.tls.key_pem = server.key_pem.clone();
        config.tls.trust_bundles[0].ca_pem = ca.cert_pem();
        dp.reload(config).await.unwrap();
        let client = frontend.client_config(&ca).unwrap();
        let mut c = Client::connect(dp.local_addr(), client, "localhost", false)
            .await
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
        let r = c.send("GET", "/api/orders", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{key_type}: {}", r.text());
        assert_eq!(
            echoed_header(&r, "x-meshward-peer-id").as_deref(),
            Some(FRONTEND),
            "{key_type}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_auth_lets_the_filters_deny_a_peerless_request() {
    let rig = Rig::new().await;
    let mut config = rig.config(POLICY, rig.http_upstream());
    config.tls.client_auth = ClientAuth::Optional;
    let dp = DataPath::start(config).await.unwrap();
    let r = rig
        .send(&dp, None, "GET", "/api/orders", false)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.header("x-meshward-deny-reason").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_a_503() {
    let rig = Rig::new().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = rig.config(
        POLICY,
        Upstream::Http {
            addr: closed.to_string(),
        },
    );
    let dp = DataPath::start(config).await.unwrap();
    let frontend = rig.ca.issue(FRONTEND, &[]).unwrap();
    let r = rig
        .send(&dp, Some(&frontend), "GET", "/api/orders", false)
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    // A denied request never reaches the upstream, so it is still a 403.
    let r = rig
        .send(&dp, Some(&frontend), "GET", "/admin", false)
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_an_mtls_upstream() {
    let rig = Rig::new().await;
    // The upstream is a second data path with an allow-all chain in front
    // of the echo application: it requires the first one's client SVID.
    let mut inner = rig.config(
        "@id(\"all\") permit(principal, action, resource);",
        rig.http_upstream(),
    );
    inner.metrics_listen = None;
    let inner = DataPath::start(inner).await.unwrap();
    let sidecar = rig
        .ca
        .issue("spiffe://example.org/ns/web/sa/frontend", &[])
        .unwrap();
    let config = rig.config(
        POLICY,
        Upstream::Mtls {
            addr: inner.local_addr().to_string(),
            server_name: "localhost".into(),
            ca_pem: rig.ca.cert_pem(),
            cert_chain_pem: sidecar.cert_pem.clone(),
            key_pem: sidecar.key_pem.clone(),
        },
    );
    let dp = DataPath::start(config).await.unwrap();
    let frontend = rig.ca.issue(FRONTEND, &[]).unwrap();
    let r = rig
        .send(&dp, Some(&frontend), "GET", "/api/orders", false)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(inner.metrics().requests("forwarded"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_traffic_fails_no_request() {
    let rig = Rig::new().await;
    let dp = Arc::new(rig.start().await);
    let frontend = rig.ca.issue(FRONTEND, &[]).unwrap();
    let config = frontend.client_config(&rig.ca).unwrap();
    let addr = dp.local_addr();
    // Two clients, one per protocol, each on one kept-alive connection
    // that outlives the reload; bounded in count.
    let mut load = Vec::new();
    for http2 in [false, true] {
        let config = config.clone();
        load.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, config, "localhost", http2)
                .await
                .unwrap();
            let mut statuses = Vec::new();
            for _ in 0..300 {
                let r = client.send("GET", "/api/orders", &[]).await.unwrap();
                statuses.push(r.status);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The new policy forbids the API: requests after the reload are 403.
    let forbid_api = format!(
        "{POLICY}\n@id(\"api-closed\") forbid(principal, action, resource) when {{ context.path like \"/api/*\" }};"
    );
    dp.reload(rig.config(&forbid_api, rig.http_upstream()))
        .await
        .unwrap();
    // A configuration that does not build is refused; the last one stays.
    let err = dp
        .reload(rig.config("permit(", rig.http_upstream()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authz"), "{err}");
    for task in load {
        let statuses = task.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 403),
            "{statuses:?}"
        );
        // Both policies were in force on the same connection.
        assert_eq!(statuses.first(), Some(&200));
        assert_eq!(statuses.last(), Some(&403), "{statuses:?}");
    }
    let after = rig
        .send(&dp, Some(&frontend), "GET", "/api/orders", true)
        .await
        .unwrap();
    assert_eq!(after.header("x-meshward-deny-reason"), Some("forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_one_clear_error() {
    let rig = Rig::new().await;
    let mut c = rig.config(POLICY, rig.http_upstream());
    c.tls.cert_chain_pem = "not pem".into();
    let e = DataPath::start(c).await.unwrap_err().to_string();
    assert!(e.contains("server certificate"), "{e}");
    let c = rig.config(
        "permit(principal, action, resource) when { context.nope };",
        rig.http_upstream(),
    );
    let e = DataPath::start(c).await.unwrap_err().to_string();
    assert!(e.starts_with("filter `authz`"), "{e}");
    let dp = rig.start().await;
    let mut c = rig.config(POLICY, rig.http_upstream());
    c.listen = dp.local_addr();
    c.metrics_listen = None;
    let e = DataPath::start(c).await.unwrap_err().to_string();
    assert!(e.contains("cannot listen on"), "{e}");
}
