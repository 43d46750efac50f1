//! The identity filter: a proxy-wasm cdylib that establishes and checks the peer's SPIFFE identity.
