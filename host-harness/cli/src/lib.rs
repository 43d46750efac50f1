//! `meshward`: the policy author's command line (the binary is a thin
//! `main` over [`run`]).
//!
//! Issues demo SVIDs, validates policies and filter configuration, runs
//! policy test suites and explains single decisions against the compiled
//! filters, serves the mTLS reference data path, runs the demo, and
//! translates Istio AuthorizationPolicies. The filters are compiled in (or
//! named by a flag) and nothing is read from the source tree it was built
//! in, so an installed `meshward` works from any folder.
//!
//! The library also holds what the workspace's tests must share with the
//! commands rather than copy: [`CompiledAuthz`], the one way a policy
//! suite case runs through the compiled authorization filter.

#![forbid(unsafe_code)]

mod authz_config;
mod certs;
mod compile;
mod demo;
mod demo_envoy;
mod explain;
mod istio;
mod logging;
mod modules;
mod scenario;
mod serve;
mod suite;
mod validate;

pub use self::suite::{CompiledAuthz, Outcome, SuiteFile};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshward",
    version,
    about = "SPIFFE identity and Cedar policy inside your proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Issue a SPIFFE CA and X.509-SVIDs for demos and local testing.
    Certs(certs::Args),
    /// Validate Cedar policies (or an authorization-filter configuration)
    /// against meshward's schema, as the filter will when configured.
    Validate(validate::Args),
    /// Check Cedar policies (or an authoring configuration) with Cedar and
    /// compile them into the configuration the authorization filter loads.
    Compile(compile::Args),
    /// Translate Istio AuthorizationPolicy YAML into equivalent Cedar.
    IstioImport(istio::Args),
    /// Run policy test suites (`*.cases.json`) against the compiled
    /// authorization filter; lists policies no case exercised.
    Test(suite::Args),
    /// Decide one request and show why: the determining policies and the
    /// entities and context Cedar evaluated.
    Explain(explain::Args),
    /// Serve the mTLS reference data path with a filter chain in front of
    /// an upstream.
    Serve(serve::Args),
    /// Show the filters deciding real mTLS traffic on 127.0.0.1 (the data
    /// path, or real Envoy with `--envoy`).
    Demo(demo::Args),
    /// Run a scenario file against a proxy-wasm module in the harness and
    /// show what differed from its expectations.
    Scenario(scenario::Args),
}

/// An error message on one line, for the commands whose failures are
/// one `meshward: ...` line.
pub(crate) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses the command line, runs the command, and reports a failure as one
/// `meshward: ...` line with a non-zero exit.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Certs(args) => certs::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Compile(args) => compile::run(args),
        Command::IstioImport(args) => istio::run(args),
        Command::Test(args) => suite::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Scenario(args) => scenario::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshward: {e}");
            ExitCode::FAILURE
        }
    }
}
