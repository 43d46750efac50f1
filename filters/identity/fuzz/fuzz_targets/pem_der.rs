//! PEM and DER certificate input: arbitrary bytes never panic; what the PEM
//! reader finds is DER the X.509 reader is then given; percent-decoding is
//! the inverse of percent-encoding every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_identity::MAX_CERTIFICATES;
use meshward_identity::fuzzing::{
    X509Svid, certificates_from_der_or_pem, certificates_from_pem,
    certificates_from_url_encoded_pem, percent_decode,
};

fuzz_target!(|data: &[u8]| {
    for certs in [
        certificates_from_pem(data),
        certificates_from_der_or_pem(data),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            certs.len() <= MAX_CERTIFICATES,
            "more certificates than the bound"
        );
        for der in &certs {
            if let Ok(svid) = X509Svid::from_der(der) {
                let _ = svid.check_time(1_800_000_000, 60);
            }
        }
    }
    let encoded: String = data.iter().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(percent_decode(&encoded).ok().as_deref(), Some(data));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certificates_from_url_encoded_pem(text);
    }
});
