//! Who is the peer, beyond doubt.
//!
//! This crate turns what a proxy knows about a connection and a request into a
//! verified SPIFFE identity, or into a denial with a reason. It has no
//! proxy-wasm, no clock and no I/O: the caller passes in bytes it read from the
//! host and the current time, so the same code runs natively, in the wasmtime
//! harness and inside Envoy.

#![forbid(unsafe_code)]

mod authn;
mod matcher;
mod spiffe_id;

pub use self::{
    authn::{AuthnConfig, AuthnConfigError, Denial, PeerFacts, PeerSource, authenticate},
    matcher::IdMatcher,
    spiffe_id::{MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeId, SpiffeIdError, TrustDomain},
};
