//! The identity filter: a proxy-wasm `cdylib` over `meshward-identity`
//! (root id `meshward_identity`, Istio's AUTHN phase).
//!
//! It reads the peer's identity from the connection, asks the library whether
//! that peer may connect, and either lets the request continue or answers it
//! locally with the reason. A request it lets through carries the verified
//! identity in two places: Envoy's filter state, for meshward's
//! authorization filter later in the chain (the hand-over a client cannot
//! forge, [`meshward_filter_glue::Handover`]), and request headers for the
//! application, written after every client copy in any spelling is removed.
//!
//! The request handling lives in `meshward-filter-glue`
//! ([`meshward_filter_glue::IdentityStream`]): the authorization module runs
//! the same code when it serves this root id or chains identity and
//! authorization in one context. This crate is the module with only the
//! identity filter in it.

#![forbid(unsafe_code)]

// The entry point lives in a private module: it is exported by name for the
// host, not part of a Rust API.
mod entry {
    proxy_wasm::main! {{
        meshward_filter_glue::install::<meshward_filter_glue::IdentityStream>();
    }}
}
