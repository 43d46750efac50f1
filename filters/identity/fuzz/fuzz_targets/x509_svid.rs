//! X.509-SVID checks on arbitrary DER and PEM: never panic, and a chain
//! check against the input itself as the authority terminates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::fuzzing::X509Svid;

fuzz_target!(|data: &[u8]| {
    let _ = X509Svid::from_pem(data);
    if let Ok(svid) = X509Svid::from_der(data) {
        let _ = svid.check_time(1_800_000_000, 60);
        let _ = svid.verify_chain(&[data.to_vec()], &[data.to_vec()], 1_800_000_000, 60);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = X509Svid::from_url_encoded_pem(text);
    }
});
