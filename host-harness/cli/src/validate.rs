//! `meshward validate`: policies against the schema, or a whole filter
//! configuration, with the errors the filter would refuse it for, each at
//! `file:line:column` taken from the engine's typed locations.

use std::path::PathBuf;

use meshward_policy::{ConfigDiagnostic, ConfigError, PolicyEngine, SourceLocation};
use meshward_policy_cedar::engine_from_config;

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
    let schema = args.schema.as_ref().map(read).transpose()?;
    let schema_name = args.schema.as_ref().map_or_else(
        || "(shipped schema)".to_owned(),
        |p| p.display().to_string(),
    );
    let (config, policies) = match args.files.as_slice() {
        [one] if one.extension().is_some_and(|e| e == "json") => {
            let json: serde_json::Value = serde_json::from_str(&read(one)?)
                .map_err(|e| format!("`{}`: {e}", one.display()))?;
            // A filter configuration holds the engine's under `cedar`.
            let config = json.get("cedar").cloned().unwrap_or(json);
            // Places are in the `policies` string, not in the JSON file.
            let name = format!("{} (policies)", one.display());
            let text = config
                .get("policies")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (config, Sources::new(vec![(name, text)]))
        }
        files => {
            let mut all = Vec::with_capacity(files.len());
            for f in files {
                all.push((f.display().to_string(), read(f)?));
            }
            let sources = Sources::new(all);
            // `null` means the shipped schema.
            let config = serde_json::json!({ "policies": sources.text, "schema": schema });
            (config, sources)
        }
    };
    // Cedar checks the text and compiles it, as `meshward compile` does, so
    // a construct the filter does not support is reported too; an already
    // compiled configuration is loaded as the filter loads it.
    let engine = if config
        .get("policies")
        .is_some_and(serde_json::Value::is_string)
    {
        engine_from_config(config.to_string().as_bytes())
    } else {
        PolicyEngine::from_config(config.to_string().as_bytes())
    }
    .map_err(|e| report(&e, &policies, &schema_name))?;
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

/// The policy files, joined into the one text the engine validates, and
/// where each starts in it.
pub(crate) struct Sources {
    pub(crate) text: String,
    /// (file name, byte offset of its first byte, its first line) in order.
    starts: Vec<(String, usize, usize)>,
}

impl Sources {
    pub(crate) fn new(files: Vec<(String, String)>) -> Self {
        let mut text = String::new();
        let mut starts = Vec::with_capacity(files.len());
        let mut line = 1;
        for (name, body) in files {
            starts.push((name, text.len(), line));
            text.push_str(&body);
            // Each file ends its own last line, so the next starts at
            // column 1 and a location never spans two files.
            text.push('\n');
            line += body.matches('\n').count() + 1;
        }
        Self { text, starts }
    }

    /// The file a location is in, and the location's line within it.
    fn locate(&self, at: &SourceLocation) -> Option<(&str, usize)> {
        let (name, _, first_line) = self
            .starts
            .iter()
            .take_while(|(_, offset, _)| *offset <= at.offset)
            .last()?;
        Some((name, at.line + 1 - first_line))
    }
}

/// Every problem of `error` on its own line, as `file:line:column: message`
/// where the engine gave a place.
pub(crate) fn report(error: &ConfigError, policies: &Sources, schema_name: &str) -> String {
    match error {
        ConfigError::Parse(list) | ConfigError::Validation(list) => {
            let head = match error {
                ConfigError::Parse(_) => "policies do not parse",
                _ => "policies fail validation",
            };
            let mut out = vec![head.to_owned()];
            for d in list {
                let at = d
                    .locations
                    .first()
                    .and_then(|l| policies.locate(l).map(|(f, line)| (f, line, l.column)));
                out.push(line_for(d, at));
            }
            out.join("\n")
        }
        ConfigError::Schema(d) => {
            let at = d.locations.first().map(|l| (schema_name, l.line, l.column));
            format!("invalid schema\n{}", line_for(d, at))
        }
        other => other.to_string(),
    }
}

/// One diagnostic: its place, policy and message, then Cedar's help.
fn line_for(d: &ConfigDiagnostic, at: Option<(&str, usize, usize)>) -> String {
    let mut line = match at {
        Some((file, l, c)) => format!("{file}:{l}:{c}: "),
        None => String::new(),
    };
    if let Some(id) = &d.policy_id {
        line.push_str(&format!("policy `{id}`: "));
    }
    line.push_str(&d.message);
    if d.actions.len() > 1 {
        line.push_str(&format!(" (actions {})", d.actions.join(", ")));
    }
    if let Some(help) = &d.help {
        line.push_str(&format!("\n  help: {help}"));
    }
    line
}

/// For tests: the report `meshward validate` gives for these files.
#[cfg(test)]
fn validate_texts(files: &[(&str, &str)]) -> Result<usize, String> {
    let sources = Sources::new(
        files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect(),
    );
    let config = serde_json::json!({ "policies": sources.text });
    engine_from_config(config.to_string().as_bytes())
        .map(|e| e.policy_ids().len())
        .map_err(|e| report(&e, &sources, "(shipped schema)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "@id(\"ok\")\npermit(principal, action, resource);\n";

    #[test]
    fn errors_name_the_file_line_and_column() {
        // A parse error on line 3, column 9 of the second file.
        let bad = "// two\n// lines\npermit(principal, action resource);\n";
        let e = validate_texts(&[("a.cedar", OK), ("b.cedar", bad)]).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines[0], "policies do not parse", "{e}");
        assert!(lines[1].starts_with("b.cedar:3:"), "{e}");

        // A validation error names its policy, in the file it is in.
        let typo =
            "\n\n@id(\"typo\")\npermit(principal, action, resource) when { context.nope };\n";
        let e = validate_texts(&[("a.cedar", OK), ("c.cedar", typo)]).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines[0], "policies fail validation", "{e}");
        assert!(lines[1].starts_with("c.cedar:4:"), "{e}");
        assert!(lines[1].contains("policy `typo`: "), "{e}");

        assert_eq!(validate_texts(&[("a.cedar", OK)]), Ok(1));
    }

    #[test]
    fn locations_map_back_to_files() {
        let s = Sources::new(vec![
            ("a".into(), "x\ny".into()),
            ("b".into(), "z".into()),
            ("c".into(), "\n\nw\n".into()),
        ]);
        assert_eq!(s.text, "x\ny\nz\n\n\nw\n\n");
        let at = |text: &str, offset| s.locate(&SourceLocation::at(text, offset, 0));
        assert_eq!(at(&s.text, 0), Some(("a", 1)));
        assert_eq!(at(&s.text, 2), Some(("a", 2)));
        assert_eq!(at(&s.text, 4), Some(("b", 1)));
        assert_eq!(at(&s.text, 8), Some(("c", 3)));
    }
}
