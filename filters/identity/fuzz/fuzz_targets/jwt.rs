//! JWT handling through the public entry point: an arbitrary bearer token
//! and JWT-SVID against a fixed configuration never panic and never pass.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshward_identity::fuzzing::peek_jwt;
use meshward_identity::{AuthnConfig, PeerFacts, authenticate};

// A P-256 key from RFC 7515's ES256 example (public part only): no token the
// fuzzer can make is signed by it.
const CONFIG: &str = r#"{
  "allowed_trust_domains": ["example.org"],
  "trust_bundles": {"example.org": {"keys": [{"use": "jwt-svid", "kid": "k", "kty": "EC", "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}},
  "jwt_svid": {"audiences": ["a"], "from_header": {"name": "x-svid", "prefix": ""}, "required": false},
  "jwt": {"providers": [{"issuer": "i", "jwks": {"keys": [{"kty": "EC", "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}]}
}"#;

fuzz_target!(|data: &[u8]| {
    static CFG: OnceLock<AuthnConfig> = OnceLock::new();
    let cfg = CFG.get_or_init(|| AuthnConfig::from_json(CONFIG.as_bytes()).expect("fixed config"));
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = peek_jwt(token, 8192);
    let mid = (0..=token.len() / 2)
        .rev()
        .find(|i| token.is_char_boundary(*i))
        .unwrap_or(0);
    let (a, b) = token.split_at(mid);
    let facts = PeerFacts {
        mtls: Some(vec![1]),
        uri_san: Some(b"spiffe://example.org/w".to_vec()),
        peer_certificate: None,
        headers: vec![
            ("authorization".into(), format!("Bearer {a}")),
            ("x-svid".into(), b.to_owned()),
        ],
    };
    if let Ok(id) = authenticate(cfg, &facts, 1_800_000_000) {
        assert!(
            id.end_user.is_none() && id.jwt_svid.is_none(),
            "an unsigned token passed"
        );
    }
});
