//! SPIFFE IDs and trust domains, per the SPIFFE-ID specification.
//!
//! Parsing is strict: anything the specification forbids is an error naming
//! the rule it broke, because an identity that is "almost" valid must never
//! be treated as one that is.

use std::fmt;
use std::str::FromStr;

/// The longest SPIFFE ID, in bytes, that the specification allows.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The longest trust domain name, in bytes, that the specification allows.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME: &str = "spiffe";

/// Why a string is not a SPIFFE ID or a trust domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input was empty.
    #[error("empty SPIFFE ID")]
    Empty,
    /// Longer than [`MAX_SPIFFE_ID_LEN`].
    #[error("SPIFFE ID is {0} bytes, longer than the 2048 allowed")]
    TooLong(usize),
    /// The scheme is missing or is not exactly `spiffe` (lowercase).
    #[error("scheme must be `spiffe://`")]
    WrongScheme,
    /// No trust domain after the scheme.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// Longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {0} bytes, longer than the 255 allowed")]
    TrustDomainTooLong(usize),
    /// A byte outside `[a-z0-9.-_]` in the trust domain (this also rejects
    /// ports, userinfo, percent-encoding and upper case).
    #[error(
        "trust domain has the character `{0}`, allowed are lowercase letters, digits, `.`, `-` and `_`"
    )]
    BadTrustDomainChar(char),
    /// A byte outside `[a-zA-Z0-9.-_]` in a path segment.
    #[error("path has the character `{0}`, allowed are letters, digits, `.`, `-` and `_`")]
    BadPathChar(char),
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a `.` or `..` segment")]
    DotSegment,
    /// A query (`?`) or fragment (`#`).
    #[error("SPIFFE IDs cannot have a query or fragment")]
    QueryOrFragment,
    /// The bytes the host handed over are not UTF-8.
    #[error("SPIFFE ID is not valid UTF-8")]
    NotUtf8,
}

/// A SPIFFE trust domain name: non-empty, at most 255 bytes of `[a-z0-9.-_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`) or the trust domain
    /// of a SPIFFE ID (`spiffe://example.org/...`).
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if has_scheme(input) {
            return SpiffeId::parse(input).map(|id| id.trust_domain().clone());
        }
        validate_trust_domain(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            text: format!("{SCHEME}://{}", self.0),
            path_start: SCHEME.len() + 3 + self.0.len(),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A valid SPIFFE ID, exactly as presented (the spec admits one spelling).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    text: String,
    // Byte offset of the path within `text`; `text.len()` when there is none.
    path_start: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong(input.len()));
        }
        // The SPIFFE-ID spec's validation requires the literal, lowercase
        // `spiffe://`. RFC 3986 would fold case, but Envoy's RBAC principals
        // and every other SPIFFE implementation compare the bytes, so
        // accepting `SPIFFE://` here would make this filter disagree with them
        // about who the peer is.
        let Some(rest) = input.strip_prefix("spiffe://") else {
            return Err(SpiffeIdError::WrongScheme);
        };
        if rest.contains(['?', '#']) {
            return Err(SpiffeIdError::QueryOrFragment);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_trust_domain(td)?;
        validate_path(path)?;
        Ok(Self {
            text: input.to_owned(),
            path_start: SCHEME.len() + 3 + td.len(),
        })
    }

    /// Parses a SPIFFE ID from bytes as a host hands them over; anything that
    /// is not UTF-8 cannot be a SPIFFE ID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SpiffeIdError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SpiffeIdError::NotUtf8)?;
        Self::parse(text)
    }

    /// The whole ID, e.g. `spiffe://example.org/ns/web/sa/frontend`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The trust domain name.
    pub fn trust_domain_name(&self) -> &str {
        self.text
            .get(SCHEME.len() + 3..self.path_start)
            .unwrap_or_default()
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_name().to_owned())
    }

    /// The path, `""` for the ID of a trust domain, else starting with `/`.
    pub fn path(&self) -> &str {
        self.text.get(self.path_start..).unwrap_or_default()
    }

    /// The path segments, without the slashes.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').skip(1)
    }

    /// The Kubernetes namespace of an Istio-style ID (`/ns/<ns>/sa/<sa>`).
    pub fn namespace(&self) -> Option<&str> {
        self.istio_parts().map(|(ns, _)| ns)
    }

    /// The Kubernetes service account of an Istio-style ID (`/ns/<ns>/sa/<sa>`).
    pub fn service_account(&self) -> Option<&str> {
        self.istio_parts().map(|(_, sa)| sa)
    }

    fn istio_parts(&self) -> Option<(&str, &str)> {
        let mut s = self.segments();
        match (s.next(), s.next(), s.next(), s.next(), s.next()) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((ns, sa)),
            _ => None,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

fn has_scheme(input: &str) -> bool {
    input.contains("://")
}

fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong(td.len()));
    }
    match td.chars().find(|&c| !is_trust_domain_char(c)) {
        Some(c) => Err(SpiffeIdError::BadTrustDomainChar(c)),
        None => Ok(()),
    }
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split item is the empty prefix.
    for segment in path.split('/').skip(1) {
        if segment.is_empty() {
            return Err(SpiffeIdError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
            return Err(SpiffeIdError::BadPathChar(c));
        }
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_')
}

#[cfg(test)]
mod tests;
