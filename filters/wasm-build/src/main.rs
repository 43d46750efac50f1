//! `meshward-wasm-build [PACKAGE...]`: builds the named filter packages (by
//! default every module `meshward-filter-modules` and `meshward-test-guests`
//! hand out) with cargo's progress on the terminal, then prints each module's
//! path and size. `scripts/build-wasm` runs it.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use meshward_wasm_build::{FILTERS, GUESTS, Output, build, module_file, workspace_root};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let packages: Vec<&str> = if args.is_empty() {
        FILTERS.iter().chain(GUESTS).copied().collect()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let here = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let result = workspace_root(&here).and_then(|root| build(&root, &packages, Output::Inherit));
    match result {
        Ok(dir) => {
            for p in &packages {
                let path = dir.join(module_file(p));
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                println!("build-wasm: {:<60} {size:>9} bytes", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("build-wasm: {e}");
            ExitCode::FAILURE
        }
    }
}
