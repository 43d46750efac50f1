//! Key sets: SPIFFE trust bundles (the JWKS form of the SPIFFE Trust Domain
//! and Bundle specification) and the ordinary JWKS of end-user JWT issuers.
//!
//! Everything is checked when the configuration is loaded, so a key is
//! either usable or left out there, never a request-time surprise. A key
//! meshward cannot use is skipped and reported rather than refusing its whole
//! set (RFC 7517 section 5): an identity provider that publishes a new kind
//! of key must not take every request down.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
#[cfg(feature = "verify")]
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::spiffe_id::TrustDomain;
use crate::x509_svid::SvidError;

/// Why a trust bundle or JWKS was refused as a whole. A single key that
/// cannot be used does not refuse its set: it is skipped and reported as a
/// [`SkippedKey`] (RFC 7517 section 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not the JSON shape of a JWKS.
    #[error("invalid key set: {0}")]
    Json(String),
    /// Two usable JWT keys with the same `kid`: which one a token means
    /// cannot be told.
    #[error("duplicate `kid` `{0}`")]
    DuplicateKid(String),
    /// The set lists keys but none of them is usable (or, for a JWKS, lists
    /// none at all); every skipped key is listed with its reason.
    #[error("the key set has no usable key{}", skipped_list(.0))]
    NoUsableKey(Vec<SkippedKey>),
}

fn skipped_list(skipped: &[SkippedKey]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let all: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    format!(" ({})", all.join("; "))
}

/// A key left out of its set because meshward cannot use it: an unknown or
/// unsupported `kty`, curve or `alg`, a `use` that is not for signatures,
/// missing or malformed members, or a key too weak to trust. It verifies
/// nothing; the rest of the set still loads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedKey {
    /// The key's position in the set's `keys` array, from 0.
    pub index: usize,
    /// The key's `kid`, if it had a string one.
    pub kid: Option<String>,
    /// Why it cannot be used.
    pub reason: String,
}

impl SkippedKey {
    fn new(index: usize, raw: &serde_json::Value, reason: impl Into<String>) -> Self {
        Self {
            index,
            kid: raw
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {} (`kid` `{kid}`): {}", self.index, self.reason),
            None => write!(f, "key {}: {}", self.index, self.reason),
        }
    }
}

/// A public key that verifies JWT signatures.
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    family: AlgorithmFamily,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl JwtKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify a token signed with `alg`: the families
    /// must agree (this is what stops an RSA public key being used as an
    /// HMAC secret), and a key that names its `alg` admits only that one.
    pub fn admits(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.alg.is_none_or(|a| a == alg)
    }

    #[cfg_attr(
        not(feature = "verify"),
        expect(dead_code, reason = "only signature verification reads the key")
    )]
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// A verifying key from a parsed JWK, or why it cannot be one.
    fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err("symmetric (`oct`) keys are not accepted".to_owned());
        }
        check_public_key(&jwk.algorithm)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let family = key.family();
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => {
                let a: Algorithm = a
                    .to_string()
                    .parse()
                    .map_err(|_| format!("`alg` `{a}` is not supported"))?;
                if a.family() != family {
                    return Err("`alg` does not fit the key type".to_owned());
                }
                Some(a)
            }
        };
        Ok(Self {
            kid: jwk.common.key_id.clone().filter(|k| !k.is_empty()),
            family,
            alg,
            key,
        })
    }
}

/// Reads one raw JWK: jsonwebtoken refuses an unknown `kty`, curve or `alg`
/// while parsing, which for a key set means "skip this key".
fn parse_jwk(raw: serde_json::Value) -> Result<Jwk, String> {
    if !raw.is_object() {
        return Err("not a JSON object".to_owned());
    }
    serde_json::from_value(raw).map_err(|e| format!("not a key meshward can read: {e}"))
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The JWKS of an end-user JWT issuer: only keys that verify signatures
/// (`use` absent or `sig`, a supported public key type), at least one of
/// them, with distinct `kid`s. Other keys are skipped and listed in
/// [`Jwks::skipped`].
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<JwtKey>,
    skipped: Vec<SkippedKey>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, BundleError> {
        let repr: JwksRepr =
            serde_json::from_value(value).map_err(|e| BundleError::Json(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in repr.keys.into_iter().enumerate() {
            let key_use = raw.get("use").cloned();
            match key_use {
                None => {}
                Some(serde_json::Value::String(u)) if u == "sig" => {}
                Some(other) => {
                    skipped.push(SkippedKey::new(
                        i,
                        &raw,
                        format!("`use` {other} is not `sig`"),
                    ));
                    continue;
                }
            }
            let reason_for = raw.clone();
            match parse_jwk(raw).and_then(|jwk| JwtKey::from_jwk(&jwk)) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(SkippedKey::new(i, &reason_for, reason)),
            }
        }
        if keys.is_empty() {
            return Err(BundleError::NoUsableKey(skipped));
        }
        check_unique_kids(&keys)?;
        Ok(Self { keys, skipped })
    }

    /// The usable keys; never empty.
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }

    /// The keys left out, with why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }
}

impl<'de> serde::Deserialize<'de> for Jwks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// A SPIFFE trust bundle: the X.509 and JWT authorities of one trust domain.
///
/// Every X.509 authority parses as a certificate and every JWT authority is a
/// supported public key with a `kid`, the `kid`s distinct. Keys that are
/// neither are skipped and listed in [`TrustBundle::skipped`]; a bundle that
/// lists keys but has no usable one is refused.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    x509_authorities: Vec<Vec<u8>>,
    jwt_authorities: Vec<JwtKey>,
    sequence: Option<u64>,
    refresh_hint: Option<i64>,
    skipped: Vec<SkippedKey>,
}

impl TrustBundle {
    /// Parses the JWKS form of a SPIFFE bundle. Keys whose `use` is neither
    /// `x509-svid` nor `jwt-svid` are skipped, as the bundle specification
    /// asks, so newer bundles still load; so are keys that cannot be used.
    /// `{"keys": []}` is an empty bundle, not an error.
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, BundleError> {
        let repr: BundleRepr =
            serde_json::from_value(value).map_err(|e| BundleError::Json(e.to_string()))?;
        let listed = repr.keys.len();
        let mut x509_authorities = Vec::new();
        let mut jwt_authorities = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in repr.keys.into_iter().enumerate() {
            let key_use = raw.get("use").and_then(serde_json::Value::as_str);
            let result = match key_use {
                Some("x509-svid") => x509_authority(&raw).map(|der| x509_authorities.push(der)),
                Some("jwt-svid") => jwt_authority(raw.clone()).map(|k| jwt_authorities.push(k)),
                Some(other) => Err(format!(
                    "`use` `{other}` is neither `x509-svid` nor `jwt-svid`"
                )),
                None => Err("no `use`".to_owned()),
            };
            if let Err(reason) = result {
                skipped.push(SkippedKey::new(i, &raw, reason));
            }
        }
        if listed > 0 && x509_authorities.is_empty() && jwt_authorities.is_empty() {
            return Err(BundleError::NoUsableKey(skipped));
        }
        check_unique_kids(&jwt_authorities)?;
        Ok(Self {
            x509_authorities,
            jwt_authorities,
            sequence: repr.spiffe_sequence,
            refresh_hint: repr.spiffe_refresh_hint,
            skipped,
        })
    }

    /// The keys left out, with why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The X.509 authorities (DER), trust anchors for X.509-SVIDs.
    pub fn x509_authorities(&self) -> &[Vec<u8>] {
        &self.x509_authorities
    }

    /// The JWT authorities, by `kid`.
    pub fn jwt_authorities(&self) -> &[JwtKey] {
        &self.jwt_authorities
    }

    /// The JWT authority with this `kid`.
    pub fn jwt_authority(&self, kid: &str) -> Option<&JwtKey> {
        self.jwt_authorities
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
    }

    /// `spiffe_sequence`, if given.
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// `spiffe_refresh_hint` in seconds, if given.
    pub fn refresh_hint(&self) -> Option<i64> {
        self.refresh_hint
    }
}

impl<'de> serde::Deserialize<'de> for TrustBundle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Trust bundles by trust domain, with aliases for trust-domain migrations.
///
/// An alias names another trust domain whose IDs are accepted as if they were
/// issued by the canonical one: `spiffe://old.example/ns/a/sa/b` becomes
/// `spiffe://example.org/ns/a/sa/b` for every allow-list and policy. Its
/// certificates and tokens are verified with the alias's own bundle when one
/// is configured, else with the canonical trust domain's (a rename keeps the
/// same authority while workloads still carry the old name).
#[derive(Debug, Clone, Default)]
pub struct TrustBundleSet {
    bundles: BTreeMap<TrustDomain, TrustBundle>,
    aliases: BTreeMap<TrustDomain, TrustDomain>,
}

impl TrustBundleSet {
    /// Builds a set; aliases map an alias trust domain to its canonical one.
    pub fn new(
        bundles: BTreeMap<TrustDomain, TrustBundle>,
        aliases: BTreeMap<TrustDomain, TrustDomain>,
    ) -> Self {
        Self { bundles, aliases }
    }

    /// Whether there are no bundles at all.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }

    /// The canonical trust domain for `td`: its alias target, or itself.
    pub fn canonical<'a>(&'a self, td: &'a TrustDomain) -> &'a TrustDomain {
        self.aliases.get(td).unwrap_or(td)
    }

    /// The bundle that verifies documents from `td`: its own, or for an
    /// alias without one, the canonical trust domain's.
    pub fn bundle_for(&self, td: &TrustDomain) -> Option<&TrustBundle> {
        self.bundles
            .get(td)
            .or_else(|| self.aliases.get(td).and_then(|c| self.bundles.get(c)))
    }
}

/// An `x509-svid` key: exactly one base64 DER certificate in `x5c`.
fn x509_authority(raw: &serde_json::Value) -> Result<Vec<u8>, String> {
    let x5c: Vec<String> = raw
        .get("x5c")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("`x5c` is not a list of strings: {e}"))?
        .unwrap_or_default();
    let [cert] = x5c.as_slice() else {
        return Err("an `x509-svid` key must have exactly one `x5c` certificate".to_owned());
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(cert)
        .map_err(|e| format!("`x5c` is not base64: {e}"))?;
    crate::x509_svid::check_parses(&der)
        .map_err(|e: SvidError| format!("`x5c` is not a DER certificate: {e}"))?;
    Ok(der)
}

/// A `jwt-svid` key: a supported public key with a non-empty `kid`.
fn jwt_authority(mut raw: serde_json::Value) -> Result<JwtKey, String> {
    // jsonwebtoken reads `use` as the JOSE values only; the SPIFFE value has
    // been checked by the caller.
    if let Some(o) = raw.as_object_mut() {
        o.remove("use");
    }
    let key = JwtKey::from_jwk(&parse_jwk(raw)?)?;
    if key.kid.is_none() {
        return Err("a `jwt-svid` key must have a non-empty `kid`".to_owned());
    }
    Ok(key)
}

#[derive(serde::Deserialize)]
struct JwksRepr {
    keys: Vec<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct BundleRepr {
    keys: Vec<serde_json::Value>,
    #[serde(default)]
    spiffe_sequence: Option<u64>,
    #[serde(default)]
    spiffe_refresh_hint: Option<i64>,
}

/// Without `verify` no key can be used, so each is skipped with why (and a
/// JWT check that needs one is refused at configuration).
#[cfg(not(feature = "verify"))]
fn check_public_key(params: &AlgorithmParameters) -> Result<(), String> {
    let _ = params;
    Err("this build of meshward does not verify signatures (built without `verify`)".to_owned())
}

/// jsonwebtoken takes key components on trust and fails only when a token
/// arrives; checking them here turns a broken key into a configuration error.
#[cfg(feature = "verify")]
fn check_public_key(params: &AlgorithmParameters) -> Result<(), String> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "a key component is not base64url".to_owned())
    };
    match params {
        AlgorithmParameters::EllipticCurve(ec) => {
            let mut point = vec![4u8];
            point.extend(b64(&ec.x)?);
            point.extend(b64(&ec.y)?);
            let ok = match ec.curve {
                EllipticCurve::P256 => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
                EllipticCurve::P384 => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
                _ => return Err("only P-256 and P-384 EC keys are supported".to_owned()),
            };
            if ok {
                Ok(())
            } else {
                Err("the EC point is not on its curve".to_owned())
            }
        }
        AlgorithmParameters::RSA(r) => {
            let n = rsa::BigUint::from_bytes_be(&b64(&r.n)?);
            let e = rsa::BigUint::from_bytes_be(&b64(&r.e)?);
            let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("bad RSA key: {e}"))?;
            if rsa::traits::PublicKeyParts::size(&key) * 8 < 2048 {
                return Err("RSA keys must have at least 2048 bits".to_owned());
            }
            Ok(())
        }
        AlgorithmParameters::OctetKeyPair(okp) => match (&okp.curve, b64(&okp.x)?.len()) {
            (EllipticCurve::Ed25519, 32) => Ok(()),
            _ => Err("only 32-byte Ed25519 OKP keys are supported".to_owned()),
        },
        _ => Err("unsupported key type".to_owned()),
    }
}

fn check_unique_kids(keys: &[JwtKey]) -> Result<(), BundleError> {
    let mut seen = std::collections::BTreeSet::new();
    for kid in keys.iter().filter_map(|k| k.kid.as_deref()) {
        if !seen.insert(kid) {
            return Err(BundleError::DuplicateKid(kid.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[cfg(feature = "verify")]
mod tests;
