//! Errors and VM failures.

use std::time::Duration;

/// Why a filter's VM stopped working. Envoy marks a VM failed on any of
/// these; the harness does the same and then applies fail-open or
/// fail-closed to streams.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The guest trapped (`unreachable`, out-of-bounds access, a Rust panic
    /// compiled with `panic = "abort"`, ...).
    Trap(String),
    /// A callback ran past the wall-clock limit (epoch interruption).
    Deadline(Duration),
    /// A callback used up its fuel.
    OutOfFuel(u64),
    /// The guest tried to grow its memory past the cap.
    MemoryLimit(usize),
    /// The guest called `proc_exit`.
    ProcExit(i32),
    /// A host call failed in a way the ABI cannot report (for example the
    /// guest allocator trapped while the host was returning data).
    Host(String),
}

/// A VM failure: which callback failed and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter failed in `{callback}`: {kind}")]
pub struct Failure {
    /// The exported function the host was calling.
    pub callback: String,
    /// What went wrong.
    pub kind: FailureKind,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap(message) => write!(f, "trap: {message}"),
            Self::Deadline(limit) => write!(
                f,
                "ran longer than the {} ms limit (runaway loop?)",
                limit.as_millis()
            ),
            Self::OutOfFuel(fuel) => write!(f, "used up its fuel of {fuel} units (runaway loop?)"),
            Self::MemoryLimit(bytes) => write!(f, "tried to grow memory past the {bytes} byte cap"),
            Self::ProcExit(code) => write!(f, "called `proc_exit({code})`"),
            Self::Host(message) => write!(f, "host call failed: {message}"),
        }
    }
}

/// Errors from loading and running filters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid module (or WAT text).
    #[error("cannot compile module: {0}")]
    Compile(String),
    /// The module imports a function the host does not provide.
    #[error("module imports `{module}.{name}`, which this proxy-wasm host does not provide")]
    UnknownImport {
        /// The import's module, e.g. `env`.
        module: String,
        /// The import's name.
        name: String,
    },
    /// The module imports a function the host provides, with another type.
    #[error("module imports `{module}.{name}` with the wrong signature: {message}")]
    ImportSignature {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
        /// The module's type for it and the host's.
        message: String,
    },
    /// No `proxy_abi_version_*` marker export.
    #[error(
        "module declares no supported proxy-wasm ABI version (export `proxy_abi_version_0_2_1` or `proxy_abi_version_0_2_0`)"
    )]
    MissingAbiVersion,
    /// Neither `proxy_on_memory_allocate` nor `malloc` is exported.
    #[error("module exports neither `proxy_on_memory_allocate` nor `malloc`")]
    MissingAllocator,
    /// The module exports no memory named `memory`.
    #[error("module exports no memory named `memory`")]
    MissingMemory,
    /// A callback export has a type the ABI does not allow.
    #[error("module export `{0}` has the wrong signature")]
    ExportSignature(String),
    /// Instantiation failed for another reason (start function, limits).
    #[error("cannot instantiate module: {0}")]
    Instantiate(String),
    /// The VM failed while starting or configuring the plugin.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The VM had already failed before this call.
    #[error("the vm failed earlier: {0}")]
    AlreadyFailed(Failure),
    /// `proxy_on_vm_start` returned false.
    #[error("`proxy_on_vm_start` rejected the vm configuration")]
    VmStartRejected,
    /// `proxy_on_configure` returned false.
    #[error("`proxy_on_configure` rejected the plugin configuration")]
    ConfigureRejected,
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The wasmtime engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The stream API was used out of order (e.g. a response before the
    /// request ended).
    #[error("stream misuse: {0}")]
    Usage(&'static str),
}
