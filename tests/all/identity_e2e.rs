//! The identity filter inside a real Envoy, deciding real mTLS traffic.

use meshward_envoy::{FilterSpec, Request, Sidecar, SidecarSpec};
use meshward_tests::filter_wasm;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

fn spec(plugin_config: &str) -> SidecarSpec {
    SidecarSpec {
        filters: vec![FilterSpec {
            wasm: filter_wasm("meshward-identity-filter"),
            root_id: "meshward_identity".to_owned(),
            plugin_config: plugin_config.to_owned(),
        }],
        trust_domain: "example.org".to_owned(),
    }
}

const CONFIG: &str = r#"{
    "allowed_trust_domains": ["example.org"],
    "allowed_ids": ["spiffe://example.org/ns/web/sa/frontend"]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decides_real_mtls_traffic() {
    let sidecar = Sidecar::start(&spec(CONFIG)).await.unwrap();
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    let intruder = sidecar
        .ca
        .issue("spiffe://example.org/ns/web/sa/intruder", &[])
        .unwrap();
    let foreign = sidecar
        .ca
        .issue("spiffe://other.org/ns/web/sa/frontend", &[])
        .unwrap();

    // The allowed workload reaches the application, which sees the verified
    // ID and not the one the client tried to smuggle in.
    let req =
        Request::get("/api/orders").header("x-meshward-peer-id", "spiffe://example.org/admin");
    let resp = sidecar.request(Some(&frontend), &req).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echoed: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echoed["path"], "/api/orders");
    assert_eq!(echoed["headers"]["x-meshward-peer-id"], FRONTEND);

    // Each denial is a local 403 from the filter naming its reason; the
    // application never sees the request.
    for (svid, reason) in [
        (Some(&intruder), "peer_id_not_allowed"),
        (Some(&foreign), "trust_domain_not_allowed"),
        (None, "no_peer_identity"),
    ] {
        let resp = sidecar
            .request(svid, &Request::get("/api/orders"))
            .await
            .unwrap();
        assert_eq!(resp.status, 403, "{reason}: {}", resp.text());
        assert_eq!(resp.header("x-meshward-deny-reason"), Some(reason));
        assert!(resp.text().contains(reason), "{}", resp.text());
    }

    let stat = |name: &'static str| {
        let envoy = &sidecar.envoy;
        async move { envoy.stat(name).await.unwrap() }
    };
    assert_eq!(stat("wasmcustom.meshward_identity_allowed").await, Some(1));
    assert_eq!(stat("wasmcustom.meshward_identity_denied").await, Some(3));

    let logs = sidecar.envoy.logs();
    let decisions: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| {
            l.split_once("meshward-identity decision ")
                .map(|(_, json)| json)
        })
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(decisions.len(), 4, "decision log lines in:\n{logs}");
    assert_eq!(decisions[0]["decision"], "allow");
    assert_eq!(decisions[0]["peer"], FRONTEND);
    assert_eq!(decisions[1]["decision"], "deny");
    assert_eq!(decisions[1]["reason"], "peer_id_not_allowed");
    assert_eq!(decisions[3]["reason"], "no_peer_identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_refused() {
    // A misspelt field. The filter refuses the configuration in
    // on_configure; with `fail_open: false` Envoy then refuses the plugin,
    // and a static listener that cannot be built stops Envoy from serving at
    // all: no traffic passes unchecked. (That the filter also denies every
    // request if a host creates streams anyway is tested in the harness.)
    let bad = r#"{"allowed_trust_domain": ["example.org"]}"#;
    let err = match Sidecar::start(&spec(bad)).await {
        Ok(_) => panic!("Envoy started with a filter whose configuration is invalid"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("exited during start-up"), "{err}");
    assert!(err.contains("configuration refused"), "{err}");
    assert!(
        err.contains("unknown field `allowed_trust_domain`"),
        "{err}"
    );
    assert!(err.contains("Unable to create Wasm plugin"), "{err}");
}

/// An end-user token issuer: a P-256 key and its public JWK.
struct Issuer {
    key: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
}

impl Issuer {
    fn new(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)
            .unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = kid.into();
        Self { key, jwk }
    }

    fn sign(&self, claims: serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = self.jwk["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_end_user_jwts() {
    let issuer = Issuer::new("k1");
    let config = serde_json::json!({
        "allowed_trust_domains": ["example.org"],
        "jwt": {"providers": [{
            "issuer": "https://idp.example.org",
            "audiences": ["orders"],
            "jwks": {"keys": [issuer.jwk]},
            "claims_to_headers": [{"claim": "sub", "header": "x-user"}],
        }]},
    });
    let sidecar = Sidecar::start(&spec(&config.to_string())).await.unwrap();
    let frontend = sidecar.ca.issue(FRONTEND, &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp: u64, aud: &str| serde_json::json!({"iss": "https://idp.example.org", "sub": "alice", "aud": aud, "exp": exp, "groups": ["admins"]});
    let bearer = |token: String| {
        Request::get("/api/orders").header("authorization", &format!("Bearer {token}"))
    };

    // A valid token: the application sees the subject and the verified
    // claims, never the values the client tried to set itself.
    let req = bearer(issuer.sign(claims(now + 600, "orders")))
        .header("x-user", "mallory")
        .header("x-meshward-jwt-claims", "e30");
    let resp = sidecar.request(Some(&frontend), &req).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let app: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(app["headers"]["x-user"], "alice");
    let encoded = app["headers"]["x-meshward-jwt-claims"].as_str().unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .unwrap();
    let forwarded: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(forwarded["groups"], serde_json::json!(["admins"]));

    let forger = Issuer::new("k1");
    for (req, reason) in [
        (
            bearer(issuer.sign(claims(now - 3600, "orders"))),
            "jwt_expired",
        ),
        (
            bearer(issuer.sign(claims(now + 600, "billing"))),
            "jwt_wrong_audience",
        ),
        (
            bearer(forger.sign(claims(now + 600, "orders"))),
            "jwt_bad_signature",
        ),
        (bearer("not.a.jwt".to_owned()), "jwt_malformed"),
        (Request::get("/api/orders"), "jwt_missing"),
    ] {
        let resp = sidecar.request(Some(&frontend), &req).await.unwrap();
        assert_eq!(resp.status, 401, "{reason}: {}", resp.text());
        assert_eq!(resp.header("x-meshward-deny-reason"), Some(reason));
    }
}
