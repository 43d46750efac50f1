// Case tables read better with owned values and closures in tuples.
#![allow(clippy::cloned_ref_to_slice_refs, clippy::type_complexity)]

use super::*;
use crate::bundle::BundleError;
use crate::jwt::JwtError;
use crate::spiffe_id::{SpiffeId, SpiffeIdError};
use crate::testing::{Ca, DAY, LeafSpec, NOW, TokenKey, WORKLOAD, forged, pem, url_encode};
use crate::x509_svid::SvidError;
use crate::xfcc::{TooFewElements, XfccError};
use jsonwebtoken::Algorithm;
use serde_json::json;

fn config(json: &str) -> AuthnConfig {
    AuthnConfig::from_json(json.as_bytes()).unwrap()
}

fn config_v(v: serde_json::Value) -> AuthnConfig {
    AuthnConfig::from_json(v.to_string().as_bytes()).unwrap()
}

fn mtls(san: &str) -> PeerFacts {
    PeerFacts {
        mtls: Some(vec![1]),
        uri_san: Some(san.as_bytes().to_vec()),
        ..PeerFacts::default()
    }
}

fn with_header(mut f: PeerFacts, name: &str, value: &str) -> PeerFacts {
    f.headers.push((name.to_owned(), value.to_owned()));
    f
}

fn code(r: Result<Identity, Denial>) -> &'static str {
    r.unwrap_err().code()
}

// ---- mTLS, as before ----

#[test]
fn allows_a_peer_in_an_allowed_trust_domain() {
    let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
    let id = authenticate(&c, &mtls("spiffe://example.org/ns/a/sa/b"), NOW).unwrap();
    assert_eq!(id.peer.as_str(), "spiffe://example.org/ns/a/sa/b");
    assert_eq!(id.presented_peer, id.peer);
    assert_eq!(id.jwt_svid, None);
    assert_eq!(id.end_user, None);
    assert!(id.headers_to_set.is_empty());
    assert!(id.headers_to_remove.is_empty());
}

#[test]
fn denies_other_trust_domains() {
    let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
    assert_eq!(
        code(authenticate(&c, &mtls("spiffe://evil.org/ns/a/sa/b"), NOW)),
        "trust_domain_not_allowed"
    );
    // A trust domain that merely starts with an allowed one is another domain.
    assert_eq!(
        code(authenticate(&c, &mtls("spiffe://example.org.evil/x"), NOW)),
        "trust_domain_not_allowed"
    );
}

#[test]
fn allowed_ids_narrow_the_trust_domain() {
    let c = config(
        r#"{"allowed_trust_domains": ["example.org"],
            "allowed_ids": ["spiffe://example.org/ns/web/sa/frontend", {"namespace": "ops"}]}"#,
    );
    assert!(authenticate(&c, &mtls("spiffe://example.org/ns/web/sa/frontend"), NOW).is_ok());
    assert!(authenticate(&c, &mtls("spiffe://example.org/ns/ops/sa/any"), NOW).is_ok());
    let d = authenticate(&c, &mtls("spiffe://example.org/ns/web/sa/other"), NOW).unwrap_err();
    assert_eq!(
        d,
        Denial::IdNotAllowed(SpiffeId::parse("spiffe://example.org/ns/web/sa/other").unwrap())
    );
}

#[test]
fn no_identity_without_mtls() {
    let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
    let san = Some(b"spiffe://example.org/a".to_vec());
    for facts in [
        PeerFacts::default(),
        PeerFacts {
            mtls: Some(vec![0]),
            uri_san: san.clone(),
            ..PeerFacts::default()
        },
        PeerFacts {
            mtls: Some(vec![1, 1]),
            uri_san: san.clone(),
            ..PeerFacts::default()
        },
        PeerFacts {
            mtls: None,
            uri_san: san.clone(),
            ..PeerFacts::default()
        },
        PeerFacts {
            mtls: Some(vec![1]),
            uri_san: None,
            ..PeerFacts::default()
        },
        PeerFacts {
            mtls: Some(vec![1]),
            uri_san: Some(vec![]),
            ..PeerFacts::default()
        },
    ] {
        assert_eq!(
            authenticate(&c, &facts, NOW).unwrap_err(),
            Denial::NoPeerIdentity,
            "{facts:?}"
        );
    }
}

#[test]
fn malformed_san_is_denied() {
    let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
    for san in [
        "https://example.org/a",
        "spiffe://example.org/a/",
        "spiffe://EXAMPLE.org/a",
        "SPIFFE://example.org/a",
    ] {
        assert_eq!(
            code(authenticate(&c, &mtls(san), NOW)),
            "malformed_peer_id",
            "{san}"
        );
    }
}

#[test]
fn mtls_certificate_validation() {
    let c = config(
        r#"{"allowed_trust_domains": ["example.org"],
            "source": {"mtls": {"validate_certificate": true, "clock_skew_secs": 0}}}"#,
    );
    assert!(c.needs_peer_certificate());
    assert!(!config(r#"{"allowed_trust_domains": ["example.org"]}"#).needs_peer_certificate());
    let ca = Ca::new("ca");
    let facts = |spec: &LeafSpec| PeerFacts {
        peer_certificate: Some(pem(&ca.leaf(spec)).into_bytes()),
        ..mtls(WORKLOAD)
    };
    assert_eq!(
        authenticate(&c, &facts(&LeafSpec::default()), NOW)
            .unwrap()
            .peer
            .as_str(),
        WORKLOAD
    );
    // The rules Envoy's TLS stack does not apply.
    let two_uris = LeafSpec {
        uris: vec![WORKLOAD.into(), "spiffe://example.org/b".into()],
        ..LeafSpec::default()
    };
    assert_eq!(
        code(authenticate(&c, &facts(&two_uris), NOW)),
        "svid_multiple_uri_sans"
    );
    let ca_leaf = LeafSpec {
        is_ca: rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        ..LeafSpec::default()
    };
    assert_eq!(code(authenticate(&c, &facts(&ca_leaf), NOW)), "svid_is_ca");
    assert_eq!(
        code(authenticate(
            &c,
            &facts(&LeafSpec::default()),
            NOW + 2 * DAY
        )),
        "svid_expired"
    );
    // The certificate must be the one the URI SAN came from.
    let other = LeafSpec::uri("spiffe://example.org/ns/x/sa/y");
    assert_eq!(
        code(authenticate(&c, &facts(&other), NOW)),
        "peer_certificate_mismatch"
    );
    // No certificate when one is required.
    assert_eq!(
        authenticate(&c, &mtls(WORKLOAD), NOW).unwrap_err(),
        Denial::NoPeerIdentity
    );
    let garbage = PeerFacts {
        peer_certificate: Some(b"junk".to_vec()),
        ..mtls(WORKLOAD)
    };
    assert_eq!(code(authenticate(&c, &garbage, NOW)), "svid_malformed");
}

// ---- XFCC ----

/// The front proxy every XFCC configuration here trusts.
const PROXY: &str = "spiffe://example.org/ns/edge/sa/gw";

/// A request forwarded by [`PROXY`] over mTLS.
fn xfcc(header: &str) -> PeerFacts {
    with_header(mtls(PROXY), XFCC_HEADER, header)
}

#[test]
fn xfcc_uri_with_trusted_hops() {
    let c = config(
        r#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": ["spiffe://example.org/ns/edge/*"]}}}"#,
    );
    assert_eq!(c.request_headers(), [XFCC_HEADER]);
    let h = "URI=spiffe://example.org/ns/forged/sa/x,By=spiffe://example.org/gw;URI=spiffe://example.org/ns/a/sa/b";
    assert_eq!(
        authenticate(&c, &xfcc(h), NOW).unwrap().peer.as_str(),
        "spiffe://example.org/ns/a/sa/b"
    );
    let c2 = config(
        r#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 2, "trusted_proxies": ["spiffe://example.org/ns/edge/*"]}}}"#,
    );
    assert_eq!(
        authenticate(&c2, &xfcc(h), NOW).unwrap().peer.as_str(),
        "spiffe://example.org/ns/forged/sa/x"
    );
    let c3 = config(
        r#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 3, "trusted_proxies": ["spiffe://example.org/ns/edge/*"]}}}"#,
    );
    assert_eq!(
        code(authenticate(&c3, &xfcc(h), NOW)),
        "xfcc_too_few_elements"
    );

    assert_eq!(
        authenticate(&c, &mtls(PROXY), NOW).unwrap_err(),
        Denial::NoPeerIdentity
    );
    assert_eq!(
        code(authenticate(&c, &xfcc("URI=\"x"), NOW)),
        "malformed_xfcc"
    );
    assert_eq!(
        code(authenticate(&c, &xfcc("By=spiffe://example.org/gw"), NOW)),
        "xfcc_no_single_uri"
    );
    assert_eq!(
        code(authenticate(
            &c,
            &xfcc("URI=spiffe://example.org/a;URI=spiffe://example.org/b"),
            NOW
        )),
        "xfcc_no_single_uri"
    );
    assert_eq!(
        code(authenticate(&c, &xfcc("URI=spiffe://example.org/a/"), NOW)),
        "malformed_peer_id"
    );
    assert_eq!(
        code(authenticate(&c, &xfcc("URI=spiffe://evil.org/a"), NOW)),
        "trust_domain_not_allowed"
    );
    // Two XFCC headers: which one a proxy would read is not ours to guess.
    let twice = with_header(
        xfcc("URI=spiffe://example.org/a"),
        "X-Forwarded-Client-Cert",
        "URI=spiffe://example.org/b",
    );
    assert_eq!(code(authenticate(&c, &twice, NOW)), "duplicate_header");
    // The proxy's own SAN is not the peer's identity.
    assert_eq!(
        authenticate(&c, &mtls(PROXY), NOW).unwrap_err(),
        Denial::NoPeerIdentity
    );
}

#[test]
fn xfcc_trusted_proxies() {
    let c = config(
        r#"{"allowed_trust_domains": ["example.org"],
            "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": ["spiffe://example.org/ns/edge/*"]}}}"#,
    );
    let from = |peer: &str| {
        with_header(
            mtls(peer),
            XFCC_HEADER,
            "URI=spiffe://example.org/ns/a/sa/b",
        )
    };
    assert!(authenticate(&c, &from("spiffe://example.org/ns/edge/sa/gw"), NOW).is_ok());
    assert_eq!(
        code(authenticate(
            &c,
            &from("spiffe://example.org/ns/web/sa/x"),
            NOW
        )),
        "untrusted_proxy"
    );
    let plain = with_header(
        PeerFacts::default(),
        XFCC_HEADER,
        "URI=spiffe://example.org/ns/a/sa/b",
    );
    assert_eq!(
        authenticate(&c, &plain, NOW).unwrap_err(),
        Denial::UntrustedProxy(None)
    );
}

fn xfcc_cert_config(verify: bool) -> AuthnConfig {
    config_v(json!({
        "allowed_trust_domains": ["example.org"],
        "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": [PROXY], "require_cert": true, "verify_chain": verify, "clock_skew_secs": 0}},
        "trust_bundles": {"example.org": {"keys": [CA.with(|c| c.bundle_key())]}},
    }))
}

thread_local! {
    static CA: Ca = Ca::new("example.org root");
}

fn cert_element(leaf: &[u8], chain: &[&[u8]]) -> String {
    let mut e = format!("Hash=00;Cert=\"{}\"", url_encode(&pem(leaf)));
    if !chain.is_empty() {
        let all: String = chain.iter().map(|d| pem(d)).collect();
        e.push_str(&format!(";Chain=\"{}\"", url_encode(&all)));
    }
    e
}

#[test]
fn xfcc_certificates() {
    let leaf = CA.with(|ca| ca.leaf(&LeafSpec::default()));
    let plain = xfcc_cert_config(false);
    let verified = xfcc_cert_config(true);
    for c in [&plain, &verified] {
        let id = authenticate(c, &xfcc(&cert_element(&leaf, &[])), NOW).unwrap();
        assert_eq!(id.peer.as_str(), WORKLOAD);
        // With a matching URI too.
        let h = format!("{};URI={WORKLOAD}", cert_element(&leaf, &[]));
        assert!(authenticate(c, &xfcc(&h), NOW).is_ok());
        // A URI that disagrees with the certificate.
        let h = format!(
            "{};URI=spiffe://example.org/other",
            cert_element(&leaf, &[])
        );
        assert_eq!(
            code(authenticate(c, &xfcc(&h), NOW)),
            "peer_certificate_mismatch"
        );
        // require_cert: a URI alone is not enough.
        assert_eq!(
            code(authenticate(c, &xfcc(&format!("URI={WORKLOAD}")), NOW)),
            "svid_malformed"
        );
        // The leaf rules and the clock apply.
        assert_eq!(
            code(authenticate(
                c,
                &xfcc(&cert_element(&leaf, &[])),
                NOW + 2 * DAY
            )),
            "svid_expired"
        );
        let bad = CA.with(|ca| {
            ca.leaf(&LeafSpec {
                key_usages: vec![],
                ..LeafSpec::default()
            })
        });
        assert_eq!(
            code(authenticate(c, &xfcc(&cert_element(&bad, &[])), NOW)),
            "svid_no_key_usage"
        );
        assert_eq!(
            code(authenticate(c, &xfcc("Cert=\"%ZZ\""), NOW)),
            "svid_malformed"
        );
    }
    // Only the verifying configuration notices a certificate from a stranger.
    let stranger = Ca::new("example.org root").leaf(&LeafSpec::default());
    assert!(authenticate(&plain, &xfcc(&cert_element(&stranger, &[])), NOW).is_ok());
    assert_eq!(
        code(authenticate(
            &verified,
            &xfcc(&cert_element(&stranger, &[])),
            NOW
        )),
        "svid_untrusted"
    );
    // Through an intermediate carried in `Chain`.
    let inter = CA.with(|ca| ca.intermediate("inter", |_| {}));
    let leaf2 = inter.leaf(&LeafSpec::default());
    assert_eq!(
        code(authenticate(
            &verified,
            &xfcc(&cert_element(&leaf2, &[])),
            NOW
        )),
        "svid_untrusted"
    );
    let h = cert_element(&leaf2, &[&leaf2, &inter.der]);
    assert_eq!(
        authenticate(&verified, &xfcc(&h), NOW)
            .unwrap()
            .peer
            .as_str(),
        WORKLOAD
    );
    // A trust domain without a bundle.
    let other = config_v(json!({
        "allowed_trust_domains": ["example.org", "other.org"],
        "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": [PROXY], "verify_chain": true}},
        "trust_bundles": {"example.org": {"keys": [CA.with(|c| c.bundle_key())]}},
    }));
    let foreign = CA.with(|ca| ca.leaf(&LeafSpec::uri("spiffe://other.org/a")));
    assert_eq!(
        code(authenticate(
            &other,
            &xfcc(&cert_element(&foreign, &[])),
            NOW
        )),
        "svid_no_trust_bundle"
    );
}

// ---- aliases ----

#[test]
fn trust_domain_aliases() {
    let c = config_v(json!({
        "allowed_trust_domains": ["example.org"],
        "allowed_ids": ["spiffe://example.org/ns/web/*"],
        "trust_domain_aliases": {"old.example": "example.org"},
        "source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": [PROXY], "verify_chain": true}},
        "trust_bundles": {"example.org": {"keys": [CA.with(|c| c.bundle_key())]}},
    }));
    // Issued by the canonical domain's CA under the old name.
    let leaf = CA.with(|ca| ca.leaf(&LeafSpec::uri("spiffe://old.example/ns/web/sa/fe")));
    let id = authenticate(&c, &xfcc(&cert_element(&leaf, &[])), NOW).unwrap();
    assert_eq!(id.peer.as_str(), "spiffe://example.org/ns/web/sa/fe");
    assert_eq!(
        id.presented_peer.as_str(),
        "spiffe://old.example/ns/web/sa/fe"
    );
    // Allow-lists see the canonical name.
    let leaf = CA.with(|ca| ca.leaf(&LeafSpec::uri("spiffe://old.example/ns/db/sa/x")));
    assert_eq!(
        code(authenticate(&c, &xfcc(&cert_element(&leaf, &[])), NOW)),
        "peer_id_not_allowed"
    );
    // An unrelated trust domain is not an alias.
    let leaf = CA.with(|ca| ca.leaf(&LeafSpec::uri("spiffe://older.example/ns/web/sa/fe")));
    assert_eq!(
        code(authenticate(&c, &xfcc(&cert_element(&leaf, &[])), NOW)),
        "svid_no_trust_bundle"
    );

    // Over mTLS, too.
    let m = config(
        r#"{"allowed_trust_domains": ["example.org"], "trust_domain_aliases": {"old.example": "example.org"}}"#,
    );
    assert_eq!(
        authenticate(&m, &mtls("spiffe://old.example/a"), NOW)
            .unwrap()
            .peer
            .as_str(),
        "spiffe://example.org/a"
    );
    let no_alias = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
    assert_eq!(
        code(authenticate(
            &no_alias,
            &mtls("spiffe://old.example/a"),
            NOW
        )),
        "trust_domain_not_allowed"
    );
}

// ---- end-user JWT ----

fn jwt_config(key: &TokenKey, extra: serde_json::Value) -> AuthnConfig {
    let mut provider = json!({
        "issuer": "https://issuer.example",
        "audiences": ["api"],
        "jwks": {"keys": [key.jwk]},
        "clock_skew_secs": 30,
        "claims_to_headers": [{"claim": "sub", "header": "x-user"}, {"claim": "groups", "header": "x-groups"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    config_v(json!({"allowed_trust_domains": ["example.org"], "jwt": {"providers": [provider]}}))
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://issuer.example", "aud": "api", "sub": "alice", "exp": NOW + 600, "groups": ["a", "b"]})
}

fn bearer(token: &str) -> PeerFacts {
    with_header(mtls(WORKLOAD), "authorization", &format!("Bearer {token}"))
}

fn edit(f: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut c = claims();
    f(&mut c);
    c
}

#[test]
fn end_user_jwt_is_verified_and_copied() {
    for key in [
        TokenKey::ec("k1"),
        TokenKey::rsa("k1", Algorithm::RS256),
        TokenKey::rsa("k1", Algorithm::PS384),
        TokenKey::ed("k1"),
    ] {
        let c = jwt_config(&key, json!({}));
        let id = authenticate(&c, &bearer(&key.sign(&claims())), NOW).unwrap();
        let user = id.end_user.unwrap();
        assert_eq!(user.issuer, "https://issuer.example");
        assert_eq!(user.subject.as_deref(), Some("alice"));
        assert_eq!(id.headers_to_remove, ["x-groups", "x-user"]);
        assert_eq!(
            id.headers_to_set,
            [
                ("x-user".to_owned(), "alice".to_owned()),
                ("x-groups".to_owned(), "a,b".to_owned())
            ]
        );
        // Without a kid, every key of the right type is tried.
        assert!(
            authenticate(&c, &bearer(&key.sign_without_kid(&claims())), NOW).is_ok(),
            "{:?}",
            key.alg
        );
    }
}

#[test]
fn end_user_jwt_rules() {
    let key = TokenKey::ec("k1");
    let c = jwt_config(
        &key,
        json!({"required_claims": ["sub"], "max_token_bytes": 1024}),
    );
    let ok = |t: &str| authenticate(&c, &bearer(t), NOW);
    let other = TokenKey::ec("k1");
    let rsa = TokenKey::rsa("k1", Algorithm::RS256);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&edit(|c| c["exp"] = json!(NOW - 30))),
            "jwt_expired",
        ),
        (
            "not yet valid",
            key.sign(&edit(|c| c["nbf"] = json!(NOW + 31))),
            "jwt_not_yet_valid",
        ),
        (
            "no exp",
            key.sign(&edit(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "jwt_missing_claim",
        ),
        (
            "exp a string",
            key.sign(&edit(|c| c["exp"] = json!("soon"))),
            "jwt_missing_claim",
        ),
        (
            "wrong issuer",
            key.sign(&edit(|c| c["iss"] = json!("https://evil.example"))),
            "jwt_wrong_issuer",
        ),
        (
            "no issuer",
            key.sign(&edit(|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
            "jwt_wrong_issuer",
        ),
        (
            "wrong audience",
            key.sign(&edit(|c| c["aud"] = json!("other"))),
            "jwt_wrong_audience",
        ),
        (
            "wrong audiences",
            key.sign(&edit(|c| c["aud"] = json!(["x", "y"]))),
            "jwt_wrong_audience",
        ),
        (
            "no audience",
            key.sign(&edit(|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            "jwt_missing_claim",
        ),
        (
            "required claim",
            key.sign(&edit(|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "jwt_missing_claim",
        ),
        (
            "unknown kid",
            TokenKey::ec("k2").sign(&claims()),
            "jwt_unknown_kid",
        ),
        (
            "other key, same kid",
            other.sign(&claims()),
            "jwt_bad_signature",
        ),
        (
            "RSA token for an EC key",
            rsa.sign(&claims()),
            "jwt_key_mismatch",
        ),
        (
            "too large",
            key.sign(&edit(|c| c["pad"] = json!("x".repeat(1024)))),
            "jwt_too_large",
        ),
        ("not a JWT", "abc".to_owned(), "jwt_malformed"),
        (
            "four parts",
            format!("{}.x", key.sign(&claims())),
            "jwt_malformed",
        ),
        (
            "alg none",
            forged(&json!({"alg": "none", "kid": "k1"}), &claims(), b""),
            "jwt_alg_none",
        ),
        (
            "alg NONE",
            forged(&json!({"alg": "NONE"}), &claims(), b""),
            "jwt_alg_none",
        ),
        (
            "unknown alg",
            forged(&json!({"alg": "ES512", "kid": "k1"}), &claims(), b"x"),
            "jwt_alg_not_allowed",
        ),
        (
            "crit",
            forged(
                &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
                &claims(),
                b"x",
            ),
            "jwt_crit_not_supported",
        ),
        (
            "control chars in a copied claim",
            key.sign(&edit(|c| c["sub"] = json!("a\r\nx-admin: 1"))),
            "jwt_unsafe_claim_value",
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(code(ok(&token)), want, "{name}");
    }
    // The skew works both ways and is exact.
    assert!(ok(&key.sign(&edit(|c| c["exp"] = json!(NOW - 29)))).is_ok());
    assert!(ok(&key.sign(&edit(|c| c["nbf"] = json!(NOW + 30)))).is_ok());
    assert!(ok(&key.sign(&claims())).is_ok());
}

#[test]
fn hmac_with_the_public_key_is_refused() {
    // The classic confusion: sign HS256 with the bytes of the public key.
    let rsa = TokenKey::rsa("k1", Algorithm::RS256);
    let c = jwt_config(&rsa, json!({}));
    let secret = rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = Some("k1".into());
        let t = jsonwebtoken::encode(
            &h,
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            code(authenticate(&c, &bearer(&t), NOW)),
            "jwt_hmac_not_allowed",
            "{alg:?}"
        );
    }
}

#[test]
fn token_location_and_presence() {
    let key = TokenKey::ec("k1");
    let c = jwt_config(
        &key,
        json!({"from_header": {"name": "x-token", "prefix": ""}}),
    );
    assert_eq!(c.request_headers(), ["x-token"]);
    let t = key.sign(&claims());
    assert!(authenticate(&c, &with_header(mtls(WORKLOAD), "X-Token", &t), NOW).is_ok());
    // Required by default.
    assert_eq!(
        authenticate(&c, &mtls(WORKLOAD), NOW).unwrap_err(),
        Denial::MissingJwt
    );
    let twice = with_header(with_header(mtls(WORKLOAD), "x-token", &t), "x-token", &t);
    assert_eq!(code(authenticate(&c, &twice, NOW)), "duplicate_header");

    let bearer_cfg = jwt_config(&key, json!({}));
    // The prefix is matched case-insensitively; a different scheme is no token.
    assert!(
        authenticate(
            &bearer_cfg,
            &with_header(mtls(WORKLOAD), "authorization", &format!("bearer {t}")),
            NOW
        )
        .is_ok()
    );
    let basic = with_header(mtls(WORKLOAD), "authorization", "Basic dXNlcjpwYXNz");
    assert_eq!(
        authenticate(&bearer_cfg, &basic, NOW).unwrap_err(),
        Denial::MissingJwt
    );
    assert_eq!(
        authenticate(
            &bearer_cfg,
            &with_header(mtls(WORKLOAD), "authorization", "Bearer "),
            NOW
        )
        .unwrap_err(),
        Denial::MissingJwt
    );

    let optional = config_v(
        json!({"allowed_trust_domains": ["example.org"], "jwt": {"required": false, "providers": [{
        "issuer": "https://issuer.example", "jwks": {"keys": [key.jwk]}}]}}),
    );
    assert_eq!(
        authenticate(&optional, &mtls(WORKLOAD), NOW)
            .unwrap()
            .end_user,
        None
    );
    // Optional does not mean a bad token passes.
    let expired = key.sign(&edit(|c| c["exp"] = json!(NOW - 100)));
    assert_eq!(
        code(authenticate(&optional, &bearer(&expired), NOW)),
        "jwt_expired"
    );
    // Without `audiences`, `aud` is not checked.
    assert!(
        authenticate(
            &optional,
            &bearer(&key.sign(&edit(|c| c["aud"] = json!("x")))),
            NOW
        )
        .is_ok()
    );
    // The peer is still checked first.
    assert_eq!(
        code(authenticate(
            &optional,
            &with_header(
                mtls("spiffe://evil.org/a"),
                "authorization",
                &format!("Bearer {t}")
            ),
            NOW
        )),
        "trust_domain_not_allowed"
    );
}

#[test]
fn several_issuers() {
    let (k1, k2) = (TokenKey::ec("a"), TokenKey::rsa("b", Algorithm::RS256));
    let c = config_v(
        json!({"allowed_trust_domains": ["example.org"], "jwt": {"providers": [
            {"issuer": "https://one.example", "jwks": {"keys": [k1.jwk]}},
            {"issuer": "https://two.example", "jwks": {"keys": [k2.jwk]}},
        ]}}),
    );
    let t1 = k1.sign(&edit(|c| c["iss"] = json!("https://one.example")));
    let t2 = k2.sign(&edit(|c| c["iss"] = json!("https://two.example")));
    assert_eq!(
        authenticate(&c, &bearer(&t1), NOW)
            .unwrap()
            .end_user
            .unwrap()
            .issuer,
        "https://one.example"
    );
    assert_eq!(
        authenticate(&c, &bearer(&t2), NOW)
            .unwrap()
            .end_user
            .unwrap()
            .issuer,
        "https://two.example"
    );
    // One issuer's key cannot vouch for the other issuer.
    let cross = k1.sign(&edit(|c| c["iss"] = json!("https://two.example")));
    assert_eq!(
        code(authenticate(&c, &bearer(&cross), NOW)),
        "jwt_unknown_kid"
    );
}

// ---- JWT-SVID ----

fn svid_config(key: &TokenKey, extra: serde_json::Value) -> AuthnConfig {
    let mut c = json!({
        "allowed_trust_domains": ["example.org"],
        "trust_domain_aliases": {"old.example": "example.org"},
        "trust_bundles": {"example.org": {"keys": [
            {"use": "jwt-svid", "kid": key.kid(), "kty": key.jwk["kty"], "crv": key.jwk["crv"],
             "x": key.jwk["x"], "y": key.jwk["y"], "n": key.jwk["n"], "e": key.jwk["e"]}
        ]}},
        "jwt_svid": {"audiences": ["spiffe://example.org/api"], "from_header": {"name": "x-jwt-svid", "prefix": ""}},
    });
    let obj = c["trust_bundles"]["example.org"]["keys"][0]
        .as_object_mut()
        .unwrap();
    obj.retain(|_, v| !v.is_null());
    for (k, v) in extra.as_object().unwrap() {
        c["jwt_svid"][k] = v.clone();
    }
    config_v(c)
}

fn svid_claims() -> serde_json::Value {
    json!({"sub": "spiffe://example.org/ns/batch/sa/job", "aud": ["spiffe://example.org/api"], "exp": NOW + 300})
}

fn svid_facts(token: &str) -> PeerFacts {
    with_header(mtls(WORKLOAD), "x-jwt-svid", token)
}

#[test]
fn jwt_svid_is_verified() {
    for key in [
        TokenKey::ec("s1"),
        TokenKey::rsa("s1", Algorithm::RS512),
        TokenKey::rsa("s1", Algorithm::PS256),
    ] {
        let c = svid_config(&key, json!({}));
        let id = authenticate(&c, &svid_facts(&key.sign(&svid_claims())), NOW).unwrap();
        assert_eq!(
            id.jwt_svid.unwrap().id.as_str(),
            "spiffe://example.org/ns/batch/sa/job"
        );
        assert_eq!(id.peer.as_str(), WORKLOAD);
    }
}

#[test]
fn jwt_svid_rules() {
    let key = TokenKey::ec("s1");
    let c = svid_config(
        &key,
        json!({"allowed_ids": ["spiffe://example.org/ns/batch/*"]}),
    );
    let e = |f: fn(&mut serde_json::Value)| {
        let mut c = svid_claims();
        f(&mut c);
        c
    };
    let ed = TokenKey::ed("s1");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "sub not a SPIFFE ID",
            key.sign(&e(|c| c["sub"] = json!("alice"))),
            "jwt_svid_subject_not_spiffe_id",
        ),
        (
            "no sub",
            key.sign(&e(|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "jwt_svid_missing_claim",
        ),
        (
            "no aud",
            key.sign(&e(|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            "jwt_svid_missing_claim",
        ),
        (
            "wrong aud",
            key.sign(&e(|c| c["aud"] = json!("spiffe://example.org/other"))),
            "jwt_svid_wrong_audience",
        ),
        (
            "no exp",
            key.sign(&e(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "jwt_svid_missing_claim",
        ),
        (
            "expired",
            key.sign(&e(|c| c["exp"] = json!(NOW - 61))),
            "jwt_svid_expired",
        ),
        (
            "not yet valid",
            key.sign(&e(|c| c["nbf"] = json!(NOW + 61))),
            "jwt_svid_not_yet_valid",
        ),
        (
            "no kid",
            key.sign_without_kid(&svid_claims()),
            "jwt_svid_missing_kid",
        ),
        (
            "unknown kid",
            TokenKey::ec("s2").sign(&svid_claims()),
            "jwt_svid_unknown_kid",
        ),
        (
            "forged",
            TokenKey::ec("s1").sign(&svid_claims()),
            "jwt_svid_bad_signature",
        ),
        ("EdDSA", ed.sign(&svid_claims()), "jwt_svid_alg_not_allowed"),
        (
            "alg none",
            forged(&json!({"alg": "none", "kid": "s1"}), &svid_claims(), b""),
            "jwt_svid_alg_none",
        ),
        (
            "HS256",
            forged(&json!({"alg": "HS256", "kid": "s1"}), &svid_claims(), b"x"),
            "jwt_svid_hmac_not_allowed",
        ),
        (
            "no bundle",
            key.sign(&e(|c| {
                c["sub"] = json!("spiffe://other.org/ns/batch/sa/job")
            })),
            "jwt_svid_no_trust_bundle",
        ),
        (
            "not in allowed_ids",
            key.sign(&e(|c| c["sub"] = json!("spiffe://example.org/ns/web/sa/x"))),
            "jwt_svid_not_allowed",
        ),
        (
            "too large",
            key.sign(&e(|c| c["pad"] = json!("x".repeat(9000)))),
            "jwt_svid_too_large",
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(
            code(authenticate(&c, &svid_facts(&token), NOW)),
            want,
            "{name}"
        );
    }
    assert_eq!(
        authenticate(&c, &mtls(WORKLOAD), NOW).unwrap_err(),
        Denial::MissingJwtSvid
    );
    // An alias trust domain's JWT-SVID is verified with the canonical bundle
    // and reported under the canonical name.
    let t = key.sign(&e(|c| {
        c["sub"] = json!("spiffe://old.example/ns/batch/sa/job")
    }));
    let id = authenticate(&c, &svid_facts(&t), NOW).unwrap();
    assert_eq!(
        id.jwt_svid.unwrap().id.as_str(),
        "spiffe://example.org/ns/batch/sa/job"
    );
    // A trust domain with a bundle but not allowed.
    let c2 = config_v(json!({
        "allowed_trust_domains": ["example.org"],
        "trust_bundles": {"other.org": {"keys": [{"use": "jwt-svid", "kid": "s1", "kty": "EC", "crv": "P-256", "x": key.jwk["x"], "y": key.jwk["y"]}]}},
        "jwt_svid": {"audiences": ["spiffe://example.org/api"], "from_header": {"name": "x-jwt-svid", "prefix": ""}},
    }));
    let t = key.sign(&e(|c| {
        c["sub"] = json!("spiffe://other.org/ns/batch/sa/job")
    }));
    assert_eq!(
        code(authenticate(&c2, &svid_facts(&t), NOW)),
        "jwt_svid_not_allowed"
    );
}

// ---- configuration ----

#[test]
fn bad_configuration_is_refused() {
    let key = TokenKey::ec("k");
    let jwks = json!({"keys": [key.jwk]});
    let bundle = json!({"keys": [CA.with(|c| c.bundle_key())]});
    let base = |extra: serde_json::Value| {
        let mut c = json!({"allowed_trust_domains": ["example.org"]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string()
    };
    for bad in [
        "".to_owned(),
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"allowed_trust_domains": []}"#.to_owned(),
        r#"{"allowed_trust_domains": ["Example.org"]}"#.to_owned(),
        base(json!({"allowed_ids": []})),
        base(json!({"allowed_ids": ["spiffe://x/"]})),
        base(json!({"alowed_ids": ["spiffe://x/a"]})),
        base(json!({"source": "header"})),
        base(json!({"source": "xfcc"})),
        base(json!({"source": {"xfcc": {}}})),
        base(json!({"source": {"xfcc": {"trusted_hops": 0, "trusted_proxies": [PROXY]}}})),
        base(json!({"source": {"xfcc": {"trusted_hops": -1}}})),
        base(
            json!({"source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": [PROXY], "verify_chain": true}}}),
        ),
        base(json!({"source": {"xfcc": {"trusted_hops": 1, "trusted_proxies": []}}})),
        base(json!({"source": {"xfcc": {"trusted_hops": 1, "trusted_hop": 2}}})),
        base(json!({"source": {"mtls": {"validate": true}}})),
        base(json!({"source": {"mtls": {}, "xfcc": {"trusted_hops": 1}}})),
        base(json!({"trust_domain_aliases": {"old.example": "unlisted.org"}})),
        base(json!({"trust_domain_aliases": {"example.org": "example.org"}})),
        base(
            json!({"trust_bundles": {"example.org": {"keys": [{"use": "x509-svid", "x5c": []}]}}}),
        ),
        base(json!({"jwt": {"providers": []}})),
        base(json!({"jwt": {"providers": [{"issuer": "i", "jwks": {"keys": []}}]}})),
        base(json!({"jwt": {"providers": [{"issuer": "i", "jwks": jwks, "audiences": []}]}})),
        base(json!({"jwt": {"providers": [{"issuer": "i", "jwks": jwks, "max_token_bytes": 0}]}})),
        base(
            json!({"jwt": {"providers": [{"issuer": "i", "jwks": jwks, "from_header": {"name": "Bad Header"}}]}}),
        ),
        base(
            json!({"jwt": {"providers": [{"issuer": "i", "jwks": jwks, "claims_to_headers": [{"claim": "sub", "header": "x-forwarded-client-cert"}]}]}}),
        ),
        base(json!({"jwt": {"providers": [{"issuer": "i", "jwks": jwks, "unknown": 1}]}})),
        base(
            json!({"jwt": {"providers": [{"issuer": "i", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}]}}),
        ),
        base(json!({"jwt_svid": {"audiences": ["a"]}})),
        base(json!({"jwt_svid": {"audiences": [], "trust_bundles": bundle}})),
        base(json!({"trust_bundles": {"example.org": bundle}, "jwt_svid": {"audiences": []}})),
        base(
            json!({"trust_bundles": {"example.org": bundle}, "jwt_svid": {"audiences": ["a"], "allowed_ids": []}}),
        ),
        base(
            json!({"trust_bundles": {"example.org": bundle}, "jwt_svid": {"audiences": ["a"]},
                    "jwt": {"providers": [{"issuer": "i", "jwks": jwks}]}}),
        ),
    ] {
        assert!(
            AuthnConfig::from_json(bad.as_bytes()).is_err(),
            "accepted {bad}"
        );
    }
    // And the shapes that are fine.
    for good in [
        base(json!({"source": "mtls"})),
        base(json!({"source": {"mtls": {}}})),
        base(
            json!({"source": {"xfcc": {"trusted_hops": 2, "trusted_proxies": ["spiffe://example.org/gw"]}}}),
        ),
        base(
            json!({"trust_bundles": {"example.org": bundle}, "jwt_svid": {"audiences": ["a"], "from_header": {"name": "x-svid"}},
                    "jwt": {"providers": [{"issuer": "i", "jwks": jwks}]}}),
        ),
    ] {
        assert!(
            AuthnConfig::from_json(good.as_bytes()).is_ok(),
            "refused {good}"
        );
    }
}

#[test]
fn every_denial_has_a_distinct_code_and_a_message() {
    let id = SpiffeId::parse(WORKLOAD).unwrap();
    let all = [
        Denial::NoPeerIdentity,
        Denial::MalformedPeerId(SpiffeIdError::Empty),
        Denial::InvalidPeerCertificate(SvidError::NoUriSan),
        Denial::PeerCertificateMismatch(id.clone()),
        Denial::MalformedXfcc(XfccError::Empty),
        Denial::XfccTooFewElements(TooFewElements { have: 0, need: 1 }),
        Denial::XfccNoSingleUri(2),
        Denial::UntrustedProxy(None),
        Denial::DuplicateHeader("a".into()),
        Denial::TrustDomainNotAllowed(id.clone()),
        Denial::IdNotAllowed(id.clone()),
        Denial::MissingJwt,
        Denial::InvalidJwt(JwtError::AlgNone),
        Denial::MissingJwtSvid,
        Denial::InvalidJwtSvid(JwtError::AlgNone),
        Denial::JwtSvidNotAllowed(id),
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(Denial::code).collect();
    assert_eq!(codes.len(), all.len());
    for d in &all {
        let m = d.to_string();
        assert!(!m.is_empty() && !m.ends_with('.'), "{m}");
    }
}

#[test]
fn forward_header_names_are_configurable_and_checked() {
    let c = AuthnConfig::from_json(br#"{"allowed_trust_domains": ["example.org"]}"#).unwrap();
    assert_eq!(c.forward.peer_id, "x-meshward-peer-id");
    assert_eq!(c.forward.jwt_claims, "x-meshward-jwt-claims");
    let c = AuthnConfig::from_json(
        br#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": "x-spiffe-id"}}"#,
    )
    .unwrap();
    assert_eq!(c.forward.peer_id, "x-spiffe-id");
    for bad in [
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": ""}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": "X-Upper"}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": ":path"}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": "x-a", "jwt_claims": "x-a"}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer": "x-a"}}"#,
    ] {
        assert!(
            AuthnConfig::from_json(bad.as_bytes()).is_err(),
            "accepted {bad}"
        );
    }
}

// ---- configurations are built only through their checks ----

#[test]
fn xfcc_requires_trusted_proxies() {
    let e = AuthnConfig::from_json(
        br#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 1}}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(e, AuthnConfigError::XfccWithoutTrustedProxies),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("`source.xfcc.trusted_proxies`"),
        "{e}"
    );
    // And the same refusal through serde.
    let e = serde_json::from_str::<AuthnConfig>(
        r#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 1}}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("trusted_proxies"), "{e}");
}

#[test]
fn serde_and_from_json_agree() {
    // What `from_json` refuses, serde refuses too: these were accepted by
    // the derived `Deserialize` that skipped the checks.
    for bad in [
        r#"{"allowed_trust_domains": []}"#,
        r#"{"allowed_trust_domains": ["example.org"], "allowed_ids": []}"#,
        r#"{"allowed_trust_domains": ["example.org"], "trust_domain_aliases": {"old.example": "unlisted.org"}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "source": {"xfcc": {"trusted_hops": 0, "trusted_proxies": ["spiffe://example.org/gw"]}}}"#,
        r#"{"allowed_trust_domains": ["example.org"], "forward": {"peer_id": "X-Upper"}}"#,
    ] {
        assert!(AuthnConfig::from_json(bad.as_bytes()).is_err(), "{bad}");
        assert!(
            serde_json::from_str::<AuthnConfig>(bad).is_err(),
            "serde accepted {bad}"
        );
    }
    // And what it accepts decides the same: the derived `Deserialize` left
    // the aliases out of the trust-bundle set, so `old.example` was refused.
    let json = r#"{"allowed_trust_domains": ["example.org"], "trust_domain_aliases": {"old.example": "example.org"}}"#;
    let checked = AuthnConfig::from_json(json.as_bytes()).unwrap();
    let via_serde: AuthnConfig = serde_json::from_str(json).unwrap();
    for c in [&checked, &via_serde] {
        assert_eq!(
            authenticate(c, &mtls("spiffe://old.example/a"), NOW)
                .unwrap()
                .peer
                .as_str(),
            "spiffe://example.org/a"
        );
    }
    // Nested in another configuration, as the authorization filter reads
    // `ForwardHeaders`, the checks still run.
    assert!(serde_json::from_str::<ForwardHeaders>(r#"{"peer_id": "X-Upper"}"#).is_err());
    assert!(
        serde_json::from_str::<ForwardHeaders>(r#"{"peer_id": "x-a", "jwt_claims": "x-a"}"#)
            .is_err()
    );
    assert_eq!(
        serde_json::from_str::<ForwardHeaders>("{}").unwrap(),
        ForwardHeaders::default()
    );
}

// ---- JWT-SVID `typ` ----

#[test]
fn jwt_svid_typ_is_jwt_or_jose() {
    let key = TokenKey::ec("s1");
    let c = svid_config(&key, json!({}));
    for typ in [None, Some("JWT"), Some("JOSE"), Some("jwt")] {
        let token = key.sign_with_typ(&svid_claims(), typ);
        assert!(
            authenticate(&c, &svid_facts(&token), NOW).is_ok(),
            "typ {typ:?} refused"
        );
    }
    for typ in ["at+jwt", "JWS", "", "application/jwt"] {
        let token = key.sign_with_typ(&svid_claims(), Some(typ));
        let d = authenticate(&c, &svid_facts(&token), NOW).unwrap_err();
        assert_eq!(
            d,
            Denial::InvalidJwtSvid(JwtError::TypeNotAllowed(typ.to_owned()))
        );
        assert_eq!(d.code(), "jwt_svid_type_not_allowed");
    }
    // Not a string at all.
    let token = forged(
        &json!({"alg": "ES256", "kid": "s1", "typ": 7}),
        &svid_claims(),
        b"sig",
    );
    assert_eq!(
        code(authenticate(&c, &svid_facts(&token), NOW)),
        "jwt_svid_type_not_allowed"
    );
    // End-user tokens are not JWT-SVIDs: an access token's `at+jwt` passes.
    let ek = TokenKey::ec("k1");
    let jc = jwt_config(&ek, json!({}));
    let token = ek.sign_with_typ(&claims(), Some("at+jwt"));
    assert!(authenticate(&jc, &bearer(&token), NOW).is_ok());
}

// ---- keys meshward cannot use ----

/// Keys no configuration here can use, one of each kind.
fn unusable_keys(use_: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"use": use_, "kid": "p521", "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"use": use_, "kid": "future", "kty": "PQC", "pub": "AA"}),
        json!({"use": use_, "kid": "alg", "kty": "EC", "crv": "P-256", "alg": "ES999",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
        json!({"use": "something-new", "kid": "use", "kty": "EC", "crv": "P-256",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
    ]
}

#[test]
fn unusable_bundle_keys_are_skipped_and_reported() {
    let key = TokenKey::ec("s1");
    let mut good = key.jwk.clone();
    good["use"] = json!("jwt-svid");
    let mut keys = unusable_keys("jwt-svid");
    keys.insert(1, good);
    let c = config_v(json!({
        "allowed_trust_domains": ["example.org"],
        "trust_bundles": {"example.org": {"keys": keys}},
        "jwt_svid": {"audiences": ["spiffe://example.org/api"], "from_header": {"name": "x-jwt-svid", "prefix": ""}},
    }));
    let skipped: Vec<(&str, usize, Option<&str>)> = c
        .warnings()
        .iter()
        .map(|w| (w.key_set.as_str(), w.key.index, w.key.kid.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("trust_bundles.example.org", 0, Some("p521")),
            ("trust_bundles.example.org", 2, Some("future")),
            ("trust_bundles.example.org", 3, Some("alg")),
            ("trust_bundles.example.org", 4, Some("use")),
        ]
    );
    for w in c.warnings() {
        let m = w.to_string();
        assert!(
            m.starts_with("`trust_bundles.example.org`: skipped key "),
            "{m}"
        );
    }
    assert!(c.warnings()[0].key.reason.contains("P-256 and P-384"));
    // The usable key still verifies.
    let id = authenticate(&c, &svid_facts(&key.sign(&svid_claims())), NOW).unwrap();
    assert!(id.jwt_svid.is_some());

    // Nothing usable: refused, naming the set and every key's reason.
    let e = AuthnConfig::from_json(
        json!({
            "allowed_trust_domains": ["example.org"],
            "trust_bundles": {"example.org": {"keys": unusable_keys("jwt-svid")}},
            "jwt_svid": {"audiences": ["a"]},
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(&e, AuthnConfigError::KeySet(at, BundleError::NoUsableKey(k)) if at == "trust_bundles.example.org" && k.len() == 4),
        "{e:?}"
    );
    assert!(m.contains("`p521`") && m.contains("`future`"), "{m}");
}

#[test]
fn unusable_jwks_keys_are_skipped_and_reported() {
    let key = TokenKey::ec("k1");
    let mut keys = unusable_keys("sig");
    keys.push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
    keys.push(key.jwk.clone());
    let provider = |keys: Vec<serde_json::Value>| {
        json!({
            "allowed_trust_domains": ["example.org"],
            "jwt": {"providers": [{"issuer": "https://issuer.example", "jwks": {"keys": keys}}]},
        })
    };
    let c = config_v(provider(keys.clone()));
    let kids: Vec<_> = c
        .warnings()
        .iter()
        .map(|w| (w.key_set.as_str(), w.key.kid.as_deref().unwrap()))
        .collect();
    assert_eq!(
        kids,
        [
            ("jwt.providers[0]", "p521"),
            ("jwt.providers[0]", "future"),
            ("jwt.providers[0]", "alg"),
            ("jwt.providers[0]", "use"),
            ("jwt.providers[0]", "hmac"),
        ]
    );
    let token = key.sign(&json!({"iss": "https://issuer.example", "exp": NOW + 60}));
    assert!(
        authenticate(&c, &bearer(&token), NOW)
            .unwrap()
            .end_user
            .is_some()
    );

    keys.pop();
    let e = AuthnConfig::from_json(provider(keys).to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(&e, AuthnConfigError::KeySet(at, BundleError::NoUsableKey(k)) if at == "jwt.providers[0]" && k.len() == 5),
        "{e:?}"
    );
}
