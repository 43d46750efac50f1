//! The outcome of authentication: a verified [`Identity`] or a [`Denial`].

use std::fmt;

use serde_json::{Map, Value};

use crate::jwt::JwtError;
use crate::spiffe_id::{SpiffeId, SpiffeIdError};
use crate::x509_svid::SvidError;
use crate::xfcc::{TooFewElements, XfccError};

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
