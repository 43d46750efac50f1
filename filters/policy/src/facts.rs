//! What the proxy knows about one request, independent of any host API.

use std::net::SocketAddr;
use std::time::SystemTime;

use meshward_identity::SpiffeId;

/// The facts about one HTTP request that policies can see.
///
/// The filter fills this from proxy-wasm properties and headers; tests and the
/// CLI fill it from JSON. Nothing here is trusted or verified by this crate:
/// `peer` and `jwt_claims` must come from the identity crate's verification.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RequestFacts {
    /// The verified SPIFFE ID of the peer workload, if any.
    pub peer: Option<SpiffeId>,
    /// The HTTP method, case-sensitive (`GET`, not `get`).
    pub method: String,
    /// The authority (`:authority` or `Host`), with or without a port.
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query, without the `?`; empty when there is none.
    pub query: String,
    /// The destination port the request arrived on.
    pub port: u16,
    /// The request headers in arrival order, names in any case.
    pub headers: Vec<(String, String)>,
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
}

impl RequestFacts {
    /// Facts for a request with this method, authority and `:path` (which may
    /// carry a query); everything else empty, port 0, time the Unix epoch.
    pub fn new(method: &str, host: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self {
            peer: None,
            method: method.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            port: 0,
            headers: Vec::new(),
            source: None,
            sni: None,
            mtls: false,
            jwt_claims: None,
            time: SystemTime::UNIX_EPOCH,
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
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}
