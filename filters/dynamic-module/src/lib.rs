//! meshward's identity and authorization filters as an Envoy dynamic module:
//! a native shared object that Envoy loads with `dlopen` through
//! `envoy.filters.http.dynamic_modules`, for Envoy users who want the
//! decision at native cost and can give the filter full trust inside
//! Envoy's process (the proxy-wasm filters stay the sandboxed form, and the
//! one Istio's `WasmPlugin` loads).
//!
//! One filter, `meshward` (the `filter_name`), runs both stages in one HTTP
//! context as the wasm module's `meshward` root id does: the identity check
//! on the connection's peer, then the Cedar decision on the identity it
//! verified. Its `filter_config` is the same JSON, `{"identity": ...,
//! "authz": ...}` with compiled policies, so a configuration moves between
//! the two forms unchanged; the `authz` part is read by the wasm filter's
//! own parser (compiled here from its source file), so it cannot mean
//! anything else here.
//!
//! Layout: `abi` holds the declarations of the part of Envoy's
//! C ABI used here, the exported event hooks and every `unsafe` block;
//! `stream` decides one request over a small `Host` trait,
//! so it is tested natively with a fake host.
//!
//! Fail-closed rules, as for the wasm filters: a configuration that does not
//! parse or validate is refused (Envoy then rejects the filter
//! configuration); a peer identity that cannot be read is no identity; a
//! value the decision needs that is not text is a denial; and a panic never
//! unwinds into Envoy: each hook catches it and answers the request with a
//! 503 naming the reason `filter_error`.
//!
//! The module declares Envoy 1.40's ABI version, `v0.2.0` (`abi.rs`); on a
//! mismatch Envoy loads it with a warning (`docs/dynamic-module.md`).
//!
//! What Envoy does not hand a dynamic module (see `ARCHITECTURE.md`): the
//! peer certificate itself and Envoy's verdict on its chain. A presented
//! client certificate counts as verified only because the listener's TLS
//! context verifies the chain (Envoy's default); a configuration that needs
//! the certificate (X.509-SVID rules checked by the filter) has no
//! certificate to check and denies.

#[cfg(not(test))]
mod abi;
mod chain;
mod outcome;
mod stream;

// The authorization filter's configuration parser, compiled from the wasm
// filter's source file: one parser for both forms. It carries fields the
// native module does not read (`peer_from` has no effect in a chain, as in
// the wasm chain).
#[allow(
    dead_code,
    reason = "shared with the wasm filter, which reads every field"
)]
#[path = "../../authz-filter/src/config.rs"]
mod config;

/// The `filter_name` this module serves: identity and authorization in one
/// HTTP context, as the wasm module's root id of the same name.
pub const FILTER_NAME: &str = "meshward";
