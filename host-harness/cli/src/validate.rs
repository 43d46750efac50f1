//! `meshward validate`: policies against the schema, or a whole filter
//! configuration, with the errors the filter would refuse it for.

use std::path::PathBuf;

use meshward_policy::PolicyEngine;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Cedar policy files (`.cedar`), validated together against the
    /// schema, or one authorization-filter configuration (`.json`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A Cedar schema to validate against instead of the shipped one.
    #[arg(long)]
    schema: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))
    };
    // `null` means the shipped schema.
    let schema = args.schema.as_ref().map(read).transpose()?;
    let config = match args.files.as_slice() {
        [one] if one.extension().is_some_and(|e| e == "json") => {
            let json: serde_json::Value = serde_json::from_str(&read(one)?)
                .map_err(|e| format!("`{}`: {e}", one.display()))?;
            // A filter configuration holds the engine's under `cedar`.
            json.get("cedar").cloned().unwrap_or(json)
        }
        files => {
            // Each file on its own first, so an error's `line:column` can
            // be given with the file it is in.
            for f in files {
                let one = serde_json::json!({ "policies": read(f)?, "schema": schema });
                if let Err(e) = PolicyEngine::from_config(one.to_string().as_bytes()) {
                    let located: Vec<String> = e
                        .to_string()
                        .lines()
                        .map(|l| match l.chars().next() {
                            Some(c) if c.is_ascii_digit() => format!("{}:{l}", f.display()),
                            _ => l.to_owned(),
                        })
                        .collect();
                    return Err(located.join("\n").into());
                }
            }
            let mut policies = String::new();
            for f in files {
                policies.push_str(&read(f)?);
                policies.push('\n');
            }
            serde_json::json!({ "policies": policies, "schema": schema })
        }
    };
    let engine = PolicyEngine::from_config(config.to_string().as_bytes())?;
    let ids = engine.policy_ids();
    println!(
        "ok: {} policies valid against the schema ({})",
        ids.len(),
        ids.iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
