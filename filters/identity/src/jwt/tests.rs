// Case tables read better with owned values and closures in tuples.
#![allow(clippy::cloned_ref_to_slice_refs, clippy::type_complexity)]

use super::*;
use crate::testing::{NOW, TokenKey, forged};
use proptest::prelude::*;
use serde_json::json;

fn rules(now: i64) -> ClaimRules<'static> {
    ClaimRules {
        issuer: None,
        audiences: None,
        required: &[],
        now,
        skew_secs: 0,
    }
}

#[test]
fn peek_reads_without_verifying() {
    let t = forged(
        &json!({"alg": "ES256", "kid": "k"}),
        &json!({"iss": "i", "sub": "s"}),
        b"sig",
    );
    let p = peek(&t, 8192).unwrap();
    assert_eq!(
        (p.kid(), p.issuer(), p.subject()),
        (Some("k"), Some("i"), Some("s"))
    );
    assert_eq!(
        peek(&t, t.len() - 1).unwrap_err(),
        JwtError::TooLarge {
            len: t.len(),
            max: t.len() - 1
        }
    );
    for bad in [
        String::new(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!.!.!".into(),
        forged(&json!("alg"), &json!({}), b""),
        forged(&json!({"alg": "ES256"}), &json!([1]), b""),
        forged(&json!({"typ": "JWT"}), &json!({}), b""),
        forged(&json!({"alg": "ES256", "kid": 5}), &json!({}), b""),
    ] {
        assert_eq!(
            peek(&bad, 8192).unwrap_err().code(),
            "jwt_malformed",
            "{bad}"
        );
    }
}

#[test]
fn numeric_dates() {
    let key = TokenKey::ec("k");
    let keys =
        crate::bundle::Jwks::from_json(json!({"keys": [key.jwk]}).to_string().as_bytes()).unwrap();
    let check = |claims: serde_json::Value, now: i64| {
        let t = key.sign(&claims);
        verify_end_user(&t, &peek(&t, 8192).unwrap(), keys.keys(), &rules(now)).map(|_| ())
    };
    // `exp` is the first instant the token is no longer valid.
    assert_eq!(
        check(json!({"exp": NOW}), NOW),
        Err(JwtError::Expired { exp: NOW })
    );
    assert!(check(json!({"exp": NOW + 1}), NOW).is_ok());
    // Fractions are floored.
    assert_eq!(
        check(json!({"exp": NOW as f64 + 0.9}), NOW),
        Err(JwtError::Expired { exp: NOW })
    );
    assert!(check(json!({"exp": NOW + 1, "nbf": NOW}), NOW).is_ok());
    assert_eq!(
        check(json!({"exp": NOW + 9, "nbf": NOW + 1}), NOW),
        Err(JwtError::NotYetValid { nbf: NOW + 1 })
    );
    assert_eq!(
        check(json!({"exp": NOW + 9, "nbf": "x"}), NOW)
            .unwrap_err()
            .code(),
        "jwt_missing_claim"
    );
    assert_eq!(
        check(json!({"exp": 1e300}), NOW).unwrap_err().code(),
        "jwt_missing_claim"
    );
    assert!(check(json!({"exp": i64::MAX}), i64::MAX - 1).is_ok());
}

#[test]
fn claims_render_for_headers() {
    let c = json!({"s": "x", "n": 5, "b": true, "a": ["p", 1], "o": {"k": "v"}, "z": null, "bad": "a\nb"});
    let c = c.as_object().unwrap();
    let r = |n: &str| claim_header_value(c, n);
    assert_eq!(r("s"), Ok(Some("x".into())));
    assert_eq!(r("n"), Ok(Some("5".into())));
    assert_eq!(r("b"), Ok(Some("true".into())));
    assert_eq!(r("a"), Ok(Some("p,1".into())));
    assert_eq!(r("o"), Ok(Some(r#"{"k":"v"}"#.into())));
    assert_eq!(r("z"), Ok(None));
    assert_eq!(r("missing"), Ok(None));
    assert_eq!(r("bad"), Err(JwtError::UnsafeClaimValue("bad".into())));
}

#[test]
fn every_reason_has_two_distinct_codes() {
    let all = [
        JwtError::TooLarge { len: 1, max: 0 },
        JwtError::Malformed(String::new()),
        JwtError::AlgNone,
        JwtError::Hmac(String::new()),
        JwtError::AlgorithmNotAllowed(String::new()),
        JwtError::Crit,
        JwtError::MissingKid,
        JwtError::UnknownKid(String::new()),
        JwtError::KeyMismatch(String::new()),
        JwtError::BadSignature,
        JwtError::Expired { exp: 0 },
        JwtError::NotYetValid { nbf: 0 },
        JwtError::WrongIssuer(String::new()),
        JwtError::WrongAudience,
        JwtError::MissingClaim(String::new()),
        JwtError::SubjectNotSpiffeId(crate::SpiffeIdError::Empty),
        JwtError::NoTrustBundle(String::new()),
        JwtError::UnsafeClaimValue(String::new()),
    ];
    let mut codes: Vec<_> = all.iter().flat_map(|e| [e.code(), e.svid_code()]).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len() * 2);
}

proptest! {
    #[test]
    fn peek_never_panics(s in "\\PC{0,200}") {
        let _ = peek(&s, 8192);
    }

    #[test]
    fn peek_never_panics_on_jwt_shapes(h in "[A-Za-z0-9_-]{0,40}", p in "[A-Za-z0-9_-]{0,40}", sig in "[A-Za-z0-9_-]{0,10}") {
        let _ = peek(&format!("{h}.{p}.{sig}"), 8192);
    }
}
