//! The functions the host provides to filters: the proxy-wasm ABI and the
//! WASI preview1 subset Envoy provides, one module per ABI area.
//!
//! Each import is thin: it decodes its arguments through the typed guest
//! memory layer ([`crate::memory`]), calls Envoy's semantics on
//! [`HostState`], and encodes the result. Status and errno mapping happens
//! in `memory` alone.

mod buffers;
mod callouts;
mod contexts;
mod logging;
mod maps;
mod metrics;
mod properties;
mod shared;
mod streams;
mod wasi;

use wasmtime::{Caller, Engine, IntoFunc, Linker};

use crate::abi::AbiVersion;
use crate::state::HostState;

type C<'a> = Caller<'a, HostState>;

/// The guest's `proc_exit`, carried as a trap.
#[derive(Debug, thiserror::Error)]
#[error("guest called `proc_exit({0})`")]
pub(crate) struct ProcExit(pub(crate) i32);

/// The linker the ABI areas add their functions to.
struct Imports {
    linker: Linker<HostState>,
}

impl Imports {
    fn def<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<HostState, Params, Args> + Clone,
    ) -> wasmtime::Result<()> {
        self.linker.func_wrap(module, name, f)?;
        Ok(())
    }

    /// A proxy-wasm function, in module `env`.
    fn env<Params, Args>(
        &mut self,
        name: &str,
        f: impl IntoFunc<HostState, Params, Args> + Clone,
    ) -> wasmtime::Result<()> {
        self.def("env", name, f)
    }

    fn wasi<Params, Args>(
        &mut self,
        name: &str,
        f: impl IntoFunc<HostState, Params, Args> + Clone,
    ) -> wasmtime::Result<()> {
        // Envoy serves the same functions under both WASI module names.
        self.def("wasi_snapshot_preview1", name, f.clone())?;
        self.def("wasi_unstable", name, f)
    }
}

/// A linker with every function the host provides to a module of ABI
/// version `abi`.
pub(crate) fn build(engine: &Engine, abi: AbiVersion) -> wasmtime::Result<Linker<HostState>> {
    let mut i = Imports {
        linker: Linker::new(engine),
    };
    logging::link(&mut i, abi)?;
    properties::link(&mut i)?;
    streams::link(&mut i)?;
    maps::link(&mut i)?;
    buffers::link(&mut i)?;
    callouts::link(&mut i)?;
    shared::link(&mut i)?;
    metrics::link(&mut i)?;
    contexts::link(&mut i)?;
    wasi::link(&mut i)?;
    Ok(i.linker)
}
