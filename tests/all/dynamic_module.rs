//! The native dynamic module (`filters/dynamic-module`) against the wasm
//! chain, both in real Envoy: the adversarial suite's requests and every
//! policy suite's requests go through one Envoy running the wasm filters
//! (root id `meshward`) and one running the native module, with the same
//! JSON configuration, and must get, case by case, the same status, deny
//! reason, logged reason and determining policies (and, when forwarded,
//! the same path and identity header at the application).
//!
//! The policy suites' requests are sent as Envoy can carry them: the peer
//! as a client certificate issued for it (none when the case has no peer),
//! method, authority, path and headers as written; source address, port
//! and token claims are what the connection gives. The comparison is
//! between the two forms, so a projected case is as good as the original.

// The adversarial suite's client, compiled here too: it is private to that
// module, and this test must send exactly the same bytes.
#[path = "adversarial/client.rs"]
#[allow(
    dead_code,
    clippy::duplicate_mod,
    reason = "the adversarial suite's client, shared by path"
)]
mod client;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use meshward_certs::SpiffeCa;
use meshward_envoy::{
    EchoUpstream, Envoy, FilterSpec, Sidecar, SidecarSpec, Template, workspace_root, yaml_quote,
};
use meshward_policy::Suite;
use meshward_tests::filter_wasm;

use crate::compiled;

use self::client::{Raw, Reply, Version, send};

/// The native module, built once per test run with the release profile
/// (as `scripts/build-native-module` builds it).
fn native_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(&root)
                .args(["build", "--release", "-p", "meshward-dynamic-module"])
                .arg("--target-dir")
                .arg(root.join("target"));
            // The test build's flags are for the test build only.
            for var in [
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_BUILD_RUSTFLAGS",
                "RUSTFLAGS",
                "RUSTC_WORKSPACE_WRAPPER",
                "CLIPPY_ARGS",
                "CARGO_TARGET_DIR",
            ] {
                cmd.env_remove(var);
            }
            let status = cmd.status().unwrap();
            assert!(status.success(), "building the native module failed");
            let path = root.join("target/release/libmeshward_dynamic_module.so");
            assert!(path.is_file(), "{} is missing", path.display());
            path
        })
        .clone()
}

/// The wasm filter block of the sidecar bootstrap, replaced by the native
/// module's: the rest of the bootstrap (TLS, normalisation, routes) is the
/// same for both forms.
fn native_bootstrap(module: &std::path::Path) -> String {
    let text = std::fs::read_to_string(workspace_root().join("envoy-config/sidecar-inbound.yaml"))
        .unwrap();
    let start = text
        .find("          - name: envoy.filters.http.wasm")
        .unwrap();
    let end = text
        .find("          - name: envoy.filters.http.router")
        .unwrap();
    let native = format!(
        r#"          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config:
                name: meshward_dynamic_module
                do_not_close: true
                module:
                  local: {{ filename: "{}" }}
              filter_name: meshward
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: {{{{PLUGIN_CONFIG_0}}}}
"#,
        module.display()
    );
    format!("{}{native}{}", &text[..start], &text[end..])
}

/// The same sidecar as `meshward_envoy::Sidecar`, with the native module.
struct NativeSidecar {
    ca: SpiffeCa,
    envoy: Envoy,
    listener: SocketAddr,
    _upstream: EchoUpstream,
    _files: tempfile::TempDir,
}

impl NativeSidecar {
    async fn start(trust_domain: &str, config: &str) -> Self {
        let ca = SpiffeCa::new(trust_domain).unwrap();
        let server = ca
            .issue_local_server(&format!("spiffe://{trust_domain}/ns/default/sa/app"))
            .unwrap();
        let files = tempfile::Builder::new()
            .prefix("meshward-native-")
            .tempdir()
            .unwrap();
        let write = |name: &str, text: &str| {
            let path = files.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let upstream = EchoUpstream::start().await.unwrap();
        let mut values = BTreeMap::new();
        values.insert("CA", write("ca.pem", &ca.cert_pem()));
        values.insert("CERT", write("server.pem", &server.cert_pem));
        values.insert("KEY", write("server-key.pem", &server.key_pem));
        values.insert("PLUGIN_CONFIG_0", yaml_quote(config));
        values.insert("UPSTREAM_PORT", upstream.addr().port().to_string());
        let bootstrap = Template::from_text(native_bootstrap(&native_module()))
            .render(&values)
            .unwrap();
        let envoy = Envoy::start(&bootstrap).await.unwrap();
        let listener = envoy.listener("inbound_mtls").await.unwrap();
        Self {
            ca,
            envoy,
            listener,
            _upstream: upstream,
            _files: files,
        }
    }
}

/// One Envoy of each form with the same chain configuration.
struct Pair {
    wasm: Sidecar,
    native: NativeSidecar,
}

impl Pair {
    async fn start(trust_domain: &str, config: String) -> Self {
        let spec = SidecarSpec {
            filters: vec![FilterSpec {
                wasm: filter_wasm("meshward-authz-filter"),
                root_id: "meshward".to_owned(),
                plugin_config: config.clone(),
            }],
            trust_domain: trust_domain.to_owned(),
        };
        let (wasm, native) = tokio::join!(
            Sidecar::start(&spec),
            NativeSidecar::start(trust_domain, &config)
        );
        Self {
            wasm: wasm.unwrap(),
            native,
        }
    }
}

/// What one request came to, as the client and the decision log saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    deny_reason: Option<String>,
    /// The reason of the last decision line (authorization, or identity
    /// when that stage denied).
    logged_reason: Option<String>,
    determining: Option<Vec<String>>,
    app_path: Option<String>,
    app_peer: Option<String>,
}

/// Decision lines Envoy logged after the first `skip` ones.
fn decision_lines(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|l| {
            l.find("meshward-authz decision ")
                .or_else(|| l.find("meshward-identity decision "))
                .map(|at| l[at..].to_owned())
        })
        .collect()
}

/// Sends `raw` and reads back what was decided.
async fn exchange(
    envoy: &Envoy,
    addr: SocketAddr,
    tls: &rustls::ClientConfig,
    version: Version,
    raw: &Raw,
) -> Seen {
    let before = decision_lines(&envoy.logs()).len();
    let reply: Reply = send(addr, tls, version, raw).await;
    let ours = reply.header("x-meshward-deny-reason").is_some() || reply.status == 200;
    // The line is written before the reply leaves Envoy; allow the log file
    // a moment all the same.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut lines = decision_lines(&envoy.logs());
    while ours && lines.len() <= before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lines = decision_lines(&envoy.logs());
    }
    let new = lines.get(before..).unwrap_or_default();
    let last: Option<serde_json::Value> = new
        .iter()
        .rev()
        .find(|l| l.starts_with("meshward-authz"))
        .or(new.last())
        .and_then(|l| l.split_once(' ').and_then(|(_, r)| r.split_once(' ')))
        .and_then(|(_, json)| serde_json::from_str(json).ok());
    let app = reply.echoed();
    Seen {
        status: reply.status,
        deny_reason: reply.header("x-meshward-deny-reason").map(str::to_owned),
        logged_reason: last
            .as_ref()
            .and_then(|v| v["reason"].as_str().map(str::to_owned)),
        determining: last.as_ref().and_then(|v| {
            v["determining"].as_array().map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
        }),
        app_path: app
            .as_ref()
            .and_then(|a| a["path"].as_str().map(str::to_owned)),
        app_peer: app.as_ref().and_then(|a| {
            a["headers"]["x-meshward-peer-id"]
                .as_str()
                .map(str::to_owned)
        }),
    }
}

/// A client configuration for `peer` (no certificate when `None`).
fn tls(ca: &SpiffeCa, peer: Option<&str>) -> rustls::ClientConfig {
    match peer {
        Some(p) => (*ca.issue(p, &[]).unwrap().client_config(ca).unwrap()).clone(),
        None => (*meshward_certs::anonymous_client_config(ca).unwrap()).clone(),
    }
}

/// One request of a comparison.
struct Probe {
    name: String,
    peer: Option<String>,
    raw: Raw,
    versions: Vec<Version>,
}

/// Runs every probe through both forms and returns the differences, and
/// how many exchanges were compared.
async fn compare(pair: &Pair, probes: &[Probe]) -> (Vec<String>, usize) {
    let mut differences = Vec::new();
    let mut compared = 0;
    for probe in probes {
        let wasm_tls = tls(&pair.wasm.ca, probe.peer.as_deref());
        let native_tls = tls(&pair.native.ca, probe.peer.as_deref());
        for &version in &probe.versions {
            let a = exchange(
                &pair.wasm.envoy,
                pair.wasm.listener_addr(),
                &wasm_tls,
                version,
                &probe.raw,
            )
            .await;
            let b = exchange(
                &pair.native.envoy,
                pair.native.listener,
                &native_tls,
                version,
                &probe.raw,
            )
            .await;
            compared += 1;
            if a != b {
                differences.push(format!(
                    "{} ({version:?}):\n  wasm   {a:?}\n  native {b:?}",
                    probe.name
                ));
            }
        }
    }
    (differences, compared)
}

// ------------------------------------------------------ the adversarial suite

#[derive(serde::Deserialize)]
struct AdversarialCase {
    name: String,
    policy: String,
    method: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    h1_only: bool,
}

#[derive(serde::Deserialize)]
struct AdversarialFile {
    policies: BTreeMap<String, String>,
    cases: Vec<AdversarialCase>,
}

/// `\xNN` escapes to bytes, as the adversarial suite writes them.
fn bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\'
            && tail.first() == Some(&b'x')
            && let Some(v) = tail
                .get(1..3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            rest = &tail[3..];
        } else {
            out.push(b);
            rest = tail;
        }
    }
    out
}

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

/// The identity part of every configuration here: the peer from the mTLS
/// connection, from any of the trust domains the suites name.
fn identity() -> serde_json::Value {
    serde_json::json!({"allowed_trust_domains": ["example.org", "cluster.local", "partner.example"]})
}

fn chain_config(authz: String) -> String {
    format!(r#"{{"identity": {}, "authz": {authz}}}"#, identity())
}

async fn adversarial(break_native: bool) -> (Vec<String>, usize) {
    let file: AdversarialFile =
        serde_json::from_str(include_str!("adversarial/cases.json")).unwrap();
    let mut differences = Vec::new();
    let mut compared = 0;
    for (name, text) in &file.policies {
        let text = if text.ends_with(".cedar") {
            std::fs::read_to_string(workspace_root().join(text)).unwrap()
        } else {
            text.clone()
        };
        let config = chain_config(compiled(serde_json::json!({"cedar": {"policies": text}})));
        let pair = if break_native {
            // The check of the check: the native side decides on another
            // policy set, and the comparison must see it.
            let other = chain_config(compiled(
                r#"{"cedar": {"policies": "@id(\"everyone\") permit(principal, action, resource);"}}"#,
            ));
            let spec = SidecarSpec {
                filters: vec![FilterSpec {
                    wasm: filter_wasm("meshward-authz-filter"),
                    root_id: "meshward".to_owned(),
                    plugin_config: config.clone(),
                }],
                trust_domain: "example.org".to_owned(),
            };
            Pair {
                wasm: Sidecar::start(&spec).await.unwrap(),
                native: NativeSidecar::start("example.org", &other).await,
            }
        } else {
            Pair::start("example.org", config).await
        };
        let probes: Vec<Probe> = file
            .cases
            .iter()
            .filter(|c| &c.policy == name)
            .map(|c| {
                let mut raw = Raw::new(&c.method, "");
                raw.path = bytes(&c.path);
                // The two Envoys listen on different ports: the default
                // authority (`localhost:<port>`) would differ.
                raw.authority = Some(
                    c.authority
                        .as_deref()
                        .map_or_else(|| b"localhost".to_vec(), bytes),
                );
                for (k, v) in &c.headers {
                    raw.headers.push((k.as_bytes().to_vec(), bytes(v)));
                }
                Probe {
                    name: format!("{name}: {}", c.name),
                    peer: Some(FRONTEND.to_owned()),
                    raw,
                    versions: if c.h1_only {
                        vec![Version::H1]
                    } else {
                        vec![Version::H1, Version::H2]
                    },
                }
            })
            .collect();
        let (d, n) = compare(&pair, &probes).await;
        differences.extend(d);
        compared += n;
        if break_native {
            break;
        }
    }
    (differences, compared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_cases_decide_the_same_in_both_forms() {
    let (differences, compared) = adversarial(false).await;
    assert!(
        differences.is_empty(),
        "{} of {compared} exchanges differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(compared >= 60, "only {compared} exchanges");
    eprintln!("dynamic module: {compared} adversarial exchanges decided alike");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_sees_a_differing_decision() {
    let (differences, _) = adversarial(true).await;
    assert!(
        !differences.is_empty(),
        "a native module deciding on allow-all agreed with the wasm chain"
    );
}

// ------------------------------------------------------- the policy suites

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_suite_requests_decide_the_same_in_both_forms() {
    let dir = workspace_root().join("policies");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".cases.json"))
        .collect();
    paths.sort();
    let mut differences = Vec::new();
    let mut compared = 0;
    for path in paths {
        let suite = Suite::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let policies: String = suite
            .policies
            .iter()
            .map(|p| std::fs::read_to_string(dir.join(p)).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let engine = suite.config_json(&policies);
        let config = chain_config(compiled(format!(r#"{{"cedar": {engine}}}"#)));
        let pair = Pair::start("cluster.local", config).await;
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let probes: Vec<Probe> = suite
            .cases
            .iter()
            .map(|c| {
                let r = &c.request;
                let mut raw = Raw::new(&r.method, &r.path);
                raw.authority = Some(r.host.as_bytes().to_vec());
                for (k, v) in &r.headers {
                    raw.headers
                        .push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
                }
                Probe {
                    name: format!("{file}: {}", c.name),
                    peer: r.peer.as_ref().map(|p| p.as_str().to_owned()),
                    raw,
                    versions: vec![Version::H1, Version::H2],
                }
            })
            .collect();
        let (d, n) = compare(&pair, &probes).await;
        differences.extend(d);
        compared += n;
    }
    assert!(
        differences.is_empty(),
        "{} of {compared} exchanges differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(compared >= 100, "only {compared} exchanges");
    eprintln!("dynamic module: {compared} policy-suite exchanges decided alike");
}
