//! The tokens a configuration asks for: JWT-SVIDs and end-user JWTs.

use serde_json::Value;

use super::sources::canonical;
use super::{
    AuthnConfig, Denial, EndUserClaims, JwtConfig, JwtSvid, JwtSvidConfig, PeerFacts, TokenLocation,
};
use crate::jwt::{self, ClaimRules, JwtError};
use crate::spiffe_id::SpiffeId;

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

pub(super) fn check_jwt_svid(
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

pub(super) fn check_end_user(
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
