//! The configuration: what a peer must be, where its identity comes from,
//! which tokens are checked, and the checks that make a configuration usable.
//!
//! Every type here is built only from JSON that passed those checks: the
//! serde shapes live in the private [`repr`] module and the public types
//! have no unchecked `Deserialize` (nor, being `#[non_exhaustive]`, struct
//! literals outside this crate). [`AuthnConfig::from_json`] and serde's
//! `Deserialize` for [`AuthnConfig`] run the same conversion, so the same JSON
//! always gives the same configuration or the same refusal.

use std::fmt;

use crate::bundle::{BundleError, Jwks, SkippedKey, TrustBundleSet};
use crate::matcher::IdMatcher;
use crate::spiffe_id::TrustDomain;

mod repr;

/// Where the peer's identity comes from.
///
/// In JSON: `"mtls"`, `{"mtls": {...}}` or `{"xfcc": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerSource {
    /// The client certificate of the mTLS connection the proxy terminated.
    Mtls(MtlsSource),
    /// The `x-forwarded-client-cert` header set by trusted front proxies.
    Xfcc(XfccSource),
}

/// Options of the mTLS source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtlsSource {
    /// Also read `connection.peer_certificate` and enforce the X.509-SVID
    /// leaf rules and validity window on it (Envoy's TLS stack has verified
    /// the chain, but not the SPIFFE rules such as "exactly one URI SAN").
    pub validate_certificate: bool,
    /// Tolerance for the certificate's validity window, in seconds.
    pub clock_skew_secs: u64,
}

/// Options of the XFCC source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct XfccSource {
    /// How many proxies in front of this one append to the header and are
    /// trusted; the identity is the element `trusted_hops` from the right.
    /// At least 1.
    pub trusted_hops: usize,
    /// Verify the element's `Cert` (and `Chain`) against `trust_bundles`,
    /// for when no TLS stack verified the client. Implies `require_cert`.
    pub verify_chain: bool,
    /// Require a `Cert` and take the identity from it (the X.509-SVID rules
    /// apply); without this a lone `URI` is accepted.
    pub require_cert: bool,
    /// The connection's own mTLS peer (the nearest proxy) must match one of
    /// these: only those proxies can assert XFCC. Never empty; a
    /// configuration that reads XFCC without it is refused, since otherwise
    /// any client that reaches the listener could name any identity.
    pub trusted_proxies: Vec<IdMatcher>,
    /// Tolerance for certificate validity windows, in seconds.
    pub clock_skew_secs: u64,
}

/// Where a token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenLocation {
    /// The request header: a lowercase HTTP token, compared
    /// case-insensitively with the request's header names.
    pub name: String,
    /// A prefix to strip, compared case-insensitively (`"Bearer "`); the
    /// header without it holds no token for this rule. Empty for none.
    pub prefix: String,
}

/// A claim to copy into a request header after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimToHeader {
    /// The claim name.
    pub claim: String,
    /// The header to set: a lowercase HTTP token that is neither XFCC nor
    /// one of the [`ForwardHeaders`].
    pub header: String,
}

/// One issuer of end-user JWTs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwtProvider {
    /// The exact `iss` value.
    pub issuer: String,
    /// If present (then never empty), `aud` must name one of these; absent,
    /// `aud` is not checked.
    pub audiences: Option<Vec<String>>,
    /// The issuer's public keys, inline; at least one usable.
    pub jwks: Jwks,
    /// Where the token is.
    pub from_header: TokenLocation,
    /// Tolerance for `exp` and `nbf`, in seconds.
    pub clock_skew_secs: u64,
    /// Claims that must be present (and not null). `exp` always is.
    pub required_claims: Vec<String>,
    /// Claims copied into request headers.
    pub claims_to_headers: Vec<ClaimToHeader>,
    /// Longer tokens are refused unread. At least 1.
    pub max_token_bytes: usize,
}

/// End-user JWT rules.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The accepted issuers, never empty; a token is checked against the
    /// provider whose `issuer` equals its `iss`.
    pub providers: Vec<JwtProvider>,
    /// Whether a request without a token is denied. Default `true`.
    pub required: bool,
}

/// JWT-SVID rules; keys come from the `jwt-svid` keys of the trust bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtSvidConfig {
    /// `aud` must name one of these. Never empty.
    pub audiences: Vec<String>,
    /// Where the token is; never a header an end-user JWT rule reads.
    pub from_header: TokenLocation,
    /// Whether a request without a JWT-SVID is denied. Default `true`.
    pub required: bool,
    /// If present (then never empty), the JWT-SVID's subject must match one
    /// of these.
    pub allowed_ids: Option<Vec<IdMatcher>>,
    /// Tolerance for `exp` and `nbf`, in seconds.
    pub clock_skew_secs: u64,
    /// Longer tokens are refused unread. At least 1.
    pub max_token_bytes: usize,
}

/// The request headers in which the identity filter hands what it verified
/// to later filters (meshward's authorization filter, or the application).
/// Client-supplied copies are always removed first.
///
/// Deserialising one runs [`ForwardHeaders::check`]: both names are
/// lowercase HTTP tokens, distinct, and not XFCC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "repr::ForwardHeadersRepr")]
#[non_exhaustive]
pub struct ForwardHeaders {
    /// The verified peer SPIFFE ID.
    pub peer_id: String,
    /// The verified end-user JWT claims, as unpadded base64url JSON.
    pub jwt_claims: String,
}

impl Default for ForwardHeaders {
    fn default() -> Self {
        Self {
            peer_id: repr::default_peer_id_header(),
            jwt_claims: repr::default_jwt_claims_header(),
        }
    }
}

impl ForwardHeaders {
    /// Checks both names, as the identity and authorization filters must
    /// agree on them. A value this crate built always passes.
    pub fn check(&self) -> Result<(), AuthnConfigError> {
        repr::check_header_name(&self.peer_id)?;
        repr::check_header_name(&self.jwt_claims)?;
        if self.peer_id == self.jwt_claims {
            return Err(AuthnConfigError::BadHeaderName(self.peer_id.clone()));
        }
        Ok(())
    }
}

/// What a peer must be to be let through.
///
/// Built only from JSON, by [`AuthnConfig::from_json`] or serde (the same
/// checks either way): unknown fields are an error so a misspelt rule is
/// never silently ignored, and every rule that could not be enforced as
/// written is refused. The fields are read-only, so a checked configuration
/// stays checked.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "repr::AuthnConfigRepr")]
pub struct AuthnConfig {
    pub(super) source: PeerSource,
    pub(super) allowed_trust_domains: Vec<TrustDomain>,
    pub(super) allowed_ids: Option<Vec<IdMatcher>>,
    pub(super) bundles: TrustBundleSet,
    pub(super) jwt: Option<JwtConfig>,
    pub(super) jwt_svid: Option<JwtSvidConfig>,
    pub(super) forward: ForwardHeaders,
    warnings: Vec<ConfigWarning>,
}

/// Something in an accepted configuration the operator should know about:
/// today, a key that was skipped because meshward cannot use it. The
/// configuration works without it; a filter should log it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// Where the key set is in the configuration, e.g.
    /// `trust_bundles.example.org` or `jwt.providers[0]`.
    pub key_set: String,
    /// The key and why it was skipped.
    pub key: SkippedKey,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: skipped {}", self.key_set, self.key)
    }
}

/// Why an [`AuthnConfig`] was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnConfigError {
    /// Not JSON, or not the expected shape.
    #[error("invalid configuration: {0}")]
    Json(#[from] serde_json::Error),
    /// `allowed_trust_domains` is empty.
    #[error("`allowed_trust_domains` must name at least one trust domain")]
    NoTrustDomains,
    /// `allowed_ids` is present but empty.
    #[error("`allowed_ids` is empty; omit it to admit every ID in the allowed trust domains")]
    EmptyAllowedIds,
    /// `trusted_hops` is 0.
    #[error("`trusted_hops` must be at least 1")]
    ZeroTrustedHops,
    /// The XFCC source without `trusted_proxies`.
    #[error(
        "`source.xfcc.trusted_proxies` is required: without it any client that reaches the listener can set `x-forwarded-client-cert`"
    )]
    XfccWithoutTrustedProxies,
    /// A check needs bundles and there are none.
    #[error("`{0}` needs `trust_bundles`")]
    NoTrustBundles(&'static str),
    /// A key set with no usable key, or otherwise unusable as a whole.
    #[error("`{0}`: {1}")]
    KeySet(String, BundleError),
    /// An alias whose target is not allowed, or that is itself allowed or
    /// an alias target.
    #[error(
        "trust domain alias `{0}` must point to an allowed trust domain and be neither allowed nor aliased itself"
    )]
    BadAlias(String),
    /// A list that must not be empty is.
    #[error("`{0}` must not be empty")]
    EmptyList(&'static str),
    /// A header name that is not a lowercase HTTP token, or a reserved one.
    #[error("`{0}` is not a usable header name")]
    BadHeaderName(String),
    /// End-user JWTs and JWT-SVIDs read from the same header.
    #[error("`jwt` and `jwt_svid` both read header `{0}`")]
    SharedTokenHeader(String),
    /// `max_token_bytes` is 0.
    #[error("`max_token_bytes` must be at least 1")]
    ZeroMaxTokenBytes,
    /// A check this build leaves out (the `verify` feature is off: the
    /// `meshward_mtls_filter.wasm` module).
    #[error(
        "`{0}` needs certificate or token verification, which this build of meshward leaves out (the mTLS-only module): use the full module"
    )]
    NotBuiltIn(&'static str),
}

impl AuthnConfig {
    /// Parses and checks the JSON configuration. Keys that cannot be used
    /// are skipped and listed in [`AuthnConfig::warnings`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthnConfigError> {
        let repr: repr::AuthnConfigRepr = serde_json::from_slice(bytes)?;
        Self::try_from(repr)
    }

    /// Where the identity comes from.
    pub fn source(&self) -> &PeerSource {
        &self.source
    }

    /// Trust domains whose workloads may connect; never empty.
    pub fn allowed_trust_domains(&self) -> &[TrustDomain] {
        &self.allowed_trust_domains
    }

    /// If present (then never empty), the peer must also match one of
    /// these; absent admits every ID in an allowed trust domain.
    pub fn allowed_ids(&self) -> Option<&[IdMatcher]> {
        self.allowed_ids.as_deref()
    }

    /// The trust bundles and trust-domain aliases. Every alias points to an
    /// allowed trust domain and is neither allowed nor an alias target.
    pub fn trust_bundles(&self) -> &TrustBundleSet {
        &self.bundles
    }

    /// End-user JWT rules, if configured.
    pub fn jwt(&self) -> Option<&JwtConfig> {
        self.jwt.as_ref()
    }

    /// JWT-SVID rules, if configured.
    pub fn jwt_svid(&self) -> Option<&JwtSvidConfig> {
        self.jwt_svid.as_ref()
    }

    /// Where the verified identity and claims are passed on.
    pub fn forward(&self) -> &ForwardHeaders {
        &self.forward
    }

    /// What the operator should know about this configuration (keys that
    /// were skipped), for the filter to log once when it loads.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The request headers the host must hand over in
    /// [`PeerFacts::headers`](super::PeerFacts::headers), lowercase, without
    /// duplicates.
    pub fn request_headers(&self) -> Vec<String> {
        let mut names = Vec::new();
        if matches!(self.source, PeerSource::Xfcc(_)) {
            names.push(super::XFCC_HEADER.to_owned());
        }
        if let Some(j) = &self.jwt {
            names.extend(
                j.providers
                    .iter()
                    .map(|p| p.from_header.name.to_ascii_lowercase()),
            );
        }
        if let Some(s) = &self.jwt_svid {
            names.push(s.from_header.name.to_ascii_lowercase());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Whether the host must hand over `connection.peer_certificate`.
    pub fn needs_peer_certificate(&self) -> bool {
        matches!(&self.source, PeerSource::Mtls(m) if m.validate_certificate)
    }
}
