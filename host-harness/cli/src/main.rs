//! `meshward`: the policy author's command line.
//!
//! Issues demo SVIDs, validates policies and filter configuration, and
//! translates Istio AuthorizationPolicies. It reads nothing from the source
//! tree it was built in, so an installed `meshward` works from any folder.

#![forbid(unsafe_code)]

mod certs;
mod istio;
mod scenario;
mod validate;

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
    /// Translate Istio AuthorizationPolicy YAML into equivalent Cedar.
    IstioImport(istio::Args),
    /// Run a scenario file against a proxy-wasm module in the harness and
    /// show what differed from its expectations.
    Scenario(scenario::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Certs(args) => certs::run(args),
        Command::Validate(args) => validate::run(args),
        Command::IstioImport(args) => istio::run(args),
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
