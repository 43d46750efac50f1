//! Certificates as hosts hand them over: DER, PEM, and the URL-encoded PEM of
//! Envoy's `x-forwarded-client-cert` header.
//!
//! A small strict decoder of our own rather than a general PEM crate: only
//! `CERTIFICATE` blocks are accepted, anything between or around blocks other
//! than whitespace is an error, so a value cannot smuggle a second meaning
//! past one parser and not another.

use base64::Engine as _;

/// Why bytes are not one or more certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// No certificate at all.
    #[error("no certificate found")]
    Empty,
    /// A `-----BEGIN` line for something other than a certificate, or text
    /// outside the blocks.
    #[error("unexpected content in PEM: `{0}`")]
    Unexpected(String),
    /// A `BEGIN CERTIFICATE` without its `END CERTIFICATE`.
    #[error("unterminated PEM certificate block")]
    Unterminated,
    /// The block's body is not base64.
    #[error("PEM certificate body is not valid base64")]
    Base64,
    /// A `%` not followed by two hex digits in URL-encoded PEM.
    #[error("invalid percent-encoding in URL-encoded PEM")]
    PercentEncoding,
    /// More certificates than any real chain has.
    #[error("more than {0} certificates")]
    TooMany(usize),
}

/// The most certificates accepted in one value; real SPIFFE chains have two
/// or three, and a bound keeps a hostile header from costing much.
pub const MAX_CERTIFICATES: usize = 8;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Reads DER certificates from PEM text: one or more `CERTIFICATE` blocks
/// separated by whitespace only.
pub fn certificates_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let text = std::str::from_utf8(text).map_err(|_| PemError::Unexpected("non-UTF-8".into()))?;
    let mut rest = text.trim_start();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some(after_begin) = rest.strip_prefix(BEGIN) else {
            return Err(PemError::Unexpected(excerpt(rest)));
        };
        let Some(end) = after_begin.find(END) else {
            return Err(PemError::Unterminated);
        };
        let body = after_begin.get(..end).ok_or(PemError::Unterminated)?;
        if out.len() == MAX_CERTIFICATES {
            return Err(PemError::TooMany(MAX_CERTIFICATES));
        }
        out.push(decode_body(body)?);
        rest = after_begin
            .get(end + END.len()..)
            .unwrap_or_default()
            .trim_start();
    }
    if out.is_empty() {
        return Err(PemError::Empty);
    }
    Ok(out)
}

/// Reads DER certificates from either DER (one certificate) or PEM.
pub fn certificates_from_der_or_pem(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    // A DER certificate is a SEQUENCE (0x30); PEM text never starts with it.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    certificates_from_pem(bytes)
}

/// Reads DER certificates from the URL-encoded PEM of an XFCC `Cert=` or
/// `Chain=` value.
pub fn certificates_from_url_encoded_pem(text: &str) -> Result<Vec<Vec<u8>>, PemError> {
    certificates_from_pem(&percent_decode(text)?)
}

/// Decodes `%XX` escapes. `+` stays `+`: Envoy encodes with `%2B`, and a
/// space has no place in PEM anyway.
pub fn percent_decode(text: &str) -> Result<Vec<u8>, PemError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| hex(*c));
            let lo = bytes.get(i + 2).and_then(|c| hex(*c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PemError::PercentEncoding),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_body(body: &str) -> Result<Vec<u8>, PemError> {
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| PemError::Base64)
}

fn excerpt(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ONE: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn reads_blocks() {
        assert_eq!(
            certificates_from_pem(ONE.as_bytes()).unwrap(),
            [vec![0x30, 3, 2, 1, 1]]
        );
        let two = format!("\n{ONE}\r\n{ONE}");
        assert_eq!(certificates_from_pem(two.as_bytes()).unwrap().len(), 2);
        assert_eq!(
            certificates_from_der_or_pem(&[0x30, 0]).unwrap(),
            [vec![0x30, 0]]
        );
    }

    #[test]
    fn refuses_anything_else() {
        for (bad, want) in [
            ("", PemError::Empty),
            ("  \n", PemError::Empty),
            (
                "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n",
                PemError::Unterminated,
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----",
                PemError::Base64,
            ),
        ] {
            assert_eq!(
                certificates_from_pem(bad.as_bytes()).unwrap_err(),
                want,
                "{bad:?}"
            );
        }
        let key = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----";
        assert!(matches!(
            certificates_from_pem(key.as_bytes()),
            Err(PemError::Unexpected(_))
        ));
        let trailing = format!("{ONE}junk");
        assert!(matches!(
            certificates_from_pem(trailing.as_bytes()),
            Err(PemError::Unexpected(_))
        ));
        let many = ONE.repeat(MAX_CERTIFICATES + 1);
        assert_eq!(
            certificates_from_pem(many.as_bytes()).unwrap_err(),
            PemError::TooMany(8)
        );
        assert_eq!(
            certificates_from_pem(ONE.repeat(8).as_bytes())
                .unwrap()
                .len(),
            8
        );
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%2Bb%2fc+d").unwrap(), b"a+b/c+d");
        for bad in ["%", "%2", "%zz", "a%g0"] {
            assert_eq!(
                percent_decode(bad).unwrap_err(),
                PemError::PercentEncoding,
                "{bad}"
            );
        }
        let encoded = ONE
            .replace('\n', "%0A")
            .replace('=', "%3D")
            .replace(' ', "%20");
        assert_eq!(
            certificates_from_url_encoded_pem(&encoded).unwrap().len(),
            1
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}", b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = certificates_from_pem(s.as_bytes());
            let _ = certificates_from_url_encoded_pem(&s);
            let _ = certificates_from_der_or_pem(&b);
            let _ = certificates_from_pem(&b);
        }
    }
}
