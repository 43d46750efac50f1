//! Where the peer's identity comes from: the mTLS connection, or the XFCC
//! header of a trusted front proxy.

use super::{AuthnConfig, Denial, MtlsSource, PeerFacts, XFCC_HEADER, XfccSource};
use crate::bundle::{TrustBundle, TrustBundleSet};
use crate::pem;
use crate::spiffe_id::SpiffeId;
use crate::x509_svid::{SvidError, X509Svid};
use crate::xfcc::{self, XfccKey};

/// The ID with an alias trust domain replaced by its canonical one.
pub(super) fn canonical(bundles: &TrustBundleSet, id: &SpiffeId) -> SpiffeId {
    let td = id.trust_domain();
    let canon = bundles.canonical(&td);
    if *canon == td {
        return id.clone();
    }
    // Both halves were valid, so the joined ID is; fall back to the
    // presented one rather than panic if that ever stops being true.
    SpiffeId::parse(&format!("spiffe://{canon}{}", id.path())).unwrap_or_else(|_| id.clone())
}

fn mtls_peer(facts: &PeerFacts) -> Option<Result<SpiffeId, Denial>> {
    // Envoy sets `connection.mtls` only when a client certificate was
    // presented and verified; anything but a single non-zero byte is treated
    // as "no".
    let mtls = matches!(facts.mtls.as_deref(), Some([b]) if *b != 0);
    let san = facts.uri_san.as_deref().filter(|s| !s.is_empty());
    match (mtls, san) {
        (true, Some(san)) => Some(SpiffeId::from_bytes(san).map_err(Denial::MalformedPeerId)),
        _ => None,
    }
}

pub(super) fn peer_from_mtls(
    m: &MtlsSource,
    facts: &PeerFacts,
    now: i64,
) -> Result<SpiffeId, Denial> {
    let id = mtls_peer(facts).ok_or(Denial::NoPeerIdentity)??;
    if m.validate_certificate {
        let pem = facts
            .peer_certificate
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or(Denial::NoPeerIdentity)?;
        let svid = X509Svid::from_pem(pem).map_err(Denial::InvalidPeerCertificate)?;
        svid.check_time(now, m.clock_skew_secs)
            .map_err(Denial::InvalidPeerCertificate)?;
        if *svid.id() != id {
            return Err(Denial::PeerCertificateMismatch(svid.id().clone()));
        }
    }
    Ok(id)
}

pub(super) fn peer_from_xfcc(
    config: &AuthnConfig,
    x: &XfccSource,
    facts: &PeerFacts,
    now: i64,
) -> Result<SpiffeId, Denial> {
    // The header is only as trustworthy as whoever sent it: the connection's
    // own peer must be one of the proxies allowed to set it.
    match mtls_peer(facts) {
        Some(Ok(proxy)) if x.trusted_proxies.iter().any(|m| m.matches(&proxy)) => {}
        Some(Ok(proxy)) => return Err(Denial::UntrustedProxy(Some(proxy))),
        Some(Err(_)) | None => return Err(Denial::UntrustedProxy(None)),
    }
    let header = facts.header(XFCC_HEADER)?.ok_or(Denial::NoPeerIdentity)?;
    let elements = xfcc::parse_xfcc(header).map_err(Denial::MalformedXfcc)?;
    let element =
        xfcc::select_trusted(&elements, x.trusted_hops).map_err(Denial::XfccTooFewElements)?;
    let uris: Vec<&str> = element.get_all(XfccKey::Uri).collect();
    let uri_id = match uris.as_slice() {
        [] => None,
        [one] => Some(SpiffeId::parse(one).map_err(Denial::MalformedPeerId)?),
        many => return Err(Denial::XfccNoSingleUri(many.len())),
    };
    let cert = element.get(XfccKey::Cert).filter(|c| !c.is_empty());
    let Some(cert) = cert else {
        if x.require_cert || x.verify_chain {
            return Err(Denial::InvalidPeerCertificate(SvidError::Pem(
                pem::PemError::Empty,
            )));
        }
        return uri_id.ok_or(Denial::XfccNoSingleUri(0));
    };
    let svid = X509Svid::from_url_encoded_pem(cert).map_err(Denial::InvalidPeerCertificate)?;
    svid.check_time(now, x.clock_skew_secs)
        .map_err(Denial::InvalidPeerCertificate)?;
    if uri_id.as_ref().is_some_and(|u| u != svid.id()) {
        return Err(Denial::PeerCertificateMismatch(svid.id().clone()));
    }
    if x.verify_chain {
        let chain = match element.get(XfccKey::Chain).filter(|c| !c.is_empty()) {
            Some(c) => pem::certificates_from_url_encoded_pem(c)
                .map_err(|e| Denial::InvalidPeerCertificate(SvidError::Pem(e)))?,
            None => Vec::new(),
        };
        let td = svid.id().trust_domain();
        let authorities = config
            .bundles
            .bundle_for(&td)
            .map(TrustBundle::x509_authorities)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Denial::InvalidPeerCertificate(SvidError::NoTrustBundle(td.to_string()))
            })?;
        svid.verify_chain(&chain, authorities, now, x.clock_skew_secs)
            .map_err(Denial::InvalidPeerCertificate)?;
    }
    Ok(svid.id().clone())
}
