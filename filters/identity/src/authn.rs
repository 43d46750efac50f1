//! Peer authentication: from what the proxy knows about a connection to a
//! verified SPIFFE ID, or to a [`Denial`] that says why not.

use std::fmt;

use crate::matcher::IdMatcher;
use crate::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

/// Where the peer's identity comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeerSource {
    /// The client certificate of the mTLS connection the proxy terminated.
    #[default]
    Mtls,
}

/// What a peer must be to be let through.
///
/// Read from the filter's JSON plugin configuration; unknown fields are an
/// error so a misspelt rule is never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
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
}

impl AuthnConfig {
    /// Parses and checks the JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthnConfigError> {
        let config: Self = serde_json::from_slice(bytes)?;
        if config.allowed_trust_domains.is_empty() {
            return Err(AuthnConfigError::NoTrustDomains);
        }
        if config.allowed_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthnConfigError::EmptyAllowedIds);
        }
        Ok(config)
    }
}

/// What the host said about the connection, as raw property values.
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
}

/// Why a peer was not let through. Every variant is a denial: there is no
/// "unknown" that could be mistaken for an allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The connection is not mTLS, or the peer certificate has no URI SAN.
    NoPeerIdentity,
    /// The peer certificate's URI SAN is not a valid SPIFFE ID.
    MalformedPeerId(SpiffeIdError),
    /// The peer is in a trust domain that is not allowed.
    TrustDomainNotAllowed(SpiffeId),
    /// The peer's trust domain is allowed but the ID matches no rule.
    IdNotAllowed(SpiffeId),
}

impl Denial {
    /// A short, stable, machine-readable reason, safe to show the client.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoPeerIdentity => "no_peer_identity",
            Self::MalformedPeerId(_) => "malformed_peer_id",
            Self::TrustDomainNotAllowed(_) => "trust_domain_not_allowed",
            Self::IdNotAllowed(_) => "peer_id_not_allowed",
        }
    }

    /// The peer's ID, when one was read.
    pub fn peer(&self) -> Option<&SpiffeId> {
        match self {
            Self::TrustDomainNotAllowed(id) | Self::IdNotAllowed(id) => Some(id),
            Self::NoPeerIdentity | Self::MalformedPeerId(_) => None,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPeerIdentity => f.write_str("the peer presented no client certificate with a URI SAN"),
            Self::MalformedPeerId(e) => write!(f, "the peer's URI SAN is not a SPIFFE ID: {e}"),
            Self::TrustDomainNotAllowed(id) => {
                write!(f, "trust domain `{}` is not allowed", id.trust_domain_name())
            }
            Self::IdNotAllowed(id) => write!(f, "`{id}` matches no allowed ID"),
        }
    }
}

/// Establishes and checks the peer's identity.
pub fn authenticate(config: &AuthnConfig, facts: &PeerFacts) -> Result<SpiffeId, Denial> {
    let id = match config.source {
        PeerSource::Mtls => peer_from_mtls(facts)?,
    };
    if !config
        .allowed_trust_domains
        .iter()
        .any(|td| td.as_str() == id.trust_domain_name())
    {
        return Err(Denial::TrustDomainNotAllowed(id));
    }
    match &config.allowed_ids {
        Some(rules) if !rules.iter().any(|m| m.matches(&id)) => Err(Denial::IdNotAllowed(id)),
        _ => Ok(id),
    }
}

fn peer_from_mtls(facts: &PeerFacts) -> Result<SpiffeId, Denial> {
    // Envoy sets `connection.mtls` only when a client certificate was
    // presented and verified; anything but a single non-zero byte is treated
    // as "no".
    let mtls = matches!(facts.mtls.as_deref(), Some([b]) if *b != 0);
    let san = facts.uri_san.as_deref().filter(|s| !s.is_empty());
    match (mtls, san) {
        (true, Some(san)) => SpiffeId::from_bytes(san).map_err(Denial::MalformedPeerId),
        _ => Err(Denial::NoPeerIdentity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> AuthnConfig {
        AuthnConfig::from_json(json.as_bytes()).unwrap()
    }

    fn mtls(san: &str) -> PeerFacts {
        PeerFacts {
            mtls: Some(vec![1]),
            uri_san: Some(san.as_bytes().to_vec()),
        }
    }

    #[test]
    fn allows_a_peer_in_an_allowed_trust_domain() {
        let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
        let id = authenticate(&c, &mtls("spiffe://example.org/ns/a/sa/b")).unwrap();
        assert_eq!(id.as_str(), "spiffe://example.org/ns/a/sa/b");
    }

    #[test]
    fn denies_other_trust_domains() {
        let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
        let d = authenticate(&c, &mtls("spiffe://evil.org/ns/a/sa/b")).unwrap_err();
        assert_eq!(d.code(), "trust_domain_not_allowed");
        // A trust domain that merely starts with an allowed one is another domain.
        let d = authenticate(&c, &mtls("spiffe://example.org.evil/x")).unwrap_err();
        assert_eq!(d.code(), "trust_domain_not_allowed");
    }

    #[test]
    fn allowed_ids_narrow_the_trust_domain() {
        let c = config(
            r#"{"allowed_trust_domains": ["example.org"],
                "allowed_ids": ["spiffe://example.org/ns/web/sa/frontend", {"namespace": "ops"}]}"#,
        );
        assert!(authenticate(&c, &mtls("spiffe://example.org/ns/web/sa/frontend")).is_ok());
        assert!(authenticate(&c, &mtls("spiffe://example.org/ns/ops/sa/any")).is_ok());
        let d = authenticate(&c, &mtls("spiffe://example.org/ns/web/sa/other")).unwrap_err();
        assert_eq!(d, Denial::IdNotAllowed(SpiffeId::parse("spiffe://example.org/ns/web/sa/other").unwrap()));
    }

    #[test]
    fn no_identity_without_mtls() {
        let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
        for facts in [
            PeerFacts::default(),
            PeerFacts { mtls: Some(vec![0]), uri_san: Some(b"spiffe://example.org/a".to_vec()) },
            PeerFacts { mtls: Some(vec![1, 1]), uri_san: Some(b"spiffe://example.org/a".to_vec()) },
            PeerFacts { mtls: None, uri_san: Some(b"spiffe://example.org/a".to_vec()) },
            PeerFacts { mtls: Some(vec![1]), uri_san: None },
            PeerFacts { mtls: Some(vec![1]), uri_san: Some(vec![]) },
        ] {
            assert_eq!(authenticate(&c, &facts).unwrap_err(), Denial::NoPeerIdentity, "{facts:?}");
        }
    }

    #[test]
    fn malformed_san_is_denied() {
        let c = config(r#"{"allowed_trust_domains": ["example.org"]}"#);
        for san in ["https://example.org/a", "spiffe://example.org/a/", "spiffe://EXAMPLE.org/a"] {
            assert_eq!(authenticate(&c, &mtls(san)).unwrap_err().code(), "malformed_peer_id", "{san}");
        }
    }

    #[test]
    fn bad_configuration_is_refused() {
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"allowed_trust_domains": []}"#,
            r#"{"allowed_trust_domains": ["Example.org"]}"#,
            r#"{"allowed_trust_domains": ["example.org"], "allowed_ids": []}"#,
            r#"{"allowed_trust_domains": ["example.org"], "allowed_ids": ["spiffe://x/"]}"#,
            r#"{"allowed_trust_domains": ["example.org"], "alowed_ids": ["spiffe://x/a"]}"#,
            r#"{"allowed_trust_domains": ["example.org"], "source": "header"}"#,
        ] {
            assert!(AuthnConfig::from_json(bad.as_bytes()).is_err(), "accepted {bad:?}");
        }
    }
}
