//! Which SPIFFE IDs a rule admits.
//!
//! Configuration writes matchers as strings (`spiffe://td/ns/web/sa/api` for
//! one ID, `spiffe://td/ns/web/*` for every ID under a path, `spiffe://td/*`
//! for a whole trust domain) or as Istio-style objects naming a namespace and
//! service account.

use std::fmt;

use crate::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

/// A rule that admits some SPIFFE IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMatcher {
    /// Exactly this ID.
    Exact(SpiffeId),
    /// Any ID in this trust domain.
    TrustDomain(TrustDomain),
    /// Any ID in the trust domain whose path is `prefix` or lies below it.
    /// Matching is by whole segments: `/ns/web` admits `/ns/web/sa/x` but not
    /// `/ns/webhooks`.
    PathPrefix {
        /// The trust domain the ID must be in.
        trust_domain: TrustDomain,
        /// A valid SPIFFE ID path, starting with `/`.
        prefix: String,
    },
    /// Istio-style `/ns/<namespace>/sa/<service account>` IDs; a `None` field
    /// matches anything.
    Istio {
        /// The trust domain, or any.
        trust_domain: Option<TrustDomain>,
        /// The namespace, or any.
        namespace: Option<String>,
        /// The service account, or any.
        service_account: Option<String>,
    },
}

impl IdMatcher {
    /// Parses the string form.
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if let Some(base) = text.strip_suffix("/*") {
            let id = SpiffeId::parse(base)?;
            return Ok(if id.path().is_empty() {
                Self::TrustDomain(id.trust_domain())
            } else {
                Self::PathPrefix {
                    trust_domain: id.trust_domain(),
                    prefix: id.path().to_owned(),
                }
            });
        }
        SpiffeId::parse(text).map(Self::Exact)
    }

    /// Whether `id` is admitted.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(want) => want == id,
            Self::TrustDomain(td) => td.as_str() == id.trust_domain_name(),
            Self::PathPrefix {
                trust_domain,
                prefix,
            } => {
                trust_domain.as_str() == id.trust_domain_name()
                    && id
                        .path()
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            Self::Istio {
                trust_domain,
                namespace,
                service_account,
            } => {
                trust_domain
                    .as_ref()
                    .is_none_or(|td| td.as_str() == id.trust_domain_name())
                    && id.namespace().is_some()
                    && namespace
                        .as_deref()
                        .is_none_or(|ns| id.namespace() == Some(ns))
                    && service_account
                        .as_deref()
                        .is_none_or(|sa| id.service_account() == Some(sa))
            }
        }
    }
}

impl fmt::Display for IdMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(id) => write!(f, "{id}"),
            Self::TrustDomain(td) => write!(f, "spiffe://{td}/*"),
            Self::PathPrefix {
                trust_domain,
                prefix,
            } => write!(f, "spiffe://{trust_domain}{prefix}/*"),
            Self::Istio {
                trust_domain,
                namespace,
                service_account,
            } => write!(
                f,
                "spiffe://{}/ns/{}/sa/{}",
                trust_domain.as_ref().map_or("*", |t| t.as_str()),
                namespace.as_deref().unwrap_or("*"),
                service_account.as_deref().unwrap_or("*"),
            ),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MatcherRepr {
    Text(String),
    Istio(IstioRepr),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IstioRepr {
    trust_domain: Option<TrustDomain>,
    namespace: Option<String>,
    service_account: Option<String>,
}

impl<'de> serde::Deserialize<'de> for IdMatcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match MatcherRepr::deserialize(d)? {
            MatcherRepr::Text(s) => {
                Self::parse(&s).map_err(|e| D::Error::custom(format!("`{s}`: {e}")))
            }
            MatcherRepr::Istio(r) => {
                for part in [&r.namespace, &r.service_account].into_iter().flatten() {
                    if part.is_empty() || !part.chars().all(is_segment_char) {
                        return Err(D::Error::custom(format!(
                            "`{part}` is not a valid SPIFFE ID path segment"
                        )));
                    }
                }
                Ok(Self::Istio {
                    trust_domain: r.trust_domain,
                    namespace: r.namespace,
                    service_account: r.service_account,
                })
            }
        }
    }
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn string_forms() {
        let exact = IdMatcher::parse("spiffe://td/ns/a/sa/b").unwrap();
        assert!(exact.matches(&id("spiffe://td/ns/a/sa/b")));
        assert!(!exact.matches(&id("spiffe://td/ns/a/sa/bb")));
        assert!(!exact.matches(&id("spiffe://other/ns/a/sa/b")));

        let td = IdMatcher::parse("spiffe://td/*").unwrap();
        assert_eq!(
            td,
            IdMatcher::TrustDomain(TrustDomain::parse("td").unwrap())
        );
        assert!(td.matches(&id("spiffe://td/anything/at/all")));
        assert!(td.matches(&id("spiffe://td")));
        assert!(!td.matches(&id("spiffe://td2/x")));

        let prefix = IdMatcher::parse("spiffe://td/ns/web/*").unwrap();
        assert!(prefix.matches(&id("spiffe://td/ns/web")));
        assert!(prefix.matches(&id("spiffe://td/ns/web/sa/x")));
        assert!(!prefix.matches(&id("spiffe://td/ns/webhooks/sa/x")));
        assert!(!prefix.matches(&id("spiffe://other/ns/web/sa/x")));

        assert!(IdMatcher::parse("spiffe://td/ns//*").is_err());
        assert!(IdMatcher::parse("spiffe://TD/*").is_err());
        assert!(IdMatcher::parse("*").is_err());
    }

    #[test]
    fn istio_objects() {
        let m: IdMatcher = serde_json::from_str(r#"{"namespace": "web"}"#).unwrap();
        assert!(m.matches(&id("spiffe://cluster.local/ns/web/sa/x")));
        assert!(m.matches(&id("spiffe://other.td/ns/web/sa/y")));
        assert!(!m.matches(&id("spiffe://cluster.local/ns/api/sa/x")));
        assert!(!m.matches(&id("spiffe://cluster.local/web")));

        let m: IdMatcher = serde_json::from_str(
            r#"{"trust_domain": "cluster.local", "namespace": "web", "service_account": "fe"}"#,
        )
        .unwrap();
        assert!(m.matches(&id("spiffe://cluster.local/ns/web/sa/fe")));
        assert!(!m.matches(&id("spiffe://cluster.local/ns/web/sa/be")));
        assert!(!m.matches(&id("spiffe://other/ns/web/sa/fe")));

        let any: IdMatcher = serde_json::from_str("{}").unwrap();
        assert!(any.matches(&id("spiffe://x/ns/a/sa/b")));
        assert!(!any.matches(&id("spiffe://x/a/b")), "needs the Istio shape");

        for bad in [
            r#"{"namespace": ""}"#,
            r#"{"namespace": "a/b"}"#,
            r#"{"namespace": "web", "nmespace": "x"}"#,
            r#"{"trust_domain": "UPPER"}"#,
            "42",
        ] {
            assert!(serde_json::from_str::<IdMatcher>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_reads_back() {
        for s in [
            "spiffe://td/ns/a/sa/b",
            "spiffe://td/*",
            "spiffe://td/ns/a/*",
        ] {
            assert_eq!(IdMatcher::parse(s).unwrap().to_string(), s);
        }
    }
}
