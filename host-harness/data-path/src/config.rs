//! What the data path runs: listener, TLS, filter chain, upstream, limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One data path: an mTLS listener, a filter chain and an upstream.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the mTLS listener binds (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where the Prometheus `/metrics` endpoint binds (plain HTTP, meant
    /// for a local address); none for no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The server SVID and the trust bundles clients are verified against.
    pub tls: TlsSettings,
    /// The filters every request passes through, in order.
    pub filters: Vec<FilterSpec>,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Sizes and timeouts.
    pub limits: Limits,
}

/// The listener's TLS: its certificate and the trust bundles of the trust
/// domains whose workloads may connect.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_chain_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
    /// One bundle per trust domain; a client certificate is verified
    /// against the bundle of the trust domain in its SPIFFE ID, and only
    /// that one.
    pub trust_bundles: Vec<TrustBundle>,
    /// Whether a handshake without a client certificate is refused.
    pub client_auth: ClientAuth,
}

/// The X.509 authorities of one SPIFFE trust domain.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    /// The trust domain, e.g. `example.org`.
    pub trust_domain: String,
    /// Its CA certificates, PEM.
    pub ca_pem: String,
}

/// Whether clients must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A handshake without a valid client certificate fails (mTLS).
    Required,
    /// A client may connect without one (the filters then see no peer);
    /// one that is presented must still verify.
    Optional,
}

/// One proxy-wasm filter of the chain, as an Envoy
/// `envoy.filters.http.wasm` entry describes it.
#[derive(Clone, Debug)]
pub struct FilterSpec {
    /// The filter's name (Envoy's plugin `name`), for logs and errors.
    pub name: String,
    /// The module.
    pub wasm: Arc<[u8]>,
    /// The plugin's `root_id`.
    pub root_id: String,
    /// The VM id.
    pub vm_id: String,
    /// The plugin configuration, as given to `proxy_on_configure`.
    pub configuration: String,
    /// Let traffic through when the VM fails (Envoy's `fail_open`); closed
    /// (503) by default.
    pub fail_open: bool,
}

/// The application behind the data path.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// Plain HTTP/1.1 to `host:port`.
    Http {
        /// The address.
        addr: String,
    },
    /// HTTP/1.1 over mTLS: the data path presents its own certificate and
    /// verifies the upstream's against `ca_pem` for `server_name`.
    Mtls {
        /// The address.
        addr: String,
        /// The name the upstream's certificate must carry.
        server_name: String,
        /// The CA the upstream's certificate chains to, PEM.
        ca_pem: String,
        /// The client certificate chain to present, PEM.
        cert_chain_pem: String,
        /// Its private key, PEM.
        key_pem: String,
    },
}

/// Sizes and timeouts, with Envoy-like defaults.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request header block, in bytes (Envoy's
    /// `max_request_headers_kb`, 60 KiB).
    pub max_header_bytes: usize,
    /// The most request headers (Envoy's `max_headers_count`, 100).
    pub max_headers: usize,
    /// The largest request or upstream response body buffered, in bytes.
    pub max_body_bytes: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long the upstream may take to answer.
    pub upstream_timeout: Duration,
    /// How long shutdown and reload wait for open connections to finish.
    pub drain_timeout: Duration,
    /// The per-callback deadline for filter code.
    pub filter_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            max_body_bytes: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(10),
            filter_deadline: Duration::from_millis(500),
        }
    }
}
