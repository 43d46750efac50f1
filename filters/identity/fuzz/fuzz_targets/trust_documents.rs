//! JWKS documents and SPIFFE trust bundles (their JWKS form): arbitrary
//! bytes never panic, and what loads is self-consistent (every JWT
//! authority found by its `kid` is the one listed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::{Jwks, TrustBundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = Jwks::from_json(data) {
        assert!(
            !jwks.keys().is_empty(),
            "a JWKS must hold at least one usable key"
        );
        let _ = jwks.skipped();
    }
    if let Ok(bundle) = TrustBundle::from_json(data) {
        for key in bundle.jwt_authorities() {
            if let Some(kid) = key.kid() {
                assert!(
                    bundle.jwt_authority(kid).is_some(),
                    "a listed `kid` is not found"
                );
            }
        }
        let _ = (
            bundle.x509_authorities(),
            bundle.sequence(),
            bundle.refresh_hint(),
        );
    }
});
