//! A real Envoy for meshward's demo, tests and benches.
//!
//! Finds the Envoy that `scripts/setup` installed, renders a configuration
//! from `envoy-config/`, starts Envoy on loopback with every port chosen by
//! the kernel, waits until it is ready, sends it (m)TLS requests, reads its
//! stats and logs, and stops it when dropped. An echo application stands in
//! for the workload behind the sidecar.

#![forbid(unsafe_code)]

mod client;
mod locate;
mod process;
mod sidecar;
mod template;
mod upstream;

pub use self::{
    client::{Request, Response, send},
    locate::{envoy_binary, workspace_root},
    process::{Envoy, EnvoyError, validate},
    sidecar::{BootstrapEdits, FilterSpec, Sidecar, SidecarSpec},
    template::{Template, TemplateError, yaml_quote},
    upstream::EchoUpstream,
};
