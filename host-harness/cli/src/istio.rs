//! `meshward istio-import`: Istio AuthorizationPolicy YAML to Cedar.

use std::io::Read;
use std::path::PathBuf;

use meshward_istio_import::{ImportOptions, Workload, import};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The YAML file with AuthorizationPolicy documents, or `-` for stdin.
    file: PathBuf,
    /// Translate only the policies Istio would apply to a workload in this
    /// namespace (with `--label`s); without it, every policy is translated.
    #[arg(long)]
    namespace: Option<String>,
    /// A pod label of that workload, `key=value`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Istio's root namespace, whose policies apply mesh-wide.
    #[arg(long, default_value = "istio-system")]
    root_namespace: String,
    /// The mesh's trust domain (`meshConfig.trustDomain`).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// An alias of it (`meshConfig.trustDomainAliases`); repeatable.
    #[arg(long = "trust-domain-alias", value_name = "TRUST_DOMAIN")]
    trust_domain_aliases: Vec<String>,
    /// Translate header conditions other than presence, failing closed on
    /// repeated or comma-separated header values (they cannot be exact).
    #[arg(long)]
    headers_fail_closed: bool,
    /// Print the engine configuration the authorization filter loads (JSON:
    /// the policies compiled, the mode, and plaintext peers evaluated as
    /// Istio does) instead of the Cedar text.
    #[arg(long)]
    engine_config: bool,
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let yaml = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| format!("cannot read `{}`: {e}", args.file.display()))?
    };
    let mut options = ImportOptions::default();
    options.root_namespace = args.root_namespace;
    options.trust_domain = args.trust_domain;
    options.trust_domain_aliases = args.trust_domain_aliases;
    options.headers_fail_closed = args.headers_fail_closed;
    if let Some(namespace) = &args.namespace {
        let mut labels = Vec::new();
        for label in &args.labels {
            let (k, v) = label
                .split_once('=')
                .ok_or_else(|| format!("label `{label}` is not KEY=VALUE"))?;
            labels.push((k.to_owned(), v.to_owned()));
        }
        options.workload = Some(Workload::new(namespace, labels));
    } else if !args.labels.is_empty() {
        return Err("--label needs --namespace".into());
    }
    let imported = import(&yaml, &options).map_err(|e| {
        let source = if args.file.as_os_str() == "-" {
            "stdin".to_owned()
        } else {
            format!("`{}`", args.file.display())
        };
        format!(
            "{source}: {}",
            crate::shorten(&crate::one_line(&e.to_string()))
        )
    })?;
    for skipped in &imported.skipped {
        eprintln!("meshward: skipped {skipped}");
    }
    eprintln!("meshward: translated {}", imported.translated.join(", "));
    if imported.dry_run {
        eprintln!("meshward: every policy is istio.io/dry-run: run the engine in mode `dry_run`");
    }
    if args.engine_config {
        let compiled =
            meshward_policy_cedar::compile_filter_config(&imported.engine_config().to_string())?;
        println!("{compiled}");
    } else {
        print!("{}", imported.cedar);
    }
    Ok(())
}
