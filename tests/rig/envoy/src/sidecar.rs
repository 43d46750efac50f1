use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use meshward_certs::{SpiffeCa, Svid, anonymous_client_config};

use crate::client::{Request, Response, send};
use crate::locate::workspace_root;
use crate::process::{Envoy, EnvoyError};
use crate::template::{Template, yaml_quote};
use crate::upstream::EchoUpstream;

/// One proxy-wasm filter in the sidecar's HTTP chain.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    /// The filter's `.wasm`.
    pub wasm: PathBuf,
    /// Its root id; also its VM id, so each filter gets its own VM.
    pub root_id: String,
    /// Its JSON plugin configuration.
    pub plugin_config: String,
}

/// What to run in the sidecar.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// The HTTP filters in chain order: one or two.
    pub filters: Vec<FilterSpec>,
    /// The trust domain of the mesh's CA.
    pub trust_domain: String,
}

/// An Istio-style inbound sidecar made of real parts: a SPIFFE CA, a real
/// Envoy on an mTLS listener running a filter, and an echo application
/// behind it (`envoy-config/sidecar-inbound.yaml`).
pub struct Sidecar {
    /// The mesh's CA; issue client SVIDs from it.
    pub ca: SpiffeCa,
    /// The running Envoy.
    pub envoy: Envoy,
    upstream: EchoUpstream,
    listener: SocketAddr,
    _files: tempfile::TempDir,
}

impl Sidecar {
    /// The template a sidecar with `filters` filters is rendered from.
    pub fn template_path(filters: usize) -> Option<PathBuf> {
        let name = match filters {
            1 => "sidecar-inbound.yaml",
            2 => "sidecar-inbound-chain.yaml",
            _ => return None,
        };
        Some(workspace_root().join("envoy-config").join(name))
    }

    /// Issues certificates, writes them out, starts the application and
    /// Envoy, and waits until the listener is ready.
    pub async fn start(spec: &SidecarSpec) -> Result<Self, EnvoyError> {
        let ca = SpiffeCa::new(&spec.trust_domain).map_err(cert_err)?;
        let server = ca
            .issue_local_server(&format!("spiffe://{}/ns/default/sa/app", spec.trust_domain))
            .map_err(cert_err)?;
        let files = tempfile::Builder::new()
            .prefix("meshward-sidecar-")
            .tempdir()?;
        let write = |name: &str, text: &str| -> std::io::Result<String> {
            let path = files.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path.display().to_string())
        };
        let upstream = EchoUpstream::start().await?;
        let mut values = BTreeMap::new();
        values.insert("CA", write("ca.pem", &ca.cert_pem())?);
        values.insert("CERT", write("server.pem", &server.cert_pem)?);
        values.insert("KEY", write("server-key.pem", &server.key_pem)?);
        let mut names = Vec::new();
        for n in 0..spec.filters.len() {
            names.push([
                format!("WASM_{n}"),
                format!("ROOT_ID_{n}"),
                format!("PLUGIN_CONFIG_{n}"),
            ]);
        }
        for (filter, [wasm, root_id, config]) in spec.filters.iter().zip(&names) {
            values.insert(wasm.as_str(), filter.wasm.display().to_string());
            values.insert(root_id.as_str(), filter.root_id.clone());
            values.insert(config.as_str(), yaml_quote(&filter.plugin_config));
        }
        values.insert("UPSTREAM_PORT", upstream.addr().port().to_string());
        let template = Self::template_path(spec.filters.len()).ok_or_else(|| {
            EnvoyError::Admin(format!(
                "no sidecar template for {} filters",
                spec.filters.len()
            ))
        })?;
        let config = Template::load(&template)
            .and_then(|t| t.render(&values))
            .map_err(|e| EnvoyError::Admin(format!("rendering the sidecar configuration: {e}")))?;
        let envoy = Envoy::start(&config).await?;
        let listener = envoy.listener("inbound_mtls").await?;
        Ok(Self {
            ca,
            envoy,
            upstream,
            listener,
            _files: files,
        })
    }

    /// Sends `request` as the workload holding `svid`, or with no client
    /// certificate when `svid` is `None`.
    pub async fn request(
        &self,
        svid: Option<&Svid>,
        request: &Request,
    ) -> Result<Response, EnvoyError> {
        let tls = match svid {
            Some(svid) => svid.client_config(&self.ca),
            None => anonymous_client_config(&self.ca),
        }
        .map_err(cert_err)?;
        send(self.listener, Some(tls), request).await
    }

    /// Where the application behind Envoy listens.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream.addr()
    }

    /// Where Envoy's mTLS listener is bound.
    pub fn listener_addr(&self) -> SocketAddr {
        self.listener
    }
}

fn cert_err(e: meshward_certs::CertError) -> EnvoyError {
    EnvoyError::Client(e.to_string())
}
