//! SPIFFE ID parsing: never panics, and what parses prints back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::{IdMatcher, SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = SpiffeId::from_bytes(data) {
        assert_eq!(id.as_str().as_bytes(), data);
        assert_eq!(SpiffeId::parse(&id.to_string()).ok(), Some(id.clone()));
        assert!(TrustDomain::parse(id.trust_domain_name()).is_ok());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustDomain::parse(text);
        if let Ok(m) = IdMatcher::parse(text) {
            assert_eq!(IdMatcher::parse(&m.to_string()).ok(), Some(m));
        }
    }
});
