//! The JSON shapes of the configuration and their conversion into the
//! checked public types. Nothing here is public: the only way from JSON to a
//! configuration is through [`TryFrom`] below.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    AuthnConfig, AuthnConfigError, ClaimToHeader, ConfigWarning, ForwardHeaders, JwtConfig,
    JwtProvider, JwtSvidConfig, MtlsSource, PeerSource, TokenLocation, XfccSource,
};
use crate::authn::XFCC_HEADER;
use crate::bundle::{Jwks, TrustBundle, TrustBundleSet};
use crate::jwt;
use crate::matcher::IdMatcher;
use crate::spiffe_id::TrustDomain;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthnConfigRepr {
    #[serde(default)]
    source: PeerSourceRepr,
    allowed_trust_domains: Vec<TrustDomain>,
    #[serde(default)]
    allowed_ids: Option<Vec<IdMatcher>>,
    #[serde(default)]
    trust_domain_aliases: BTreeMap<TrustDomain, TrustDomain>,
    // Raw, so that a key set's refusal and its skipped keys can name where
    // in the configuration it is.
    #[serde(default)]
    trust_bundles: BTreeMap<TrustDomain, Value>,
    #[serde(default)]
    jwt: Option<JwtConfigRepr>,
    #[serde(default)]
    jwt_svid: Option<JwtSvidConfigRepr>,
    #[serde(default)]
    forward: ForwardHeaders,
}

#[derive(Default)]
enum PeerSourceRepr {
    #[default]
    Mtls,
    MtlsWith(MtlsSourceRepr),
    Xfcc(XfccSourceRepr),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MtlsSourceRepr {
    #[serde(default)]
    validate_certificate: bool,
    #[serde(default = "default_skew")]
    clock_skew_secs: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct XfccSourceRepr {
    trusted_hops: usize,
    #[serde(default)]
    verify_chain: bool,
    #[serde(default)]
    require_cert: bool,
    // Optional here only so that its absence gets an error of its own.
    #[serde(default)]
    trusted_proxies: Option<Vec<IdMatcher>>,
    #[serde(default = "default_skew")]
    clock_skew_secs: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLocationRepr {
    #[serde(default = "default_token_header")]
    name: String,
    #[serde(default = "default_token_prefix")]
    prefix: String,
}

impl Default for TokenLocationRepr {
    fn default() -> Self {
        Self {
            name: default_token_header(),
            prefix: default_token_prefix(),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimToHeaderRepr {
    claim: String,
    header: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtProviderRepr {
    issuer: String,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    jwks: Value,
    #[serde(default)]
    from_header: TokenLocationRepr,
    #[serde(default = "default_skew")]
    clock_skew_secs: u64,
    #[serde(default)]
    required_claims: Vec<String>,
    #[serde(default)]
    claims_to_headers: Vec<ClaimToHeaderRepr>,
    #[serde(default = "default_max_token")]
    max_token_bytes: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtConfigRepr {
    providers: Vec<JwtProviderRepr>,
    #[serde(default = "yes")]
    required: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtSvidConfigRepr {
    audiences: Vec<String>,
    #[serde(default)]
    from_header: TokenLocationRepr,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default)]
    allowed_ids: Option<Vec<IdMatcher>>,
    #[serde(default = "default_skew")]
    clock_skew_secs: u64,
    #[serde(default = "default_max_token")]
    max_token_bytes: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardHeadersRepr {
    #[serde(default = "default_peer_id_header")]
    peer_id: String,
    #[serde(default = "default_jwt_claims_header")]
    jwt_claims: String,
}

impl TryFrom<ForwardHeadersRepr> for ForwardHeaders {
    type Error = AuthnConfigError;

    fn try_from(r: ForwardHeadersRepr) -> Result<Self, Self::Error> {
        let forward = Self {
            peer_id: r.peer_id,
            jwt_claims: r.jwt_claims,
        };
        forward.check()?;
        Ok(forward)
    }
}

impl TryFrom<AuthnConfigRepr> for AuthnConfig {
    type Error = AuthnConfigError;

    fn try_from(r: AuthnConfigRepr) -> Result<Self, Self::Error> {
        // `forward` was checked when it was read.
        if !cfg!(feature = "verify")
            && let Some(what) = r.needs_verification()
        {
            return Err(AuthnConfigError::NotBuiltIn(what));
        }
        if r.allowed_trust_domains.is_empty() {
            return Err(AuthnConfigError::NoTrustDomains);
        }
        if r.allowed_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthnConfigError::EmptyAllowedIds);
        }
        for (alias, target) in &r.trust_domain_aliases {
            if !r.allowed_trust_domains.contains(target)
                || r.allowed_trust_domains.contains(alias)
                || r.trust_domain_aliases.contains_key(target)
            {
                return Err(AuthnConfigError::BadAlias(alias.to_string()));
            }
        }
        let mut warnings = Vec::new();
        let mut bundles = BTreeMap::new();
        for (td, raw) in r.trust_bundles {
            let at = format!("trust_bundles.{td}");
            let bundle = TrustBundle::from_value(raw)
                .map_err(|e| AuthnConfigError::KeySet(at.clone(), e))?;
            warnings.extend(bundle.skipped().iter().map(|k| ConfigWarning {
                key_set: at.clone(),
                key: k.clone(),
            }));
            bundles.insert(td, bundle);
        }
        let has_bundles = !bundles.is_empty();
        let source = match r.source {
            PeerSourceRepr::Mtls => PeerSource::Mtls(MtlsSource {
                validate_certificate: false,
                clock_skew_secs: default_skew(),
            }),
            PeerSourceRepr::MtlsWith(m) => PeerSource::Mtls(MtlsSource {
                validate_certificate: m.validate_certificate,
                clock_skew_secs: m.clock_skew_secs,
            }),
            PeerSourceRepr::Xfcc(x) => PeerSource::Xfcc(x.check(has_bundles)?),
        };
        let jwt = r
            .jwt
            .map(|j| j.check(&r.forward, &mut warnings))
            .transpose()?;
        let jwt_svid = match r.jwt_svid {
            None => None,
            Some(s) => {
                if !has_bundles {
                    return Err(AuthnConfigError::NoTrustBundles("jwt_svid"));
                }
                let s = s.check()?;
                if let Some(j) = &jwt
                    && j.providers
                        .iter()
                        .any(|p| p.from_header.name.eq_ignore_ascii_case(&s.from_header.name))
                {
                    return Err(AuthnConfigError::SharedTokenHeader(
                        s.from_header.name.clone(),
                    ));
                }
                Some(s)
            }
        };
        Ok(Self {
            source,
            allowed_trust_domains: r.allowed_trust_domains,
            allowed_ids: r.allowed_ids,
            bundles: TrustBundleSet::new(bundles, r.trust_domain_aliases),
            jwt,
            jwt_svid,
            forward: r.forward,
            warnings,
        })
    }
}

impl AuthnConfigRepr {
    /// The first part of the configuration that only a build with the
    /// `verify` feature can honour.
    fn needs_verification(&self) -> Option<&'static str> {
        match &self.source {
            PeerSourceRepr::MtlsWith(m) if m.validate_certificate => {
                return Some("source.mtls.validate_certificate");
            }
            PeerSourceRepr::Xfcc(x) if x.verify_chain => return Some("source.xfcc.verify_chain"),
            PeerSourceRepr::Xfcc(x) if x.require_cert => return Some("source.xfcc.require_cert"),
            _ => {}
        }
        if self.jwt.is_some() {
            return Some("jwt");
        }
        self.jwt_svid.as_ref().map(|_| "jwt_svid")
    }
}

impl XfccSourceRepr {
    fn check(self, has_bundles: bool) -> Result<XfccSource, AuthnConfigError> {
        if self.trusted_hops == 0 {
            return Err(AuthnConfigError::ZeroTrustedHops);
        }
        if self.verify_chain && !has_bundles {
            return Err(AuthnConfigError::NoTrustBundles("verify_chain"));
        }
        let trusted_proxies = match self.trusted_proxies {
            None => return Err(AuthnConfigError::XfccWithoutTrustedProxies),
            Some(p) if p.is_empty() => return Err(AuthnConfigError::EmptyList("trusted_proxies")),
            Some(p) => p,
        };
        Ok(XfccSource {
            trusted_hops: self.trusted_hops,
            verify_chain: self.verify_chain,
            require_cert: self.require_cert,
            trusted_proxies,
            clock_skew_secs: self.clock_skew_secs,
        })
    }
}

impl TokenLocationRepr {
    fn check(self) -> Result<TokenLocation, AuthnConfigError> {
        check_header_name(&self.name)?;
        Ok(TokenLocation {
            name: self.name,
            prefix: self.prefix,
        })
    }
}

impl JwtConfigRepr {
    fn check(
        self,
        forward: &ForwardHeaders,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<JwtConfig, AuthnConfigError> {
        if self.providers.is_empty() {
            return Err(AuthnConfigError::EmptyList("jwt.providers"));
        }
        let mut providers = Vec::with_capacity(self.providers.len());
        for (i, p) in self.providers.into_iter().enumerate() {
            if p.audiences.as_ref().is_some_and(Vec::is_empty) {
                return Err(AuthnConfigError::EmptyList("audiences"));
            }
            if p.max_token_bytes == 0 {
                return Err(AuthnConfigError::ZeroMaxTokenBytes);
            }
            let from_header = p.from_header.check()?;
            let mut claims_to_headers = Vec::with_capacity(p.claims_to_headers.len());
            for c in p.claims_to_headers {
                check_header_name(&c.header)?;
                // A claim must not overwrite the verified identity.
                if c.header == forward.peer_id || c.header == forward.jwt_claims {
                    return Err(AuthnConfigError::BadHeaderName(c.header));
                }
                claims_to_headers.push(ClaimToHeader {
                    claim: c.claim,
                    header: c.header,
                });
            }
            let at = format!("jwt.providers[{i}]");
            let jwks =
                Jwks::from_value(p.jwks).map_err(|e| AuthnConfigError::KeySet(at.clone(), e))?;
            warnings.extend(jwks.skipped().iter().map(|k| ConfigWarning {
                key_set: at.clone(),
                key: k.clone(),
            }));
            providers.push(JwtProvider {
                issuer: p.issuer,
                audiences: p.audiences,
                jwks,
                from_header,
                clock_skew_secs: p.clock_skew_secs,
                required_claims: p.required_claims,
                claims_to_headers,
                max_token_bytes: p.max_token_bytes,
            });
        }
        Ok(JwtConfig {
            providers,
            required: self.required,
        })
    }
}

impl JwtSvidConfigRepr {
    fn check(self) -> Result<JwtSvidConfig, AuthnConfigError> {
        if self.audiences.is_empty() {
            return Err(AuthnConfigError::EmptyList("jwt_svid.audiences"));
        }
        if self.allowed_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthnConfigError::EmptyList("jwt_svid.allowed_ids"));
        }
        if self.max_token_bytes == 0 {
            return Err(AuthnConfigError::ZeroMaxTokenBytes);
        }
        Ok(JwtSvidConfig {
            audiences: self.audiences,
            from_header: self.from_header.check()?,
            required: self.required,
            allowed_ids: self.allowed_ids,
            clock_skew_secs: self.clock_skew_secs,
            max_token_bytes: self.max_token_bytes,
        })
    }
}

pub(super) fn check_header_name(name: &str) -> Result<(), AuthnConfigError> {
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

impl<'de> serde::Deserialize<'de> for PeerSourceRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        match value {
            Value::String(s) if s == "mtls" => Ok(Self::Mtls),
            Value::Object(map) if map.len() == 1 => {
                let Some((kind, inner)) = map.into_iter().next() else {
                    return Err(D::Error::custom("empty `source`"));
                };
                match kind.as_str() {
                    "mtls" => serde_json::from_value(inner)
                        .map(Self::MtlsWith)
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

pub(super) fn default_peer_id_header() -> String {
    "x-meshward-peer-id".to_owned()
}

pub(super) fn default_jwt_claims_header() -> String {
    "x-meshward-jwt-claims".to_owned()
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
