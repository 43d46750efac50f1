// Case tables read better with owned values and closures in tuples.
#![allow(clippy::cloned_ref_to_slice_refs, clippy::type_complexity)]

use super::*;
use crate::testing::{Ca, TokenKey};
use serde_json::json;

fn bundle(v: serde_json::Value) -> Result<TrustBundle, BundleError> {
    TrustBundle::from_json(v.to_string().as_bytes())
}

fn svid_key(k: &TokenKey) -> serde_json::Value {
    let mut j = k.jwk.clone();
    j["use"] = json!("jwt-svid");
    j
}

#[test]
fn reads_a_spiffe_bundle() {
    let ca = Ca::new("root");
    let (k1, k2) = (TokenKey::ec("a"), TokenKey::rsa("b", Algorithm::RS256));
    let b = bundle(json!({
        "keys": [ca.bundle_key(), svid_key(&k1), svid_key(&k2), {"use": "something-new", "kty": "EC"}],
        "spiffe_sequence": 7,
        "spiffe_refresh_hint": 300,
    }))
    .unwrap();
    assert_eq!(b.x509_authorities(), [ca.der.clone()]);
    assert_eq!(b.jwt_authorities().len(), 2);
    assert!(b.jwt_authority("a").unwrap().admits(Algorithm::ES256));
    assert!(!b.jwt_authority("a").unwrap().admits(Algorithm::HS256));
    assert!(!b.jwt_authority("b").unwrap().admits(Algorithm::ES256));
    assert!(b.jwt_authority("c").is_none());
    assert_eq!(b.sequence(), Some(7));
    assert_eq!(b.refresh_hint(), Some(300));
    // The key of an unknown `use` is skipped, and said so.
    assert_eq!(b.skipped().len(), 1);
    assert_eq!(b.skipped()[0].index, 3);
    // An empty bundle is a bundle (a trust domain may have only one kind).
    assert!(bundle(json!({"keys": []})).is_ok());
}

#[test]
fn refuses_bad_bundles() {
    let ca = Ca::new("root");
    let k = TokenKey::ec("a");
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut no_kid = svid_key(&k);
    no_kid.as_object_mut().unwrap().remove("kid");
    // One reason per unusable key: the set is refused when none is left.
    let skipped = |e: &BundleError, needle: &str| matches!(e, BundleError::NoUsableKey(k) if k.len() == 1 && k[0].index == 0 && k[0].reason.contains(needle));
    let cases: Vec<(serde_json::Value, Box<dyn Fn(&BundleError) -> bool>)> = vec![
        (json!([]), Box::new(|e| matches!(e, BundleError::Json(_)))),
        (json!({}), Box::new(|e| matches!(e, BundleError::Json(_)))),
        (
            json!({"keys": [{"use": "x509-svid"}]}),
            Box::new(move |e| skipped(e, "exactly one `x5c`")),
        ),
        (
            json!({"keys": [{"use": "x509-svid", "x5c": [b64(&ca.der), b64(&ca.der)]}]}),
            Box::new(move |e| skipped(e, "exactly one `x5c`")),
        ),
        (
            json!({"keys": [{"use": "x509-svid", "x5c": ["!!"]}]}),
            Box::new(move |e| skipped(e, "base64")),
        ),
        (
            json!({"keys": [{"use": "x509-svid", "x5c": [b64(b"nope")]}]}),
            Box::new(move |e| skipped(e, "DER certificate")),
        ),
        (
            json!({"keys": [no_kid]}),
            Box::new(move |e| skipped(e, "`kid`")),
        ),
        (
            json!({"keys": [svid_key(&k), svid_key(&k)]}),
            Box::new(|e| *e == BundleError::DuplicateKid("a".into())),
        ),
        (
            json!({"keys": [{"use": "jwt-svid", "kid": "s", "kty": "oct", "k": "c2VjcmV0"}]}),
            Box::new(move |e| skipped(e, "symmetric")),
        ),
        (
            json!({"keys": [{"use": "jwt-svid", "kid": "s", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            Box::new(move |e| skipped(e, "curve")),
        ),
        (
            json!({"keys": [{"use": "jwt-svid", "kid": "s", "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}),
            Box::new(move |e| skipped(e, "P-256 and P-384")),
        ),
        (
            json!({"keys": [{"use": "jwt-svid", "kid": "s", "kty": "PQC"}]}),
            Box::new(move |e| skipped(e, "key type")),
        ),
        (
            json!({"keys": [{"use": "something-new"}]}),
            Box::new(move |e| skipped(e, "`something-new`")),
        ),
    ];
    for (v, ok) in cases {
        let e = bundle(v.clone()).unwrap_err();
        assert!(ok(&e), "{v} gave {e:?}");
    }
}

#[test]
fn jwks_for_end_users() {
    let (k1, k2) = (TokenKey::ec("a"), TokenKey::ed("b"));
    let mut enc = TokenKey::ec("c").jwk;
    enc["use"] = json!("enc");
    let mut sig = k2.jwk.clone();
    sig["use"] = json!("sig");
    let j = Jwks::from_json(json!({"keys": [k1.jwk, sig, enc]}).to_string().as_bytes()).unwrap();
    let kids: Vec<_> = j.keys().iter().map(|k| k.kid().unwrap()).collect();
    assert_eq!(kids, ["a", "b"], "encryption keys are skipped");
    assert_eq!(j.skipped().len(), 1);
    assert_eq!(j.skipped()[0].kid.as_deref(), Some("c"));
    // A set that has a usable key loads whatever else it holds.
    let mixed = Jwks::from_json(
        json!({"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, {"kty": "oct", "k": "c2VjcmV0"}, k2.jwk]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(mixed.keys().len(), 1);
    assert_eq!(
        mixed.skipped().iter().map(|k| k.index).collect::<Vec<_>>(),
        [0, 1]
    );
    // A key that names its algorithm admits only that one.
    assert!(j.keys()[0].admits(Algorithm::ES256));
    assert!(!j.keys()[0].admits(Algorithm::ES384));
    for bad in [
        json!({"keys": []}),
        json!({"keys": [enc_only()]}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        json!({"keys": [k1.jwk, k1.jwk]}),
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "alg": "RS256"}]}),
        json!({"nokeys": []}),
    ] {
        assert!(
            Jwks::from_json(bad.to_string().as_bytes()).is_err(),
            "{bad}"
        );
    }
}

fn enc_only() -> serde_json::Value {
    let mut k = TokenKey::ec("e").jwk;
    k["use"] = json!("enc");
    k
}

#[test]
fn aliases_resolve_to_the_canonical_bundle() {
    let td = |s: &str| TrustDomain::parse(s).unwrap();
    let ca = Ca::new("root");
    let own = Ca::new("old root");
    let b = |c: &Ca| bundle(json!({"keys": [c.bundle_key()]})).unwrap();
    let set = TrustBundleSet::new(
        [(td("example.org"), b(&ca)), (td("legacy.example"), b(&own))].into(),
        [
            (td("old.example"), td("example.org")),
            (td("legacy.example"), td("example.org")),
        ]
        .into(),
    );
    assert_eq!(set.canonical(&td("old.example")), &td("example.org"));
    assert_eq!(set.canonical(&td("example.org")), &td("example.org"));
    assert_eq!(set.canonical(&td("other.org")), &td("other.org"));
    // An alias without its own bundle uses the canonical one...
    assert_eq!(
        set.bundle_for(&td("old.example"))
            .unwrap()
            .x509_authorities(),
        [ca.der.clone()]
    );
    // ...and one with its own bundle uses that.
    assert_eq!(
        set.bundle_for(&td("legacy.example"))
            .unwrap()
            .x509_authorities(),
        [own.der.clone()]
    );
    assert!(set.bundle_for(&td("other.org")).is_none());
}
