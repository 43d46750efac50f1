//! Differential tests: the same requests through a filter in the wasmtime
//! harness and in a real Envoy, compared on everything both let a test
//! observe: the decision (forwarded or answered locally), the local reply's
//! status, body and headers, the request headers that reached the
//! application, the filter's log lines and its custom metrics.
//!
//! The conformance filter's `/op/props-raw` reports the raw bytes of a list
//! of properties, so property encodings are compared byte for byte. What
//! legitimately differs between the two hosts is excluded next to where it
//! is compared, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use meshward_certs::Svid;
use meshward_envoy::{FilterSpec, Sidecar, SidecarSpec};
use meshward_harness::{Filter, Host, LogLevel, Plugin, PluginConfig, Properties, Value};
use meshward_tests::filter_wasm;

const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
/// The ID in the sidecar's own certificate (`Sidecar::start` issues it).
const SIDECAR_ID: &str = "spiffe://example.org/ns/default/sa/app";
/// Sent by the client so that `request.id` and the `x-request-id` header
/// are the same in both hosts (Envoy keeps a request id it is given).
const REQUEST_ID: &str = "differential-0001";
const POLICY: &str = include_str!("../../policies/demo/orders.cedar");

/// The properties `/op/props-raw` reads, each with where the harness gets
/// its value.
const PROPERTIES: &[(&str, Source)] = &[
    ("connection.mtls", Source::Same),
    ("connection.uri_san_peer_certificate", Source::Same),
    ("connection.peer_certificate", Source::Same),
    // Not an Envoy attribute: both must say "not found".
    ("connection.peer_certificate_validated", Source::Same),
    ("connection.peer_certificate_valid", Source::Same),
    ("connection.tls_version", Source::Same),
    ("connection.requested_server_name", Source::Same),
    ("connection.uri_san_local_certificate", Source::Same),
    ("connection.dns_san_peer_certificate", Source::Same),
    // Envoy numbers connections itself.
    ("connection.id", Source::Envoy(Kind::Uint)),
    // The harness derives nothing from the certificate's DER.
    (
        "connection.subject_peer_certificate",
        Source::Envoy(Kind::Str),
    ),
    // The client's port is the kernel's choice.
    ("source.address", Source::Envoy(Kind::Str)),
    ("source.port", Source::Envoy(Kind::Int)),
    ("destination.address", Source::Same),
    ("destination.port", Source::Same),
    ("request.path", Source::Same),
    ("request.url_path", Source::Same),
    ("request.query", Source::Same),
    ("request.method", Source::Same),
    ("request.host", Source::Same),
    ("request.scheme", Source::Same),
    ("request.protocol", Source::Same),
    ("request.id", Source::Same),
    // The clock.
    ("request.time", Source::Envoy(Kind::Nanos)),
    ("request.headers.x-in", Source::Same),
    ("request.useragent", Source::Same),
    ("response.code", Source::Same),
    ("plugin_name", Source::Same),
    ("plugin_root_id", Source::Same),
    ("plugin_vm_id", Source::Same),
    ("listener_direction", Source::Same),
    ("node", Source::Same),
    ("xds.cluster_name", Source::Same),
    ("upstream.address", Source::Same),
    ("no.such", Source::Same),
    // Left out: `request.headers` (the whole map: Envoy's iteration order
    // is its own; single headers are compared above and the map encoding
    // in the harness's unit tests), `request.size` and `request.total_size`
    // (wire sizes the harness does not model) and
    // `connection.sha256_peer_certificate_digest` (a copy from Envoy would
    // compare nothing).
];

/// Where the harness's value of a property comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// The harness is given, or derives, the value Envoy has.
    Same,
    /// The value varies per run: Envoy's bytes are decoded as `Kind` and
    /// handed to the harness, so what is compared is the encoding (length,
    /// byte order) rather than the value.
    Envoy(Kind),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Int,
    Uint,
    Nanos,
}

impl Kind {
    fn decode(self, bytes: &[u8]) -> Option<Value> {
        let eight = || <[u8; 8]>::try_from(bytes).ok();
        Some(match self {
            Self::Str => Value::string(std::str::from_utf8(bytes).ok()?),
            Self::Int => Value::Int(i64::from_le_bytes(eight()?)),
            Self::Uint => Value::Uint(u64::from_le_bytes(eight()?)),
            Self::Nanos => Value::Nanos(i64::from_le_bytes(eight()?)),
        })
    }
}

fn raw_header(property: &str) -> String {
    format!("x-conf-raw-{}", property.replace(['.', '_'], "-"))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One request: who sends it and what.
#[derive(Clone, Debug)]
struct Scenario {
    /// The client's SPIFFE ID, or `None` for TLS without a client
    /// certificate.
    peer: Option<&'static str>,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl Scenario {
    fn new(peer: Option<&'static str>, method: &'static str, path: &'static str) -> Self {
        Self {
            peer,
            method,
            path,
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What one host showed for one request.
#[derive(Clone, Debug, Default, PartialEq)]
struct Observed {
    forwarded: bool,
    status: u16,
    /// Local replies only: a forwarded request's body is the application's
    /// echo of it, compared through `upstream`.
    body: String,
    /// Response headers, minus [`HOST_RESPONSE_HEADERS`].
    response_headers: BTreeMap<String, String>,
    /// The headers the application received, minus
    /// [`HOST_UPSTREAM_HEADERS`]; `None` when not observable (a local reply,
    /// or a `HEAD`, whose response has no body to echo them in).
    upstream: Option<BTreeMap<String, String>>,
    /// The filter's log messages at `info` and above, in order.
    logs: Vec<String>,
    /// Each compared metric after the request.
    metrics: BTreeMap<String, Option<i64>>,
}

/// Response headers the proxy (or the application's HTTP stack) writes
/// itself: `date`, `server` and `x-envoy-upstream-service-time` are Envoy's
/// and vary, `content-length` is the transport's framing (the body is
/// compared).
const HOST_RESPONSE_HEADERS: &[&str] = &[
    "content-length",
    "date",
    "server",
    "x-envoy-upstream-service-time",
];

/// Request headers that reach the application from Envoy but are not the
/// filter's doing: `host` is HTTP/1's `:authority` (which the harness keeps
/// as a pseudo-header; `request.host` compares it), and the router adds
/// `x-envoy-expected-rq-timeout-ms` after the filter chain.
const HOST_UPSTREAM_HEADERS: &[&str] = &["host", "x-envoy-expected-rq-timeout-ms"];

/// Everything that differs between the two observations, one line each.
fn differences(envoy: &Observed, harness: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if envoy.forwarded != harness.forwarded {
        out.push(format!(
            "decision: Envoy forwarded={}, harness forwarded={}",
            envoy.forwarded, harness.forwarded
        ));
    }
    if envoy.status != harness.status {
        out.push(format!(
            "status: Envoy {}, harness {}",
            envoy.status, harness.status
        ));
    }
    if envoy.body != harness.body {
        out.push(format!(
            "body: Envoy {:?}, harness {:?}",
            envoy.body, harness.body
        ));
    }
    map_differences(
        "response header",
        &envoy.response_headers,
        &harness.response_headers,
        &mut out,
    );
    if let (Some(e), Some(h)) = (&envoy.upstream, &harness.upstream) {
        map_differences("upstream header", e, h, &mut out);
    }
    if envoy.logs != harness.logs {
        out.push(format!(
            "logs:\n  Envoy   {:?}\n  harness {:?}",
            envoy.logs, harness.logs
        ));
    }
    map_differences("metric", &envoy.metrics, &harness.metrics, &mut out);
    out
}

fn map_differences<V: PartialEq + std::fmt::Debug>(
    what: &str,
    envoy: &BTreeMap<String, V>,
    harness: &BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    let names: BTreeSet<&String> = envoy.keys().chain(harness.keys()).collect();
    for name in names {
        let (e, h) = (envoy.get(name), harness.get(name));
        if e != h {
            out.push(format!("{what} `{name}`: Envoy {e:?}, harness {h:?}"));
        }
    }
}

/// The one known difference left in what the conformance filter reports:
/// `proxy_get_metric` on an id nobody defined. Envoy keeps the metric type
/// in an id's low bits and answers by those bits (`BadArgument` for 9999);
/// the harness numbers metrics 1, 2, 3... and answers `NotFound`. No filter
/// should depend on it, so the last field of `x-conf-metrics` (that call's
/// result) is left out.
fn normalize(name: &str, value: &str) -> String {
    match name {
        "x-conf-metrics" => value
            .rsplit_once(' ')
            .map_or(value, |(head, _)| head)
            .to_owned(),
        _ => value.to_owned(),
    }
}

fn header_map<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    skip: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if skip(&name) {
            continue;
        }
        let value = &normalize(&name, value);
        map.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    map
}

/// The messages of Envoy's `wasm log <root_id> <vm_id>[ <plugin>]: <msg>`
/// lines.
fn wasm_messages(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("][wasm] "))
        .filter_map(|l| l.split_once("] wasm log ")?.1.split_once(": "))
        .map(|(_, message)| message.to_owned())
        .collect()
}

fn harness_messages(plugin: &mut Plugin) -> Vec<String> {
    // Envoy runs at `--log-level info`, so it drops what the filter logs
    // at trace and debug; the harness keeps everything.
    plugin
        .take_logs()
        .into_iter()
        .filter(|r| r.level >= LogLevel::Info)
        .map(|r| r.message)
        .collect()
}

/// The properties an Istio inbound sidecar shows, made to match the test's
/// Envoy: its listener at `listener`, the client identified by `peer`
/// (or presenting no certificate).
fn harness_properties(peer: Option<&Svid>, listener: SocketAddr) -> Properties {
    let mut p = match peer {
        Some(svid) => Properties::istio_inbound_mtls(&svid.spiffe_id, &svid.cert_pem),
        None => {
            let mut p = Properties::istio_inbound_mtls("", "");
            p.remove("connection.uri_san_peer_certificate");
            p.remove("connection.peer_certificate");
            p.set("connection.mtls", false)
                .set("connection.peer_certificate_valid", false);
            p
        }
    };
    // The test's Envoy is not bootstrapped by istio-agent (no node
    // metadata), its listener sets no traffic direction, and the client
    // sends no SNI.
    p.remove("node");
    p.remove("listener_direction");
    p.remove("connection.requested_server_name");
    p.set("destination.address", listener.to_string())
        .set("destination.port", i64::from(listener.port()))
        .set("connection.uri_san_local_certificate", SIDECAR_ID)
        .set("xds.cluster_name", "app")
        // The client speaks HTTP/1.1; the harness assumes HTTP/2.
        .set("request.protocol", "HTTP/1.1");
    p
}

/// Sends `scenario` through the harness as Envoy would hand it to the
/// filter: the same headers, plus the two the connection manager adds
/// before the filter chain runs (`x-forwarded-proto`, and `x-request-id`,
/// which the client sets).
fn harness_observe(
    plugin: &mut Plugin,
    scenario: &Scenario,
    properties: &Properties,
    listener: SocketAddr,
    upstream: meshward_harness::Response,
    metrics: &[&str],
) -> Observed {
    let mut request = meshward_harness::Request::new(scenario.method, scenario.path)
        .set_header(":authority", format!("localhost:{}", listener.port()))
        .header("x-forwarded-proto", "https")
        .header("x-request-id", REQUEST_ID)
        .upstream_response(upstream);
    for (name, value) in &scenario.headers {
        request = request.header(name, value);
    }
    for (name, value) in properties.iter() {
        request = request.property(name, value.clone());
    }
    let exchange = plugin.send(request);
    let response = exchange.response.clone().unwrap_or_else(|| {
        panic!("the harness gave no response: {exchange:?}");
    });
    let forwarded = exchange.forwarded();
    Observed {
        forwarded,
        status: response.status,
        body: if forwarded {
            String::new()
        } else {
            response.body_text()
        },
        response_headers: header_map(
            response
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
            |n| HOST_RESPONSE_HEADERS.contains(&n),
        ),
        upstream: exchange.upstream_request.as_ref().map(|m| {
            header_map(
                m.headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
                |n| n.starts_with(':'),
            )
        }),
        logs: harness_messages(plugin),
        metrics: metrics
            .iter()
            .map(|m| ((*m).to_owned(), plugin.metric_value(m)))
            .collect(),
    }
}

/// One filter in a real Envoy and in the harness, fed the same requests.
struct Differential {
    sidecar: Sidecar,
    plugin: Plugin,
    svids: BTreeMap<&'static str, Svid>,
    /// How much of Envoy's log earlier requests account for.
    log_offset: usize,
    metrics: &'static [&'static str],
}

impl Differential {
    async fn start(
        package: &str,
        root_id: &str,
        config: &str,
        metrics: &'static [&'static str],
    ) -> Self {
        let wasm = filter_wasm(package);
        let sidecar = Sidecar::start(&SidecarSpec {
            filters: vec![FilterSpec {
                wasm: wasm.clone(),
                root_id: root_id.to_owned(),
                plugin_config: config.to_owned(),
            }],
            trust_domain: TRUST_DOMAIN.to_owned(),
        })
        .await
        .unwrap();
        let filter: Filter = Host::new().unwrap().load_file(&wasm).unwrap();
        // Envoy names the plugin, its root and its VM after the root id
        // (`envoy-config/sidecar-inbound.yaml`), and runs at `info`.
        let mut plugin = filter
            .start(
                PluginConfig::new()
                    .name(root_id)
                    .root_id(root_id)
                    .vm_id(root_id)
                    .configuration(config)
                    .log_level(LogLevel::Info),
            )
            .unwrap();
        // Envoy starts the VM on the main thread and again on the worker, so
        // its start-up lines come twice: compare them as sets.
        let started: BTreeSet<String> = harness_messages(&mut plugin).into_iter().collect();
        let logs = sidecar.envoy.logs();
        let log_offset = logs.rfind('\n').map_or(0, |i| i + 1);
        let envoy_started: BTreeSet<String> = wasm_messages(&logs).into_iter().collect();
        assert_eq!(envoy_started, started, "start-up logs of {package}");
        Self {
            sidecar,
            plugin,
            svids: BTreeMap::new(),
            log_offset,
            metrics,
        }
    }

    fn svid(&mut self, id: &'static str) -> Svid {
        let ca = &self.sidecar.ca;
        self.svids
            .entry(id)
            .or_insert_with(|| ca.issue(id, &[]).unwrap())
            .clone()
    }

    /// Runs `scenario` through both hosts and returns what each showed.
    async fn run(&mut self, scenario: &Scenario) -> (Observed, Observed) {
        let svid = scenario.peer.map(|id| self.svid(id));
        let mut request = meshward_envoy::Request::new(scenario.method, scenario.path)
            .header("x-request-id", REQUEST_ID);
        for (name, value) in &scenario.headers {
            request = request.header(name, value);
        }
        let response = self.sidecar.request(svid.as_ref(), &request).await.unwrap();
        // Envoy's router stamps every upstream response with this; a local
        // reply never has it.
        let forwarded = response.header("x-envoy-upstream-service-time").is_some();
        // The echo application answers with the headers it received.
        let upstream = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|e| {
                let headers = e["headers"].as_object()?;
                Some(header_map(
                    headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
                    |n| HOST_UPSTREAM_HEADERS.contains(&n),
                ))
            })
            .filter(|_| forwarded);
        // The harness's application answers what the filter in Envoy saw
        // from the echo application: Envoy's response minus what the filter
        // added (`x-conf-*`) and what Envoy adds after the filter chain
        // (`server`).
        let mut answer = meshward_harness::Response::new(200);
        if forwarded {
            answer = answer.body(response.body.clone());
            answer.status = response.status;
            for (name, value) in &response.headers {
                if name != "server" && !name.starts_with("x-conf-") {
                    answer = answer.header(name, value);
                }
            }
        }

        let listener = self.sidecar.listener_addr();
        let mut properties = harness_properties(svid.as_ref(), listener);
        for (name, source) in PROPERTIES {
            let Source::Envoy(kind) = source else {
                continue;
            };
            let value = upstream
                .as_ref()
                .and_then(|u| u.get(&raw_header(name)))
                .and_then(|hex| unhex(hex))
                .and_then(|bytes| kind.decode(&bytes));
            if let Some(value) = value {
                properties.set(*name, value);
            }
        }
        let harness = harness_observe(
            &mut self.plugin,
            scenario,
            &properties,
            listener,
            answer,
            self.metrics,
        );

        // `proxy_on_log` runs after the response is sent: wait (bounded)
        // until Envoy has logged as much as the harness did.
        let deadline = Instant::now() + Duration::from_secs(3);
        let (logs, end) = loop {
            let text = self.sidecar.envoy.logs();
            let end = text.rfind('\n').map_or(0, |i| i + 1).max(self.log_offset);
            let logs = wasm_messages(text.get(self.log_offset..end).unwrap_or_default());
            if logs.len() >= harness.logs.len() || Instant::now() > deadline {
                break (logs, end);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.log_offset = end;
        let mut metrics = BTreeMap::new();
        for name in self.metrics {
            let value = self
                .sidecar
                .envoy
                .stat(&format!("wasmcustom.{name}"))
                .await
                .unwrap();
            metrics.insert((*name).to_owned(), value.map(|v| i64::try_from(v).unwrap()));
        }
        let envoy = Observed {
            forwarded,
            status: response.status,
            body: if forwarded {
                String::new()
            } else {
                response.text()
            },
            response_headers: header_map(
                response
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
                |n| HOST_RESPONSE_HEADERS.contains(&n),
            ),
            upstream,
            logs,
            metrics,
        };
        (envoy, harness)
    }

    /// Runs every scenario and fails with every difference found.
    async fn check(&mut self, scenarios: &[Scenario]) {
        let mut report = Vec::new();
        for scenario in scenarios {
            let (envoy, harness) = self.run(scenario).await;
            // Every filter here logs each request: an empty log means the
            // comparison looked at nothing.
            assert!(
                !envoy.logs.is_empty(),
                "no filter logs from Envoy for {scenario:?}"
            );
            for line in differences(&envoy, &harness) {
                report.push(format!(
                    "{} {} ({:?}): {line}",
                    scenario.method, scenario.path, scenario.peer
                ));
            }
        }
        assert!(
            report.is_empty(),
            "the harness differs from Envoy:\n{}",
            report.join("\n")
        );
    }
}

fn property_list() -> String {
    PROPERTIES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

const CONFORMANCE_METRICS: &[&str] = &[
    "conformance_requests",
    "conformance_gauge",
    "conformance_ticks",
];

fn conformance_scenarios() -> Vec<Scenario> {
    let props = property_list();
    vec![
        Scenario::new(Some(FRONTEND), "GET", "/op/props-raw?a=b")
            .header("x-conf-props", &props)
            .header("x-in", "v"),
        // The client frames an empty POST body with `content-length: 0`.
        Scenario::new(None, "POST", "/op/props-raw")
            .header("x-conf-props", &props)
            .header("content-length", "0"),
        Scenario::new(Some(FRONTEND), "GET", "/op/basic")
            .header("x-in", "v")
            .header("x-replace", "old")
            .header("x-remove", "gone"),
        Scenario::new(Some(FRONTEND), "GET", "/op/pairs").header("x-drop", "1"),
        Scenario::new(Some(FRONTEND), "GET", "/op/metrics"),
        Scenario::new(Some(FRONTEND), "GET", "/op/reply"),
        Scenario::new(None, "DELETE", "/op/reply-continue"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_filter_matches_envoy() {
    let mut d = Differential::start(
        "meshward-conformance-filter",
        "conformance",
        "differential",
        CONFORMANCE_METRICS,
    )
    .await;
    d.check(&conformance_scenarios()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_filter_matches_envoy() {
    let config = crate::compiled(serde_json::json!({"cedar": {"policies": POLICY}}));
    let mut d = Differential::start(
        "meshward-authz-filter",
        "meshward_authz",
        &config,
        &[
            "meshward_authz_allowed",
            "meshward_authz_denied",
            "meshward_authz_dry_run_denied",
            "meshward_authz_errors",
        ],
    )
    .await;
    d.check(&[
        Scenario::new(Some(FRONTEND), "GET", "/api/orders"),
        Scenario::new(Some(FRONTEND), "HEAD", "/api/orders"),
        Scenario::new(Some(FRONTEND), "DELETE", "/api/orders"),
        Scenario::new(Some(FRONTEND), "GET", "/admin/users"),
        Scenario::new(
            Some("spiffe://example.org/ns/web/sa/other"),
            "GET",
            "/api/orders",
        ),
        Scenario::new(None, "GET", "/api/orders").header("x-meshward-peer-id", FRONTEND),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_filter_matches_envoy() {
    let config = serde_json::json!({
        "allowed_trust_domains": ["example.org"],
        "allowed_ids": [FRONTEND],
    })
    .to_string();
    let mut d = Differential::start(
        "meshward-identity-filter",
        "meshward_identity",
        &config,
        &["meshward_identity_allowed", "meshward_identity_denied"],
    )
    .await;
    d.check(&[
        Scenario::new(Some(FRONTEND), "GET", "/api/orders")
            .header("x-meshward-peer-id", "spiffe://example.org/admin"),
        Scenario::new(
            Some("spiffe://example.org/ns/web/sa/intruder"),
            "GET",
            "/api/orders",
        ),
        Scenario::new(
            Some("spiffe://other.org/ns/web/sa/frontend"),
            "POST",
            "/api/orders",
        )
        .header("content-length", "0"),
        Scenario::new(None, "GET", "/api/orders"),
    ])
    .await;
}

/// The comparison is only worth something if it fails: a property given
/// to the harness in another encoding (`connection.mtls` as the text
/// `true` rather than one byte), a local reply with another status, and a
/// local reply turned into a forward are each reported.
#[test]
fn the_comparison_reports_a_changed_encoding_or_local_reply() {
    let filter = Host::new()
        .unwrap()
        .load_file(filter_wasm("meshward-conformance-filter"))
        .unwrap();
    let start = || {
        filter
            .start(
                PluginConfig::new()
                    .name("c")
                    .root_id("c")
                    .vm_id("c")
                    .log_level(LogLevel::Info),
            )
            .unwrap()
    };
    let listener = SocketAddr::from(([127, 0, 0, 1], 15006));
    let echo = || meshward_harness::Response::new(200).header("content-type", "application/json");
    let ca = meshward_certs::SpiffeCa::new(TRUST_DOMAIN).unwrap();
    let svid = ca.issue(FRONTEND, &[]).unwrap();
    let scenario = &conformance_scenarios()[0];
    let good = harness_properties(Some(&svid), listener);
    let mut bad = good.clone();
    bad.set("connection.mtls", "true");

    let expected = harness_observe(
        &mut start(),
        scenario,
        &good,
        listener,
        echo(),
        CONFORMANCE_METRICS,
    );
    assert_eq!(
        expected
            .upstream
            .as_ref()
            .and_then(|u| u.get(&raw_header("connection.mtls")))
            .map(String::as_str),
        Some("01")
    );
    assert!(differences(&expected, &expected).is_empty());
    let wrong = harness_observe(
        &mut start(),
        scenario,
        &bad,
        listener,
        echo(),
        CONFORMANCE_METRICS,
    );
    let found = differences(&expected, &wrong);
    assert!(
        found
            .iter()
            .any(|d| d.contains("x-conf-raw-connection-mtls")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("logs:") && d.contains("connection.mtls 74727565")),
        "{found:?}"
    );

    let reply = &conformance_scenarios()[5];
    let expected = harness_observe(
        &mut start(),
        reply,
        &good,
        listener,
        echo(),
        CONFORMANCE_METRICS,
    );
    assert_eq!((expected.status, expected.forwarded), (418, false));
    let mut changed = expected.clone();
    changed.status = 403;
    assert_eq!(
        differences(&expected, &changed),
        ["status: Envoy 418, harness 403"]
    );
    let mut forwarded = expected.clone();
    forwarded.forwarded = true;
    forwarded.body.clear();
    assert_eq!(differences(&expected, &forwarded).len(), 2);
}
