use std::path::PathBuf;

use crate::process::EnvoyError;

/// The meshward checkout this crate was built from.
pub fn workspace_root() -> PathBuf {
    // host-harness/envoy -> the workspace root, two levels up.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
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
