//! Who is the peer, beyond doubt.
//!
//! This crate turns what a proxy knows about a connection and a request into a
//! verified SPIFFE identity, or into a denial with a reason. It has no
//! proxy-wasm, no clock and no I/O: the caller passes in bytes it read from the
//! host and the current time, so the same code runs natively, in the wasmtime
//! harness and inside Envoy.
//!
//! The pieces: SPIFFE IDs and matchers; X.509-SVIDs (leaf rules, and chains
//! checked against trust bundles with pure-Rust cryptography); Envoy's
//! `x-forwarded-client-cert` header; end-user JWTs and JWT-SVIDs; SPIFFE trust
//! bundles with trust-domain aliases; and [`authenticate`], which combines them
//! as an [`AuthnConfig`] says.

#![forbid(unsafe_code)]

mod authn;
mod bundle;
#[cfg(feature = "verify")]
mod crypto;
mod jwt;
mod matcher;
mod pem;
mod spiffe_id;
#[cfg(test)]
#[cfg(feature = "verify")]
mod testing;
mod x509_svid;
mod xfcc;

pub use self::{
    authn::{
        AuthnConfig, AuthnConfigError, ClaimToHeader, ConfigWarning, Denial, EndUserClaims,
        ForwardHeaders, Identity, JwtConfig, JwtProvider, JwtSvid, JwtSvidConfig, MtlsSource,
        PeerFacts, PeerSource, TokenLocation, XFCC_HEADER, XfccSource, authenticate,
    },
    bundle::{BundleError, Jwks, JwtKey, SkippedKey, TrustBundle, TrustBundleSet},
    jwt::{DEFAULT_CLOCK_SKEW_SECS, DEFAULT_MAX_TOKEN_BYTES, JwtError},
    matcher::IdMatcher,
    pem::{MAX_CERTIFICATES, PemError},
    spiffe_id::{MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeId, SpiffeIdError, TrustDomain},
    x509_svid::SvidError,
    xfcc::{MAX_XFCC_ELEMENTS, MAX_XFCC_LEN, TooFewElements, XfccError},
};

/// The parsers beneath [`authenticate`], for the fuzz targets in `fuzz/`
/// only. Not product API: none of them decides anything, and
/// [`peek_jwt`](fuzzing::peek_jwt) in particular verifies nothing.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::{
        jwt::{UnverifiedParts, peek as peek_jwt},
        pem::{
            certificates_from_der_or_pem, certificates_from_pem, certificates_from_url_encoded_pem,
            percent_decode,
        },
        x509_svid::X509Svid,
        xfcc::{XfccElement, XfccKey, parse_xfcc, select_trusted},
    };
}
