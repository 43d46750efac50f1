//! What meshward's proxy-wasm filters share, so that they cannot drift
//! apart: the root context (configuration loading and refusal, counters,
//! stream creation), host reads that take every value as bytes, the
//! connection facts read once per connection, the identity filter's work on
//! a request (run by the identity module and by the module that chains
//! identity and authorization in one context), and the identity hand-over
//! contract between the identity filter and the authorization filter.
//!
//! The hand-over goes through Envoy's filter state, never through request
//! headers: a client can send any header, but only a filter can write filter
//! state. See [`Handover`].

#![forbid(unsafe_code)]

mod connection;
mod handover;
mod host;
mod identity;
mod identity_headers;
mod root;

pub use self::{
    connection::{CAPACITY, Connection, Connections, SharedConnections, Wants, connection},
    handover::{Handover, PEER_ID_PROPERTY},
    host::{
        counter, increment, log, log_enabled, now, property, property_is_true, reply,
        request_header, request_headers, set_request_header,
    },
    identity::{
        IdentityMetrics, IdentityOutcome, IdentityStream, forward_identity, identify,
        identity_wants,
    },
    identity_headers::{IdentityHeaders, spells},
    root::{Filter, Shared, install, root},
};
