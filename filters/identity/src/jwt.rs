//! JWT verification: end-user tokens from configured issuers, and JWT-SVIDs
//! (JWT-SVID specification) signed by a trust domain's JWT authorities.
//!
//! jsonwebtoken checks the signature only; every claim, and in particular
//! every time, is checked here against the caller's clock. Its own `exp` and
//! `nbf` checks are off because they read the system clock, which a proxy-wasm
//! filter must not use and which would make tests depend on the date.
//!
//! The header is read by hand before jsonwebtoken sees the token, so that
//! `alg: none` and HMAC algorithms get reasons of their own instead of a
//! generic parse error.

use base64::Engine as _;
use jsonwebtoken::Algorithm;
#[cfg(feature = "verify")]
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use crate::bundle::JwtKey;
use crate::spiffe_id::{SpiffeId, SpiffeIdError};

/// Tokens longer than this are refused unread unless configured otherwise.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The default tolerance, in seconds, for clocks that disagree.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 60;

/// The algorithms the JWT-SVID specification allows.
const JWT_SVID_ALGS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why a token was refused. Each variant has its own [`JwtError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than the configured maximum.
    #[error("the token is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// The token's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Not three base64url parts, or a header or payload that is not a JSON
    /// object.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg: none`: an unsigned token.
    #[error("unsigned tokens (`alg: none`) are not accepted")]
    AlgNone,
    /// An HMAC algorithm: only public-key signatures are accepted, so a
    /// public key can never be used as a shared secret.
    #[error("HMAC algorithm `{0}` is not accepted")]
    Hmac(String),
    /// Any other algorithm outside the allowed set.
    #[error("algorithm `{0}` is not accepted")]
    AlgorithmNotAllowed(String),
    /// A JWT-SVID whose `typ` header is present but neither `JWT` nor
    /// `JOSE` (JWT-SVID specification, section 2.3).
    #[error("token type `{0}` is not accepted; a JWT-SVID's `typ` is `JWT` or `JOSE`")]
    TypeNotAllowed(String),
    /// The header has `crit` extensions, none of which are understood.
    #[error("the token has critical header extensions")]
    Crit,
    /// The token has no `kid` where one is required.
    #[error("the token has no `kid`")]
    MissingKid,
    /// No key with the token's `kid`.
    #[error("no key with `kid` `{0}`")]
    UnknownKid(String),
    /// A key was found but its type does not fit the token's algorithm.
    #[error("the key does not fit algorithm `{0}`")]
    KeyMismatch(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` is past (beyond the skew).
    #[error("the token expired at {exp} (unix seconds)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
    },
    /// `nbf` is ahead (beyond the skew).
    #[error("the token is not valid before {nbf} (unix seconds)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
    },
    /// `iss` is not the configured issuer.
    #[error("issuer `{0}` is not accepted")]
    WrongIssuer(String),
    /// `aud` names none of the configured audiences.
    #[error("the token's audience names none of the accepted audiences")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("claim `{0}` is missing or malformed")]
    MissingClaim(String),
    /// A JWT-SVID's `sub` is not a SPIFFE ID.
    #[error("`sub` is not a SPIFFE ID: {0}")]
    SubjectNotSpiffeId(SpiffeIdError),
    /// No JWT authorities for the JWT-SVID's trust domain.
    #[error("no JWT trust bundle for trust domain `{0}`")]
    NoTrustBundle(String),
    /// A claim to be copied into a header has a value unsafe in a header.
    #[error("claim `{0}` cannot be copied into a header")]
    UnsafeClaimValue(String),
    /// This build leaves signature checks out (the crate's `verify` feature
    /// is off), so no token can be accepted.
    #[error("this build of meshward does not verify token signatures (built without `verify`)")]
    NotBuiltIn,
}

impl JwtError {
    /// A short, stable, machine-readable reason for an end-user JWT.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "jwt_too_large",
            Self::Malformed(_) => "jwt_malformed",
            Self::AlgNone => "jwt_alg_none",
            Self::Hmac(_) => "jwt_hmac_not_allowed",
            Self::AlgorithmNotAllowed(_) => "jwt_alg_not_allowed",
            Self::TypeNotAllowed(_) => "jwt_type_not_allowed",
            Self::Crit => "jwt_crit_not_supported",
            Self::MissingKid => "jwt_missing_kid",
            Self::UnknownKid(_) => "jwt_unknown_kid",
            Self::KeyMismatch(_) => "jwt_key_mismatch",
            Self::BadSignature => "jwt_bad_signature",
            Self::Expired { .. } => "jwt_expired",
            Self::NotYetValid { .. } => "jwt_not_yet_valid",
            Self::WrongIssuer(_) => "jwt_wrong_issuer",
            Self::WrongAudience => "jwt_wrong_audience",
            Self::MissingClaim(_) => "jwt_missing_claim",
            Self::SubjectNotSpiffeId(_) => "jwt_subject_not_spiffe_id",
            Self::NoTrustBundle(_) => "jwt_no_trust_bundle",
            Self::UnsafeClaimValue(_) => "jwt_unsafe_claim_value",
            Self::NotBuiltIn => "jwt_checks_not_built_in",
        }
    }

    /// The same reason for a JWT-SVID.
    pub fn svid_code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "jwt_svid_too_large",
            Self::Malformed(_) => "jwt_svid_malformed",
            Self::AlgNone => "jwt_svid_alg_none",
            Self::Hmac(_) => "jwt_svid_hmac_not_allowed",
            Self::AlgorithmNotAllowed(_) => "jwt_svid_alg_not_allowed",
            Self::TypeNotAllowed(_) => "jwt_svid_type_not_allowed",
            Self::Crit => "jwt_svid_crit_not_supported",
            Self::MissingKid => "jwt_svid_missing_kid",
            Self::UnknownKid(_) => "jwt_svid_unknown_kid",
            Self::KeyMismatch(_) => "jwt_svid_key_mismatch",
            Self::BadSignature => "jwt_svid_bad_signature",
            Self::Expired { .. } => "jwt_svid_expired",
            Self::NotYetValid { .. } => "jwt_svid_not_yet_valid",
            Self::WrongIssuer(_) => "jwt_svid_wrong_issuer",
            Self::WrongAudience => "jwt_svid_wrong_audience",
            Self::MissingClaim(_) => "jwt_svid_missing_claim",
            Self::SubjectNotSpiffeId(_) => "jwt_svid_subject_not_spiffe_id",
            Self::NoTrustBundle(_) => "jwt_svid_no_trust_bundle",
            Self::UnsafeClaimValue(_) => "jwt_svid_unsafe_claim_value",
            Self::NotBuiltIn => "jwt_svid_checks_not_built_in",
        }
    }
}

/// A token split and decoded, and nothing more: neither its signature nor
/// any claim has been checked, so nothing in it may be trusted. It only
/// chooses which keys to verify the token with.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedParts {
    alg_name: String,
    kid: Option<String>,
    typ: Option<Value>,
    claims: Map<String, Value>,
}

/// Splits a token and reads its header and claims without verifying
/// anything; used to pick the issuer's keys or the JWT-SVID's trust domain.
/// Refuses tokens longer than `max_bytes`, without three base64url parts,
/// whose header or payload is not a JSON object, without a string `alg`, or
/// with `crit` extensions.
pub fn peek(token: &str, max_bytes: usize) -> Result<UnverifiedParts, JwtError> {
    if token.len() > max_bytes {
        return Err(JwtError::TooLarge {
            len: token.len(),
            max: max_bytes,
        });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "a JWS compact token has three parts".into(),
        ));
    };
    let header = decode_object(header, "header")?;
    let claims = decode_object(payload, "payload")?;
    if header.contains_key("crit") {
        return Err(JwtError::Crit);
    }
    let alg_name = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(JwtError::Malformed("the header has no `alg`".into())),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::Malformed("`kid` is not a string".into())),
    };
    Ok(UnverifiedParts {
        alg_name,
        kid,
        typ: header.get("typ").cloned(),
        claims,
    })
}

impl UnverifiedParts {
    /// The unverified claims.
    #[cfg(feature = "fuzzing")]
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The unverified `iss`, if it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The unverified `sub`, if it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    fn algorithm(&self, allowed: &[Algorithm]) -> Result<Algorithm, JwtError> {
        let name = self.alg_name.as_str();
        if name.eq_ignore_ascii_case("none") {
            return Err(JwtError::AlgNone);
        }
        if name.len() >= 2 && name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("hs")) {
            return Err(JwtError::Hmac(name.to_owned()));
        }
        name.parse::<Algorithm>()
            .ok()
            .filter(|a| allowed.contains(a))
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(name.to_owned()))
    }
}

/// What a claim check needs besides the token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRules<'a> {
    pub(crate) issuer: Option<&'a str>,
    /// `None`: `aud` is not checked (end-user rules without audiences).
    pub(crate) audiences: Option<&'a [String]>,
    pub(crate) required: &'a [String],
    pub(crate) now: i64,
    pub(crate) skew_secs: u64,
}

/// Verifies an end-user token: algorithm, key (by `kid`, or every key of the
/// right type when the token has none), signature, then claims.
pub(crate) fn verify_end_user(
    token: &str,
    parts: &UnverifiedParts,
    keys: &[JwtKey],
    rules: &ClaimRules<'_>,
) -> Result<Map<String, Value>, JwtError> {
    let alg = parts.algorithm(&END_USER_ALGS)?;
    let candidates: Vec<&JwtKey> = match parts.kid() {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid() == Some(kid))
                .ok_or_else(|| JwtError::UnknownKid(kid.to_owned()))?;
            vec![key]
        }
        None => keys.iter().collect(),
    };
    let fitting: Vec<&JwtKey> = candidates.into_iter().filter(|k| k.admits(alg)).collect();
    if fitting.is_empty() {
        return Err(JwtError::KeyMismatch(parts.alg_name.clone()));
    }
    let mut result = Err(JwtError::BadSignature);
    for key in fitting {
        result = verify_signature(token, key, alg);
        if result.is_ok() {
            break;
        }
    }
    let claims = result?;
    check_claims(&claims, rules)?;
    Ok(claims)
}

/// Verifies a JWT-SVID with the JWT authorities of its trust domain: `kid`
/// required, RS/ES/PS only, `typ` absent or `JWT`/`JOSE`, `sub` a SPIFFE ID, `aud` and `exp` required.
pub(crate) fn verify_jwt_svid(
    token: &str,
    parts: &UnverifiedParts,
    lookup: impl Fn(&str) -> Option<JwtKey>,
    rules: &ClaimRules<'_>,
) -> Result<(SpiffeId, Map<String, Value>), JwtError> {
    let alg = parts.algorithm(&JWT_SVID_ALGS)?;
    check_svid_type(parts.typ.as_ref())?;
    let kid = parts.kid().ok_or(JwtError::MissingKid)?;
    let key = lookup(kid).ok_or_else(|| JwtError::UnknownKid(kid.to_owned()))?;
    if !key.admits(alg) {
        return Err(JwtError::KeyMismatch(parts.alg_name.clone()));
    }
    let claims = verify_signature(token, &key, alg)?;
    let sub = match claims.get("sub") {
        Some(Value::String(s)) => SpiffeId::parse(s).map_err(JwtError::SubjectNotSpiffeId)?,
        _ => return Err(JwtError::MissingClaim("sub".into())),
    };
    if !claims.contains_key("aud") {
        return Err(JwtError::MissingClaim("aud".into()));
    }
    check_claims(&claims, rules)?;
    Ok((sub, claims))
}

/// JWT-SVID section 2.3: `typ`, if present, is `JWT` or `JOSE`. Media type
/// names compare case-insensitively (RFC 7515 section 4.1.9).
fn check_svid_type(typ: Option<&Value>) -> Result<(), JwtError> {
    match typ {
        None => Ok(()),
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("JOSE") =>
        {
            Ok(())
        }
        Some(Value::String(t)) => Err(JwtError::TypeNotAllowed(t.clone())),
        Some(other) => Err(JwtError::TypeNotAllowed(other.to_string())),
    }
}

const END_USER_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

#[cfg(not(feature = "verify"))]
fn verify_signature(
    token: &str,
    key: &JwtKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, JwtError> {
    let _ = (token, key, alg);
    Err(JwtError::NotBuiltIn)
}

#[cfg(feature = "verify")]
fn verify_signature(
    token: &str,
    key: &JwtKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, JwtError> {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    // Times and audiences are checked by `check_claims` with the caller's
    // clock; jsonwebtoken's own checks would read the system clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    match jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &v) {
        Ok(data) => Ok(data.claims),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Err(JwtError::BadSignature),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                Err(JwtError::KeyMismatch(format!("{alg:?}")))
            }
            _ => Err(JwtError::Malformed(e.to_string())),
        },
    }
}

fn check_claims(claims: &Map<String, Value>, rules: &ClaimRules<'_>) -> Result<(), JwtError> {
    let skew = i64::try_from(rules.skew_secs).unwrap_or(i64::MAX);
    // `exp` is always required: a token that never expires is a password.
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| JwtError::MissingClaim("exp".into()))?;
    if rules.now >= exp.saturating_add(skew) {
        return Err(JwtError::Expired { exp });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && rules.now.saturating_add(skew) < nbf
    {
        return Err(JwtError::NotYetValid { nbf });
    }
    if let Some(want) = rules.issuer {
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == want => {}
            Some(Value::String(iss)) => return Err(JwtError::WrongIssuer(iss.clone())),
            _ => return Err(JwtError::MissingClaim("iss".into())),
        }
    }
    if let Some(accepted) = rules.audiences {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => accepted.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepted.iter().any(|want| want == a)),
            None => return Err(JwtError::MissingClaim("aud".into())),
            Some(_) => false,
        };
        if !ok {
            return Err(JwtError::WrongAudience);
        }
    }
    for name in rules.required {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(JwtError::MissingClaim(name.clone()));
        }
    }
    Ok(())
}

/// A NumericDate claim: absent is `None`; present, it must be a number.
/// Fractions are floored, which can only make `exp` earlier.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                // Beyond ±2^62 a float is no real date; refuse it rather
                // than let the cast saturate into "never expires".
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 4.6e18)
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| JwtError::MissingClaim(name.to_owned())),
        Some(_) => Err(JwtError::MissingClaim(name.to_owned())),
    }
}

/// Renders a claim for a request header: strings as they are, numbers and
/// booleans as JSON, arrays of those joined by `,`, anything else as JSON.
/// Control characters are refused, since they could end the header.
pub(crate) fn claim_header_value(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, JwtError> {
    let rendered = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    if rendered.chars().any(char::is_control) {
        return Err(JwtError::UnsafeClaimValue(name.to_owned()));
    }
    Ok(Some(rendered))
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
    }
}

#[cfg(test)]
#[cfg(feature = "verify")]
mod tests;
