// Case tables read better with owned values and closures in tuples.
#![allow(clippy::cloned_ref_to_slice_refs, clippy::type_complexity)]

use super::*;
use proptest::prelude::*;

fn one(header: &str) -> XfccElement {
    let mut e = parse_xfcc(header).unwrap();
    assert_eq!(e.len(), 1, "{header}");
    e.remove(0)
}

#[test]
fn parses_an_envoy_element() {
    let e = one(
        "By=spiffe://mesh.test/ns/edge/sa/gw;Hash=9f2c;Subject=\"CN=client,O=Acme; Inc\";\
         URI=spiffe://mesh.test/ns/a/sa/b;DNS=a.mesh.test;DNS=b.mesh.test",
    );
    assert_eq!(e.get(XfccKey::By), Some("spiffe://mesh.test/ns/edge/sa/gw"));
    assert_eq!(e.get(XfccKey::Hash), Some("9f2c"));
    assert_eq!(e.get(XfccKey::Subject), Some("CN=client,O=Acme; Inc"));
    assert_eq!(e.get(XfccKey::Uri), Some("spiffe://mesh.test/ns/a/sa/b"));
    assert_eq!(
        e.get_all(XfccKey::Dns).collect::<Vec<_>>(),
        ["a.mesh.test", "b.mesh.test"]
    );
    assert_eq!(e.get(XfccKey::Cert), None);
}

#[test]
fn keys_are_case_insensitive_and_escapes_unescape() {
    let e = one(r#"uri=spiffe://t/a;sUbJeCt="say \"hi\", \\ ok";cert="%2D%2D""#);
    assert_eq!(e.get(XfccKey::Uri), Some("spiffe://t/a"));
    assert_eq!(e.get(XfccKey::Subject), Some(r#"say "hi", \ ok"#));
    assert_eq!(e.get(XfccKey::Cert), Some("%2D%2D"));
    // Empty values are values.
    assert_eq!(one("Subject=\"\";URI=").get(XfccKey::Subject), Some(""));
}

#[test]
fn several_elements_left_to_right() {
    let all = parse_xfcc("URI=spiffe://t/1, URI=spiffe://t/2,URI=\"spiffe://t/3\"").unwrap();
    let uris: Vec<_> = all.iter().map(|e| e.get(XfccKey::Uri).unwrap()).collect();
    assert_eq!(uris, ["spiffe://t/1", "spiffe://t/2", "spiffe://t/3"]);
}

#[test]
fn refuses_malformed_headers() {
    let cases: &[(&str, fn(&XfccError) -> bool)] = &[
        ("", |e| *e == XfccError::Empty),
        ("   ", |e| *e == XfccError::Empty),
        ("URI", |e| matches!(e, XfccError::Syntax(_))),
        ("=x", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=a,,URI=b", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=a,", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=a;", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=a=b", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=ab\"c\"", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=\"a\"b", |e| matches!(e, XfccError::Syntax(_))),
        ("URI=\"abc", |e| *e == XfccError::Unterminated),
        ("URI=\"abc\\", |e| *e == XfccError::Unterminated),
        ("Foo=bar", |e| *e == XfccError::UnknownKey("Foo".into())),
        ("By=a;By=b", |e| *e == XfccError::DuplicateKey("By".into())),
        ("Cert=a;cert=b", |e| {
            *e == XfccError::DuplicateKey("Cert".into())
        }),
        ("Hash=a;HASH=b", |e| {
            *e == XfccError::DuplicateKey("Hash".into())
        }),
        ("Chain=a;Chain=b", |e| {
            *e == XfccError::DuplicateKey("Chain".into())
        }),
        ("Subject=a;Subject=b", |e| {
            *e == XfccError::DuplicateKey("Subject".into())
        }),
    ];
    for (header, ok) in cases {
        let e = parse_xfcc(header).unwrap_err();
        assert!(ok(&e), "{header:?} gave {e:?}");
    }
    let long = format!("URI={}", "a".repeat(MAX_XFCC_LEN));
    assert!(matches!(parse_xfcc(&long), Err(XfccError::TooLong(_))));
    let many = vec!["URI=a"; MAX_XFCC_ELEMENTS + 1].join(",");
    assert_eq!(parse_xfcc(&many).unwrap_err(), XfccError::TooManyElements);
    let enough = vec!["URI=a"; MAX_XFCC_ELEMENTS].join(",");
    assert_eq!(parse_xfcc(&enough).unwrap().len(), MAX_XFCC_ELEMENTS);
}

#[test]
fn trusted_hops_pick_from_the_right() {
    let all =
        parse_xfcc("URI=spiffe://t/forged,URI=spiffe://t/client,URI=spiffe://t/edge").unwrap();
    let uri = |hops| select_trusted(&all, hops).map(|e| e.get(XfccKey::Uri).unwrap());
    assert_eq!(uri(1), Ok("spiffe://t/edge"));
    assert_eq!(uri(2), Ok("spiffe://t/client"));
    assert_eq!(uri(3), Ok("spiffe://t/forged"));
    assert_eq!(uri(4), Err(TooFewElements { have: 3, need: 4 }));
    assert_eq!(uri(0), Err(TooFewElements { have: 3, need: 0 }));
    assert!(select_trusted(&[], 1).is_err());
}

fn arb_element() -> impl Strategy<Value = XfccElement> {
    let key = prop_oneof![
        Just(XfccKey::Uri),
        Just(XfccKey::Dns),
        Just(XfccKey::By),
        Just(XfccKey::Subject),
        Just(XfccKey::Hash),
        Just(XfccKey::Cert),
        Just(XfccKey::Chain),
    ];
    proptest::collection::vec((key, "\\PC{0,12}"), 1..6).prop_map(|pairs| {
        let mut seen = Vec::new();
        let pairs = pairs
            .into_iter()
            .filter(|(k, _)| {
                let keep = k.repeatable() || !seen.contains(k);
                seen.push(*k);
                keep
            })
            .collect();
        XfccElement::from_pairs(pairs)
    })
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,120}") {
        let _ = parse_xfcc(&s);
    }

    #[test]
    fn never_panics_on_near_misses(s in "[A-Za-z=;,\"\\\\ ]{0,60}") {
        if let Ok(all) = parse_xfcc(&s) {
            for hops in 0..4 {
                let _ = select_trusted(&all, hops);
            }
        }
    }

    #[test]
    fn display_round_trips(elements in proptest::collection::vec(arb_element(), 1..4)) {
        let header = elements.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        prop_assert_eq!(parse_xfcc(&header).unwrap(), elements);
    }
}
