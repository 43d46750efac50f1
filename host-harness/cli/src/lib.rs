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

/// `text` cut to a line a terminal shows: a parser that quotes the whole
/// input back (YAML's "invalid type: string ...") keeps its start and its
/// end, where the location usually is.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 240;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX {
        return text.to_owned();
    }
    let head: String = chars.iter().take(170).collect();
    let tail: String = chars.iter().skip(chars.len() - 60).collect();
    format!("{head} ... {tail}")
}

/// Parses the command line, runs the command, and reports a failure as one
/// `meshward: ...` line with a non-zero exit.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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

/// A command line clap refused, as one `meshward: ...` line (clap's own
/// report is several, with a usage block) and exit status 2, a usage
/// error's; `--help` and `--version` print as clap writes them.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = e.render().to_string();
    let what = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("bad command line");
    let what = what.strip_prefix("error: ").unwrap_or(what);
    let tip = rendered
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip: "))
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    // `Usage: meshward certs [OPTIONS] <IDS>...` names the command.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "meshward".to_owned());
    eprintln!("meshward: {what}{tip}; see `{command} --help`");
    ExitCode::from(2)
}
