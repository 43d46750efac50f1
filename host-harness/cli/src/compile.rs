//! `meshward compile`: Cedar policies checked by Cedar (parse, strict
//! validation against the schema) and compiled into the form the
//! authorization filter loads (Cedar's JSON policy format with the action
//! hierarchy; see `meshward-policy-cedar`). Errors are reported as
//! `meshward validate` reports them, at `file:line:column`.

use std::path::PathBuf;

use meshward_policy::Mode;
use meshward_policy_cedar::{AuthoringConfig, compile, compile_filter_config};

use crate::validate::{Sources, report};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Cedar policy files (`.cedar`), compiled together, or one JSON
    /// configuration: an authoring configuration (`{"policies": "<cedar>",
    /// ...}`) or a whole authorization-filter configuration (its `cedar`
    /// is compiled, the rest kept).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A Cedar schema instead of the shipped one (with `.cedar` files).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Dry-run mode: denials are reported, never enforced (with `.cedar`
    /// files).
    #[arg(long)]
    dry_run: bool,
    /// Evaluate requests without a peer identity as
    /// `Mesh::Workload::"anonymous"` instead of denying them (with `.cedar`
    /// files).
    #[arg(long)]
    allow_anonymous: bool,
    /// Where to write the compiled configuration; standard output when
    /// absent.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))
    };
    let schema_name = args.schema.as_ref().map_or_else(
        || "(shipped schema)".to_owned(),
        |p| p.display().to_string(),
    );
    let compiled: serde_json::Value = match args.files.as_slice() {
        [one] if one.extension().is_some_and(|e| e == "json") => {
            let text = read(one)?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("`{}`: {e}", one.display()))?;
            let engine = json.get("cedar").unwrap_or(&json);
            let policies = engine
                .get("policies")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let sources = Sources::new(vec![(format!("{} (policies)", one.display()), policies)]);
            let out =
                compile_filter_config(&text).map_err(|e| report(&e, &sources, &schema_name))?;
            serde_json::from_str(&out)?
        }
        files => {
            let mut all = Vec::with_capacity(files.len());
            for f in files {
                all.push((f.display().to_string(), read(f)?));
            }
            let sources = Sources::new(all);
            let mut config = AuthoringConfig::new(&sources.text);
            config.schema = args.schema.as_ref().map(read).transpose()?;
            config.mode = if args.dry_run {
                Mode::DryRun
            } else {
                Mode::Enforce
            };
            config.require_peer_identity = !args.allow_anonymous;
            let out = compile(&config).map_err(|e| report(&e, &sources, &schema_name))?;
            serde_json::to_value(out)?
        }
    };
    let text = serde_json::to_string_pretty(&compiled)? + "\n";
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(files: Vec<PathBuf>, output: PathBuf) -> Args {
        Args {
            files,
            schema: None,
            dry_run: false,
            allow_anonymous: false,
            output: Some(output),
        }
    }

    #[test]
    fn compiles_files_and_reports_places() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.cedar");
        std::fs::write(&ok, "@id(\"ok\")\npermit(principal, action, resource);\n").unwrap();
        let out = dir.path().join("out.json");
        run(args(vec![ok.clone()], out.clone())).unwrap();
        let compiled = std::fs::read_to_string(&out).unwrap();
        assert!(meshward_policy::PolicyEngine::from_config(compiled.as_bytes()).is_ok());

        let bad = dir.path().join("bad.cedar");
        std::fs::write(
            &bad,
            "\n@id(\"typo\")\npermit(principal, action, resource) when { context.nope };\n",
        )
        .unwrap();
        let e = run(args(vec![ok, bad], out)).unwrap_err().to_string();
        assert!(e.contains("bad.cedar:3:"), "{e}");
        assert!(e.contains("policy `typo`"), "{e}");
    }
}
