//! `meshward_mtls_filter.wasm` (the authorization module built without the
//! identity crate's `verify` feature) against the full module, in the
//! wasmtime harness: the same decisions wherever no certificate or token
//! has to be checked inside the filter, a refusal of every configuration
//! that asks for such a check, and a denial of any certificate it would
//! have had to check.

use meshward_filter_modules::{CHAIN, MTLS_CHAIN, Module};
use meshward_harness::{Error, Filter, Host, PluginConfig, Properties, Request};
use std::sync::OnceLock;

const TD: &str = "example.org";

fn load(module: &Module) -> &'static Filter {
    static FULL: OnceLock<Filter> = OnceLock::new();
    static MTLS: OnceLock<Filter> = OnceLock::new();
    let cell = if module.package == MTLS_CHAIN.package {
        &MTLS
    } else {
        &FULL
    };
    cell.get_or_init(|| Host::new().unwrap().load(module.bytes).unwrap())
}

/// The chain's configuration: `identity` as given, `authz` the mesh-style
/// policies below compiled as `meshward compile` compiles them.
fn config(identity: serde_json::Value) -> String {
    let authz: serde_json::Value = serde_json::from_str(&crate::compiled(serde_json::json!({
        "cedar": {"policies": POLICIES},
        "decision_log": "all",
    })))
    .unwrap();
    serde_json::json!({"identity": identity, "authz": authz}).to_string()
}

const POLICIES: &str = r#"
@id("read-api") permit(principal == Mesh::Workload::"spiffe://example.org/ns/web/sa/frontend", action == Mesh::Action::"GET", resource) when { context.path like "/api/*" };
@id("writer") permit(principal == Mesh::Workload::"spiffe://example.org/ns/ops/sa/admin", action, resource);
@id("no-debug") forbid(principal, action, resource) when { context.headers.hasTag("x-debug") };
"#;

/// Status and reason of each probe, for one module and one peer.
fn outcomes(module: &Module, identity: &serde_json::Value, peer: &str) -> Vec<(u16, String)> {
    let mut plugin = load(module)
        .start(
            PluginConfig::new()
                .root_id(module.root_id)
                .configuration(config(identity.clone()))
                .properties(&Properties::istio_inbound_mtls(peer, "")),
        )
        .unwrap();
    let probes = [
        Request::get("/api/items"),
        Request::get("/admin"),
        Request::get("/api/items").header("x-debug", "1"),
        Request::post("/api/items"),
        Request::get("/api/../admin"),
    ];
    probes
        .into_iter()
        .map(|r| {
            let resp = plugin.send(r);
            let reason = resp
                .response_header("x-meshward-deny-reason")
                .unwrap_or("")
                .to_owned();
            let status = if resp.forwarded() { 200 } else { resp.status() };
            (status, reason)
        })
        .collect()
}

#[test]
fn the_mtls_module_decides_as_the_full_module_on_mtls_peers() {
    let identity = serde_json::json!({"allowed_trust_domains": [TD]});
    let mut allowed = 0;
    for peer in [
        "spiffe://example.org/ns/web/sa/frontend",
        "spiffe://example.org/ns/ops/sa/admin",
        "spiffe://example.org/ns/web/sa/other",
        "spiffe://evil.org/ns/web/sa/frontend",
        "",
    ] {
        let full = outcomes(&CHAIN, &identity, peer);
        let mtls = outcomes(&MTLS_CHAIN, &identity, peer);
        assert_eq!(mtls, full, "peer {peer:?}");
        allowed += full.iter().filter(|(s, _)| *s == 200).count();
    }
    // Both allow and deny are exercised, so equality says something.
    assert!(allowed >= 3, "only {allowed} allowed");
}

/// A P-256 public key as a JWKS, so the full module accepts the `jwt` part.
fn jwks() -> serde_json::Value {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let point = key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]})
}

fn starts(module: &Module, identity: &serde_json::Value) -> Result<(), Error> {
    load(module)
        .start(
            PluginConfig::new()
                .root_id(module.root_id)
                .configuration(config(identity.clone())),
        )
        .map(drop)
}

#[test]
fn the_mtls_module_refuses_every_check_it_leaves_out() {
    let base = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"allowed_trust_domains": [TD]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let xfcc = |flag: &str| {
        serde_json::json!({"source": {"xfcc": {
            "trusted_hops": 1,
            "trusted_proxies": ["spiffe://example.org/ns/edge/*"],
            flag: true,
        }}})
    };
    // Accepted by the full module, refused by the mTLS-only one.
    for extra in [
        serde_json::json!({"jwt": {"providers": [{"issuer": "https://idp.example.org", "jwks": jwks()}]}}),
        serde_json::json!({"source": {"mtls": {"validate_certificate": true}}}),
        xfcc("require_cert"),
    ] {
        let identity = base(extra);
        starts(&CHAIN, &identity).unwrap_or_else(|e| panic!("full module: {e}: {identity}"));
        assert!(
            matches!(
                starts(&MTLS_CHAIN, &identity),
                Err(Error::ConfigureRejected)
            ),
            "mTLS-only module accepted {identity}"
        );
    }
    // Checks that also need trust bundles: refused by the mTLS-only module
    // before anything else is looked at.
    for extra in [
        xfcc("verify_chain"),
        serde_json::json!({"jwt_svid": {"audiences": ["spiffe://example.org/ns/web/sa/api"]}}),
    ] {
        let identity = base(extra);
        assert!(
            matches!(
                starts(&MTLS_CHAIN, &identity),
                Err(Error::ConfigureRejected)
            ),
            "mTLS-only module accepted {identity}"
        );
    }
}

#[test]
fn the_mtls_module_denies_a_certificate_it_cannot_check() {
    let ca = meshward_certs::SpiffeCa::new(TD).unwrap();
    let client = ca
        .issue("spiffe://example.org/ns/web/sa/frontend", &[])
        .unwrap();
    let cert: String = client
        .cert_pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let xfcc = format!("Hash=00;Cert=\"{cert}\";URI=spiffe://example.org/ns/web/sa/frontend");
    let identity = serde_json::json!({
        "allowed_trust_domains": [TD],
        "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": ["spiffe://example.org/ns/edge/*"]}},
    });
    let send = |module: &Module, with_cert: bool| {
        let mut plugin = load(module)
            .start(
                PluginConfig::new()
                    .root_id(module.root_id)
                    .configuration(config(identity.clone()))
                    .properties(&Properties::istio_inbound_mtls(
                        "spiffe://example.org/ns/edge/sa/gateway",
                        "",
                    )),
            )
            .unwrap();
        let value = if with_cert {
            xfcc.clone()
        } else {
            "Hash=00;URI=spiffe://example.org/ns/web/sa/frontend".to_owned()
        };
        let resp =
            plugin.send(Request::get("/api/items").header("x-forwarded-client-cert", &value));
        (
            resp.forwarded(),
            resp.response_header("x-meshward-deny-reason")
                .unwrap_or("")
                .to_owned(),
        )
    };
    // Without a certificate in the element both modules trust the hop's URI.
    assert_eq!(send(&CHAIN, false), (true, String::new()));
    assert_eq!(send(&MTLS_CHAIN, false), (true, String::new()));
    // With one, the full module checks it and the mTLS-only module refuses
    // to take it unchecked.
    assert_eq!(send(&CHAIN, true), (true, String::new()));
    assert_eq!(
        send(&MTLS_CHAIN, true),
        (false, "svid_checks_not_built_in".to_owned())
    );
}
