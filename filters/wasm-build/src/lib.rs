//! Builds this workspace's proxy-wasm filters for `wasm32-wasip1`.
//!
//! There is exactly one way to get a filter module: [`build`] runs
//! `cargo build --profile filter --target wasm32-wasip1` for the named
//! packages and returns where the modules are. The crates that hand modules
//! to tests and tools (`meshward-filter-modules`, `meshward-test-guests`)
//! call it from their build scripts, so a fresh `cargo test --workspace`
//! builds what it needs; `scripts/build-wasm` calls it through this crate's
//! binary, so a person sees cargo's progress.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The filters meshward ships, handed out by `meshward-filter-modules`.
pub const FILTERS: &[&str] = &[
    "meshward-identity-filter",
    "meshward-authz-filter",
    "meshward-mtls-filter",
];

/// Packages built with fewer features of a shared crate than the others:
/// cargo unifies features within one build, so each of these is built in a
/// cargo run of its own.
pub const ALONE: &[&str] = &["meshward-mtls-filter"];

/// The guest modules only tests and benches load (the conformance filter, and
/// the trivial filter the Envoy load bench compares against), handed out by
/// `meshward-test-guests`. With [`FILTERS`] this names every `cdylib` in the
/// workspace; a test checks it.
pub const GUESTS: &[&str] = &[
    "meshward-conformance-filter",
    "meshward-fidelity-filter",
    "meshward-bench-trivial-filter",
    "meshward-fault-filter",
];

/// Names a `clippy-driver` that lints meshward's crates in the wasm build
/// (CI sets it; unset, the wasm build is an ordinary one).
pub const CLIPPY_DRIVER_VAR: &str = "MESHWARD_WASM_CLIPPY_DRIVER";

/// The target triple every filter is built for.
pub const TARGET: &str = "wasm32-wasip1";
/// The cargo profile every filter is built with (see the root `Cargo.toml`).
pub const PROFILE: &str = "filter";

/// Why the modules could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No folder above this crate holds the workspace's `Cargo.lock`.
    #[error("cannot find the meshward workspace above `{0}`")]
    NoWorkspace(PathBuf),
    /// cargo could not be started.
    #[error("cannot run `{cargo}`: {source}")]
    Spawn {
        /// The cargo that was run.
        cargo: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// cargo ran and failed; its output says why.
    #[error(
        "building {packages} for {TARGET} failed{hint}",
        hint = if *.missing_target { " (the wasm32-wasip1 target is not installed: run `rustup target add wasm32-wasip1`, or ./scripts/setup)" } else { "" }
    )]
    Cargo {
        /// The packages that were asked for.
        packages: String,
        /// Whether cargo said the target's standard library is missing.
        missing_target: bool,
    },
    /// cargo succeeded but a module is not where it must be.
    #[error("`{0}` was not built")]
    Missing(PathBuf),
}

/// The workspace root: the nearest folder above `start` holding `Cargo.lock`.
pub fn workspace_root(start: &Path) -> Result<PathBuf, BuildError> {
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| BuildError::NoWorkspace(start.to_path_buf()))
}

/// The cargo target folder of the workspace at `root`: `$CARGO_TARGET_DIR`
/// when set (relative to `root` if relative), else `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The folder the modules of the workspace at `root` are written to.
pub fn module_dir(root: &Path) -> PathBuf {
    target_dir(root).join(TARGET).join(PROFILE)
}

/// The file name of package `package`'s module (`a-b` builds `a_b.wasm`).
pub fn module_file(package: &str) -> String {
    format!("{}.wasm", package.replace('-', "_"))
}

/// Where the output of the nested cargo goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Shown to the person running the build (progress and errors).
    Inherit,
    /// Kept out of sight; cargo's errors still reach stderr, where a build
    /// script's failure report shows them.
    Quiet,
}

/// Builds `packages` of the workspace at `root` and returns the folder that
/// holds their modules, each checked to exist.
pub fn build(root: &Path, packages: &[&str], output: Output) -> Result<PathBuf, BuildError> {
    let (alone, together): (Vec<&str>, Vec<&str>) =
        packages.iter().copied().partition(|p| ALONE.contains(p));
    if !together.is_empty() {
        build_one(root, &together, output)?;
    }
    for p in alone {
        build_one(root, &[p], output)?;
    }
    Ok(module_dir(root))
}

/// One cargo run for `packages`, their modules checked to exist.
fn build_one(root: &Path, packages: &[&str], output: Output) -> Result<(), BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir(root));
    for p in packages {
        cmd.args(["-p", p]);
    }
    // A build script inherits the outer build's flags, meant for the host
    // (or for clippy); none of them may leak into the wasm build, or its
    // fingerprint changes and every filter is rebuilt.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    // CI lints the filters as they are built for wasm32 (see .ci/run): with
    // this set, meshward's own crates in the wasm build go through
    // clippy-driver with `-D warnings`, as `cargo clippy --target
    // wasm32-wasip1` would lint them, and a lint fails the build.
    if let Some(driver) = std::env::var_os(CLIPPY_DRIVER_VAR).filter(|d| !d.is_empty()) {
        cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
    }
    let joined = packages.join(", ");
    let missing_target = match output {
        Output::Inherit => {
            let status = cmd.status().map_err(|source| BuildError::Spawn {
                cargo: cargo.to_string_lossy().into_owned(),
                source,
            })?;
            if status.success() { None } else { Some(false) }
        }
        Output::Quiet => {
            let out = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|source| BuildError::Spawn {
                    cargo: cargo.to_string_lossy().into_owned(),
                    source,
                })?;
            if out.status.success() {
                None
            } else {
                let text = String::from_utf8_lossy(&out.stderr);
                eprintln!("{text}");
                Some(
                    text.contains("target may not be installed")
                        || text.contains("can't find crate for `std`"),
                )
            }
        }
    };
    if let Some(missing_target) = missing_target {
        return Err(BuildError::Cargo {
            packages: joined,
            missing_target,
        });
    }
    let dir = module_dir(root);
    for p in packages {
        let file = dir.join(module_file(p));
        if !file.is_file() {
            return Err(BuildError::Missing(file));
        }
    }
    Ok(())
}

/// For a build script: builds `packages`, tells cargo to rebuild when any of
/// `watch` (folders relative to the workspace root) or the workspace
/// manifests change, and sets `MESHWARD_WASM_DIR` for the crate's code.
pub fn build_script(packages: &[&str], watch: &[&str]) -> Result<(), BuildError> {
    let here = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    let root = workspace_root(&here)?;
    for w in watch.iter().copied().chain(["Cargo.toml", "Cargo.lock"]) {
        println!("cargo:rerun-if-changed={}", root.join(w).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed={CLIPPY_DRIVER_VAR}");
    let dir = build(&root, packages, Output::Quiet)?;
    // A module deleted or replaced behind cargo's back (a `cargo clean -p`,
    // another checkout's build) must be rebuilt too, not left missing.
    for p in packages {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join(module_file(p)).display()
        );
    }
    println!("cargo:rustc-env=MESHWARD_WASM_DIR={}", dir.display());
    Ok(())
}
