//! `meshward`: the policy author's command line.
//!
//! Runs the demo, issues demo SVIDs, and (as the policy work lands) validates
//! policies and configuration, runs policy test suites against the compiled
//! filter in the harness, and explains single decisions.

#![forbid(unsafe_code)]

mod certs;
mod demo;
mod istio;
mod validate;

use std::path::PathBuf;
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
    /// Start real Envoy with the identity filter on an mTLS listener, send it
    /// allowed and denied requests, and print the filter's decisions.
    Demo(demo::Args),
    /// Issue a SPIFFE CA and X.509-SVIDs for demos and local testing.
    Certs(certs::Args),
    /// Validate Cedar policies (or an authorization-filter configuration)
    /// against meshward's schema, as the filter will when configured.
    Validate(validate::Args),
    /// Translate Istio AuthorizationPolicy YAML into equivalent Cedar.
    IstioImport(istio::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Validate(args) => validate::run(args),
        Command::IstioImport(args) => istio::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshward: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where `scripts/build-wasm` puts the filters in this checkout.
fn default_wasm_dir() -> PathBuf {
    meshward_envoy::workspace_root().join("target/wasm32-wasip1/filter")
}
