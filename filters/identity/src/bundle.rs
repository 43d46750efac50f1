//! Key sets: SPIFFE trust bundles (the JWKS form of the SPIFFE Trust Domain
//! and Bundle specification) and the ordinary JWKS of end-user JWT issuers.
//!
//! Everything is checked when the configuration is loaded, so a bad key is a
//! configuration error, never a request-time surprise.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::spiffe_id::TrustDomain;
use crate::x509_svid::SvidError;

/// Why a trust bundle or JWKS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not the JSON shape of a JWKS.
    #[error("invalid key set: {0}")]
    Json(String),
    /// A key with `use` `x509-svid` must carry exactly one certificate.
    #[error("key {0}: an `x509-svid` key must have exactly one `x5c` certificate")]
    X5cCount(usize),
    /// The `x5c` certificate is not base64 DER X.509.
    #[error("key {0}: `x5c` is not a base64 DER certificate: {1}")]
    BadCertificate(usize, String),
    /// A key with `use` `jwt-svid` must have a `kid`.
    #[error("key {0}: a `jwt-svid` key must have a non-empty `kid`")]
    MissingKid(usize),
    /// Two JWT keys with the same `kid`.
    #[error("duplicate `kid` `{0}`")]
    DuplicateKid(String),
    /// A key that cannot be used to verify signatures.
    #[error("key {0}: {1}")]
    BadKey(usize, String),
    /// A JWKS with no usable key.
    #[error("the key set has no usable key")]
    NoKeys,
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

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    fn from_jwk(index: usize, jwk: &Jwk) -> Result<Self, BundleError> {
        let bad = |m: &str| BundleError::BadKey(index, m.to_owned());
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(bad("symmetric (`oct`) keys are not accepted"));
        }
        check_public_key(&jwk.algorithm).map_err(|m| bad(&m))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(&e.to_string()))?;
        let family = key.family();
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => {
                let a: Algorithm = a
                    .to_string()
                    .parse()
                    .map_err(|_| bad("unsupported `alg`"))?;
                if a.family() != family {
                    return Err(bad("`alg` does not fit the key type"));
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

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The JWKS of an end-user JWT issuer. Keys whose `use` is neither absent
/// nor `sig` are skipped; symmetric keys are refused.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<JwtKey>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Self, BundleError> {
        let repr: JwksRepr =
            serde_json::from_value(value).map_err(|e| BundleError::Json(e.to_string()))?;
        let mut keys = Vec::new();
        for (i, raw) in repr.keys.into_iter().enumerate() {
            let jwk: Jwk =
                serde_json::from_value(raw).map_err(|e| BundleError::BadKey(i, e.to_string()))?;
            match &jwk.common.public_key_use {
                None | Some(PublicKeyUse::Signature) => keys.push(JwtKey::from_jwk(i, &jwk)?),
                Some(_) => {}
            }
        }
        check_unique_kids(&keys)?;
        if keys.is_empty() {
            return Err(BundleError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }
}

impl<'de> serde::Deserialize<'de> for Jwks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// A SPIFFE trust bundle: the X.509 and JWT authorities of one trust domain.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    x509_authorities: Vec<Vec<u8>>,
    jwt_authorities: Vec<JwtKey>,
    sequence: Option<u64>,
    refresh_hint: Option<i64>,
}

impl TrustBundle {
    /// Parses the JWKS form of a SPIFFE bundle. Keys whose `use` is neither
    /// `x509-svid` nor `jwt-svid` are ignored, as the bundle specification
    /// asks, so newer bundles still load.
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Self, BundleError> {
        let repr: BundleRepr =
            serde_json::from_value(value).map_err(|e| BundleError::Json(e.to_string()))?;
        let mut x509_authorities = Vec::new();
        let mut jwt_authorities = Vec::new();
        for (i, raw) in repr.keys.into_iter().enumerate() {
            let key_use = raw.get("use").and_then(serde_json::Value::as_str);
            match key_use {
                Some("x509-svid") => {
                    let x5c: Vec<String> = raw
                        .get("x5c")
                        .cloned()
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(|e| BundleError::BadKey(i, e.to_string()))?
                        .unwrap_or_default();
                    let [cert] = x5c.as_slice() else {
                        return Err(BundleError::X5cCount(i));
                    };
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(cert)
                        .map_err(|e| BundleError::BadCertificate(i, e.to_string()))?;
                    crate::x509_svid::check_parses(&der)
                        .map_err(|e: SvidError| BundleError::BadCertificate(i, e.to_string()))?;
                    x509_authorities.push(der);
                }
                Some("jwt-svid") => {
                    // jsonwebtoken reads `use` as the JOSE values only; the
                    // SPIFFE value has been checked above.
                    let mut raw = raw;
                    if let Some(o) = raw.as_object_mut() {
                        o.remove("use");
                    }
                    let jwk: Jwk = serde_json::from_value(raw)
                        .map_err(|e| BundleError::BadKey(i, e.to_string()))?;
                    let key = JwtKey::from_jwk(i, &jwk)?;
                    if key.kid.is_none() {
                        return Err(BundleError::MissingKid(i));
                    }
                    jwt_authorities.push(key);
                }
                _ => {}
            }
        }
        check_unique_kids(&jwt_authorities)?;
        Ok(Self {
            x509_authorities,
            jwt_authorities,
            sequence: repr.spiffe_sequence,
            refresh_hint: repr.spiffe_refresh_hint,
        })
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

/// jsonwebtoken takes key components on trust and fails only when a token
/// arrives; checking them here turns a broken key into a configuration error.
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
mod tests;
