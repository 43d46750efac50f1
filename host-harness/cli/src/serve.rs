//! `meshward serve`: the reference data path with a filter chain and an
//! upstream, from a small YAML/JSON file or from flags. SIGHUP reloads the
//! file (and the files it names) without dropping connections; Ctrl-C or
//! SIGTERM drains and stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshward_data_path::{
    ClientAuth, Config, DataPath, FilterSpec, Limits, TlsSettings, TrustBundle, Upstream,
};
use serde::Deserialize;

use crate::authz_config::{Authoring, PeerFrom, authz_config};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// A configuration file (YAML or JSON; see `meshward serve --help`).
    /// Without it, the flags below describe a data path with the identity
    /// and authorization filters.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Cedar policy files for the authorization filter.
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// The server certificate chain (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The server key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// A trust bundle, `TRUST_DOMAIN=ca.pem` (repeatable).
    #[arg(long = "bundle", value_name = "TD=CA.PEM")]
    bundles: Vec<String>,
    /// The upstream, `host:port` (plain HTTP/1.1).
    #[arg(long)]
    upstream: Option<String>,
    /// The listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The Prometheus endpoint's address.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Accept clients without a certificate (the filters then see none).
    #[arg(long)]
    optional_client_cert: bool,
    /// Worker threads (Envoy's `--concurrency`); default: one per core, or
    /// `TOKIO_WORKER_THREADS`. One worker runs everything on one thread
    /// (tokio's current-thread runtime), as one Envoy worker does.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

/// The configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: SocketAddr,
    #[serde(default)]
    metrics: Option<SocketAddr>,
    tls: FileTls,
    filters: Vec<FileFilter>,
    upstream: FileUpstream,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: PathBuf,
    key: PathBuf,
    /// Trust domain to CA file.
    trust_bundles: BTreeMap<String, PathBuf>,
    #[serde(default = "yes")]
    require_client_cert: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFilter {
    /// `identity`, `authz`, or a `.wasm` path.
    module: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    root_id: Option<String>,
    #[serde(default)]
    vm_id: Option<String>,
    /// The plugin configuration: a string, or JSON/YAML structure.
    #[serde(default)]
    configuration: Option<serde_json::Value>,
    /// For `authz`: Cedar policy files instead of a `configuration`.
    #[serde(default)]
    policies: Vec<PathBuf>,
    #[serde(default)]
    peer_from: Option<String>,
    #[serde(default)]
    fail_open: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileUpstream {
    Plain(String),
    Tls {
        address: String,
        server_name: String,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    upstream_timeout_ms: Option<u64>,
}

/// The filter would refuse policies that do not validate and say why only
/// in its log; checking first puts the reason in the one error line.
fn validate(a: &Authoring, files: &[PathBuf]) -> Result<(), String> {
    crate::authz_config::engine(a).map(|_| ()).map_err(|e| {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!(
            "filter `authz`: the policies in {} are refused: {}",
            names.join(", "),
            crate::one_line(&e.to_string())
        )
    })
}

fn read(base: &Path, p: &Path) -> Result<String, String> {
    let path = base.join(p);
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// Builds the data path's configuration from the file at `path`.
pub(crate) fn from_file(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let file: File =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut filters = Vec::new();
    for (i, f) in file.filters.iter().enumerate() {
        let module = crate::modules::resolve(&f.module, base)?;
        let name = f.name.clone().unwrap_or_else(|| module.name.clone());
        let configuration = if !f.policies.is_empty() {
            let mut text = Vec::new();
            for p in &f.policies {
                text.push(read(base, p)?);
            }
            let peer_from = match f.peer_from.as_deref() {
                None | Some("identity_filter") => PeerFrom::IdentityFilter,
                Some("connection") => PeerFrom::Connection,
                Some(other) => return Err(format!("filter {i}: unknown peer_from `{other}`")),
            };
            let authoring = Authoring::new(text.join("\n"), peer_from);
            validate(&authoring, &f.policies)?;
            authz_config(&authoring)?
        } else {
            match &f.configuration {
                None => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            }
        };
        filters.push(FilterSpec {
            name,
            wasm: module.bytes,
            root_id: f.root_id.clone().unwrap_or(module.root_id),
            vm_id: f.vm_id.clone().unwrap_or_default(),
            configuration,
            fail_open: f.fail_open,
        });
    }
    let upstream = match &file.upstream {
        FileUpstream::Plain(addr) => Upstream::Http { addr: addr.clone() },
        FileUpstream::Tls {
            address,
            server_name,
            ca,
            cert,
            key,
        } => Upstream::Mtls {
            addr: address.clone(),
            server_name: server_name.clone(),
            ca_pem: read(base, ca)?,
            cert_chain_pem: read(base, cert)?,
            key_pem: read(base, key)?,
        },
    };
    let mut limits = Limits::default();
    if let Some(v) = file.limits.max_header_bytes {
        limits.max_header_bytes = v;
    }
    if let Some(v) = file.limits.max_body_bytes {
        limits.max_body_bytes = v;
    }
    if let Some(v) = file.limits.upstream_timeout_ms {
        limits.upstream_timeout = std::time::Duration::from_millis(v);
    }
    let mut trust_bundles = Vec::new();
    for (td, ca) in &file.tls.trust_bundles {
        trust_bundles.push(TrustBundle {
            trust_domain: td.clone(),
            ca_pem: read(base, ca)?,
        });
    }
    Ok(Config {
        listen: file.listen,
        metrics_listen: file.metrics,
        tls: TlsSettings {
            cert_chain_pem: read(base, &file.tls.cert)?,
            key_pem: read(base, &file.tls.key)?,
            trust_bundles,
            client_auth: if file.tls.require_client_cert {
                ClientAuth::Required
            } else {
                ClientAuth::Optional
            },
        },
        filters,
        upstream,
        limits,
    })
}

fn from_flags(args: &Args) -> Result<Config, String> {
    let need = |v: &Option<PathBuf>, flag: &str| {
        v.clone()
            .ok_or_else(|| format!("--{flag} is required without --config"))
    };
    let here = Path::new(".");
    if args.policies.is_empty() {
        return Err("--policy is required without --config".into());
    }
    let mut trust_bundles = Vec::new();
    for b in &args.bundles {
        let (td, ca) = b
            .split_once('=')
            .ok_or_else(|| format!("--bundle `{b}`: expected TRUST_DOMAIN=CA.PEM"))?;
        trust_bundles.push(TrustBundle {
            trust_domain: td.to_owned(),
            ca_pem: read(here, Path::new(ca))?,
        });
    }
    if trust_bundles.is_empty() {
        return Err("--bundle is required without --config".into());
    }
    let mut text = Vec::new();
    for p in &args.policies {
        text.push(read(here, p)?);
    }
    let domains: Vec<&str> = trust_bundles
        .iter()
        .map(|b| b.trust_domain.as_str())
        .collect();
    let identity = crate::modules::resolve("identity", here)?;
    let authz = crate::modules::resolve("authz", here)?;
    Ok(Config {
        listen: args.listen,
        metrics_listen: args.metrics,
        tls: TlsSettings {
            cert_chain_pem: read(here, &need(&args.cert, "cert")?)?,
            key_pem: read(here, &need(&args.key, "key")?)?,
            trust_bundles: trust_bundles.clone(),
            client_auth: if args.optional_client_cert {
                ClientAuth::Optional
            } else {
                ClientAuth::Required
            },
        },
        filters: vec![
            FilterSpec {
                name: identity.name,
                wasm: identity.bytes,
                root_id: identity.root_id,
                vm_id: String::new(),
                configuration: serde_json::json!({ "allowed_trust_domains": domains }).to_string(),
                fail_open: false,
            },
            FilterSpec {
                name: authz.name,
                wasm: authz.bytes,
                root_id: authz.root_id,
                vm_id: String::new(),
                configuration: {
                    let authoring = Authoring::new(text.join("\n"), PeerFrom::IdentityFilter);
                    validate(&authoring, &args.policies)?;
                    authz_config(&authoring)?
                },
                fail_open: false,
            },
        ],
        upstream: Upstream::Http {
            addr: args
                .upstream
                .clone()
                .ok_or("--upstream is required without --config")?,
        },
        limits: Limits::default(),
    })
}

pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let load = || match &args.config {
        Some(path) => from_file(path),
        None => from_flags(&args),
    };
    let config = load()?;
    crate::logging::init();
    let workers = match args.workers {
        Some(n) => Some(usize::from(n)),
        None => std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok()),
    };
    let rt = match workers {
        // No hand-offs between a worker and the I/O driver's thread, no
        // work-stealing bookkeeping: what one Envoy worker thread does.
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(async {
        eprintln!("meshward: compiling {} filter(s) and starting", config.filters.len());
        let dp = DataPath::start(config).await?;
        println!("meshward: mTLS listener on {}", dp.local_addr());
        if let Some(m) = dp.metrics_addr() {
            println!("meshward: metrics on http://{m}/metrics");
        }
        println!("meshward: SIGHUP reloads the configuration, Ctrl-C stops");
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    eprintln!("meshward: reloading");
                    match load() {
                        Ok(config) => match dp.reload(config).await {
                            Ok(()) => eprintln!("meshward: reloaded"),
                            Err(e) => eprintln!("meshward: reload refused, the previous configuration stays: {e}"),
                        },
                        Err(e) => {
                            // Counted and logged as any refused reload.
                            dp.reload_refused(&e);
                            eprintln!("meshward: reload refused, the previous configuration stays: {e}");
                        }
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        eprintln!("meshward: draining connections");
        dp.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
