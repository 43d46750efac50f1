//! SPIFFE certificate authorities and X.509-SVIDs issued with rcgen, for
//! meshward's tests and demos, and the rustls configurations that present
//! them.
//!
//! The SVIDs follow the X.509-SVID specification: one `spiffe://` URI SAN,
//! `cA=false`, key usage `digitalSignature`, and both TLS extended key usages
//! so one SVID can serve as client and server. Nothing here is meant for
//! production issuance: keys live in memory and validity is a day unless
//! [`SvidOptions`] say otherwise (any window, even one entirely in the past
//! for an expired SVID), with the key type of [`KeyType`].

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time};

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
    /// A key type name that is not one of [`KeyType::ALL`].
    #[error("`{0}` is not a key type (one of: ecdsa-p256, ecdsa-p384, ed25519)")]
    KeyType(String),
    /// A time that is neither RFC 3339 nor a date.
    #[error(
        "`{0}` is not a time (RFC 3339 such as `2026-01-31T12:00:00Z`, or a date such as `2026-01-31`)"
    )]
    Time(String),
    /// A validity window that ends before it starts.
    #[error("the validity ends (`{not_after}`) before it starts (`{not_before}`)")]
    EmptyValidity {
        /// The start asked for.
        not_before: OffsetDateTime,
        /// The end asked for.
        not_after: OffsetDateTime,
    },
}

/// The key type (and so the signature algorithm) of a CA or an SVID.
///
/// RSA is not offered: rcgen's `ring` backend, the one this workspace
/// builds, cannot generate RSA keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256, what SPIRE and Istio issue by default.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Every key type, in the order `--help` lists them.
    pub const ALL: [KeyType; 3] = [Self::EcdsaP256, Self::EcdsaP384, Self::Ed25519];

    /// The name [`KeyType::from_str`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
        }
    }

    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    fn generate(self) -> Result<KeyPair, CertError> {
        Ok(KeyPair::generate_for(self.algorithm())?)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| CertError::KeyType(s.to_owned()))
    }
}

/// When a certificate is valid: `not_before` up to `not_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    /// The window from `not_before` to `not_after`; one that ends before it
    /// starts is refused. A window entirely in the past makes an expired
    /// certificate, entirely in the future one not yet valid.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Self, CertError> {
        if not_after <= not_before {
            return Err(CertError::EmptyValidity {
                not_before,
                not_after,
            });
        }
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// From five minutes ago (a peer whose clock runs slightly behind still
    /// accepts a certificate issued a moment ago) to `lifetime` from now.
    pub fn from_now(lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::minutes(5),
            not_after: now + lifetime.max(Duration::minutes(1)),
        }
    }

    /// The start.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The end.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The smallest window that holds both: a CA made to cover the SVIDs
    /// it signs.
    pub fn union(&self, other: &Validity) -> Validity {
        Validity {
            not_before: self.not_before.min(other.not_before),
            not_after: self.not_after.max(other.not_after),
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = self.not_before;
        params.not_after = self.not_after;
    }
}

/// Reads a time as RFC 3339 (`2026-01-31T12:00:00Z`) or a date
/// (`2026-01-31`, midnight UTC).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, CertError> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let mut parts = s.splitn(3, '-');
    let date = match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d)) if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let number = |t: &str| t.parse::<u16>().ok();
            match (number(y), number(m), number(d)) {
                (Some(y), Some(m), Some(d)) => u8::try_from(m)
                    .ok()
                    .and_then(|m| time::Month::try_from(m).ok())
                    .zip(u8::try_from(d).ok())
                    .and_then(|(m, d)| Date::from_calendar_date(i32::from(y), m, d).ok()),
                _ => None,
            }
        }
        _ => None,
    };
    date.map(|d| d.with_time(Time::MIDNIGHT).assume_utc())
        .ok_or_else(|| CertError::Time(s.to_owned()))
}

/// How to issue an SVID (or a CA): its key type and validity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SvidOptions {
    /// The key type.
    pub key_type: KeyType,
    /// The validity; `None` is a day for an SVID, thirty days for a CA,
    /// both from five minutes ago.
    pub validity: Option<Validity>,
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
        Self::with_options(trust_domain, &SvidOptions::default())
    }

    /// A new self-signed CA with the key type and validity of `options`.
    pub fn with_options(trust_domain: &str, options: &SvidOptions) -> Result<Self, CertError> {
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
        options
            .validity
            .unwrap_or_else(|| Validity::from_now(Duration::days(30)))
            .apply(&mut params);
        let issuer = CertifiedIssuer::self_signed(params, options.key_type.generate()?)?;
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
        self.issue_with_options(spiffe_id, dns_names, &SvidOptions::default())
    }

    /// [`SpiffeCa::issue`] with the key type and validity of `options`.
    pub fn issue_with_options(
        &self,
        spiffe_id: &str,
        dns_names: &[&str],
        options: &SvidOptions,
    ) -> Result<Svid, CertError> {
        self.issue_inner(spiffe_id, options, |params| {
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
        self.issue_inner(spiffe_id, &SvidOptions::default(), adjust)
    }

    fn issue_inner(
        &self,
        spiffe_id: &str,
        options: &SvidOptions,
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
        options
            .validity
            .unwrap_or_else(|| Validity::from_now(Duration::days(1)))
            .apply(&mut params);
        adjust(&mut params);
        let key = options.key_type.generate()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    // x509-parser's prelude has a `Validity` too.
    use super::Validity;
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

    #[test]
    fn issues_each_key_type_and_names_the_bad_ones() {
        for key_type in KeyType::ALL {
            let options = SvidOptions {
                key_type,
                validity: None,
            };
            let ca = SpiffeCa::with_options("example.org", &options).unwrap();
            let svid = ca
                .issue_with_options("spiffe://example.org/a", &["localhost"], &options)
                .unwrap();
            let der = svid.cert_chain().unwrap().remove(0);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let ca_der = ca.issuer.der().clone();
            let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            let oid = cert.public_key().algorithm.algorithm.to_id_string();
            let want = match key_type {
                KeyType::EcdsaP256 | KeyType::EcdsaP384 => "1.2.840.10045.2.1",
                KeyType::Ed25519 => "1.3.101.112",
            };
            assert_eq!(oid, want, "{key_type}");
            assert_eq!(key_type.name().parse::<KeyType>().unwrap(), key_type);
            svid.client_config(&ca).unwrap();
        }
        let e = "rsa".parse::<KeyType>().unwrap_err().to_string();
        assert!(e.contains("`rsa`") && e.contains("ed25519"), "{e}");
    }

    #[test]
    fn validity_in_the_past_makes_an_expired_svid() {
        let validity = Validity::new(
            parse_time("2020-01-01").unwrap(),
            parse_time("2020-01-02T00:00:00Z").unwrap(),
        )
        .unwrap();
        let ca = SpiffeCa::new("example.org").unwrap();
        let svid = ca
            .issue_with_options(
                "spiffe://example.org/old",
                &[],
                &SvidOptions {
                    validity: Some(validity),
                    ..SvidOptions::default()
                },
            )
            .unwrap();
        let der = svid.cert_chain().unwrap().remove(0);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.validity().not_after.timestamp(), 1_577_923_200);
        assert!(!cert.validity().is_valid());
    }

    #[test]
    fn times_and_windows_are_checked() {
        assert_eq!(
            parse_time("2026-01-31T12:00:00+01:00")
                .unwrap()
                .unix_timestamp(),
            1_769_857_200
        );
        for bad in ["yesterday", "2026-13-01", "2026-02-30", "26-01-01", ""] {
            let e = parse_time(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let t = parse_time("2026-01-01").unwrap();
        let e = Validity::new(t, t).unwrap_err().to_string();
        assert!(e.contains("before it starts"), "{e}");
    }
}
