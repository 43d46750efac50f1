//! Peer authentication: from what the proxy knows about a connection and a
//! request to a verified [`Identity`], or to a [`Denial`] that says why not.

mod config;
mod facts;
mod sources;
mod tokens;
mod verdict;

pub use self::config::{
    AuthnConfig, AuthnConfigError, ClaimToHeader, ConfigWarning, ForwardHeaders, JwtConfig,
    JwtProvider, JwtSvidConfig, MtlsSource, PeerSource, TokenLocation, XfccSource,
};
pub use self::facts::PeerFacts;
pub use self::verdict::{Denial, EndUserClaims, Identity, JwtSvid};

/// The request header Envoy uses for forwarded client certificates.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// Establishes and checks the peer's identity, and the tokens the
/// configuration asks for, at `now_unix_secs` (the host's clock; this crate
/// never reads one).
pub fn authenticate(
    config: &AuthnConfig,
    facts: &PeerFacts,
    now_unix_secs: i64,
) -> Result<Identity, Denial> {
    let presented = match &config.source {
        PeerSource::Mtls(m) => sources::peer_from_mtls(m, facts, now_unix_secs)?,
        PeerSource::Xfcc(x) => sources::peer_from_xfcc(config, x, facts, now_unix_secs)?,
    };
    let peer = sources::canonical(&config.bundles, &presented);
    if !config.allowed_trust_domains.contains(&peer.trust_domain()) {
        return Err(Denial::TrustDomainNotAllowed(peer));
    }
    if let Some(rules) = &config.allowed_ids
        && !rules.iter().any(|m| m.matches(&peer))
    {
        return Err(Denial::IdNotAllowed(peer));
    }
    let jwt_svid = match &config.jwt_svid {
        Some(c) => tokens::check_jwt_svid(config, c, facts, now_unix_secs)?,
        None => None,
    };
    let mut headers_to_set = Vec::new();
    let end_user = match &config.jwt {
        Some(c) => tokens::check_end_user(c, facts, now_unix_secs, &mut headers_to_set)?,
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

#[cfg(test)]
#[cfg(feature = "verify")]
mod tests;
