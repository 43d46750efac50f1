//! Peer authentication: from what the proxy knows about a connection and a
//! request to a verified [`Identity`], or to a [`Denial`] that says why not.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::bundle::{Jwks, TrustBundle, TrustBundleSet};
use crate::jwt::{self, ClaimRules, JwtError};
use crate::matcher::IdMatcher;
use crate::pem;
use crate::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};
use crate::x509_svid::{SvidError, X509Svid};
use crate::xfcc::{self, TooFewElements, XfccError, XfccKey};

/// The request header Envoy uses for forwarded client certificates.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

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

impl Default for PeerSource {
    fn default() -> Self {
        Self::Mtls(MtlsSource::default())
    }
}

/// Options of the mTLS source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsSource {
    /// Also read `connection.peer_certificate` and enforce the X.509-SVID
    /// leaf rules and validity window on it (Envoy's TLS stack has verified
    /// the chain, but not the SPIFFE rules such as "exactly one URI SAN").
    #[serde(default)]
    pub validate_certificate: bool,
    /// Tolerance for the certificate's validity window, in seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
}

impl Default for MtlsSource {
    fn default() -> Self {
        Self {
            validate_certificate: false,
            clock_skew_secs: jwt::DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Options of the XFCC source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfccSource {
    /// How many proxies in front of this one append to the header and are
    /// trusted; the identity is the element `trusted_hops` from the right
    /// (see [`select_trusted`](crate::select_trusted)). At least 1.
    pub trusted_hops: usize,
    /// Verify the element's `Cert` (and `Chain`) against `trust_bundles`,
    /// for when no TLS stack verified the client. Implies `require_cert`.
    #[serde(default)]
    pub verify_chain: bool,
    /// Require a `Cert` and take the identity from it (the X.509-SVID rules
    /// apply); without this a lone `URI` is accepted.
    #[serde(default)]
    pub require_cert: bool,
    /// If present, the connection's own mTLS peer (the nearest proxy) must
    /// match one of these, so that only those proxies can assert XFCC.
    #[serde(default)]
    pub trusted_proxies: Option<Vec<IdMatcher>>,
    /// Tolerance for certificate validity windows, in seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
}

/// Where a token is read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLocation {
    /// The request header, case-insensitive.
    #[serde(default = "default_token_header")]
    pub name: String,
    /// A prefix to strip, compared case-insensitively (`"Bearer "`); the
    /// header without it holds no token for this rule. Empty for none.
    #[serde(default = "default_token_prefix")]
    pub prefix: String,
}

impl Default for TokenLocation {
    fn default() -> Self {
        Self {
            name: default_token_header(),
            prefix: default_token_prefix(),
        }
    }
}

/// A claim to copy into a request header after verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The claim name.
    pub claim: String,
    /// The header to set.
    pub header: String,
}

/// One issuer of end-user JWTs.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    /// The exact `iss` value.
    pub issuer: String,
    /// If present, `aud` must name one of these; absent, `aud` is not
    /// checked; present and empty is a configuration error.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// The issuer's public keys, inline.
    pub jwks: Jwks,
    /// Where the token is.
    #[serde(default)]
    pub from_header: TokenLocation,
    /// Tolerance for `exp` and `nbf`, in seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Claims that must be present (and not null). `exp` always is.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claims copied into request headers.
    #[serde(default)]
    pub claims_to_headers: Vec<ClaimToHeader>,
    /// Longer tokens are refused unread.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
}

/// End-user JWT rules.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The accepted issuers; a token is checked against the provider whose
    /// `issuer` equals its `iss`.
    pub providers: Vec<JwtProvider>,
    /// Whether a request without a token is denied. Default `true`.
    #[serde(default = "yes")]
    pub required: bool,
}

/// JWT-SVID rules; keys come from the `jwt-svid` keys of `trust_bundles`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSvidConfig {
    /// `aud` must name one of these. Required and non-empty.
    pub audiences: Vec<String>,
    /// Where the token is.
    #[serde(default)]
    pub from_header: TokenLocation,
    /// Whether a request without a JWT-SVID is denied. Default `true`.
    #[serde(default = "yes")]
    pub required: bool,
    /// If present, the JWT-SVID's subject must match one of these.
    #[serde(default)]
    pub allowed_ids: Option<Vec<IdMatcher>>,
    /// Tolerance for `exp` and `nbf`, in seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Longer tokens are refused unread.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
}

/// The request headers in which the identity filter hands what it verified
/// to later filters (meshward's authorization filter, or the application).
/// Client-supplied copies are always removed first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardHeaders {
    /// The verified peer SPIFFE ID.
    #[serde(default = "default_peer_id_header")]
    pub peer_id: String,
    /// The verified end-user JWT claims, as unpadded base64url JSON.
    #[serde(default = "default_jwt_claims_header")]
    pub jwt_claims: String,
}

impl Default for ForwardHeaders {
    fn default() -> Self {
        Self {
            peer_id: default_peer_id_header(),
            jwt_claims: default_jwt_claims_header(),
        }
    }
}

impl ForwardHeaders {
    /// Checks both names, as the identity and authorization filters must
    /// agree on them.
    pub fn check(&self) -> Result<(), AuthnConfigError> {
        check_header_name(&self.peer_id)?;
        check_header_name(&self.jwt_claims)?;
        if self.peer_id == self.jwt_claims {
            return Err(AuthnConfigError::BadHeaderName(self.peer_id.clone()));
        }
        Ok(())
    }
}

fn default_peer_id_header() -> String {
    "x-meshward-peer-id".to_owned()
}

fn default_jwt_claims_header() -> String {
    "x-meshward-jwt-claims".to_owned()
}

/// What a peer must be to be let through.
///
/// Read from the filter's JSON plugin configuration; unknown fields are an
/// error so a misspelt rule is never silently ignored.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthnConfig {
    /// Where the identity comes from.
    #[serde(default)]
    pub source: PeerSource,
    /// Trust domains whose workloads may connect. Required and non-empty.
    pub allowed_trust_domains: Vec<TrustDomain>,
    /// If present, the peer must also match one of these. Absent means every
    /// ID in an allowed trust domain; present and empty is refused as a
    /// configuration error rather than read as "allow all" or "deny all".
    #[serde(default)]
    pub allowed_ids: Option<Vec<IdMatcher>>,
    /// Alias trust domain to canonical trust domain. IDs in an alias are
    /// rewritten into the canonical trust domain (same path) before any rule
    /// sees them; see [`TrustBundleSet`]. The canonical one must be allowed.
    #[serde(default)]
    pub trust_domain_aliases: BTreeMap<TrustDomain, TrustDomain>,
    /// SPIFFE bundles (JWKS form) by trust domain, for XFCC chain checks
    /// and JWT-SVIDs.
    #[serde(default)]
    pub trust_bundles: BTreeMap<TrustDomain, TrustBundle>,
    /// End-user JWT rules.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// JWT-SVID rules.
    #[serde(default)]
    pub jwt_svid: Option<JwtSvidConfig>,
    /// Where the verified identity and claims are passed on.
    #[serde(default)]
    pub forward: ForwardHeaders,
    #[serde(skip)]
    bundles: TrustBundleSet,
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
    /// A check needs bundles and there are none.
    #[error("`{0}` needs `trust_bundles`")]
    NoTrustBundles(&'static str),
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
}

impl AuthnConfig {
    /// Parses and checks the JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthnConfigError> {
        let mut config: Self = serde_json::from_slice(bytes)?;
        config.check()?;
        config.bundles = TrustBundleSet::new(
            config.trust_bundles.clone(),
            config.trust_domain_aliases.clone(),
        );
        Ok(config)
    }

    /// The request headers the host must hand over in
    /// [`PeerFacts::headers`], lowercase, without duplicates.
    pub fn request_headers(&self) -> Vec<String> {
        let mut names = Vec::new();
        if matches!(self.source, PeerSource::Xfcc(_)) {
            names.push(XFCC_HEADER.to_owned());
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

    fn check(&self) -> Result<(), AuthnConfigError> {
        self.forward.check()?;
        if self.allowed_trust_domains.is_empty() {
            return Err(AuthnConfigError::NoTrustDomains);
        }
        if self.allowed_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthnConfigError::EmptyAllowedIds);
        }
        for (alias, target) in &self.trust_domain_aliases {
            if !self.allowed_trust_domains.contains(target)
                || self.allowed_trust_domains.contains(alias)
                || self.trust_domain_aliases.contains_key(target)
            {
                return Err(AuthnConfigError::BadAlias(alias.to_string()));
            }
        }
        if let PeerSource::Xfcc(x) = &self.source {
            if x.trusted_hops == 0 {
                return Err(AuthnConfigError::ZeroTrustedHops);
            }
            if x.verify_chain && self.trust_bundles.is_empty() {
                return Err(AuthnConfigError::NoTrustBundles("verify_chain"));
            }
            if x.trusted_proxies.as_ref().is_some_and(Vec::is_empty) {
                return Err(AuthnConfigError::EmptyList("trusted_proxies"));
            }
        }
        if let Some(j) = &self.jwt {
            if j.providers.is_empty() {
                return Err(AuthnConfigError::EmptyList("jwt.providers"));
            }
            for p in &j.providers {
                if p.audiences.as_ref().is_some_and(Vec::is_empty) {
                    return Err(AuthnConfigError::EmptyList("audiences"));
                }
                if p.max_token_bytes == 0 {
                    return Err(AuthnConfigError::ZeroMaxTokenBytes);
                }
                check_header_name(&p.from_header.name)?;
                for c in &p.claims_to_headers {
                    check_header_name(&c.header)?;
                    // A claim must not overwrite the verified identity.
                    if c.header == self.forward.peer_id || c.header == self.forward.jwt_claims {
                        return Err(AuthnConfigError::BadHeaderName(c.header.clone()));
                    }
                }
            }
        }
        if let Some(s) = &self.jwt_svid {
            if s.audiences.is_empty() {
                return Err(AuthnConfigError::EmptyList("jwt_svid.audiences"));
            }
            if s.allowed_ids.as_ref().is_some_and(Vec::is_empty) {
                return Err(AuthnConfigError::EmptyList("jwt_svid.allowed_ids"));
            }
            if s.max_token_bytes == 0 {
                return Err(AuthnConfigError::ZeroMaxTokenBytes);
            }
            if self.trust_bundles.is_empty() {
                return Err(AuthnConfigError::NoTrustBundles("jwt_svid"));
            }
            check_header_name(&s.from_header.name)?;
            if let Some(j) = &self.jwt
                && j.providers
                    .iter()
                    .any(|p| p.from_header.name.eq_ignore_ascii_case(&s.from_header.name))
            {
                return Err(AuthnConfigError::SharedTokenHeader(
                    s.from_header.name.clone(),
                ));
            }
        }
        Ok(())
    }
}

fn check_header_name(name: &str) -> Result<(), AuthnConfigError> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    // Pseudo-headers and the XFCC header itself are never ours to set or read
    // as tokens.
    if !token || name == XFCC_HEADER {
        return Err(AuthnConfigError::BadHeaderName(name.to_owned()));
    }
    Ok(())
}

impl<'de> serde::Deserialize<'de> for PeerSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        match value {
            Value::String(s) if s == "mtls" => Ok(Self::default()),
            Value::Object(map) if map.len() == 1 => {
                let Some((kind, inner)) = map.into_iter().next() else {
                    return Err(D::Error::custom("empty `source`"));
                };
                match kind.as_str() {
                    "mtls" => serde_json::from_value(inner)
                        .map(Self::Mtls)
                        .map_err(|e| D::Error::custom(format!("`source.mtls`: {e}"))),
                    "xfcc" => serde_json::from_value(inner)
                        .map(Self::Xfcc)
                        .map_err(|e| D::Error::custom(format!("`source.xfcc`: {e}"))),
                    other => Err(D::Error::custom(format!(
                        "unknown source `{other}`, expected `mtls` or `xfcc`"
                    ))),
                }
            }
            other => Err(D::Error::custom(format!(
                "`source` must be `\"mtls\"`, `{{\"mtls\": {{...}}}}` or `{{\"xfcc\": {{...}}}}`, not `{other}`"
            ))),
        }
    }
}

/// What the host said about the connection and the request, as raw values.
///
/// `None` means the host had no such property.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFacts {
    /// `connection.mtls`: one byte, non-zero when the peer presented a
    /// certificate the proxy verified.
    pub mtls: Option<Vec<u8>>,
    /// `connection.uri_san_peer_certificate`: the first URI SAN of the peer
    /// certificate.
    pub uri_san: Option<Vec<u8>>,
    /// `connection.peer_certificate`: the leaf as PEM text. Needed only
    /// when [`AuthnConfig::needs_peer_certificate`].
    pub peer_certificate: Option<Vec<u8>>,
    /// The request headers named by [`AuthnConfig::request_headers`], as
    /// (name, value) pairs, one pair per occurrence. Names compare
    /// case-insensitively.
    pub headers: Vec<(String, String)>,
}

impl PeerFacts {
    /// The single value of a header; two occurrences of a header that
    /// carries a credential are refused rather than guessed between.
    fn header(&self, name: &str) -> Result<Option<&str>, Denial> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        if found.next().is_some() {
            return Err(Denial::DuplicateHeader(name.to_owned()));
        }
        Ok(first)
    }
}

/// A verified JWT-SVID.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSvid {
    /// The subject, in its canonical trust domain.
    pub id: SpiffeId,
    /// The verified claims.
    pub claims: Map<String, Value>,
}

/// A verified end-user JWT.
#[derive(Debug, Clone, PartialEq)]
pub struct EndUserClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`, if it is a string.
    pub subject: Option<String>,
    /// The verified claims.
    pub claims: Map<String, Value>,
}

/// Who the peer is, beyond doubt.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The peer workload, in its canonical trust domain (after aliases).
    pub peer: SpiffeId,
    /// The peer's ID as presented, before alias rewriting.
    pub presented_peer: SpiffeId,
    /// The JWT-SVID, when configured and present.
    pub jwt_svid: Option<JwtSvid>,
    /// The end-user token, when configured and present.
    pub end_user: Option<EndUserClaims>,
    /// Request headers to remove before setting `headers_to_set`: every
    /// header any `claims_to_headers` rule writes, so a client cannot supply
    /// one itself when the claim is absent or another issuer's rule applied.
    pub headers_to_remove: Vec<String>,
    /// Request headers to set, from `claims_to_headers`, in order.
    pub headers_to_set: Vec<(String, String)>,
}

/// Why a request was not let through. Every variant is a denial: there is no
/// "unknown" that could be mistaken for an allow. The enum is exhaustive on
/// purpose: a new deny path must break every `match` on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The connection is not mTLS, the peer certificate has no URI SAN, or
    /// (XFCC source) there is no XFCC header.
    NoPeerIdentity,
    /// The peer's URI SAN, or the XFCC `URI`, is not a valid SPIFFE ID.
    MalformedPeerId(SpiffeIdError),
    /// The peer certificate breaks an X.509-SVID rule, is outside its
    /// validity window, or does not chain to its trust bundle.
    InvalidPeerCertificate(SvidError),
    /// The peer certificate's SPIFFE ID differs from the URI SAN the host
    /// reported, or from the XFCC element's `URI`.
    PeerCertificateMismatch(SpiffeId),
    /// The XFCC header could not be parsed.
    MalformedXfcc(XfccError),
    /// The XFCC header has fewer elements than there are trusted hops.
    XfccTooFewElements(TooFewElements),
    /// The trusted XFCC element has no `URI`, or several.
    XfccNoSingleUri(usize),
    /// The connection's peer is not one of the proxies trusted to set XFCC.
    UntrustedProxy(Option<SpiffeId>),
    /// A header that carries a credential appears more than once.
    DuplicateHeader(String),
    /// The peer is in a trust domain that is not allowed.
    TrustDomainNotAllowed(SpiffeId),
    /// The peer's trust domain is allowed but the ID matches no rule.
    IdNotAllowed(SpiffeId),
    /// An end-user JWT is required and there is none.
    MissingJwt,
    /// The end-user JWT was refused.
    InvalidJwt(JwtError),
    /// A JWT-SVID is required and there is none.
    MissingJwtSvid,
    /// The JWT-SVID was refused.
    InvalidJwtSvid(JwtError),
    /// The JWT-SVID's subject is not in an allowed trust domain or matches
    /// no `jwt_svid.allowed_ids` rule.
    JwtSvidNotAllowed(SpiffeId),
}

impl Denial {
    /// A short, stable, machine-readable reason, safe to show the client.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoPeerIdentity => "no_peer_identity",
            Self::MalformedPeerId(_) => "malformed_peer_id",
            Self::InvalidPeerCertificate(e) => e.code(),
            Self::PeerCertificateMismatch(_) => "peer_certificate_mismatch",
            Self::MalformedXfcc(_) => "malformed_xfcc",
            Self::XfccTooFewElements(_) => "xfcc_too_few_elements",
            Self::XfccNoSingleUri(_) => "xfcc_no_single_uri",
            Self::UntrustedProxy(_) => "untrusted_proxy",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::TrustDomainNotAllowed(_) => "trust_domain_not_allowed",
            Self::IdNotAllowed(_) => "peer_id_not_allowed",
            Self::MissingJwt => "jwt_missing",
            Self::InvalidJwt(e) => e.code(),
            Self::MissingJwtSvid => "jwt_svid_missing",
            Self::InvalidJwtSvid(e) => e.svid_code(),
            Self::JwtSvidNotAllowed(_) => "jwt_svid_not_allowed",
        }
    }

    /// The peer's ID, when one was read.
    pub fn peer(&self) -> Option<&SpiffeId> {
        match self {
            Self::TrustDomainNotAllowed(id)
            | Self::IdNotAllowed(id)
            | Self::PeerCertificateMismatch(id) => Some(id),
            Self::UntrustedProxy(id) => id.as_ref(),
            Self::NoPeerIdentity
            | Self::MalformedPeerId(_)
            | Self::InvalidPeerCertificate(_)
            | Self::MalformedXfcc(_)
            | Self::XfccTooFewElements(_)
            | Self::XfccNoSingleUri(_)
            | Self::DuplicateHeader(_)
            | Self::MissingJwt
            | Self::InvalidJwt(_)
            | Self::MissingJwtSvid
            | Self::InvalidJwtSvid(_)
            | Self::JwtSvidNotAllowed(_) => None,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPeerIdentity => f.write_str("the peer presented no identity"),
            Self::MalformedPeerId(e) => write!(f, "the peer's URI SAN is not a SPIFFE ID: {e}"),
            Self::InvalidPeerCertificate(e) => write!(f, "the peer certificate is refused: {e}"),
            Self::PeerCertificateMismatch(id) => write!(
                f,
                "the peer certificate names `{id}`, which differs from the reported URI SAN"
            ),
            Self::MalformedXfcc(e) => write!(f, "{e}"),
            Self::XfccTooFewElements(e) => write!(f, "{e}"),
            Self::XfccNoSingleUri(n) => write!(
                f,
                "the trusted `x-forwarded-client-cert` element has {n} `URI` values, not one"
            ),
            Self::UntrustedProxy(Some(id)) => {
                write!(f, "`{id}` is not trusted to set `x-forwarded-client-cert`")
            }
            Self::UntrustedProxy(None) => {
                f.write_str("an unauthenticated peer may not set `x-forwarded-client-cert`")
            }
            Self::DuplicateHeader(h) => write!(f, "header `{h}` appears more than once"),
            Self::TrustDomainNotAllowed(id) => {
                write!(
                    f,
                    "trust domain `{}` is not allowed",
                    id.trust_domain_name()
                )
            }
            Self::IdNotAllowed(id) => write!(f, "`{id}` matches no allowed ID"),
            Self::MissingJwt => f.write_str("a JWT is required"),
            Self::InvalidJwt(e) => write!(f, "the JWT is refused: {e}"),
            Self::MissingJwtSvid => f.write_str("a JWT-SVID is required"),
            Self::InvalidJwtSvid(e) => write!(f, "the JWT-SVID is refused: {e}"),
            Self::JwtSvidNotAllowed(id) => write!(f, "JWT-SVID subject `{id}` is not allowed"),
        }
    }
}

/// Establishes and checks the peer's identity, and the tokens the
/// configuration asks for, at `now_unix_secs` (the host's clock; this crate
/// never reads one).
pub fn authenticate(
    config: &AuthnConfig,
    facts: &PeerFacts,
    now_unix_secs: i64,
) -> Result<Identity, Denial> {
    let presented = match &config.source {
        PeerSource::Mtls(m) => peer_from_mtls(m, facts, now_unix_secs)?,
        PeerSource::Xfcc(x) => peer_from_xfcc(config, x, facts, now_unix_secs)?,
    };
    let peer = canonical(&config.bundles, &presented);
    if !config.allowed_trust_domains.contains(&peer.trust_domain()) {
        return Err(Denial::TrustDomainNotAllowed(peer));
    }
    if let Some(rules) = &config.allowed_ids
        && !rules.iter().any(|m| m.matches(&peer))
    {
        return Err(Denial::IdNotAllowed(peer));
    }
    let jwt_svid = match &config.jwt_svid {
        Some(c) => check_jwt_svid(config, c, facts, now_unix_secs)?,
        None => None,
    };
    let mut headers_to_set = Vec::new();
    let end_user = match &config.jwt {
        Some(c) => check_end_user(c, facts, now_unix_secs, &mut headers_to_set)?,
        None => None,
    };
    let mut headers_to_remove: Vec<String> = config
        .jwt
        .iter()
        .flat_map(|j| &j.providers)
        .flat_map(|p| &p.claims_to_headers)
        .map(|c| c.header.clone())
        .collect();
    headers_to_remove.sort();
    headers_to_remove.dedup();
    Ok(Identity {
        peer,
        presented_peer: presented,
        jwt_svid,
        end_user,
        headers_to_remove,
        headers_to_set,
    })
}

/// The ID with an alias trust domain replaced by its canonical one.
fn canonical(bundles: &TrustBundleSet, id: &SpiffeId) -> SpiffeId {
    let td = id.trust_domain();
    let canon = bundles.canonical(&td);
    if *canon == td {
        return id.clone();
    }
    // Both halves were valid, so the joined ID is; fall back to the
    // presented one rather than panic if that ever stops being true.
    SpiffeId::parse(&format!("spiffe://{canon}{}", id.path())).unwrap_or_else(|_| id.clone())
}

fn mtls_peer(facts: &PeerFacts) -> Option<Result<SpiffeId, Denial>> {
    // Envoy sets `connection.mtls` only when a client certificate was
    // presented and verified; anything but a single non-zero byte is treated
    // as "no".
    let mtls = matches!(facts.mtls.as_deref(), Some([b]) if *b != 0);
    let san = facts.uri_san.as_deref().filter(|s| !s.is_empty());
    match (mtls, san) {
        (true, Some(san)) => Some(SpiffeId::from_bytes(san).map_err(Denial::MalformedPeerId)),
        _ => None,
    }
}

fn peer_from_mtls(m: &MtlsSource, facts: &PeerFacts, now: i64) -> Result<SpiffeId, Denial> {
    let id = mtls_peer(facts).ok_or(Denial::NoPeerIdentity)??;
    if m.validate_certificate {
        let pem = facts
            .peer_certificate
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or(Denial::NoPeerIdentity)?;
        let svid = X509Svid::from_pem(pem).map_err(Denial::InvalidPeerCertificate)?;
        svid.check_time(now, m.clock_skew_secs)
            .map_err(Denial::InvalidPeerCertificate)?;
        if *svid.id() != id {
            return Err(Denial::PeerCertificateMismatch(svid.id().clone()));
        }
    }
    Ok(id)
}

fn peer_from_xfcc(
    config: &AuthnConfig,
    x: &XfccSource,
    facts: &PeerFacts,
    now: i64,
) -> Result<SpiffeId, Denial> {
    if let Some(proxies) = &x.trusted_proxies {
        match mtls_peer(facts) {
            Some(Ok(proxy)) if proxies.iter().any(|m| m.matches(&proxy)) => {}
            Some(Ok(proxy)) => return Err(Denial::UntrustedProxy(Some(proxy))),
            Some(Err(_)) | None => return Err(Denial::UntrustedProxy(None)),
        }
    }
    let header = facts.header(XFCC_HEADER)?.ok_or(Denial::NoPeerIdentity)?;
    let elements = xfcc::parse_xfcc(header).map_err(Denial::MalformedXfcc)?;
    let element =
        xfcc::select_trusted(&elements, x.trusted_hops).map_err(Denial::XfccTooFewElements)?;
    let uris: Vec<&str> = element.get_all(XfccKey::Uri).collect();
    let uri_id = match uris.as_slice() {
        [] => None,
        [one] => Some(SpiffeId::parse(one).map_err(Denial::MalformedPeerId)?),
        many => return Err(Denial::XfccNoSingleUri(many.len())),
    };
    let cert = element.get(XfccKey::Cert).filter(|c| !c.is_empty());
    let Some(cert) = cert else {
        if x.require_cert || x.verify_chain {
            return Err(Denial::InvalidPeerCertificate(SvidError::Pem(
                pem::PemError::Empty,
            )));
        }
        return uri_id.ok_or(Denial::XfccNoSingleUri(0));
    };
    let svid = X509Svid::from_url_encoded_pem(cert).map_err(Denial::InvalidPeerCertificate)?;
    svid.check_time(now, x.clock_skew_secs)
        .map_err(Denial::InvalidPeerCertificate)?;
    if uri_id.as_ref().is_some_and(|u| u != svid.id()) {
        return Err(Denial::PeerCertificateMismatch(svid.id().clone()));
    }
    if x.verify_chain {
        let chain = match element.get(XfccKey::Chain).filter(|c| !c.is_empty()) {
            Some(c) => pem::certificates_from_url_encoded_pem(c)
                .map_err(|e| Denial::InvalidPeerCertificate(SvidError::Pem(e)))?,
            None => Vec::new(),
        };
        let td = svid.id().trust_domain();
        let authorities = config
            .bundles
            .bundle_for(&td)
            .map(TrustBundle::x509_authorities)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Denial::InvalidPeerCertificate(SvidError::NoTrustBundle(td.to_string()))
            })?;
        svid.verify_chain(&chain, authorities, now, x.clock_skew_secs)
            .map_err(Denial::InvalidPeerCertificate)?;
    }
    Ok(svid.id().clone())
}

/// The token in `loc`, if the header is there with the prefix.
fn token_at<'a>(facts: &'a PeerFacts, loc: &TokenLocation) -> Result<Option<&'a str>, Denial> {
    let Some(value) = facts.header(&loc.name)? else {
        return Ok(None);
    };
    let n = loc.prefix.len();
    let token = match value.get(..n) {
        Some(p) if p.eq_ignore_ascii_case(&loc.prefix) => value.get(n..).unwrap_or_default(),
        _ => return Ok(None),
    };
    let token = token.trim();
    Ok((!token.is_empty()).then_some(token))
}

fn check_jwt_svid(
    config: &AuthnConfig,
    c: &JwtSvidConfig,
    facts: &PeerFacts,
    now: i64,
) -> Result<Option<JwtSvid>, Denial> {
    let Some(token) = token_at(facts, &c.from_header)? else {
        return if c.required {
            Err(Denial::MissingJwtSvid)
        } else {
            Ok(None)
        };
    };
    let parts = jwt::peek(token, c.max_token_bytes).map_err(Denial::InvalidJwtSvid)?;
    // The unverified `sub` only chooses which trust domain's keys to try; a
    // token whose signature then verifies under that domain's key is bound
    // to that domain.
    let sub = parts
        .subject()
        .ok_or_else(|| Denial::InvalidJwtSvid(JwtError::MissingClaim("sub".into())))?;
    let sub = SpiffeId::parse(sub)
        .map_err(|e| Denial::InvalidJwtSvid(JwtError::SubjectNotSpiffeId(e)))?;
    let td = sub.trust_domain();
    let bundle = config
        .bundles
        .bundle_for(&td)
        .filter(|b| !b.jwt_authorities().is_empty())
        .ok_or_else(|| Denial::InvalidJwtSvid(JwtError::NoTrustBundle(td.to_string())))?;
    let rules = ClaimRules {
        issuer: None,
        audiences: Some(&c.audiences),
        required: &[],
        now,
        skew_secs: c.clock_skew_secs,
    };
    let (verified_sub, claims) = jwt::verify_jwt_svid(
        token,
        &parts,
        |kid| bundle.jwt_authority(kid).cloned(),
        &rules,
    )
    .map_err(Denial::InvalidJwtSvid)?;
    let id = canonical(&config.bundles, &verified_sub);
    let allowed_td = config.allowed_trust_domains.contains(&id.trust_domain());
    let allowed_id = c
        .allowed_ids
        .as_ref()
        .is_none_or(|rules| rules.iter().any(|m| m.matches(&id)));
    if !allowed_td || !allowed_id {
        return Err(Denial::JwtSvidNotAllowed(id));
    }
    Ok(Some(JwtSvid { id, claims }))
}

fn check_end_user(
    c: &JwtConfig,
    facts: &PeerFacts,
    now: i64,
    headers_to_set: &mut Vec<(String, String)>,
) -> Result<Option<EndUserClaims>, Denial> {
    // The first provider whose header holds a token decides; its `iss`
    // picks the provider among those reading that header.
    for p in &c.providers {
        let Some(token) = token_at(facts, &p.from_header)? else {
            continue;
        };
        let parts = jwt::peek(token, p.max_token_bytes).map_err(Denial::InvalidJwt)?;
        let iss = parts.issuer().unwrap_or_default();
        let provider = c
            .providers
            .iter()
            .filter(|q| q.from_header.name.eq_ignore_ascii_case(&p.from_header.name))
            .find(|q| q.issuer == iss)
            .ok_or_else(|| Denial::InvalidJwt(JwtError::WrongIssuer(iss.to_owned())))?;
        let rules = ClaimRules {
            issuer: Some(&provider.issuer),
            audiences: provider.audiences.as_deref(),
            required: &provider.required_claims,
            now,
            skew_secs: provider.clock_skew_secs,
        };
        let claims = jwt::verify_end_user(token, &parts, provider.jwks.keys(), &rules)
            .map_err(Denial::InvalidJwt)?;
        for m in &provider.claims_to_headers {
            if let Some(v) =
                jwt::claim_header_value(&claims, &m.claim).map_err(Denial::InvalidJwt)?
            {
                headers_to_set.push((m.header.clone(), v));
            }
        }
        return Ok(Some(EndUserClaims {
            issuer: provider.issuer.clone(),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            claims,
        }));
    }
    if c.required {
        Err(Denial::MissingJwt)
    } else {
        Ok(None)
    }
}

fn default_skew() -> u64 {
    jwt::DEFAULT_CLOCK_SKEW_SECS
}

fn default_max_token() -> usize {
    jwt::DEFAULT_MAX_TOKEN_BYTES
}

fn default_token_header() -> String {
    "authorization".to_owned()
}

fn default_token_prefix() -> String {
    "Bearer ".to_owned()
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests;
