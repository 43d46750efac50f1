//! Certificate signature checks with pure-Rust (RustCrypto) primitives.
//!
//! These are the crates jsonwebtoken's `rust_crypto` backend already links,
//! so verifying X.509 chains adds no new code to the filter, and no C (which
//! x509-parser's `verify` feature, built on ring, would bring).

use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// RSA keys shorter than this are refused: they are breakable, and no SPIFFE
/// implementation issues them.
const MIN_RSA_BITS: usize = 2048;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// The algorithm, or the pairing of algorithm and key, is not supported.
    Unsupported(String),
    /// The key is malformed or too weak.
    BadKey,
    /// The signature does not verify.
    Invalid,
}

/// Checks that `signature` over `message` was made by the key in `signer`
/// with the algorithm `alg`.
pub(crate) fn verify(
    signer: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let key_alg = &signer.algorithm.algorithm;
    let key_bits: &[u8] = &signer.subject_public_key.data;
    let sig_alg = &alg.algorithm;
    let curve = signer
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());

    if *sig_alg == OID_SIG_ECDSA_WITH_SHA256 || *sig_alg == OID_SIG_ECDSA_WITH_SHA384 {
        if *key_alg != OID_KEY_TYPE_EC_PUBLIC_KEY {
            return Err(unsupported(sig_alg, key_alg));
        }
        // Each curve is paired with its own hash, as SPIFFE issuers do; mixed
        // pairings are refused rather than half-supported.
        return match curve {
            Some(c) if c == OID_EC_P256 && *sig_alg == OID_SIG_ECDSA_WITH_SHA256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                    .map_err(|_| SignatureError::BadKey)?;
                let sig = p256::ecdsa::DerSignature::try_from(signature)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            Some(c) if c == OID_NIST_EC_P384 && *sig_alg == OID_SIG_ECDSA_WITH_SHA384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                    .map_err(|_| SignatureError::BadKey)?;
                let sig = p384::ecdsa::DerSignature::try_from(signature)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            _ => Err(unsupported(sig_alg, key_alg)),
        };
    }

    if *sig_alg == OID_PKCS1_SHA256WITHRSA
        || *sig_alg == OID_PKCS1_SHA384WITHRSA
        || *sig_alg == OID_PKCS1_SHA512WITHRSA
    {
        if *key_alg != OID_PKCS1_RSAENCRYPTION {
            return Err(unsupported(sig_alg, key_alg));
        }
        let key = rsa::RsaPublicKey::from_public_key_der(signer.raw)
            .map_err(|_| SignatureError::BadKey)?;
        if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
            return Err(SignatureError::BadKey);
        }
        let sig =
            rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| SignatureError::Invalid)?;
        let ok = if *sig_alg == OID_PKCS1_SHA256WITHRSA {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(message, &sig)
        } else if *sig_alg == OID_PKCS1_SHA384WITHRSA {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key).verify(message, &sig)
        } else {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key).verify(message, &sig)
        };
        return ok.map_err(|_| SignatureError::Invalid);
    }

    if *sig_alg == OID_SIG_ED25519 {
        if *key_alg != OID_SIG_ED25519 {
            return Err(unsupported(sig_alg, key_alg));
        }
        let bytes: &[u8; 32] = key_bits.try_into().map_err(|_| SignatureError::BadKey)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| SignatureError::BadKey)?;
        let sig =
            ed25519_dalek::Signature::from_slice(signature).map_err(|_| SignatureError::Invalid)?;
        return key
            .verify_strict(message, &sig)
            .map_err(|_| SignatureError::Invalid);
    }

    Err(unsupported(sig_alg, key_alg))
}

fn unsupported(
    sig: &x509_parser::der_parser::Oid<'_>,
    key: &x509_parser::der_parser::Oid<'_>,
) -> SignatureError {
    SignatureError::Unsupported(format!("signature {sig} with key {key}"))
}
