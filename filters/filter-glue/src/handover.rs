//! The identity hand-over: the one definition of what meshward's identity
//! filter publishes and how the authorization filter reads it.
//!
//! The identity filter writes the verified peer (and end-user claims) with
//! proxy-wasm `set_property`; Envoy stores a value set at the one-segment
//! path `meshward.peer_id` as the filter-state object `wasm.meshward.peer_id`
//! of this request (life span: the filter chain of this stream), and a later
//! filter on the same stream reads it back with `get_property` at the same
//! path (`source/extensions/common/wasm/context.cc`, `setProperty` and
//! `FindValue`). A client cannot write filter state, so unlike a request
//! header the value cannot be forged. If the identity filter is missing,
//! placed after the authorization filter, or failed (open or closed), the
//! object does not exist and the authorization filter sees no identity.
//!
//! The path must be ONE segment: Envoy joins nothing when it stores
//! (`wasm.` + the raw path), but splits on NUL when it reads, so a path of
//! two segments would be written under one key and looked up under another.

use meshward_identity::SpiffeId;
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use serde_json::{Map, Value};

/// The property (filter state `wasm.meshward.peer_id`) holding the verified
/// peer SPIFFE ID, in its canonical trust domain, as text.
pub const PEER_ID_PROPERTY: &str = "meshward.peer_id";

/// The property (filter state `wasm.meshward.jwt_claims`) holding the
/// verified end-user JWT claims as a JSON object; absent when the request
/// carried no end-user token.
pub const JWT_CLAIMS_PROPERTY: &str = "meshward.jwt_claims";

/// What the identity filter verified about one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    /// The verified peer.
    pub peer: SpiffeId,
    /// The verified end-user claims, if there was an end-user token.
    pub jwt_claims: Option<Map<String, Value>>,
}

impl Handover {
    /// The property values: the peer ID and, if any, the claims JSON.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let claims = self
            .jwt_claims
            .as_ref()
            .map(|c| Value::Object(c.clone()).to_string().into_bytes());
        (self.peer.as_str().as_bytes().to_vec(), claims)
    }

    /// The hand-over from the property values. A peer that is not a SPIFFE
    /// ID, or claims that are not a JSON object, are no hand-over at all:
    /// a half-read identity must not decide anything.
    pub fn decode(peer: Option<&[u8]>, claims: Option<&[u8]>) -> Option<Self> {
        let peer = SpiffeId::from_bytes(peer?).ok()?;
        let jwt_claims = match claims {
            None | Some([]) => None,
            Some(json) => match serde_json::from_slice(json).ok()? {
                Value::Object(map) => Some(map),
                _ => return None,
            },
        };
        Some(Self { peer, jwt_claims })
    }

    /// Publishes the hand-over in this request's filter state. Call it only
    /// for a request the identity filter lets through.
    pub fn publish(&self) -> Result<(), Status> {
        let (peer, claims) = self.encode();
        hostcalls::set_property(vec![PEER_ID_PROPERTY], Some(&peer))?;
        if let Some(claims) = claims {
            hostcalls::set_property(vec![JWT_CLAIMS_PROPERTY], Some(&claims))?;
        }
        Ok(())
    }

    /// Reads the hand-over of this request, if the identity filter published
    /// one earlier in the chain.
    pub fn read() -> Option<Self> {
        let peer = crate::property(&[PEER_ID_PROPERTY]);
        let claims = crate::property(&[JWT_CLAIMS_PROPERTY]);
        Self::decode(peer.as_deref(), claims.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut claims = Map::new();
        claims.insert("sub".into(), "alice".into());
        for h in [
            Handover {
                peer: "spiffe://example.org/ns/a/sa/b".parse().unwrap(),
                jwt_claims: None,
            },
            Handover {
                peer: "spiffe://example.org/ns/a/sa/b".parse().unwrap(),
                jwt_claims: Some(claims),
            },
        ] {
            let (peer, claims) = h.encode();
            assert_eq!(Handover::decode(Some(&peer), claims.as_deref()), Some(h));
        }
    }

    #[test]
    fn anything_malformed_is_no_identity() {
        let peer = b"spiffe://example.org/a".as_slice();
        assert!(Handover::decode(None, None).is_none());
        assert!(Handover::decode(Some(b"\xff"), None).is_none());
        assert!(Handover::decode(Some(b"https://example.org/a"), None).is_none());
        assert!(Handover::decode(Some(peer), Some(b"[1]")).is_none());
        assert!(Handover::decode(Some(peer), Some(b"{")).is_none());
        assert!(Handover::decode(Some(peer), Some(b"")).is_some());
    }

    #[test]
    fn paths_are_one_segment() {
        assert!(!PEER_ID_PROPERTY.contains('\0'));
        assert!(!JWT_CLAIMS_PROPERTY.contains('\0'));
    }
}
