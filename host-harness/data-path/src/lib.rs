//! meshward's mTLS reference data path: the filters deciding real traffic
//! without Envoy.
//!
//! A [`DataPath`] listens on a local address, terminates mTLS with a server
//! SVID, verifies each client chain with rustls against the trust bundle of
//! the trust domain named in the client's SPIFFE ID (several trust domains,
//! each its own CA), serves HTTP/1.1 and HTTP/2 (ALPN), and runs every
//! request through a chain of proxy-wasm filters in the wasmtime harness
//! with the connection properties Envoy would give them
//! (`connection.uri_san_peer_certificate`, `connection.peer_certificate`,
//! `connection.mtls`, `connection.peer_certificate_valid`, `source.address`
//! and so on). A request every filter lets through goes to the upstream
//! (plain HTTP/1.1 or mTLS); otherwise the filter's local reply is the
//! answer.
//!
//! ```no_run
//! # async fn f(config: meshward_data_path::Config) -> Result<(), meshward_data_path::Error> {
//! let data_path = meshward_data_path::DataPath::start(config).await?;
//! println!("listening on {}", data_path.local_addr());
//! data_path.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each filter of the chain is one VM per instance; instances are pooled
//! and taken for the length of one request's filter calls, so there are
//! about as many as worker threads. The filters see the identity-filter
//! hand-over (`proxy_set_property`) of the filters before them, as Envoy's
//! filter state carries it. [`DataPath::reload`] swaps the configuration
//! without dropping a connection; [`DataPath::shutdown`] drains. Metrics are
//! served in Prometheus' text format on a separate local port.
//!
//! Faults: a filter whose VM fails on a request (trap, deadline, memory
//! cap) fails that request closed, a 503 that reaches nobody, unless the
//! filter is configured `fail_open`; either way it is logged and counted
//! (`meshward_filter_failures_total`), and the failed instance is replaced
//! for the next request. A configuration that does not build (a module
//! that does not load, a filter that refuses its configuration or traps
//! configuring it, a bad certificate) is refused whole: at start the data
//! path does not start; on reload the last valid configuration stays,
//! logged (`configuration refused; the previous one stays`) and counted
//! (`meshward_config_reloads_total{result="failed"}`). A reload swaps one
//! whole configuration for another: each request is decided by one of
//! them, never a mix.
//!
//! What it does not do (yet): the response path does not pass through the
//! filters' response callbacks (meshward's filters decide on the request),
//! and bodies are buffered whole, up to [`Limits::max_body_bytes`].

#![forbid(unsafe_code)]

mod chain;
mod config;
mod error;
mod local;
mod metrics;
mod server;
mod tls;
mod upstream;

pub use self::{
    config::{ClientAuth, Config, FilterSpec, Limits, TlsSettings, TrustBundle, Upstream},
    error::Error,
    local::{Client, ClientResponse, EchoUpstream},
    metrics::Metrics,
    server::DataPath,
};
