//! XFCC parsing: never panics, and parsed elements print back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::fuzzing::{X509Svid, XfccKey, parse_xfcc, select_trusted};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(elements) = parse_xfcc(text) else {
        return;
    };
    let printed = elements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(parse_xfcc(&printed).ok(), Some(elements.clone()));
    for hops in 0..=elements.len() + 1 {
        if let Ok(e) = select_trusted(&elements, hops) {
            let _ = e.get(XfccKey::Uri);
            if let Some(cert) = e.get(XfccKey::Cert) {
                let _ = X509Svid::from_url_encoded_pem(cert);
            }
        }
    }
});
