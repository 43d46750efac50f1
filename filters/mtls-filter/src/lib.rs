//! `meshward_mtls_filter.wasm`: the authorization module (`meshward-authz-filter`,
//! root ids `meshward`, `meshward_authz` and `meshward_identity`) built
//! without the identity crate's `verify` feature.
//!
//! For the common mesh case, where Envoy's TLS stack has verified the peer
//! and the SPIFFE ID comes from its URI SAN (or from the URI of a trusted
//! XFCC hop), the filter needs none of X.509 parsing, chain building or JWT
//! signature checks. Leaving them out halves the code that V8 compiles with
//! TurboFan before the listener is ready, and what it keeps resident per
//! sidecar (BENCHMARKS.md, "The mTLS-only module"). A configuration that asks
//! for a check this build lacks (`jwt`, `jwt_svid`,
//! `validate_certificate`, `verify_chain`, `require_cert`) is refused, so
//! every request is denied with reason `misconfigured`; an XFCC element that
//! carries a certificate is denied rather than trusted unchecked.

#![forbid(unsafe_code)]

// Links the authorization module, whose entry point and proxy-wasm exports
// are this module's.
use meshward_authz_filter as _;
