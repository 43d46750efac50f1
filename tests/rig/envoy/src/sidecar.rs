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

/// Departures from the shipped bootstrap, for tests that must show what
/// happens when an operator configures Envoy otherwise. Each is applied as
/// an edit of the bootstrap's text, and starting fails if the text to edit
/// is not there (so a changed bootstrap cannot silently disable a test).
#[derive(Debug, Clone, Copy, Default)]
pub struct BootstrapEdits {
    /// Turn Envoy's own path normalisation off (`normalize_path`,
    /// `merge_slashes` false, escaped slashes kept unchanged), so only the
    /// filter stands between a client's path and the decision.
    pub envoy_path_normalization_off: bool,
    /// `trust_chain_verification: ACCEPT_UNTRUSTED`: Envoy completes the
    /// handshake with a client certificate that does not chain to the CA.
    pub accept_untrusted_certificates: bool,
    /// `fail_open: true` on every filter (Istio's `FAIL_OPEN`): a failed VM
    /// lets requests through instead of answering 503.
    pub fail_open: bool,
}

impl BootstrapEdits {
    fn apply(&self, mut text: String) -> Result<String, EnvoyError> {
        let mut edit = |from: &str, to: &str| {
            if !text.contains(from) {
                return Err(EnvoyError::Admin(format!(
                    "the bootstrap has no `{from}` to edit"
                )));
            }
            text = text.replace(from, to);
            Ok(())
        };
        if self.envoy_path_normalization_off {
            edit("normalize_path: true", "normalize_path: false")?;
            edit("merge_slashes: true", "merge_slashes: false")?;
            edit(
                "path_with_escaped_slashes_action: REJECT_REQUEST",
                "path_with_escaped_slashes_action: KEEP_UNCHANGED",
            )?;
        }
        if self.accept_untrusted_certificates {
            edit(
                "trusted_ca: { filename: \"{{CA}}\" }",
                "{ trusted_ca: { filename: \"{{CA}}\" }, trust_chain_verification: ACCEPT_UNTRUSTED }",
            )?;
        }
        if self.fail_open {
            edit("fail_open: false", "fail_open: true")?;
        }
        Ok(text)
    }
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
        Self::start_with(spec, &BootstrapEdits::default()).await
    }

    /// [`Sidecar::start`] with the bootstrap changed as `edits` say.
    pub async fn start_with(
        spec: &SidecarSpec,
        edits: &BootstrapEdits,
    ) -> Result<Self, EnvoyError> {
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
        let text = std::fs::read_to_string(&template)?;
        let config = Template::from_text(edits.apply(text)?)
            .render(&values)
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
