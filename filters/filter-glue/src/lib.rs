//! What meshward's two proxy-wasm filters share, so that they cannot drift
//! apart: the root context (configuration loading and refusal, counters,
//! stream creation), host reads that take every value as bytes, and the
//! identity hand-over contract between the identity filter and the
//! authorization filter.
//!
//! The hand-over goes through Envoy's filter state, never through request
//! headers: a client can send any header, but only a filter can write filter
//! state. See [`Handover`].

#![forbid(unsafe_code)]

mod handover;
mod host;
mod identity_headers;
mod root;

pub use self::{
    handover::{Handover, JWT_CLAIMS_PROPERTY, PEER_ID_PROPERTY},
    host::{
        counter, increment, log, now, property, property_is_true, reply, request_header,
        request_headers, set_request_header,
    },
    identity_headers::{IdentityHeaders, spells},
    root::{Filter, Shared, install},
};
