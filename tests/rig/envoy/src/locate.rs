use std::path::PathBuf;

use crate::process::EnvoyError;

/// The meshward checkout this crate was built from.
pub fn workspace_root() -> PathBuf {
    // The nearest folder above this crate that holds the workspace's
    // `Cargo.lock`, so the crate can move without this changing.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or(here.clone(), PathBuf::from)
}

/// The Envoy binary: `$MESHWARD_ENVOY` if set, else the one `scripts/setup`
/// installs into the project's virtual environment.
pub fn envoy_binary() -> Result<PathBuf, EnvoyError> {
    let path = match std::env::var_os("MESHWARD_ENVOY") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/lib/envoy-bin/envoy"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(EnvoyError::NotInstalled(path))
    }
}
