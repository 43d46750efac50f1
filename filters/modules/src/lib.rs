//! meshward's compiled proxy-wasm filters, built by this crate's build script
//! for `wasm32-wasip1` with the `filter` profile, so that depending on this
//! crate is all a test, bench or tool needs to do to have current modules.
//!
//! Every [`Module`] names its package, the `root_id` its root context answers
//! to, its file and its bytes; the bytes are compiled in, so a binary that
//! embeds them runs from any folder.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// One compiled filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    /// The cargo package it is built from.
    pub package: &'static str,
    /// The `root_id` its root context is configured under in Envoy.
    pub root_id: &'static str,
    /// The module, as built when this crate was compiled.
    pub bytes: &'static [u8],
}

impl Module {
    /// Where the module was built, in this workspace's target folder. The
    /// file may since have been rebuilt; [`Module::bytes`] never changes.
    pub fn path(&self) -> PathBuf {
        Path::new(env!("MESHWARD_WASM_DIR"))
            .join(format!("{}.wasm", self.package.replace('-', "_")))
    }
}

/// The identity filter (Istio's AUTHN phase).
pub const IDENTITY: Module = Module {
    package: "meshward-identity-filter",
    root_id: "meshward_identity",
    bytes: include_bytes!(concat!(
        env!("MESHWARD_WASM_DIR"),
        "/meshward_identity_filter.wasm"
    )),
};

/// The Cedar authorization filter (Istio's AUTHZ phase).
pub const AUTHZ: Module = Module {
    package: "meshward-authz-filter",
    root_id: "meshward_authz",
    bytes: include_bytes!(concat!(
        env!("MESHWARD_WASM_DIR"),
        "/meshward_authz_filter.wasm"
    )),
};

/// Identity and authorization in one HTTP context: the authorization
/// module under root id `meshward`, configured with `{"identity": {...},
/// "authz": {...}}`. The same module also serves the identity filter's root
/// id, so two plugins loading it share one VM.
pub const CHAIN: Module = Module {
    package: AUTHZ.package,
    root_id: "meshward",
    bytes: AUTHZ.bytes,
};

/// The identity filter served by the authorization module, for a chain of
/// two plugins that share one VM (same code, `vm_id` and VM configuration).
pub const IDENTITY_IN_AUTHZ: Module = Module {
    package: AUTHZ.package,
    root_id: IDENTITY.root_id,
    bytes: AUTHZ.bytes,
};

/// The mTLS-only build of the authorization module (`meshward_mtls_filter.wasm`),
/// under the chain's root id: the same filters without in-filter
/// certificate and token verification (see `meshward-mtls-filter`).
pub const MTLS_CHAIN: Module = Module {
    package: "meshward-mtls-filter",
    root_id: "meshward",
    bytes: include_bytes!(concat!(
        env!("MESHWARD_WASM_DIR"),
        "/meshward_mtls_filter.wasm"
    )),
};

/// Every shipped module, once each (by package); [`CHAIN`] and
/// [`IDENTITY_IN_AUTHZ`] are other root ids of [`AUTHZ`]'s module.
pub const ALL: &[Module] = &[IDENTITY, AUTHZ, MTLS_CHAIN];

/// The folder the modules were built into.
pub fn dir() -> &'static Path {
    Path::new(env!("MESHWARD_WASM_DIR"))
}

/// The shipped filter built from `package`, if it is one.
pub fn by_package(package: &str) -> Option<&'static Module> {
    ALL.iter().find(|m| m.package == package)
}
