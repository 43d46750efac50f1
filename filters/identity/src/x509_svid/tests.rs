// Case tables read better with owned values and closures in tuples.
#![allow(clippy::cloned_ref_to_slice_refs, clippy::type_complexity)]

use super::*;
use crate::testing::{Ca, DAY, LeafSpec, NOW, WORKLOAD, pem, rsa_key_pair, url_encode};
use proptest::prelude::*;
use rcgen::{
    CustomExtension, ExtendedKeyUsagePurpose as Eku, IsCa, KeyPair, KeyUsagePurpose as Ku,
};

fn leaf_err(spec: LeafSpec) -> SvidError {
    let ca = Ca::new("ca");
    X509Svid::from_der(&ca.leaf(&spec)).unwrap_err()
}

#[test]
fn accepts_a_valid_svid_in_every_encoding() {
    let ca = Ca::new("ca");
    let der = ca.leaf(&LeafSpec::default());
    let svid = X509Svid::from_der(&der).unwrap();
    assert_eq!(svid.id().as_str(), WORKLOAD);
    assert_eq!(svid.not_before(), NOW - DAY);
    assert_eq!(svid.not_after(), NOW + DAY);
    assert_eq!(X509Svid::from_pem(pem(&der).as_bytes()).unwrap(), svid);
    assert_eq!(X509Svid::from_pem(&der).unwrap(), svid);
    assert_eq!(
        X509Svid::from_url_encoded_pem(&url_encode(&pem(&der))).unwrap(),
        svid
    );
    // A chain in PEM: the leaf is the first block.
    let chain = format!("{}{}", pem(&der), pem(&ca.der));
    assert_eq!(X509Svid::from_pem(chain.as_bytes()).unwrap(), svid);
    // Without an EKU extension at all, too.
    let no_eku = LeafSpec {
        ekus: vec![],
        ..LeafSpec::default()
    };
    assert!(X509Svid::from_der(&ca.leaf(&no_eku)).is_ok());
    // keyEncipherment and keyAgreement are allowed alongside.
    let more_ku = LeafSpec {
        key_usages: vec![Ku::DigitalSignature, Ku::KeyEncipherment, Ku::KeyAgreement],
        ..LeafSpec::default()
    };
    assert!(X509Svid::from_der(&ca.leaf(&more_ku)).is_ok());
}

/// One case per leaf rule; removing the rule makes its case pass through.
#[test]
fn each_leaf_rule_rejects() {
    let d = LeafSpec::default;
    let cases: Vec<(&str, LeafSpec, &str)> = vec![
        (
            "no URI SAN",
            LeafSpec {
                uris: vec![],
                dns: vec!["a.example".into()],
                ..d()
            },
            "svid_no_uri_san",
        ),
        (
            "two URI SANs",
            LeafSpec {
                uris: vec![WORKLOAD.into(), "spiffe://example.org/other".into()],
                ..d()
            },
            "svid_multiple_uri_sans",
        ),
        (
            "a SPIFFE and a non-SPIFFE URI SAN",
            LeafSpec {
                uris: vec![WORKLOAD.into(), "https://example.org/".into()],
                ..d()
            },
            "svid_multiple_uri_sans",
        ),
        (
            "https scheme",
            LeafSpec::uri("https://example.org/ns/a"),
            "svid_bad_spiffe_id",
        ),
        (
            "upper-case scheme",
            LeafSpec::uri("SPIFFE://example.org/ns/a"),
            "svid_bad_spiffe_id",
        ),
        (
            "trailing slash",
            LeafSpec::uri("spiffe://example.org/ns/a/"),
            "svid_bad_spiffe_id",
        ),
        (
            "root ID",
            LeafSpec::uri("spiffe://example.org"),
            "svid_id_without_path",
        ),
        (
            "cA=true",
            LeafSpec {
                is_ca: IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
                ..d()
            },
            "svid_is_ca",
        ),
        (
            "no key usage",
            LeafSpec {
                key_usages: vec![],
                ..d()
            },
            "svid_no_key_usage",
        ),
        (
            "no digitalSignature",
            LeafSpec {
                key_usages: vec![Ku::KeyEncipherment],
                ..d()
            },
            "svid_no_digital_signature",
        ),
        (
            "keyCertSign",
            LeafSpec {
                key_usages: vec![Ku::DigitalSignature, Ku::KeyCertSign],
                ..d()
            },
            "svid_signing_key_usage",
        ),
        (
            "cRLSign",
            LeafSpec {
                key_usages: vec![Ku::DigitalSignature, Ku::CrlSign],
                ..d()
            },
            "svid_signing_key_usage",
        ),
        (
            "EKU without clientAuth",
            LeafSpec {
                ekus: vec![Eku::ServerAuth],
                ..d()
            },
            "svid_no_client_auth",
        ),
        (
            "EKU any only",
            LeafSpec {
                ekus: vec![Eku::Any],
                ..d()
            },
            "svid_no_client_auth",
        ),
        (
            "unknown critical extension",
            LeafSpec {
                extra: vec![{
                    let mut e = CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 99999, 1],
                        vec![5, 0],
                    );
                    e.set_criticality(true);
                    e
                }],
                ..d()
            },
            "svid_unsupported_extension",
        ),
    ];
    for (name, spec, code) in cases {
        let e = leaf_err(spec);
        assert_eq!(e.code(), code, "{name}: {e}");
    }
}

#[test]
fn a_non_critical_unknown_extension_is_fine() {
    let spec = LeafSpec {
        extra: vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![5, 0],
        )],
        ..LeafSpec::default()
    };
    let ca = Ca::new("ca");
    assert!(X509Svid::from_der(&ca.leaf(&spec)).is_ok());
}

#[test]
fn validity_window_with_skew() {
    let ca = Ca::new("ca");
    let svid = X509Svid::from_der(&ca.leaf(&LeafSpec::default())).unwrap();
    let (nb, na) = (svid.not_before(), svid.not_after());
    assert!(svid.check_time(nb, 0).is_ok());
    assert!(svid.check_time(na, 0).is_ok());
    assert_eq!(
        svid.check_time(nb - 1, 0),
        Err(SvidError::NotYetValid { not_before: nb })
    );
    assert_eq!(
        svid.check_time(na + 1, 0),
        Err(SvidError::Expired { not_after: na })
    );
    assert!(svid.check_time(nb - 60, 60).is_ok());
    assert!(svid.check_time(na + 60, 60).is_ok());
    assert_eq!(
        svid.check_time(nb - 61, 60).unwrap_err().code(),
        "svid_not_yet_valid"
    );
    assert_eq!(
        svid.check_time(na + 61, 60).unwrap_err().code(),
        "svid_expired"
    );
    // Extreme inputs saturate instead of overflowing.
    assert!(svid.check_time(i64::MAX, u64::MAX).is_ok());
    assert!(svid.check_time(i64::MIN, 0).is_err());
}

#[test]
fn garbage_is_malformed() {
    assert_eq!(
        X509Svid::from_der(b"").unwrap_err().code(),
        "svid_malformed"
    );
    assert_eq!(
        X509Svid::from_der(&[0x30, 0x03, 1, 2, 3])
            .unwrap_err()
            .code(),
        "svid_malformed"
    );
    assert_eq!(
        X509Svid::from_pem(b"hello").unwrap_err().code(),
        "svid_malformed"
    );
    let ca = Ca::new("ca");
    let mut der = ca.leaf(&LeafSpec::default());
    der.push(0);
    assert!(matches!(
        X509Svid::from_der(&der),
        Err(SvidError::Malformed(_))
    ));
}

fn chain_err(leaf: &[u8], inters: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<(), SvidError> {
    X509Svid::from_der(leaf)
        .unwrap()
        .verify_chain(inters, roots, NOW, 0)
}

#[test]
fn chain_to_the_bundle() {
    let root = Ca::new("root");
    let leaf = root.leaf(&LeafSpec::default());
    assert_eq!(chain_err(&leaf, &[], &[root.der.clone()]), Ok(()));
    // A copy of the leaf among the intermediates (Envoy's `Chain=` has it) is ignored.
    assert_eq!(
        chain_err(&leaf, &[leaf.clone()], &[root.der.clone()]),
        Ok(())
    );

    let inter = root.intermediate("inter", |_| {});
    let leaf2 = inter.leaf(&LeafSpec::default());
    assert_eq!(
        chain_err(&leaf2, &[inter.der.clone()], &[root.der.clone()]),
        Ok(())
    );
    // The intermediate may itself be the bundle's authority.
    assert_eq!(chain_err(&leaf2, &[], &[inter.der.clone()]), Ok(()));
    // The time window of the leaf is part of the check.
    let svid = X509Svid::from_der(&leaf).unwrap();
    assert_eq!(
        svid.verify_chain(&[], &[root.der.clone()], NOW + 2 * DAY, 0)
            .unwrap_err()
            .code(),
        "svid_expired"
    );
}

#[test]
fn each_chain_rule_rejects() {
    let root = Ca::new("root");
    let roots = [root.der.clone()];
    // The detail names the broken rule, so a case cannot pass for another reason.
    let untrusted = |r: Result<(), SvidError>, why: &str| match r {
        Err(SvidError::Untrusted(m)) => assert!(m.contains(why), "{m:?} lacks {why:?}"),
        other => panic!("expected untrusted ({why}), got {other:?}"),
    };

    // Another CA, even one with the same name.
    let stranger = Ca::new("root");
    untrusted(
        chain_err(&stranger.leaf(&LeafSpec::default()), &[], &roots),
        "signature",
    );
    // No authorities at all.
    untrusted(
        chain_err(&root.leaf(&LeafSpec::default()), &[], &[]),
        "no issuer",
    );
    // A missing intermediate.
    let inter = root.intermediate("inter", |_| {});
    untrusted(
        chain_err(&inter.leaf(&LeafSpec::default()), &[], &roots),
        "no issuer",
    );
    // A tampered signature.
    let mut leaf = root.leaf(&LeafSpec::default());
    let last = leaf.len() - 1;
    leaf[last] ^= 1;
    untrusted(chain_err(&leaf, &[], &roots), "signature");
    // An intermediate that is not a CA.
    let not_ca = root.intermediate("not-ca", |p| p.is_ca = IsCa::ExplicitNoCa);
    untrusted(
        chain_err(
            &not_ca.leaf(&LeafSpec::default()),
            &[not_ca.der.clone()],
            &roots,
        ),
        "not a CA",
    );
    // An intermediate whose key usage lacks keyCertSign.
    let no_sign = root.intermediate("no-sign", |p| p.key_usages = vec![Ku::DigitalSignature]);
    untrusted(
        chain_err(
            &no_sign.leaf(&LeafSpec::default()),
            &[no_sign.der.clone()],
            &roots,
        ),
        "keyCertSign",
    );
    // An expired intermediate.
    let old = root.intermediate("old", |p| {
        p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW - DAY).unwrap();
    });
    untrusted(
        chain_err(&old.leaf(&LeafSpec::default()), &[old.der.clone()], &roots),
        "expired",
    );
    // pathLenConstraint 0 on the root forbids an intermediate below it.
    let strict = Ca::with_key("strict", KeyPair::generate().unwrap(), Some(0));
    let below = strict.intermediate("below", |_| {});
    let r = chain_err(
        &below.leaf(&LeafSpec::default()),
        &[below.der.clone()],
        &[strict.der.clone()],
    );
    untrusted(r, "pathLenConstraint");
    // ...but allows leaves directly under it.
    assert!(
        chain_err(
            &strict.leaf(&LeafSpec::default()),
            &[],
            &[strict.der.clone()]
        )
        .is_ok()
    );
    // A CA with name constraints, which are not enforced here, is refused.
    let constrained = root.intermediate("nc", |p| {
        p.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.org".into())],
            excluded_subtrees: vec![],
        });
    });
    untrusted(
        chain_err(
            &constrained.leaf(&LeafSpec::default()),
            &[constrained.der.clone()],
            &roots,
        ),
        "2.5.29.30",
    );
}

#[test]
fn every_supported_algorithm_verifies() {
    for (name, key) in [
        (
            "P-256",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        ),
        (
            "P-384",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        ),
        (
            "Ed25519",
            KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        ),
        ("RSA-SHA256", rsa_key_pair(&rcgen::PKCS_RSA_SHA256)),
        ("RSA-SHA384", rsa_key_pair(&rcgen::PKCS_RSA_SHA384)),
        ("RSA-SHA512", rsa_key_pair(&rcgen::PKCS_RSA_SHA512)),
    ] {
        let ca = Ca::with_key(name, key, None);
        let leaf = ca.leaf(&LeafSpec::default());
        assert_eq!(chain_err(&leaf, &[], &[ca.der.clone()]), Ok(()), "{name}");
        let mut bad = leaf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert!(
            chain_err(&bad, &[], &[ca.der.clone()]).is_err(),
            "{name} tampered"
        );
    }
}

proptest! {
    #[test]
    fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = X509Svid::from_der(&b);
        let _ = X509Svid::from_pem(&b);
    }

    #[test]
    fn never_panics_on_mutated_certificates(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        static CERT: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        let (leaf, root) = CERT.get_or_init(|| {
            let ca = Ca::new("ca");
            (ca.leaf(&LeafSpec::default()), ca.der.clone())
        });
        let mut m = leaf.clone();
        let i = pos.index(m.len());
        m[i] = byte;
        m.truncate(cut.index(m.len()) + 1);
        if let Ok(svid) = X509Svid::from_der(&m) {
            let _ = svid.verify_chain(&[m.clone()], std::slice::from_ref(root), NOW, 0);
        }
    }
}
