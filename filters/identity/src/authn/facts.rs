//! What the host hands over: properties of the connection and the request
//! headers a configuration reads.

use super::Denial;

/// What the host said about the connection and the request, as raw values.
///
/// `None` means the host had no such property.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFacts {
    /// `connection.mtls`: one byte, non-zero when the peer presented a
    /// certificate the proxy verified.
    pub mtls: Option<Vec<u8>>,
    /// `connection.uri_san_peer_certificate`: the first URI SAN of the peer
    /// certificate.
    pub uri_san: Option<Vec<u8>>,
    /// `connection.peer_certificate`: the leaf as PEM text. Needed only
    /// when [`AuthnConfig::needs_peer_certificate`].
    pub peer_certificate: Option<Vec<u8>>,
    /// The request headers named by [`AuthnConfig::request_headers`], as
    /// (name, value) pairs, one pair per occurrence. Names compare
    /// case-insensitively.
    pub headers: Vec<(String, String)>,
}

impl PeerFacts {
    /// The single value of a header; two occurrences of a header that
    /// carries a credential are refused rather than guessed between.
    pub(super) fn header(&self, name: &str) -> Result<Option<&str>, Denial> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        if found.next().is_some() {
            return Err(Denial::DuplicateHeader(name.to_owned()));
        }
        Ok(first)
    }
}
