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

/// The property (filter state `wasm.meshward.peer_id`) holding the
/// hand-over: the verified peer SPIFFE ID, in its canonical trust domain, as
/// text; when the request carried a verified end-user token, followed by a
/// newline and the token's claims as a JSON object. One property, so the
/// hand-over costs one host call each way (a SPIFFE ID never contains a
/// newline, so the split is unambiguous).
pub const PEER_ID_PROPERTY: &str = "meshward.peer_id";

/// What the identity filter verified about one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    /// The verified peer.
    pub peer: SpiffeId,
    /// The verified end-user claims, if there was an end-user token.
    pub jwt_claims: Option<Map<String, Value>>,
}

impl Handover {
    /// The property value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.peer.as_str().as_bytes().to_vec();
        if let Some(claims) = &self.jwt_claims {
            out.push(b'\n');
            // Writing JSON into a `Vec` cannot fail for a map of JSON values.
            serde_json::to_writer(&mut out, claims).ok();
        }
        out
    }

    /// The hand-over from the property value. A peer that is not a SPIFFE
    /// ID, or claims that are not a JSON object, are no hand-over at all:
    /// a half-read identity must not decide anything.
    pub fn decode(value: Option<&[u8]>) -> Option<Self> {
        let value = value?;
        let (peer, claims) = match value.iter().position(|&b| b == b'\n') {
            Some(at) => (value.get(..at)?, Some(value.get(at + 1..)?)),
            None => (value, None),
        };
        let peer = SpiffeId::from_bytes(peer).ok()?;
        let jwt_claims = match claims {
            None => None,
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
        hostcalls::set_property(vec![PEER_ID_PROPERTY], Some(&self.encode()))
    }

    /// Reads the hand-over of this request, if the identity filter published
    /// one earlier in the chain.
    pub fn read() -> Option<Self> {
        Self::decode(crate::property(&[PEER_ID_PROPERTY]).as_deref())
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
            assert_eq!(Handover::decode(Some(&h.encode())), Some(h));
        }
    }

    #[test]
    fn anything_malformed_is_no_identity() {
        assert!(Handover::decode(None).is_none());
        assert!(Handover::decode(Some(b"\xff")).is_none());
        assert!(Handover::decode(Some(b"https://example.org/a")).is_none());
        assert!(Handover::decode(Some(b"spiffe://example.org/a\n[1]")).is_none());
        assert!(Handover::decode(Some(b"spiffe://example.org/a\n{")).is_none());
        assert!(Handover::decode(Some(b"spiffe://example.org/a\n")).is_none());
        assert!(Handover::decode(Some(b"spiffe://example.org/a")).is_some());
        assert!(Handover::decode(Some(b"spiffe://example.org/a\n{}")).is_some());
    }

    #[test]
    fn paths_are_one_segment() {
        assert!(!PEER_ID_PROPERTY.contains('\0'));
    }
}
