//! The filters the CLI runs: the ones compiled into it, or a `.wasm` file
//! named on the command line, never one found in a source tree.

use std::path::Path;
use std::sync::Arc;

use meshward_filter_modules::{AUTHZ, IDENTITY};

/// A module and the `root_id` it answers to by default.
pub(crate) struct Resolved {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) root_id: String,
    pub(crate) name: String,
}

/// `identity`, `authz`, or a path to a `.wasm` file (relative to `base`).
pub(crate) fn resolve(spec: &str, base: &Path) -> Result<Resolved, String> {
    for (alias, module) in [("identity", IDENTITY), ("authz", AUTHZ)] {
        if spec == alias || spec == module.package {
            return Ok(Resolved {
                bytes: Arc::from(module.bytes),
                root_id: module.root_id.to_owned(),
                name: alias.to_owned(),
            });
        }
    }
    let path = base.join(spec);
    let bytes =
        std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    Ok(Resolved {
        bytes: Arc::from(bytes),
        root_id: String::new(),
        name: path
            .file_stem()
            .map_or_else(|| spec.to_owned(), |s| s.to_string_lossy().into_owned()),
    })
}

/// The authorization filter: the embedded one, or `--filter`'s.
pub(crate) fn authz(filter: Option<&Path>) -> Result<Vec<u8>, String> {
    match filter {
        None => Ok(AUTHZ.bytes.to_vec()),
        Some(p) => std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display())),
    }
}
