//! What the proxy knows about one request, independent of any host API.

use std::net::SocketAddr;
use std::time::SystemTime;

use meshward_identity::SpiffeId;

use crate::authority::AuthorityError;
use crate::path::{PathError, PathOptions, normalize_path};

/// The facts about one HTTP request that policies can see.
///
/// The filter fills this from proxy-wasm properties and headers, as bytes
/// ([`RequestFacts::from_raw`]); tests and the CLI fill it from text
/// ([`RequestFacts::new`]). Nothing here is trusted or verified by this crate:
/// `peer` and `jwt_claims` must come from the identity crate's verification.
///
/// Nothing a client sends can make the engine panic: a method, authority or
/// path that is not valid text, or a path with no normal form, is recorded
/// here and denied by [`PolicyEngine::decide`](crate::PolicyEngine::decide)
/// with [`Reason::InvalidRequest`](crate::Reason::InvalidRequest); so is a
/// header or query parameter that a policy reads and that is not UTF-8.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RequestFacts {
    /// The verified SPIFFE ID of the peer workload, if any.
    pub peer: Option<SpiffeId>,
    /// The HTTP method as sent, case-sensitive (`GET`, not `get`).
    pub method: String,
    /// The authority (`:authority` or `Host`) as sent, with or without a
    /// port; the engine canonicalises it.
    pub host: String,
    /// The path in normal form (see [`normalize_path`]), without the query.
    /// The engine denies a path that is not in normal form.
    pub path: String,
    /// The raw query, without the `?`; empty when there is none.
    pub query: String,
    /// The destination port the request arrived on.
    pub port: u16,
    /// The request headers in arrival order, names in any case, values as
    /// bytes. Only those some policy reads matter
    /// ([`PolicyEngine::reads_header`](crate::PolicyEngine::reads_header)):
    /// a header no policy reads is never looked at, so a caller may leave
    /// it out.
    pub headers: Headers,
    /// The downstream peer's address.
    pub source: Option<SocketAddr>,
    /// The TLS server name the client asked for.
    pub sni: Option<String>,
    /// Whether the connection was mutual TLS.
    pub mtls: bool,
    /// The claims of the end user's verified JWT, if there was one.
    pub jwt_claims: Option<serde_json::Value>,
    /// When the request arrived, from the host's clock.
    pub time: SystemTime,
    path_options: PathOptions,
    rewritten_path: Option<String>,
    invalid: Option<InvalidRequest>,
}

/// Why a request cannot be decided on: it is denied with
/// [`Reason::InvalidRequest`](crate::Reason::InvalidRequest) and this as its
/// error. Messages name the header or parameter, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The method is not valid UTF-8.
    #[error("method is not valid UTF-8")]
    Method,
    /// The authority names no host.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The path has no normal form.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `facts.path` was set to a path that is not in normal form.
    #[error("path is not in normal form")]
    PathNotNormal,
    /// A header a policy reads is not valid UTF-8.
    #[error("header `{0}` is not valid UTF-8")]
    Header(String),
    /// A query parameter a policy reads is not valid UTF-8 once decoded.
    #[error("query parameter `{0}` is not valid UTF-8")]
    Param(String),
}

/// Request headers in arrival order: names as text, values as bytes, since
/// HTTP allows any byte but NUL, CR and LF in a value.
///
/// Collects from `(name, value)` pairs of strings or bytes:
/// `facts.headers = pairs.into_iter().collect()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Adds a header.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    /// The headers in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl RequestFacts {
    /// Facts for a request with this method, authority and `:path` (which may
    /// carry a query), from text; the path is normalised with the default
    /// [`PathOptions`]. Everything else empty, port 0, time the Unix epoch.
    pub fn new(method: &str, host: &str, path_and_query: &str) -> Self {
        Self::from_raw(
            method.as_bytes(),
            host.as_bytes(),
            path_and_query.as_bytes(),
            &PathOptions::default(),
        )
    }

    /// Facts for a request from the bytes of its `:method`, `:authority` and
    /// `:path` (query included) as the proxy has them. Never fails: what is
    /// not valid is recorded ([`RequestFacts::invalid`]) and denied by the
    /// engine. The path is normalised with `path_options`; when its normal
    /// form differs from what was sent, [`RequestFacts::rewritten_path`] is
    /// the `:path` the filter must forward, so that the upstream gets the
    /// path that was decided on.
    pub fn from_raw(
        method: &[u8],
        authority: &[u8],
        path_and_query: &[u8],
        path_options: &PathOptions,
    ) -> Self {
        let mut invalid = None;
        let mut text = |bytes: &[u8], err: InvalidRequest| match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                invalid.get_or_insert(err);
                String::from_utf8_lossy(bytes).into_owned()
            }
        };
        let method = text(method, InvalidRequest::Method);
        let host = text(authority, AuthorityError::NotUtf8.into());
        let (path, query, rewritten_path) = match normalize_path(path_and_query, path_options) {
            Ok(n) => {
                let rewritten = n.changed().then(|| n.to_path_and_query());
                (
                    n.path().to_owned(),
                    n.query().unwrap_or_default().to_owned(),
                    rewritten,
                )
            }
            Err(e) => {
                invalid.get_or_insert(e.into());
                // Kept as sent, for the decision log.
                let raw = String::from_utf8_lossy(path_and_query);
                let (p, q) = raw.split_once('?').unwrap_or((&raw, ""));
                (p.to_owned(), q.to_owned(), None)
            }
        };
        Self {
            peer: None,
            method,
            host,
            path,
            query,
            port: 0,
            headers: Headers::default(),
            source: None,
            sni: None,
            mtls: false,
            jwt_claims: None,
            time: SystemTime::UNIX_EPOCH,
            path_options: *path_options,
            rewritten_path,
            invalid,
        }
    }

    /// Sets the peer identity.
    #[must_use]
    pub fn with_peer(mut self, peer: SpiffeId) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push(name, value.as_ref());
        self
    }

    /// The `:path` (query included) the filter must forward instead of the
    /// one the client sent, when normalisation changed it.
    pub fn rewritten_path(&self) -> Option<&str> {
        self.rewritten_path.as_deref()
    }

    /// What made the method, authority or path invalid, if anything; the
    /// engine denies such a request without evaluating any policy.
    pub fn invalid(&self) -> Option<&InvalidRequest> {
        self.invalid.as_ref()
    }

    /// The options the path was normalised with.
    pub(crate) fn path_options(&self) -> &PathOptions {
        &self.path_options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_parts_are_checked_not_trusted() {
        let f = RequestFacts::from_raw(b"GET", b"h", b"/a/../b?x=1", &PathOptions::default());
        assert_eq!((f.path.as_str(), f.query.as_str()), ("/b", "x=1"));
        assert_eq!(f.rewritten_path(), Some("/b?x=1"));
        assert_eq!(f.invalid(), None);

        let f = RequestFacts::new("GET", "h", "/b?x=1");
        assert_eq!(f.rewritten_path(), None);

        let f = RequestFacts::from_raw(b"G\xffT", b"h", b"/", &PathOptions::default());
        assert_eq!(f.invalid(), Some(&InvalidRequest::Method));
        let f = RequestFacts::from_raw(b"GET", b"h\xff", b"/", &PathOptions::default());
        assert_eq!(
            f.invalid().map(ToString::to_string).as_deref(),
            Some("authority is not valid UTF-8")
        );
        let f = RequestFacts::from_raw(b"GET", b"h", b"/a%2Fb", &PathOptions::default());
        assert_eq!(
            f.invalid(),
            Some(&InvalidRequest::Path(PathError::EscapedSlash))
        );
        assert_eq!(f.path, "/a%2Fb");
    }

    #[test]
    fn headers_collect_from_text_or_bytes() {
        let h: Headers = [("a", "1")].into_iter().collect();
        let b: Headers = [("a".to_owned(), b"1".to_vec())].into_iter().collect();
        assert_eq!(h, b);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("a", &b"1"[..])]);
    }
}
