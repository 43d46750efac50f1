use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use meshward_certs::{SpiffeCa, Svid, anonymous_client_config};

use crate::client::{Request, Response, send};
use crate::locate::workspace_root;
use crate::process::{Envoy, EnvoyError};
use crate::template::{Template, yaml_quote};
use crate::upstream::EchoUpstream;

/// What to run in the sidecar.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// The filter's `.wasm`.
    pub wasm: PathBuf,
    /// Its root id.
    pub root_id: String,
    /// Its JSON plugin configuration.
    pub plugin_config: String,
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
    /// The template this sidecar is rendered from.
    pub fn template_path() -> PathBuf {
        workspace_root().join("envoy-config/sidecar-inbound.yaml")
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
        values.insert("WASM", spec.wasm.display().to_string());
        values.insert("ROOT_ID", spec.root_id.clone());
        values.insert("PLUGIN_CONFIG", yaml_quote(&spec.plugin_config));
        values.insert("UPSTREAM_PORT", upstream.addr().port().to_string());
        let config = Template::load(&Self::template_path())
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
