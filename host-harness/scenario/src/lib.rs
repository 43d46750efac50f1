//! Scenario files for proxy-wasm filters: requests, the upstream's script,
//! callout replies, timer advances and expectations, run against any
//! `.wasm` in the meshward harness, with a readable diff of what differed.
//!
//! With `front: true` (the default) the run models what Envoy's connection
//! manager, router and HTTP/1 codec add around the filter (see [`front`]),
//! so expectations can be written from what a client of Envoy sees. The
//! plugin settings come from the scenario or from the
//! `envoy.filters.http.wasm` entry of an Envoy bootstrap ([`Bootstrap`]).
//!
//! ```no_run
//! let scenario = meshward_scenario::Scenario::load("deny.yaml".as_ref())?;
//! let source = meshward_scenario::Source::from_scenario(&scenario, ".".as_ref())?;
//! let report = meshward_scenario::run(&scenario, &source)?;
//! print!("{report}");
//! # Ok::<(), meshward_scenario::ScenarioError>(())
//! ```

#![forbid(unsafe_code)]

mod bootstrap;
pub mod front;
mod outcome;
mod run;
mod spec;

pub use self::{
    bootstrap::{Bootstrap, DirectRoute, WasmEntry},
    outcome::{FIELDS, Outcome},
    run::{Report, Source, StepReport, run},
    spec::{
        Bytes, CalloutSpec, HeaderList, PluginSpec, RequestSpec, ResponseSpec, Scenario, StepSpec,
    },
};

/// Why a scenario could not run (a mismatch is not an error: see
/// [`Report::passed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The scenario file is not valid.
    #[error("invalid scenario `{path}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its line and column.
        message: String,
    },
    /// The bootstrap could not be used.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// Neither the command line, the scenario nor the bootstrap names a
    /// module.
    #[error("no filter module: give `--wasm`, `wasm:` or a bootstrap naming a local file")]
    NoModule,
    /// A callout failure the model does not know.
    #[error("unknown callout failure `{0}` (expected `timeout`, `reset` or `connect`)")]
    CalloutFailure(String),
    /// The harness refused the module or the plugin did not start.
    #[error(transparent)]
    Harness(#[from] meshward_harness::Error),
}

impl Scenario {
    /// Reads a scenario file (YAML or JSON).
    pub fn load(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ScenarioError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses scenario text (YAML or JSON); the error names line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }
}
