//! X.509-SVIDs: the leaf rules of the X509-SVID specification (sections 2, 4
//! and 5.2) and, for certificates no TLS stack has verified (the XFCC case),
//! a chain check against the authorities of a SPIFFE trust bundle.

#[cfg(feature = "verify")]
use x509_parser::certificate::X509Certificate;
#[cfg(feature = "verify")]
use x509_parser::extensions::{GeneralName, ParsedExtension};
#[cfg(feature = "verify")]
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
#[cfg(feature = "verify")]
use x509_parser::prelude::FromDer as _;

#[cfg(feature = "verify")]
use crate::crypto::{self, SignatureError};
use crate::pem::{self, PemError};
use crate::spiffe_id::{SpiffeId, SpiffeIdError};

/// The longest chain walked from a leaf to a bundle authority.
#[cfg(feature = "verify")]
const MAX_CHAIN_DEPTH: usize = 8;

/// Why a certificate is not an acceptable X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The PEM or URL-encoded PEM could not be read.
    #[error("{0}")]
    Pem(#[from] PemError),
    /// The bytes are not a DER X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// The certificate has no URI SAN.
    #[error("the certificate has no URI SAN")]
    NoUriSan,
    /// An X.509-SVID has exactly one URI SAN.
    #[error("the certificate has {0} URI SANs, an X.509-SVID has exactly one")]
    TooManyUriSans(usize),
    /// The URI SAN is not a SPIFFE ID.
    #[error("the URI SAN is not a SPIFFE ID: {0}")]
    BadSpiffeId(SpiffeIdError),
    /// A leaf SVID names a workload, never a bare trust domain.
    #[error("the SPIFFE ID `{0}` has no path, which a leaf X.509-SVID must have")]
    RootId(SpiffeId),
    /// A leaf must have `cA=false`.
    #[error("the certificate is a CA certificate (`cA=true`)")]
    IsCa,
    /// A leaf must have a key usage extension.
    #[error("the certificate has no key usage extension")]
    NoKeyUsage,
    /// A leaf's key usage must include `digitalSignature`.
    #[error("the key usage lacks `digitalSignature`")]
    NoDigitalSignature,
    /// A leaf's key usage must not include `keyCertSign` or `cRLSign`.
    #[error("the key usage includes `keyCertSign` or `cRLSign`")]
    SigningKeyUsage,
    /// An extended key usage, when present, must include `clientAuth`.
    #[error("the extended key usage lacks `clientAuth`")]
    NoClientAuth,
    /// A critical extension this library does not process.
    #[error("unsupported critical extension `{0}`")]
    UnsupportedCriticalExtension(String),
    /// `now + skew` is before `notBefore`.
    #[error("the certificate is not valid before {not_before} (unix seconds)")]
    NotYetValid {
        /// The certificate's `notBefore`, unix seconds.
        not_before: i64,
    },
    /// `now - skew` is after `notAfter`.
    #[error("the certificate expired at {not_after} (unix seconds)")]
    Expired {
        /// The certificate's `notAfter`, unix seconds.
        not_after: i64,
    },
    /// No trust bundle holds X.509 authorities for the ID's trust domain.
    #[error("no X.509 trust bundle for trust domain `{0}`")]
    NoTrustBundle(String),
    /// No path from the certificate to an authority of its trust bundle.
    #[error("the certificate chain does not lead to a trusted authority: {0}")]
    Untrusted(String),
    /// This build leaves certificate checks out (the crate's `verify`
    /// feature is off), so no certificate can be accepted.
    #[error("this build of meshward does not check certificates (built without `verify`)")]
    NotBuiltIn,
}

impl SvidError {
    /// A short, stable, machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Pem(_) | Self::Malformed(_) => "svid_malformed",
            Self::NoUriSan => "svid_no_uri_san",
            Self::TooManyUriSans(_) => "svid_multiple_uri_sans",
            Self::BadSpiffeId(_) => "svid_bad_spiffe_id",
            Self::RootId(_) => "svid_id_without_path",
            Self::IsCa => "svid_is_ca",
            Self::NoKeyUsage => "svid_no_key_usage",
            Self::NoDigitalSignature => "svid_no_digital_signature",
            Self::SigningKeyUsage => "svid_signing_key_usage",
            Self::NoClientAuth => "svid_no_client_auth",
            Self::UnsupportedCriticalExtension(_) => "svid_unsupported_extension",
            Self::NotYetValid { .. } => "svid_not_yet_valid",
            Self::Expired { .. } => "svid_expired",
            Self::NoTrustBundle(_) => "svid_no_trust_bundle",
            Self::Untrusted(_) => "svid_untrusted",
            Self::NotBuiltIn => "svid_checks_not_built_in",
        }
    }
}

/// A leaf certificate that passed every structural X.509-SVID rule. Its time
/// window and chain are checked separately because they need the caller's
/// clock and trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Svid {
    id: SpiffeId,
    not_before: i64,
    not_after: i64,
    der: Vec<u8>,
}

impl X509Svid {
    /// Checks a DER leaf certificate against the X.509-SVID leaf rules.
    /// Without the `verify` feature nothing can be checked, and every
    /// certificate is refused with [`SvidError::NotBuiltIn`].
    #[cfg(not(feature = "verify"))]
    pub fn from_der(der: &[u8]) -> Result<Self, SvidError> {
        let _ = der;
        Err(SvidError::NotBuiltIn)
    }

    /// Checks a DER leaf certificate against the X.509-SVID leaf rules.
    #[cfg(feature = "verify")]
    pub fn from_der(der: &[u8]) -> Result<Self, SvidError> {
        let cert = parse(der)?;
        let id = leaf_id(&cert)?;
        check_leaf_extensions(&cert)?;
        let validity = cert.validity();
        Ok(Self {
            id,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            der: der.to_vec(),
        })
    }

    /// Checks the first certificate of PEM text (what Envoy exposes as
    /// `connection.peer_certificate`) or of a DER certificate.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, SvidError> {
        let certs = pem::certificates_from_der_or_pem(bytes)?;
        Self::from_der(certs.first().map_or(&[][..], Vec::as_slice))
    }

    /// Checks the URL-encoded PEM of an XFCC `Cert=` value.
    pub fn from_url_encoded_pem(text: &str) -> Result<Self, SvidError> {
        let certs = pem::certificates_from_url_encoded_pem(text)?;
        Self::from_der(certs.first().map_or(&[][..], Vec::as_slice))
    }

    /// The SPIFFE ID from the single URI SAN.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// `notBefore`, unix seconds.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// `notAfter`, unix seconds.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The certificate, DER.
    #[cfg(feature = "fuzzing")]
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks that `now` (unix seconds) lies inside the validity window,
    /// widened by `skew_secs` on both sides.
    pub fn check_time(&self, now: i64, skew_secs: u64) -> Result<(), SvidError> {
        check_window(self.not_before, self.not_after, now, skew_secs)
    }

    /// Checks that the leaf chains, through `intermediates` (DER, any order;
    /// a copy of the leaf among them is ignored), to one of `authorities`
    /// (DER, the X.509 authorities of the trust bundle for the leaf's trust
    /// domain). Every certificate on the path must be inside its validity
    /// window, and every issuer a CA allowed to sign certificates.
    #[cfg(not(feature = "verify"))]
    pub fn verify_chain(
        &self,
        intermediates: &[Vec<u8>],
        authorities: &[Vec<u8>],
        now: i64,
        skew_secs: u64,
    ) -> Result<(), SvidError> {
        let _ = (intermediates, authorities, now, skew_secs);
        Err(SvidError::NotBuiltIn)
    }

    /// Checks that the leaf chains, through `intermediates`, to one of
    /// `authorities` (see the `verify` build's documentation).
    #[cfg(feature = "verify")]
    pub fn verify_chain(
        &self,
        intermediates: &[Vec<u8>],
        authorities: &[Vec<u8>],
        now: i64,
        skew_secs: u64,
    ) -> Result<(), SvidError> {
        self.check_time(now, skew_secs)?;
        let leaf = parse(&self.der)?;
        let inters: Vec<X509Certificate<'_>> = intermediates
            .iter()
            .filter(|d| d.as_slice() != self.der.as_slice())
            .map(|d| parse(d))
            .collect::<Result<_, _>>()?;
        let roots: Vec<X509Certificate<'_>> = authorities
            .iter()
            .map(|d| parse(d))
            .collect::<Result<_, _>>()?;

        let mut current = leaf;
        let mut last_problem = String::from("no issuer found");
        // `depth` counts the CA certificates between the leaf and the one
        // being tried, for pathLenConstraint.
        for depth in 0..MAX_CHAIN_DEPTH {
            for root in &roots {
                match check_issued_by(&current, root, depth, now, skew_secs) {
                    Ok(()) => return Ok(()),
                    Err(Some(p)) => last_problem = p,
                    Err(None) => {}
                }
            }
            let mut next = None;
            for inter in &inters {
                match check_issued_by(&current, inter, depth, now, skew_secs) {
                    Ok(()) => {
                        next = Some(inter.clone());
                        break;
                    }
                    Err(Some(p)) => last_problem = p,
                    Err(None) => {}
                }
            }
            match next {
                Some(n) => current = n,
                None => return Err(SvidError::Untrusted(last_problem)),
            }
        }
        Err(SvidError::Untrusted(format!(
            "the chain is longer than {MAX_CHAIN_DEPTH} certificates"
        )))
    }
}

#[cfg(feature = "verify")]
/// Checks that `issuer` issued `child`. `Err(None)` means it is simply not the
/// issuer (the names differ); `Err(Some(_))` that it claims to be and fails.
fn check_issued_by(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    cas_below: usize,
    now: i64,
    skew_secs: u64,
) -> Result<(), Option<String>> {
    if child.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(None);
    }
    crypto::verify(
        issuer.public_key(),
        &child.signature_algorithm,
        child.tbs_certificate.as_ref(),
        &child.signature_value.data,
    )
    .map_err(|e| {
        Some(match e {
            SignatureError::Unsupported(what) => format!("unsupported algorithm: {what}"),
            SignatureError::BadKey => "the issuer's key is malformed or too weak".to_owned(),
            SignatureError::Invalid => "a signature does not verify".to_owned(),
        })
    })?;
    match issuer.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if bc
                .value
                .path_len_constraint
                .is_some_and(|max| usize::try_from(max).is_ok_and(|max| cas_below > max))
            {
                return Err(Some("an issuer's pathLenConstraint is exceeded".to_owned()));
            }
        }
        _ => return Err(Some("an issuer is not a CA".to_owned())),
    }
    match issuer.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => {
            return Err(Some("an issuer's key usage lacks `keyCertSign`".to_owned()));
        }
        Ok(_) => {}
        Err(_) => return Err(Some("an issuer's key usage is malformed".to_owned())),
    }
    if let Some(ext) = unsupported_critical(issuer) {
        return Err(Some(format!(
            "an issuer has unsupported critical extension `{ext}`"
        )));
    }
    let v = issuer.validity();
    check_window(
        v.not_before.timestamp(),
        v.not_after.timestamp(),
        now,
        skew_secs,
    )
    .map_err(|e| Some(format!("an issuer: {e}")))
}

/// Checks that `der` is one well-formed certificate, for bundle loading.
#[cfg(feature = "verify")]
pub(crate) fn check_parses(der: &[u8]) -> Result<(), SvidError> {
    parse(der).map(|_| ())
}

/// Without `verify`, a bundle's X.509 authorities are kept unread: the only
/// use of them, XFCC chain verification, is refused at configuration.
#[cfg(not(feature = "verify"))]
pub(crate) fn check_parses(der: &[u8]) -> Result<(), SvidError> {
    let _ = der;
    Ok(())
}

#[cfg(feature = "verify")]
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, SvidError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(SvidError::Malformed(
            "trailing data after the certificate".to_owned(),
        )),
        Err(e) => Err(SvidError::Malformed(e.to_string())),
    }
}

#[cfg(feature = "verify")]
fn leaf_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    let uri = match uris.as_slice() {
        [] => return Err(SvidError::NoUriSan),
        [one] => *one,
        many => return Err(SvidError::TooManyUriSans(many.len())),
    };
    let id = SpiffeId::parse(uri).map_err(SvidError::BadSpiffeId)?;
    if id.path().is_empty() {
        return Err(SvidError::RootId(id));
    }
    Ok(id)
}

#[cfg(feature = "verify")]
fn check_leaf_extensions(cert: &X509Certificate<'_>) -> Result<(), SvidError> {
    let bad = |e: x509_parser::error::X509Error| SvidError::Malformed(e.to_string());
    if cert
        .basic_constraints()
        .map_err(bad)?
        .is_some_and(|bc| bc.value.ca)
    {
        return Err(SvidError::IsCa);
    }
    let ku = cert
        .key_usage()
        .map_err(bad)?
        .ok_or(SvidError::NoKeyUsage)?;
    if !ku.value.digital_signature() {
        return Err(SvidError::NoDigitalSignature);
    }
    if ku.value.key_cert_sign() || ku.value.crl_sign() {
        return Err(SvidError::SigningKeyUsage);
    }
    if let Some(eku) = cert.extended_key_usage().map_err(bad)?
        && !eku.value.client_auth
    {
        return Err(SvidError::NoClientAuth);
    }
    if let Some(ext) = unsupported_critical(cert) {
        return Err(SvidError::UnsupportedCriticalExtension(ext));
    }
    Ok(())
}

#[cfg(feature = "verify")]
/// The first critical extension that nothing here enforces. Name constraints
/// in particular are refused rather than ignored: skipping them would widen
/// what an intermediate may sign.
fn unsupported_critical(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .filter(|e| e.critical)
        .find(|e| {
            let known = e.oid == OID_X509_EXT_BASIC_CONSTRAINTS
                || e.oid == OID_X509_EXT_KEY_USAGE
                || e.oid == OID_X509_EXT_EXTENDED_KEY_USAGE
                || e.oid == OID_X509_EXT_SUBJECT_ALT_NAME;
            !known
                || matches!(
                    e.parsed_extension(),
                    ParsedExtension::UnsupportedExtension { .. }
                )
        })
        .map(|e| e.oid.to_id_string())
}

fn check_window(
    not_before: i64,
    not_after: i64,
    now: i64,
    skew_secs: u64,
) -> Result<(), SvidError> {
    let skew = i64::try_from(skew_secs).unwrap_or(i64::MAX);
    if now.saturating_add(skew) < not_before {
        return Err(SvidError::NotYetValid { not_before });
    }
    if now.saturating_sub(skew) > not_after {
        return Err(SvidError::Expired { not_after });
    }
    Ok(())
}

#[cfg(test)]
#[cfg(feature = "verify")]
mod tests;
