//! `meshward scenario`: runs a scenario file (requests, the upstream's
//! script, callout replies, timer advances, expectations) against any
//! proxy-wasm module in the harness, prints what differed, and fails when
//! anything did. The engine is `meshward-scenario`; this is its command line.

use std::path::{Path, PathBuf};

use meshward_scenario::{Scenario, Source};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The scenario file (YAML or JSON).
    file: PathBuf,
    /// The filter module; overrides the scenario's `wasm:` and the
    /// bootstrap's `vm_config.code.local.filename`.
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// An Envoy bootstrap: the first `envoy.filters.http.wasm` entry gives
    /// the module, `root_id`, `vm_id` and plugin configuration.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Print what the harness saw for every step as YAML expectations
    /// (a starting point for a new scenario) instead of comparing.
    #[arg(long)]
    print_seen: bool,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let scenario = Scenario::load(&args.file)?;
    let base = args.file.parent().unwrap_or(Path::new("."));
    let mut source = Source::from_scenario(&scenario, base)?;
    if let Some(bootstrap) = &args.bootstrap {
        source = source.with_bootstrap(bootstrap)?;
    }
    if let Some(wasm) = &args.wasm {
        source = source.with_wasm(wasm);
    }
    let report = meshward_scenario::run(&scenario, &source)?;
    if args.print_seen {
        let mut seen = scenario.clone();
        for (step, result) in seen.steps.iter_mut().zip(&report.steps) {
            step.expect = Some(result.seen.clone());
        }
        print!("{}", serde_yaml_ng::to_string(&seen)?);
        return Ok(());
    }
    print!("{report}");
    if report.passed() {
        Ok(())
    } else {
        let failed = report
            .steps
            .iter()
            .filter(|s| !s.differences.is_empty())
            .count();
        Err(format!("{failed} scenario step(s) did not match").into())
    }
}
