//! A wasmtime host that runs any proxy-wasm filter the way Envoy does, for
//! tests and benches.
//!
//! It implements the proxy-wasm ABI 0.2.1 and 0.2.0 and the WASI preview1
//! functions Envoy gives filters, and follows Envoy's semantics where the
//! spec leaves room: the stream state machine, deferred local replies,
//! pause and resume, body buffering, property encodings, fail-open and
//! fail-closed after a VM failure. It knows nothing about any particular
//! filter.
//!
//! ```no_run
//! use meshward_harness::{Host, PluginConfig, Properties, Request};
//!
//! let host = Host::new()?;
//! let filter = host.load_file("target/wasm32-wasip1/filter/my_filter.wasm")?;
//! let mut plugin = filter.start(
//!     PluginConfig::new()
//!         .configuration(r#"{"mode":"enforce"}"#)
//!         .properties(&Properties::istio_inbound_mtls("spiffe://example.org/ns/a/sa/b", "-----BEGIN CERTIFICATE-----...")),
//! )?;
//! let exchange = plugin.send(Request::get("/api").header("x-user", "alice"));
//! assert_eq!(exchange.status(), 200);
//! assert!(exchange.forwarded());
//! println!("{:?} {:?}", plugin.logs(), plugin.metric_value("allowed"));
//! # Ok::<(), meshward_harness::Error>(())
//! ```
//!
//! Each [`Plugin`] owns its wasmtime `Store`; nothing is global, so tests
//! run in parallel. Every callback runs under a wall-clock deadline (and
//! optionally fuel) and a memory cap: a runaway filter fails with a
//! [`Failure`] instead of hanging the test.

mod abi;
mod callout;
mod error;
mod host;
mod http;
mod imports;
mod memory;
mod metrics;
mod network;
mod plugin;
mod properties;
mod shared;
mod state;
mod stream;
#[cfg(test)]
mod tests;
mod trace;

pub use self::{
    abi::{AbiVersion, LogLevel},
    callout::{
        ForeignFunction, GrpcCallRequest, GrpcReply, GrpcUpstream, HttpCallReply, HttpCallRequest,
        HttpUpstream, timeout_response,
    },
    error::{Error, Failure, FailureKind},
    host::{Filter, Host, Limits, PluginConfig},
    http::{
        End, Exchange, HeaderValue, Headers, LocalReply, Message, Request, Response, escape_bytes,
        headers,
    },
    metrics::{Metric, MetricKind},
    network::{Peer, TcpConnection},
    plugin::Plugin,
    properties::{Properties, Value},
    shared::Shared,
    state::LogRecord,
    stream::{HttpStream, Step},
    trace::Call,
};
