//! TLS on both sides: the listener's mTLS with SPIFFE trust bundles, what
//! a verified connection tells the filters, and the upstream's client.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use sha2::Digest;

use crate::config::{ClientAuth, TlsSettings};
use crate::error::Error;

// One crypto provider, named explicitly: no process-wide default needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Certificate {
            what: what.to_owned(),
            message: "no PEM certificate in it".to_owned(),
        });
    }
    Ok(certs)
}

fn key(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Certificate {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn roots(what: &str, pem: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(what, pem)? {
        roots.add(cert).map_err(|e| Error::Certificate {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The listener's rustls configuration: the server SVID, client
/// certificates verified per trust domain, HTTP/2 and HTTP/1.1 by ALPN.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, Error> {
    let verifier = SpiffeClientVerifier::new(settings)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            certs("server certificate", &settings.cert_chain_pem)?,
            key("server key", &settings.key_pem)?,
        )
        .map_err(|e| Error::Certificate {
            what: "server certificate and key".to_owned(),
            message: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Every connection is verified in full: a resumed session would carry
    // a verdict made earlier, against a bundle that may have been reloaded.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// The upstream's rustls client configuration: present `cert_chain_pem`,
/// trust servers chaining to `ca_pem`.
pub(crate) fn client_config(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots("upstream CA", ca_pem)?)
        .with_client_auth_cert(
            certs("upstream client certificate", cert_chain_pem)?,
            key("upstream client key", key_pem)?,
        )
        .map_err(|e| Error::Certificate {
            what: "upstream client certificate and key".to_owned(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// Verifies a client's chain with rustls' WebPKI verifier against the
/// bundle of the trust domain named in its SPIFFE ID, and no other: a CA
/// of one trust domain cannot vouch for another's workloads.
#[derive(Debug)]
struct SpiffeClientVerifier {
    by_domain: Vec<(String, Arc<dyn ClientCertVerifier>)>,
    required: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeClientVerifier {
    fn new(settings: &TlsSettings) -> Result<Self, Error> {
        if settings.trust_bundles.is_empty() {
            return Err(Error::Config("no trust bundle".to_owned()));
        }
        let provider = provider();
        let mut by_domain = Vec::new();
        let mut hints = Vec::new();
        for bundle in &settings.trust_bundles {
            let what = format!("trust bundle for `{}`", bundle.trust_domain);
            meshward_identity::TrustDomain::parse(&bundle.trust_domain).map_err(|e| {
                Error::Certificate {
                    what: what.clone(),
                    message: e.to_string(),
                }
            })?;
            if by_domain.iter().any(|(d, _)| *d == bundle.trust_domain) {
                return Err(Error::Config(format!(
                    "two trust bundles for `{}`",
                    bundle.trust_domain
                )));
            }
            let roots = roots(&what, &bundle.ca_pem)?;
            hints.extend(roots.subjects());
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Certificate {
                        what,
                        message: e.to_string(),
                    })?;
            by_domain.push((bundle.trust_domain.clone(), verifier));
        }
        Ok(Self {
            by_domain,
            required: settings.client_auth == ClientAuth::Required,
            hints,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = spiffe_id(end_entity).ok_or_else(|| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(NotAnSvid),
            )))
        })?;
        let domain = id.trust_domain_name();
        let verifier = self
            .by_domain
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, v)| v)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the client certificate is not an X.509-SVID: it needs exactly one `spiffe://` URI SAN")]
struct NotAnSvid;

/// The SPIFFE ID in the certificate's one URI SAN; none when the
/// certificate has no URI SAN, several, or one that is not a SPIFFE ID.
fn spiffe_id(der: &[u8]) -> Option<meshward_identity::SpiffeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next()?;
    if uris.next().is_some() {
        return None;
    }
    meshward_identity::SpiffeId::parse(uri).ok()
}

/// What a connection's TLS tells the filters about the peer, computed once
/// per connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerInfo {
    /// The verified SPIFFE ID.
    pub(crate) spiffe_id: Option<String>,
    /// The leaf as PEM text, as Envoy hands it to filters.
    pub(crate) cert_pem: Option<String>,
    pub(crate) sha256: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) tls_version: Option<&'static str>,
    pub(crate) sni: Option<String>,
}

impl PeerInfo {
    pub(crate) fn of(conn: &rustls::ServerConnection) -> Self {
        let tls_version = conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "unknown",
        });
        let mut info = Self {
            tls_version,
            sni: conn.server_name().map(str::to_owned),
            ..Self::default()
        };
        // rustls hands out peer certificates only after the verifier
        // accepted them, so a leaf here is a verified one.
        if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
            info.spiffe_id = spiffe_id(leaf).map(|id| id.as_str().to_owned());
            info.cert_pem = Some(pem(leaf));
            info.sha256 = Some(hex(&sha2::Sha256::digest(leaf.as_ref())));
            info.subject = x509_parser::parse_x509_certificate(leaf)
                .ok()
                .map(|(_, c)| c.subject().to_string());
        }
        info
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
