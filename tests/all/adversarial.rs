//! The adversarial suite (issue 9): requests spelt, split, repeated or
//! forged so as to walk around a decision, each with the decision meshward
//! must reach (`adversarial/cases.json`), run through the native engine,
//! the compiled authorization filter in the harness, and both filters in
//! real Envoy over HTTP/1.1 and HTTP/2 with Envoy's own path normalisation
//! on and off; then the identity hand-over under attack, certificates Envoy
//! accepted without validating, bytes that are not text, and a bounded
//! random run compared with the native engine.

#[path = "adversarial/client.rs"]
pub(crate) mod client;

use std::sync::OnceLock;

use meshward_certs::SpiffeCa;
use meshward_envoy::{BootstrapEdits, FilterSpec, Sidecar, SidecarSpec, workspace_root};
use meshward_filter_glue::PEER_ID_PROPERTY;
use meshward_harness::{Filter, Host, Plugin, PluginConfig, Properties, Request};
use meshward_policy::{PathOptions, RequestFacts};
use meshward_policy_cedar::engine_from_policies;

use crate::compiled;
use meshward_tests::filter_wasm;
use rand::{Rng, SeedableRng};

use self::client::{Raw, Reply, Version, send};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const PEER_HEADER: &str = "x-meshward-peer-id";
const CLAIMS_HEADER: &str = "x-meshward-jwt-claims";

#[derive(Debug, Clone, serde::Deserialize)]
struct Case {
    name: String,
    policy: String,
    method: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    expect: Expect,
    #[serde(default)]
    app_path: Option<String>,
    #[serde(default)]
    h1_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Allow,
    Deny,
}

#[derive(serde::Deserialize)]
struct CasesFile {
    policies: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
}

fn cases_file() -> &'static CasesFile {
    static FILE: OnceLock<CasesFile> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut file: CasesFile =
            serde_json::from_str(include_str!("adversarial/cases.json")).unwrap();
        for text in file.policies.values_mut() {
            if text.ends_with(".cedar") {
                *text = std::fs::read_to_string(workspace_root().join(&*text)).unwrap();
            }
        }
        file
    })
}

fn policy(name: &str) -> &'static str {
    &cases_file().policies[name]
}

/// `\xNN` escapes to bytes.
fn bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\'
            && tail.first() == Some(&b'x')
            && let Some(hex) = tail.get(1..3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
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

impl Case {
    fn raw(&self) -> Raw {
        let mut raw = Raw::new(&self.method, "");
        raw.path = bytes(&self.path);
        raw.authority = self.authority.as_deref().map(bytes);
        for (k, v) in &self.headers {
            raw.headers.push((k.as_bytes().to_vec(), bytes(v)));
        }
        raw
    }

    fn is_text(&self) -> bool {
        !self.path.contains("\\x") && self.headers.iter().all(|(_, v)| !v.contains("\\x"))
    }
}

/// Whether header name `actual` is a spelling of `name` (any case, `_` for
/// `-`), written here independently of the filters' own check.
fn spells(actual: &str, name: &str) -> bool {
    actual.to_ascii_lowercase().replace('_', "-") == name
}

/// What the filters' facts are for `raw` sent by the frontend.
fn native_facts(raw: &Raw, authority: &[u8]) -> RequestFacts {
    let mut facts = RequestFacts::from_raw(
        &raw.method,
        raw.authority.as_deref().unwrap_or(authority),
        &raw.path,
        &PathOptions::default(),
    )
    .with_peer(FRONTEND.parse().unwrap());
    facts.mtls = true;
    for (k, v) in &raw.headers {
        let name = String::from_utf8_lossy(k).to_ascii_lowercase();
        if !spells(&name, PEER_HEADER) && !spells(&name, CLAIMS_HEADER) {
            facts.headers.push(name, v.clone());
        }
    }
    facts
}

#[test]
fn cases_natively() {
    for case in &cases_file().cases {
        let engine = engine_from_policies(policy(&case.policy)).unwrap();
        let facts = native_facts(&case.raw(), b"localhost:8443");
        let d = engine.decide(&facts);
        assert_eq!(
            d.allowed,
            case.expect == Expect::Allow,
            "{}: {d:?}",
            case.name
        );
        if let Some(app_path) = &case.app_path {
            let forwarded = facts.rewritten_path().map_or_else(
                || String::from_utf8_lossy(&case.raw().path).into_owned(),
                str::to_owned,
            );
            assert_eq!(&forwarded, app_path, "{}", case.name);
        }
    }
}

fn authz_wasm() -> &'static Filter {
    static FILTER: OnceLock<Filter> = OnceLock::new();
    FILTER.get_or_init(|| {
        Host::new()
            .unwrap()
            .load_file(filter_wasm("meshward-authz-filter"))
            .unwrap()
    })
}

/// The compiled authz filter started with `config` on an Istio inbound mTLS
/// connection from the frontend, as both harness tests run it.
fn authz_plugin(config: &serde_json::Value) -> Plugin {
    authz_wasm()
        .start(
            PluginConfig::new()
                .configuration(compiled(config))
                .properties(&Properties::istio_inbound_mtls(FRONTEND, "")),
        )
        .unwrap()
}

/// Every header of `headers` that spells an identity header: exactly the
/// verified peer, once, under the configured name.
fn assert_identity_headers<'a>(what: &str, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    let ours: Vec<(&str, &str)> = headers
        .filter(|(k, _)| spells(k, PEER_HEADER) || spells(k, CLAIMS_HEADER))
        .collect();
    assert_eq!(
        ours,
        [(PEER_HEADER, FRONTEND)],
        "{what}: the application saw {ours:?}"
    );
}

#[test]
fn cases_through_the_filter_in_the_harness() {
    let mut checked = 0;
    for case in cases_file().cases.iter().filter(|c| c.is_text()) {
        let config = serde_json::json!({
            "cedar": {"policies": policy(&case.policy)},
            "peer_from": "identity_filter",
        });
        let mut plugin = authz_plugin(&config);
        // What the identity filter publishes in Envoy's filter state.
        let mut req = Request::new(&case.method, &case.path)
            .set_header(
                ":authority",
                case.authority.as_deref().unwrap_or("localhost:8443"),
            )
            .property(PEER_ID_PROPERTY, FRONTEND);
        for (k, v) in &case.headers {
            req = req.header(&k.to_ascii_lowercase(), v);
        }
        let exchange = plugin.send(req);
        assert!(
            exchange.failure.is_none(),
            "{}: {:?}",
            case.name,
            exchange.failure
        );
        match case.expect {
            Expect::Allow => {
                assert!(
                    exchange.forwarded(),
                    "{}: {}",
                    case.name,
                    exchange.body_text()
                );
                let up = exchange.upstream_request.as_ref().unwrap();
                if let Some(app_path) = &case.app_path {
                    assert_eq!(up.header(":path"), Some(app_path.as_str()), "{}", case.name);
                }
                assert_identity_headers(
                    &case.name,
                    up.headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
                );
            }
            Expect::Deny => {
                assert!(!exchange.forwarded(), "{}", case.name);
                assert_eq!(exchange.status(), 403, "{}", case.name);
            }
        }
        checked += 1;
    }
    assert!(checked >= 35, "only {checked} cases");
}

/// `path_not_normal: refuse`: a path that is not in normal form is denied,
/// not rewritten; one in normal form is decided as usual.
#[test]
fn a_path_not_in_normal_form_can_be_refused() {
    let config = serde_json::json!({
        "cedar": {"policies": policy("demo")},
        "peer_from": "identity_filter",
        "path_not_normal": "refuse",
    });
    let mut plugin = authz_plugin(&config);
    for (path, status, reason) in [
        ("/api/orders", 200, None),
        ("/api/./orders", 403, Some("path_not_normal")),
        ("/api//orders", 403, Some("path_not_normal")),
        ("/api/%6Frders", 403, Some("path_not_normal")),
        ("/api/../admin", 403, Some("path_not_normal")),
    ] {
        let e = plugin.send(Request::get(path).property(PEER_ID_PROPERTY, FRONTEND));
        assert_eq!(e.status(), status, "{path}");
        assert_eq!(
            e.response_header("x-meshward-deny-reason"),
            reason,
            "{path}"
        );
        if status == 200 {
            assert_eq!(e.upstream_header(":path"), Some(path));
        }
    }
}

fn identity_filter() -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-identity-filter"),
        root_id: "meshward_identity".to_owned(),
        plugin_config: serde_json::json!({"allowed_trust_domains": ["example.org"]}).to_string(),
    }
}

fn authz_filter(policies: &str, peer_from: &str) -> FilterSpec {
    FilterSpec {
        wasm: filter_wasm("meshward-authz-filter"),
        root_id: "meshward_authz".to_owned(),
        plugin_config: compiled(serde_json::json!({
            "cedar": {"policies": policies},
            "peer_from": peer_from,
        })),
    }
}

async fn sidecar(filters: Vec<FilterSpec>, edits: BootstrapEdits) -> Sidecar {
    Sidecar::start_with(
        &SidecarSpec {
            filters,
            trust_domain: "example.org".to_owned(),
        },
        &edits,
    )
    .await
    .unwrap()
}

fn tls(sidecar: &Sidecar, peer: &str) -> rustls::ClientConfig {
    let svid = sidecar.ca.issue(peer, &[]).unwrap();
    (*svid.client_config(&sidecar.ca).unwrap()).clone()
}

/// The frontend's requests through the identity and authorization filters
/// in real Envoy, each case over HTTP/1.1 and HTTP/2.
async fn cases_in_envoy(edits: BootstrapEdits) {
    for policy_name in cases_file().policies.keys() {
        let sidecar = sidecar(
            vec![
                identity_filter(),
                authz_filter(policy(policy_name), "identity_filter"),
            ],
            edits,
        )
        .await;
        let tls = tls(&sidecar, FRONTEND);
        for case in cases_file()
            .cases
            .iter()
            .filter(|c| &c.policy == policy_name)
        {
            for version in [Version::H1, Version::H2] {
                if version == Version::H2 && case.h1_only {
                    continue;
                }
                let what = format!("{} ({version:?}, {edits:?})", case.name);
                let reply = send(sidecar.listener_addr(), &tls, version, &case.raw()).await;
                check_reply(&what, case.expect, case.app_path.as_deref(), &reply);
                // The shipped bootstrap has Envoy refuse escaped slashes
                // itself (`path_with_escaped_slashes_action`).
                let escaped = ["%2F", "%2f", "%5C", "%5c"]
                    .iter()
                    .any(|e| case.path.split('?').next().unwrap_or_default().contains(e));
                if escaped && !edits.envoy_path_normalization_off {
                    assert_eq!(reply.status, 400, "{what}: {}", reply.text());
                    assert_eq!(reply.header("x-meshward-deny-reason"), None, "{what}");
                }
            }
        }
        assert_no_vm_failure(&sidecar);
    }
}

fn check_reply(what: &str, expect: Expect, app_path: Option<&str>, reply: &Reply) {
    assert!(
        (200..500).contains(&reply.status),
        "{what}: status {} {}",
        reply.status,
        reply.text()
    );
    match expect {
        Expect::Allow => {
            let app = reply
                .echoed()
                .unwrap_or_else(|| panic!("{what}: {} {}", reply.status, reply.text()));
            if let Some(p) = app_path {
                assert_eq!(app["path"], p, "{what}");
            }
            let headers = app["headers"].as_object().unwrap();
            assert_identity_headers(
                what,
                headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
            );
        }
        Expect::Deny => assert!(
            reply.status >= 400,
            "{what}: allowed, the application saw {}",
            reply.text()
        ),
    }
}

fn assert_no_vm_failure(sidecar: &Sidecar) {
    let logs = sidecar.envoy.logs();
    for sign in ["panicked", "Function: proxy_on", "wasm_fail"] {
        assert!(!logs.contains(sign), "the VM failed: `{sign}` in\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_in_envoy_normalising_paths() {
    cases_in_envoy(BootstrapEdits::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_in_envoy_not_normalising_paths() {
    cases_in_envoy(BootstrapEdits {
        envoy_path_normalization_off: true,
        ..BootstrapEdits::default()
    })
    .await;
}

/// Client copies of the identity headers, in every spelling, decide
/// nothing and never reach the application, whatever the chain looks like.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_decide_nothing() {
    let demo = policy("demo");
    let forged = |r: Raw| {
        r.header(PEER_HEADER, FRONTEND)
            .header("x_meshward_peer_id", FRONTEND)
            .header("X-MESHWARD_PEER-ID", FRONTEND)
    };
    let off = BootstrapEdits {
        envoy_path_normalization_off: true,
        ..BootstrapEdits::default()
    };
    // No identity filter, or the identity filter after the authorization
    // filter: no hand-over, so no identity, whatever the headers say.
    for (what, filters) in [
        (
            "identity filter missing",
            vec![authz_filter(demo, "identity_filter")],
        ),
        (
            "identity filter placed after",
            vec![authz_filter(demo, "identity_filter"), identity_filter()],
        ),
    ] {
        let sidecar = sidecar(filters, off).await;
        let frontend = tls(&sidecar, FRONTEND);
        let other = tls(&sidecar, "spiffe://example.org/ns/web/sa/other");
        for (peer, tls) in [("frontend", &frontend), ("other", &other)] {
            for version in [Version::H1, Version::H2] {
                let reply = send(
                    sidecar.listener_addr(),
                    tls,
                    version,
                    &forged(Raw::new("GET", "/api/orders")),
                )
                .await;
                assert_eq!(
                    reply.status,
                    403,
                    "{what}, {peer}, {version:?}: {}",
                    reply.text()
                );
                assert_eq!(
                    reply.header("x-meshward-deny-reason"),
                    Some("no_peer_identity")
                );
            }
        }
        assert_no_vm_failure(&sidecar);
    }

    // The authorization filter alone, on the connection's identity: the
    // application gets the verified peer and no client copy.
    let sidecar = sidecar(vec![authz_filter(demo, "connection")], off).await;
    let frontend = tls(&sidecar, FRONTEND);
    let other = tls(&sidecar, "spiffe://example.org/ns/web/sa/other");
    for version in [Version::H1, Version::H2] {
        let bad = Raw::new("GET", "/api/orders")
            .header(PEER_HEADER, "spiffe://example.org/ns/admin/sa/root")
            .header(
                "x_meshward_peer_id",
                "spiffe://example.org/ns/admin/sa/root",
            )
            .header("X_Meshward_Jwt_Claims", "e30");
        let reply = send(sidecar.listener_addr(), &frontend, version, &bad).await;
        check_reply(
            "connection mode",
            Expect::Allow,
            Some("/api/orders"),
            &reply,
        );
        let reply = send(
            sidecar.listener_addr(),
            &other,
            version,
            &forged(Raw::new("GET", "/api/orders")),
        )
        .await;
        assert_eq!(reply.status, 403, "{version:?}: {}", reply.text());
        assert_eq!(reply.header("x-meshward-deny-reason"), Some("no_permit"));
    }
    assert_no_vm_failure(&sidecar);
}

/// With `trust_chain_verification: ACCEPT_UNTRUSTED` Envoy completes the
/// handshake with any certificate; a self-made SVID naming the frontend
/// must still be no identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_made_svid_is_no_identity() {
    let edits = BootstrapEdits {
        accept_untrusted_certificates: true,
        ..BootstrapEdits::default()
    };
    let rogue = SpiffeCa::new("example.org").unwrap();
    let forged_svid = rogue.issue(FRONTEND, &[]).unwrap();
    for (what, filters, reason) in [
        (
            "chain",
            vec![
                identity_filter(),
                authz_filter(policy("demo"), "identity_filter"),
            ],
            "peer_certificate_unverified",
        ),
        (
            "authz alone",
            vec![authz_filter(policy("demo"), "connection")],
            "no_peer_identity",
        ),
    ] {
        let sidecar = sidecar(filters, edits).await;
        let genuine = tls(&sidecar, FRONTEND);
        let forged = (*forged_svid.client_config(&sidecar.ca).unwrap()).clone();
        for version in [Version::H1, Version::H2] {
            let req = Raw::new("GET", "/api/orders");
            let reply = send(sidecar.listener_addr(), &genuine, version, &req).await;
            check_reply(what, Expect::Allow, Some("/api/orders"), &reply);
            let reply = send(sidecar.listener_addr(), &forged, version, &req).await;
            assert_eq!(reply.status, 403, "{what}, {version:?}: {}", reply.text());
            assert_eq!(
                reply.header("x-meshward-deny-reason"),
                Some(reason),
                "{what}"
            );
        }
        assert_no_vm_failure(&sidecar);
    }
}

/// A header value that is not text gets a decision, and so does the next
/// request, with the filters failing closed and failing open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_never_stop_the_filters() {
    for fail_open in [false, true] {
        let sidecar = sidecar(
            vec![
                identity_filter(),
                authz_filter(policy("walkaround"), "identity_filter"),
            ],
            BootstrapEdits {
                fail_open,
                ..BootstrapEdits::default()
            },
        )
        .await;
        let tls = tls(&sidecar, FRONTEND);
        for version in [Version::H1, Version::H2] {
            let what = format!("fail_open {fail_open}, {version:?}");
            for _ in 0..2 {
                let odd = Raw::new("GET", "/x")
                    .header("x-a", b"\xff")
                    .header("x-request-id", b"\xfe\xff")
                    .header("authorization", b"Bearer \xff");
                check_reply(
                    &what,
                    Expect::Allow,
                    Some("/x"),
                    &send(sidecar.listener_addr(), &tls, version, &odd).await,
                );
                // Read by a forbid and not text: denied with its reason,
                // never let through.
                let read = Raw::new("GET", "/x").header("x-debug", b"o\xffn");
                let reply = send(sidecar.listener_addr(), &tls, version, &read).await;
                assert_eq!(reply.status, 403, "{what}: {}", reply.text());
                assert_eq!(
                    reply.header("x-meshward-deny-reason"),
                    Some("invalid_request")
                );
                if version == Version::H1 {
                    // The SDK's header-map getter still converts names with
                    // `unwrap`: the filters rely on Envoy's codec refusing
                    // a name that is not a token before any filter runs.
                    let mut bad_name = Raw::new("GET", "/x");
                    bad_name.headers.push((b"x-\xff".to_vec(), b"1".to_vec()));
                    let reply = send(sidecar.listener_addr(), &tls, version, &bad_name).await;
                    assert_eq!(reply.status, 400, "{what}: {}", reply.text());
                    assert_eq!(reply.header("x-meshward-deny-reason"), None);
                }
                let next = Raw::new("GET", "/x");
                check_reply(
                    &what,
                    Expect::Allow,
                    Some("/x"),
                    &send(sidecar.listener_addr(), &tls, version, &next).await,
                );
            }
        }
        assert_no_vm_failure(&sidecar);
    }
}

/// The number of random requests: `MESHWARD_ADVERSARIAL_N`, default 300
/// (`scripts/adversarial-long` runs 10,000).
fn random_count() -> usize {
    std::env::var("MESHWARD_ADVERSARIAL_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn random_request(rng: &mut impl Rng, port: u16) -> Raw {
    fn pick<'a>(rng: &mut impl Rng, from: &[&'a str]) -> &'a str {
        from[rng.gen_range(0..from.len())]
    }
    // Half the requests are ordinary, so that allows are compared too.
    let odd = rng.gen_bool(0.5);
    let method = if odd {
        pick(
            rng,
            &[
                "GET", "HEAD", "POST", "DELETE", "delete", "get", "Get", "OPTIONS", "PROPFIND",
            ],
        )
    } else {
        pick(rng, &["GET", "GET", "HEAD", "OPTIONS"])
    };
    let mut path = String::new();
    for _ in 0..rng.gen_range(1..5) {
        path.push('/');
        path.push_str(if odd {
            pick(
                rng,
                &[
                    "api", "admin", "orders", "x", "..", ".", "", "%2e%2e", "%2E", ".%2e",
                    "%61dmin", "%2F", "%5C", "..;", "%zz", "~", "%7E", "a%20b", "%ff",
                ],
            )
        } else {
            pick(rng, &["api", "orders", "x", "~", "a%20b", "%7E", "."])
        });
    }
    path.push_str(if odd {
        pick(
            rng,
            &[
                "",
                "",
                "?debug=1",
                "?DEBUG=1",
                "?debug=0",
                "?%64ebug=1",
                "?a=%ff",
                "?debug=0&debug=1",
                "?",
            ],
        )
    } else {
        pick(rng, &["", "?debug=0", "?a=1&b=2"])
    });
    let mut raw = Raw::new(method, &path);
    let local = format!("localhost:{port}");
    let authority = if odd {
        pick(
            rng,
            &[
                local.as_str(),
                "admin.example.com",
                "admin.example.com.",
                "ADMIN.example.com:8443",
                "shop.example.com",
            ],
        )
    } else {
        pick(rng, &[local.as_str(), "shop.example.com"])
    };
    raw.authority = Some(authority.as_bytes().to_vec());
    for _ in 0..rng.gen_range(0..4) {
        let name: String = if rng.gen_bool(0.5) {
            pick(
                rng,
                &[
                    "x-debug",
                    "X-Debug",
                    "x_debug",
                    "x-a",
                    "accept",
                    PEER_HEADER,
                    "x_meshward_peer_id",
                    "X-Meshward-Jwt-Claims",
                ],
            )
            .to_owned()
        } else {
            (0..rng.gen_range(1..12))
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789-_"[rng.gen_range(0..38)])
                })
                .collect()
        };
        let value: Vec<u8> = if !odd {
            pick(rng, &["off", "e30", "1", "text/html", FRONTEND])
                .as_bytes()
                .to_vec()
        } else if rng.gen_bool(0.5) {
            pick(
                rng,
                &["on", "off", "ON", "off, on", "on,off", "e30", FRONTEND],
            )
            .as_bytes()
            .to_vec()
        } else {
            // Any byte a header value may hold, with no white space at
            // either end (Envoy trims it).
            let mut v: Vec<u8> = (0..rng.gen_range(1..16))
                .map(|_| {
                    loop {
                        let b: u8 = rng.r#gen();
                        if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 {
                            break b;
                        }
                    }
                })
                .collect();
            while v.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.remove(0);
            }
            while v.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.pop();
            }
            if v.is_empty() {
                v.push(b'v');
            }
            v
        };
        raw.headers.push((name.into_bytes(), value));
    }
    raw
}

/// Random request lines, header names and bytes through real Envoy (its
/// normalisation off, so the filters do all of it): no 5xx, no VM failure,
/// and every decision the filters reach equals the native engine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_decide_as_the_native_engine() {
    let n = random_count();
    let seed: u64 = std::env::var("MESHWARD_ADVERSARIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let policies = policy("walkaround");
    let engine = engine_from_policies(policies).unwrap();
    let sidecar = sidecar(
        vec![identity_filter(), authz_filter(policies, "identity_filter")],
        BootstrapEdits {
            envoy_path_normalization_off: true,
            ..BootstrapEdits::default()
        },
    )
    .await;
    let tls = tls(&sidecar, FRONTEND);
    let port = sidecar.listener_addr().port();
    let (mut allowed, mut denied, mut envoy_refused) = (0, 0, 0);
    for i in 0..n {
        let raw = random_request(&mut rng, port);
        // hyper sends only what HTTP/2 can carry; the rest goes as HTTP/1.1.
        let h2_ok = i % 2 == 1
            && raw.path.iter().all(u8::is_ascii)
            && hyper::Method::from_bytes(&raw.method).is_ok();
        let version = if h2_ok { Version::H2 } else { Version::H1 };
        let reply = send(sidecar.listener_addr(), &tls, version, &raw).await;
        let what = format!("request {i} (seed {seed}, {version:?}): {raw:?}");
        assert!(
            (200..500).contains(&reply.status),
            "{what}: status {} {}",
            reply.status,
            reply.text()
        );
        let reason = reply.header("x-meshward-deny-reason");
        if reply.status != 200 && reason.is_none() {
            // Envoy refused it before any filter ran (a malformed request
            // line or authority): not a decision to compare.
            envoy_refused += 1;
            continue;
        }
        let native = engine.decide(&native_facts(&raw, format!("localhost:{port}").as_bytes()));
        assert_eq!(
            reply.status == 200,
            native.allowed,
            "{what}: native {native:?}, {}",
            reply.text()
        );
        if native.allowed {
            allowed += 1;
        } else {
            assert_eq!(
                reason,
                Some(native.reason.code()),
                "{what}: native {native:?}"
            );
            denied += 1;
        }
    }
    assert_no_vm_failure(&sidecar);
    eprintln!(
        "random run: {n} requests, {allowed} allowed, {denied} denied, {envoy_refused} refused by Envoy"
    );
    assert!(
        allowed > n / 20 && denied > n / 20,
        "{allowed} allowed, {denied} denied of {n}"
    );
    assert!(
        envoy_refused < n / 2,
        "{envoy_refused} of {n} never reached the filters"
    );
}

/// Envoy's filter state as the hand-over relies on it, measured in real
/// Envoy with the conformance filter: a property set at a one-segment path
/// reads back, a property set at a path of two segments does not (Envoy
/// stores `wasm.` + the raw path, NUL included, and reads the first segment
/// of a path as the key). The harness models the same
/// (`meshward_harness` `properties.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_filter_state_round_trips_through_one_segment_only() {
    let sidecar = sidecar(
        vec![FilterSpec {
            wasm: filter_wasm("meshward-conformance-filter"),
            root_id: "conformance".to_owned(),
            plugin_config: "probe".to_owned(),
        }],
        BootstrapEdits::default(),
    )
    .await;
    let tls = tls(&sidecar, FRONTEND);
    let reply = send(
        sidecar.listener_addr(),
        &tls,
        Version::H1,
        &Raw::new("GET", "/op/props"),
    )
    .await;
    let app = reply
        .echoed()
        .unwrap_or_else(|| panic!("{} {}", reply.status, reply.text()));
    assert_eq!(app["headers"]["x-conf-p-set"], "Ok(())", "{app}");
    assert_eq!(app["headers"]["x-conf-p-get-set"], "none", "{app}");
    // The one-segment path the hand-over uses reads back across filters:
    // `cases_in_envoy_*` decide on nothing else.
}
