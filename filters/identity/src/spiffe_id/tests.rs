use super::*;
use proptest::prelude::*;

fn err(s: &str) -> SpiffeIdError {
    SpiffeId::parse(s).unwrap_err()
}

#[test]
fn parses_valid_ids() {
    let id = SpiffeId::parse("spiffe://example.org/ns/web/sa/frontend").unwrap();
    assert_eq!(id.trust_domain_name(), "example.org");
    assert_eq!(id.path(), "/ns/web/sa/frontend");
    assert_eq!(id.namespace(), Some("web"));
    assert_eq!(id.service_account(), Some("frontend"));
    assert_eq!(
        id.segments().collect::<Vec<_>>(),
        ["ns", "web", "sa", "frontend"]
    );

    let td_only = SpiffeId::parse("spiffe://example.org").unwrap();
    assert_eq!(td_only.path(), "");
    assert_eq!(td_only.namespace(), None);

    for ok in [
        "spiffe://a/b",
        "spiffe://a_b-c.d/x.y_z-W/0",
        "spiffe://1.2.3.4/workload",
        "spiffe://example.org/...",
        "spiffe://example.org/.a",
    ] {
        assert!(SpiffeId::parse(ok).is_ok(), "{ok} should parse");
    }
}

#[test]
fn scheme_must_be_lowercase() {
    // Envoy and other SPIFFE implementations compare the bytes; folding case
    // here would make two components disagree about the same certificate.
    for s in [
        "SPIFFE://example.org/a",
        "Spiffe://example.org/a",
        "spiffE://example.org",
    ] {
        assert_eq!(err(s), SpiffeIdError::WrongScheme, "{s}");
    }
}

#[test]
fn rejects_each_rule() {
    assert_eq!(err(""), SpiffeIdError::Empty);
    assert_eq!(err("https://example.org/a"), SpiffeIdError::WrongScheme);
    assert_eq!(err("spiffe:/example.org/a"), SpiffeIdError::WrongScheme);
    assert_eq!(err("spiffe"), SpiffeIdError::WrongScheme);
    assert_eq!(err("example.org/a"), SpiffeIdError::WrongScheme);
    assert_eq!(err("spiffe://"), SpiffeIdError::MissingTrustDomain);
    assert_eq!(err("spiffe:///a"), SpiffeIdError::MissingTrustDomain);
    assert_eq!(
        err("spiffe://Example.org/a"),
        SpiffeIdError::BadTrustDomainChar('E')
    );
    assert_eq!(
        err("spiffe://example.org:8080/a"),
        SpiffeIdError::BadTrustDomainChar(':')
    );
    assert_eq!(
        err("spiffe://user@example.org/a"),
        SpiffeIdError::BadTrustDomainChar('@')
    );
    assert_eq!(
        err("spiffe://ex%41mple.org/a"),
        SpiffeIdError::BadTrustDomainChar('%')
    );
    assert_eq!(
        err("spiffe://example.org/a%20b"),
        SpiffeIdError::BadPathChar('%')
    );
    assert_eq!(
        err("spiffe://example.org/a b"),
        SpiffeIdError::BadPathChar(' ')
    );
    assert_eq!(
        err("spiffe://example.org/é"),
        SpiffeIdError::BadPathChar('é')
    );
    assert_eq!(err("spiffe://example.org/"), SpiffeIdError::EmptySegment);
    assert_eq!(err("spiffe://example.org/a/"), SpiffeIdError::EmptySegment);
    assert_eq!(err("spiffe://example.org//a"), SpiffeIdError::EmptySegment);
    assert_eq!(err("spiffe://example.org/a/./b"), SpiffeIdError::DotSegment);
    assert_eq!(err("spiffe://example.org/a/.."), SpiffeIdError::DotSegment);
    assert_eq!(
        err("spiffe://example.org/a?x=1"),
        SpiffeIdError::QueryOrFragment
    );
    assert_eq!(
        err("spiffe://example.org/a#frag"),
        SpiffeIdError::QueryOrFragment
    );
    assert_eq!(
        err("spiffe://example.org?x"),
        SpiffeIdError::QueryOrFragment
    );
}

#[test]
fn length_limits_are_exact() {
    let td = "a".repeat(MAX_TRUST_DOMAIN_LEN);
    assert!(SpiffeId::parse(&format!("spiffe://{td}")).is_ok());
    assert_eq!(
        err(&format!("spiffe://{td}a")),
        SpiffeIdError::TrustDomainTooLong(256)
    );

    let prefix = "spiffe://example.org/";
    let fill = MAX_SPIFFE_ID_LEN - prefix.len();
    let longest = format!("{prefix}{}", "p".repeat(fill));
    assert_eq!(longest.len(), MAX_SPIFFE_ID_LEN);
    assert!(SpiffeId::parse(&longest).is_ok());
    assert_eq!(err(&format!("{longest}p")), SpiffeIdError::TooLong(2049));
}

#[test]
fn non_utf8_bytes_are_rejected() {
    assert_eq!(
        SpiffeId::from_bytes(b"spiffe://example.org/\xff").unwrap_err(),
        SpiffeIdError::NotUtf8
    );
    assert!(SpiffeId::from_bytes(b"spiffe://example.org/ok").is_ok());
}

#[test]
fn trust_domain_parses_bare_names_and_ids() {
    assert_eq!(
        TrustDomain::parse("example.org").unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        TrustDomain::parse("spiffe://example.org/a/b")
            .unwrap()
            .as_str(),
        "example.org"
    );
    assert_eq!(
        TrustDomain::parse("").unwrap_err(),
        SpiffeIdError::MissingTrustDomain
    );
    assert_eq!(
        TrustDomain::parse("Example.org").unwrap_err(),
        SpiffeIdError::BadTrustDomainChar('E')
    );
    assert_eq!(
        TrustDomain::parse("example.org").unwrap().id().as_str(),
        "spiffe://example.org"
    );
}

#[test]
fn istio_accessors_need_the_exact_shape() {
    for id in [
        "spiffe://cluster.local/ns/a/sa",
        "spiffe://cluster.local/ns/a/sa/b/extra",
        "spiffe://cluster.local/sa/b/ns/a",
        "spiffe://cluster.local/workload",
    ] {
        assert_eq!(SpiffeId::parse(id).unwrap().namespace(), None, "{id}");
    }
}

#[test]
fn serde_validates() {
    let id: SpiffeId = serde_json::from_str("\"spiffe://example.org/a\"").unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        "\"spiffe://example.org/a\""
    );
    let e = serde_json::from_str::<SpiffeId>("\"spiffe://example.org/a/\"").unwrap_err();
    assert!(e.to_string().contains("empty segment"), "{e}");
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,64}") {
        let _ = SpiffeId::parse(&s);
        let _ = TrustDomain::parse(&s);
    }

    #[test]
    fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = SpiffeId::from_bytes(&b);
    }

    #[test]
    fn valid_ids_round_trip(
        td in "[a-z0-9._-]{1,40}",
        segs in proptest::collection::vec("[a-zA-Z0-9._-]{1,12}", 0..6),
    ) {
        let segs: Vec<_> = segs.into_iter().filter(|s| s != "." && s != "..").collect();
        let path: String = segs.iter().map(|s| format!("/{s}")).collect();
        let text = format!("spiffe://{td}{path}");
        let id = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(id.trust_domain_name(), td.as_str());
        prop_assert_eq!(id.path(), path.as_str());
        prop_assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id);
    }
}
