//! The request headers that carry the verified identity to the
//! application. They are for the application only (the filters hand over
//! through filter state), and they are written only on a request that
//! passed, after every client-sent copy is gone.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::Handover;

/// Whether header name `actual` is a spelling of `name`: the same up to
/// ASCII case, with `_` and `-` interchangeable. Many servers and
/// frameworks (CGI's `HTTP_X_MESHWARD_PEER_ID`, nginx, Django, Rack) fold
/// `x_meshward_peer_id` and `x-meshward-peer-id` into one variable, so a
/// client copy under either spelling must go.
pub fn spells(actual: &str, name: &str) -> bool {
    let fold = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    actual.len() == name.len()
        && actual
            .bytes()
            .zip(name.bytes())
            .all(|(a, n)| fold(a) == fold(n))
}

/// The names of the identity headers for the application.
#[derive(Debug, Clone, Copy)]
pub struct IdentityHeaders<'a> {
    /// The verified peer SPIFFE ID.
    pub peer_id: &'a str,
    /// The verified end-user claims, as unpadded base64url JSON.
    pub jwt_claims: &'a str,
    /// Further headers the filter writes (e.g. claims copied to headers),
    /// scrubbed the same way.
    pub others: &'a [String],
}

impl IdentityHeaders<'_> {
    /// The header names in `present` that spell one of ours, deduplicated.
    pub fn client_copies<'h>(&self, present: &'h [(String, Vec<u8>)]) -> Vec<&'h str> {
        let mut names: Vec<&str> = present
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                spells(n, self.peer_id)
                    || spells(n, self.jwt_claims)
                    || self.others.iter().any(|o| spells(n, o))
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Removes every client copy of our headers from the request, given its
    /// headers as read in the same callback (so that no other filter can
    /// have added one since: every caller reads them in
    /// `on_http_request_headers` and scrubs before returning).
    pub fn scrub(&self, present: &[(String, Vec<u8>)]) {
        // Envoy's header map is case-insensitive, so removing the names as
        // read covers every case and every spelling `spells` accepts; a name
        // not among them is not in the map, and removing it would only cost
        // a host call per request.
        for name in self.client_copies(present) {
            crate::set_request_header(name, None);
        }
    }

    /// Writes the verified identity (after [`IdentityHeaders::scrub`]).
    pub fn write(&self, handover: &Handover) {
        crate::set_request_header(self.peer_id, Some(handover.peer.as_str().as_bytes()));
        if let Some(claims) = &handover.jwt_claims {
            let json = Value::Object(claims.clone()).to_string();
            crate::set_request_header(
                self.jwt_claims,
                Some(URL_SAFE_NO_PAD.encode(json).as_bytes()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_ours() {
        for s in [
            "x-meshward-peer-id",
            "X-Meshward-Peer-Id",
            "x_meshward_peer_id",
            "X_MESHWARD-PEER_ID",
        ] {
            assert!(spells(s, "x-meshward-peer-id"), "{s}");
        }
        for s in [
            "x-meshward-peer-i",
            "x-meshward-peer-idx",
            "xmeshward-peer-id",
            "",
        ] {
            assert!(!spells(s, "x-meshward-peer-id"), "{s}");
        }
    }

    #[test]
    fn finds_client_copies() {
        let others = ["x-user".to_owned()];
        let h = IdentityHeaders {
            peer_id: "x-meshward-peer-id",
            jwt_claims: "x-meshward-jwt-claims",
            others: &others,
        };
        let present = [
            ("x_meshward_peer_id".to_owned(), b"a".to_vec()),
            ("x-meshward-peer-id".to_owned(), b"b".to_vec()),
            ("x-meshward-jwt_claims".to_owned(), b"\xff".to_vec()),
            ("x_user".to_owned(), b"c".to_vec()),
            ("x-other".to_owned(), b"d".to_vec()),
        ];
        assert_eq!(
            h.client_copies(&present),
            [
                "x-meshward-jwt_claims",
                "x-meshward-peer-id",
                "x_meshward_peer_id",
                "x_user"
            ]
        );
    }
}
