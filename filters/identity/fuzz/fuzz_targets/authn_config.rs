//! The identity filter's JSON configuration (`AuthnConfig`), as the operator
//! or a control plane writes it: arbitrary bytes never panic; a
//! configuration that is accepted authenticates a fixed set of peers
//! without panicking, and only names an identity it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::{AuthnConfig, PeerFacts, authenticate};

const PEER: &str = "spiffe://example.org/ns/a/sa/b";

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = AuthnConfig::from_json(data) else {
        return;
    };
    let _ = cfg.warnings();
    // A configuration that parsed keeps its forward headers valid.
    assert!(
        cfg.forward().check().is_ok(),
        "accepted forward headers fail their own check"
    );
    let facts = [
        PeerFacts {
            mtls: Some(vec![1]),
            uri_san: Some(PEER.as_bytes().to_vec()),
            peer_certificate: None,
            headers: vec![],
        },
        PeerFacts {
            mtls: Some(vec![0]),
            uri_san: Some(PEER.as_bytes().to_vec()),
            peer_certificate: None,
            headers: vec![("x-forwarded-client-cert".into(), format!("By=x;URI={PEER}"))],
        },
        PeerFacts {
            mtls: None,
            uri_san: None,
            peer_certificate: None,
            headers: vec![],
        },
    ];
    for f in &facts {
        if let Ok(id) = authenticate(&cfg, f, 1_800_000_000) {
            // The only identity in these facts is PEER: anything else was
            // made up from the configuration.
            assert_eq!(
                id.presented_peer.as_str(),
                PEER,
                "an identity nobody presented"
            );
        }
    }
});
