//! Properties (Envoy's attributes) with Envoy's encodings.

use std::collections::BTreeMap;

use crate::abi::encode_pairs;

/// A property value. Each variant is encoded for the filter as Envoy
/// encodes the attribute type it stands for.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Raw bytes, returned unchanged (Envoy's strings and bytes).
    Bytes(Vec<u8>),
    /// A signed integer: eight bytes, little-endian.
    Int(i64),
    /// An unsigned integer: eight bytes, little-endian.
    Uint(u64),
    /// A double: eight bytes, IEEE 754, little-endian.
    Double(f64),
    /// A boolean: one byte, `1` or `0`.
    Bool(bool),
    /// A duration or timestamp in nanoseconds: eight bytes, little-endian.
    Nanos(i64),
    /// A map with string keys: the proxy-wasm pair encoding of the keys and
    /// their encoded values. Path segments after the map's name select keys.
    Map(BTreeMap<String, Value>),
    /// A list: the pair encoding with each element as a key and an empty
    /// value. Path segments select elements by decimal index.
    List(Vec<Value>),
}

impl Value {
    /// A UTF-8 string value.
    pub fn string(s: impl Into<String>) -> Self {
        Self::Bytes(s.into().into_bytes())
    }

    /// A map value from string pairs.
    pub fn string_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), Self::string(v)))
                .collect(),
        )
    }

    /// The bytes a filter receives from `proxy_get_property`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Bytes(b) => b.clone(),
            Self::Int(i) | Self::Nanos(i) => i.to_le_bytes().to_vec(),
            Self::Uint(u) => u.to_le_bytes().to_vec(),
            Self::Double(d) => d.to_le_bytes().to_vec(),
            Self::Bool(b) => vec![u8::from(*b)],
            Self::Map(m) => {
                let pairs: Vec<(&[u8], Vec<u8>)> =
                    m.iter().map(|(k, v)| (k.as_bytes(), v.encode())).collect();
                encode_pairs(&pairs)
            }
            Self::List(l) => {
                let pairs: Vec<(Vec<u8>, &[u8])> =
                    l.iter().map(|v| (v.encode(), &[][..])).collect();
                encode_pairs(&pairs)
            }
        }
    }

    fn child(&self, segment: &[u8]) -> Option<&Value> {
        match self {
            Self::Map(m) => m.get(std::str::from_utf8(segment).ok()?),
            Self::List(l) => l.get(std::str::from_utf8(segment).ok()?.parse::<usize>().ok()?),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Bytes(s.into_bytes())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Self::Bytes(b.to_vec())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Self::Uint(u)
    }
}

/// A set of properties keyed by their dotted attribute name
/// (`connection.mtls`, `plugin_name`). A filter's path `["connection",
/// "mtls"]` and `["connection.mtls"]` both find `connection.mtls`, as in
/// Envoy, and longer paths descend into map and list values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    values: BTreeMap<String, Value>,
}

impl Properties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (dotted, e.g. `source.address`) to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.values.remove(name)
    }

    /// The value stored under the dotted `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Copies every property of `other` over this set.
    pub fn extend(&mut self, other: &Properties) {
        for (k, v) in &other.values {
            self.values.insert(k.clone(), v.clone());
        }
    }

    /// Every property, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    /// Resolves an ABI path (segments separated by NUL bytes).
    pub(crate) fn lookup(&self, path: &[u8]) -> Option<&Value> {
        let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
        // The longest dotted prefix names the attribute; the rest indexes
        // into it. Envoy accepts both `a\0b` and `a.b` for nested names.
        for split in (1..=segments.len()).rev() {
            let (head, rest) = segments.split_at(split);
            let Some(name) = join_dotted(head) else {
                continue;
            };
            if let Some(mut value) = self.values.get(&name) {
                for segment in rest {
                    value = value.child(segment)?;
                }
                return Some(value);
            }
        }
        None
    }

    /// Sets the property a filter names by an ABI path, as Envoy's
    /// `proxy_set_property` does: the value becomes the filter-state object
    /// `wasm.` + the path exactly as given, NUL bytes included, and a read
    /// finds it only by a first segment equal to that whole path. So a
    /// one-segment path (`meshward.peer_id`) round-trips, and a path of
    /// several segments is stored where no read can reach it, as in Envoy.
    pub(crate) fn set_path(&mut self, path: &[u8], value: Vec<u8>) -> bool {
        match std::str::from_utf8(path) {
            Ok(name) if !name.is_empty() => {
                self.values.insert(name.to_owned(), Value::Bytes(value));
                true
            }
            _ => false,
        }
    }

    /// Properties an Istio sidecar's inbound listener shows a filter for a
    /// request that arrived over mTLS from `peer_spiffe_id`, with the peer's
    /// leaf certificate as PEM text.
    ///
    /// The values follow what Envoy 1.40 returned on an mTLS listener (which
    /// has no `connection.peer_certificate_validated`); the
    /// ones that vary per connection (addresses) are fixed so tests are
    /// repeatable. The connection id is derived from the peer: the same
    /// peer is the same connection, another peer another connection, as in
    /// Envoy, where a peer certificate belongs to exactly one connection (a
    /// filter may keep per-connection facts under `connection.id`).
    pub fn istio_inbound_mtls(peer_spiffe_id: &str, peer_certificate_pem: &str) -> Self {
        let mut p = Self::new();
        p.set("connection.mtls", true)
            .set("connection.peer_certificate_valid", true)
            .set("connection.uri_san_peer_certificate", peer_spiffe_id)
            .set("connection.peer_certificate", peer_certificate_pem)
            .set("connection.tls_version", "TLSv1.3")
            .set(
                "connection.id",
                connection_id_for(peer_spiffe_id, peer_certificate_pem),
            )
            .set(
                "connection.requested_server_name",
                "outbound_.8080_._.app.default.svc.cluster.local",
            )
            .set("source.address", "127.0.0.1:52240")
            .set("source.port", 52240_i64)
            .set("destination.address", "127.0.0.1:8080")
            .set("destination.port", 8080_i64)
            .set("listener_direction", 1_i64)
            .set(
                "node",
                Value::Map(BTreeMap::from([
                    (
                        "id".to_owned(),
                        Value::string("sidecar~10.0.0.1~app-0.default~default.svc.cluster.local"),
                    ),
                    ("cluster".to_owned(), Value::string("app.default")),
                    (
                        "metadata".to_owned(),
                        Value::string_map([
                            ("NAMESPACE", "default"),
                            ("NAME", "app-0"),
                            ("WORKLOAD_NAME", "app"),
                            ("SERVICE_ACCOUNT", "default"),
                            ("CLUSTER_ID", "Kubernetes"),
                            ("MESH_ID", "cluster.local"),
                            ("ISTIO_VERSION", "1.27.0"),
                        ]),
                    ),
                ])),
            );
        p
    }
}

fn join_dotted(segments: &[&[u8]]) -> Option<String> {
    let parts: Option<Vec<&str>> = segments
        .iter()
        .map(|s| std::str::from_utf8(s).ok())
        .collect();
    Some(parts?.join("."))
}

/// A stable connection id for a peer (FNV-1a over its ID and certificate):
/// repeatable across runs, different for different peers.
fn connection_id_for(peer_spiffe_id: &str, peer_certificate_pem: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in peer_spiffe_id
        .bytes()
        .chain([0])
        .chain(peer_certificate_pem.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_envoy() {
        assert_eq!(Value::from("a").encode(), b"a");
        assert_eq!(Value::Int(1).encode(), 1_i64.to_le_bytes());
        assert_eq!(Value::Bool(true).encode(), [1]);
        let map = Value::string_map([("k", "v")]);
        assert_eq!(
            map.encode(),
            [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'k', 0, b'v', 0]
        );
    }

    #[test]
    fn paths_find_dotted_names_and_descend_into_maps() {
        let p = Properties::istio_inbound_mtls("spiffe://td/ns/default/sa/a", "PEM");
        assert_eq!(p.lookup(b"connection\0mtls"), Some(&Value::Bool(true)));
        assert_eq!(p.lookup(b"connection.mtls"), Some(&Value::Bool(true)));
        assert_eq!(
            p.lookup(b"node\0metadata\0NAMESPACE"),
            Some(&Value::string("default"))
        );
        assert_eq!(p.lookup(b"node\0metadata\0NOPE"), None);
        assert_eq!(p.lookup(b"nothing"), None);
        // Not an Envoy attribute (tests/all/differential.rs).
        assert_eq!(p.lookup(b"connection.peer_certificate_validated"), None);
    }

    #[test]
    fn set_properties_round_trip_only_through_one_segment() {
        let mut p = Properties::new();
        assert!(p.set_path(b"meshward.peer_id", b"spiffe://td/a".to_vec()));
        assert_eq!(
            p.lookup(b"meshward.peer_id"),
            Some(&Value::Bytes(b"spiffe://td/a".to_vec()))
        );
        // Envoy stores `wasm.a\0b` and reads `a`, then `b` inside it: the
        // value is written but never found again.
        assert!(p.set_path(b"meshward\0claims", b"{}".to_vec()));
        assert_eq!(p.lookup(b"meshward\0claims"), None);
        assert_eq!(p.lookup(b"meshward.claims"), None);
    }
}
