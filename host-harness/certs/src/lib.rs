//! SPIFFE certificate authorities and X.509-SVIDs issued with rcgen, for
//! meshward's tests and demos, and the rustls configurations that present
//! them.
//!
//! The SVIDs follow the X.509-SVID specification: one `spiffe://` URI SAN,
//! `cA=false`, key usage `digitalSignature`, and both TLS extended key usages
//! so one SVID can serve as client and server. Nothing here is meant for
//! production issuance: keys live in memory and validity is a day.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Why a certificate could not be issued or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused the parameters or failed to sign.
    #[error("issuing the certificate failed: {0}")]
    Issue(#[from] rcgen::Error),
    /// `spiffe_id` is not a `spiffe://` URI rcgen can encode.
    #[error("`{0}` is not a SPIFFE ID")]
    NotSpiffe(String),
    /// rustls refused the key or certificates.
    #[error("building the TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// PEM text did not decode.
    #[error("bad PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
}

/// A SPIFFE certificate authority for one trust domain.
pub struct SpiffeCa {
    trust_domain: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// An X.509-SVID: the leaf certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Svid {
    /// The SPIFFE ID in the certificate's URI SAN.
    pub spiffe_id: String,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

impl SpiffeCa {
    /// A new self-signed CA whose certificate carries the trust domain's own
    /// SPIFFE ID (`spiffe://<trust_domain>`) as its URI SAN.
    pub fn new(trust_domain: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::OrganizationName, trust_domain);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{trust_domain} SPIFFE CA"));
        params.subject_alt_names = vec![uri_san(&format!("spiffe://{trust_domain}"))?];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, Duration::days(30));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            issuer,
        })
    }

    /// The trust domain name.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate (the trust bundle's one X.509 authority), PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues an X.509-SVID for `spiffe_id`, usable as client and server
    /// certificate, with extra DNS names and IP addresses as SANs (servers
    /// need them for ordinary hostname verification).
    pub fn issue(&self, spiffe_id: &str, dns_names: &[&str]) -> Result<Svid, CertError> {
        self.issue_with(spiffe_id, |params| {
            for name in dns_names {
                if let Ok(ip) = name.parse::<IpAddr>() {
                    params.subject_alt_names.push(SanType::IpAddress(ip));
                } else if let Ok(dns) = (*name).try_into() {
                    params.subject_alt_names.push(SanType::DnsName(dns));
                }
            }
        })
    }

    /// Issues an SVID for a server on this machine: the SPIFFE ID plus
    /// `localhost` and `127.0.0.1`.
    pub fn issue_local_server(&self, spiffe_id: &str) -> Result<Svid, CertError> {
        self.issue_with(spiffe_id, |params| {
            if let Ok(dns) = "localhost".try_into() {
                params.subject_alt_names.push(SanType::DnsName(dns));
            }
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        })
    }

    /// Issues a certificate from SVID-shaped parameters after `adjust` has
    /// changed them: tests use it to build certificates that break one rule.
    pub fn issue_with(
        &self,
        spiffe_id: &str,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Result<Svid, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.trust_domain.as_str());
        params.subject_alt_names = vec![uri_san(spiffe_id)?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, Duration::days(1));
        adjust(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Svid {
            spiffe_id: spiffe_id.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls root store that trusts this CA.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, CertError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone())?;
        Ok(roots)
    }
}

impl Svid {
    /// A rustls client configuration that presents this SVID and trusts
    /// servers whose certificates chain to `server_ca`.
    pub fn client_config(
        &self,
        server_ca: &SpiffeCa,
    ) -> Result<Arc<rustls::ClientConfig>, CertError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(server_ca.root_store()?)
            .with_client_auth_cert(self.cert_chain()?, self.private_key()?)?;
        Ok(Arc::new(config))
    }

    /// The certificate chain to present: the leaf only, since the peer
    /// trusts the CA directly.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        Ok(vec![CertificateDer::from_pem_slice(
            self.cert_pem.as_bytes(),
        )?])
    }

    /// The private key.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, CertError> {
        Ok(PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?)
    }
}

/// A rustls client configuration that presents no certificate.
pub fn anonymous_client_config(
    server_ca: &SpiffeCa,
) -> Result<Arc<rustls::ClientConfig>, CertError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(server_ca.root_store()?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

// One crypto provider for every configuration, named explicitly so no
// process-wide default has to be installed first.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn uri_san(uri: &str) -> Result<SanType, CertError> {
    if !uri.starts_with("spiffe://") {
        return Err(CertError::NotSpiffe(uri.to_owned()));
    }
    uri.try_into()
        .map(SanType::URI)
        .map_err(|_| CertError::NotSpiffe(uri.to_owned()))
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    // Back-dated a little so a peer whose clock runs slightly behind still
    // accepts a certificate issued a moment ago.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + lifetime;
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn svid_has_the_x509_svid_shape() {
        let ca = SpiffeCa::new("example.org").unwrap();
        let svid = ca
            .issue("spiffe://example.org/ns/web/sa/frontend", &[])
            .unwrap();
        let der = svid.cert_chain().unwrap().remove(0);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let sans: Vec<_> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(sans, ["URI(spiffe://example.org/ns/web/sa/frontend)"]);
        assert!(!cert.is_ca());
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let ca_der = ca.issuer.der().clone();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    }

    #[test]
    fn rejects_non_spiffe_ids() {
        let ca = SpiffeCa::new("example.org").unwrap();
        assert!(matches!(
            ca.issue("https://x", &[]),
            Err(CertError::NotSpiffe(_))
        ));
    }

    #[test]
    fn builds_rustls_configs() {
        let ca = SpiffeCa::new("example.org").unwrap();
        let svid = ca
            .issue_local_server("spiffe://example.org/server")
            .unwrap();
        svid.client_config(&ca).unwrap();
        anonymous_client_config(&ca).unwrap();
    }
}
