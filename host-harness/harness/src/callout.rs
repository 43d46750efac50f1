//! HTTP and gRPC callouts answered by test-supplied upstreams, and foreign
//! functions.

use std::sync::Arc;
use std::time::Duration;

use crate::http::Response;

/// An HTTP callout a filter made with `proxy_http_call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCallRequest {
    /// The upstream (Envoy cluster) name.
    pub upstream: String,
    /// Request headers, including `:method`, `:path` and `:authority`.
    pub headers: crate::http::Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: crate::http::Headers,
    /// The filter's timeout.
    pub timeout: Duration,
}

impl HttpCallRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }
}

/// How a test upstream answers an HTTP callout.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpCallReply {
    /// A response, delivered once the current callback returns.
    Response(Response),
    /// The call failed (reset, timeout, no healthy upstream): the filter
    /// gets `proxy_on_http_call_response` with no headers, body or trailers.
    Failure,
    /// No answer yet: the test answers later with
    /// [`Plugin::complete_http_call`](crate::Plugin::complete_http_call),
    /// or the call times out when [`Plugin::advance`](crate::Plugin::advance)
    /// moves the clock past its timeout.
    Pending,
    /// The upstream did not answer in time: the filter gets what Envoy's
    /// async client answers then, [`timeout_response`].
    Timeout,
}

/// What Envoy's async client gives `proxy_on_http_call_response` when a
/// callout times out: a `504` with its local-reply body (Envoy 1.40).
pub fn timeout_response() -> Response {
    let body = "upstream request timeout";
    Response::new(504)
        .header("content-length", body.len().to_string())
        .header("content-type", "text/plain")
        .body(body)
}

/// A gRPC call (or one message on a gRPC stream) made by a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCallRequest {
    /// The upstream (cluster) name.
    pub upstream: String,
    /// The service, e.g. `helloworld.Greeter`.
    pub service: String,
    /// The method, e.g. `SayHello`.
    pub method: String,
    /// Initial metadata.
    pub initial_metadata: crate::http::Headers,
    /// The request message (for a stream: the message just sent).
    pub message: Vec<u8>,
    /// True for the last message of a stream and for unary calls.
    pub end_of_stream: bool,
}

/// How a test upstream answers a gRPC call or stream message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcReply {
    /// Initial metadata (delivered first when not empty).
    pub initial_metadata: crate::http::Headers,
    /// Response messages.
    pub messages: Vec<Vec<u8>>,
    /// Trailing metadata.
    pub trailing_metadata: crate::http::Headers,
    /// The gRPC status delivered to `proxy_on_grpc_close` (0 is OK).
    pub status: u32,
    /// The status message, readable with `proxy_get_status`.
    pub status_message: String,
}

impl GrpcReply {
    /// A successful reply carrying one message.
    pub fn ok(message: impl Into<Vec<u8>>) -> Self {
        Self {
            messages: vec![message.into()],
            ..Self::default()
        }
    }

    /// A failed call with `status` and `message`.
    pub fn error(status: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            status_message: message.into(),
            ..Self::default()
        }
    }
}

/// A test upstream for HTTP callouts.
pub type HttpUpstream = Arc<dyn Fn(&HttpCallRequest) -> HttpCallReply + Send + Sync>;
/// A test upstream for gRPC calls and streams.
pub type GrpcUpstream = Arc<dyn Fn(&GrpcCallRequest) -> GrpcReply + Send + Sync>;
/// A foreign function a filter can call with `proxy_call_foreign_function`:
/// arguments in, results out; `None` makes the call fail with
/// `INTERNAL_FAILURE`.
pub type ForeignFunction = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;
