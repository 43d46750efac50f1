//! What the filters read about the downstream connection, read once per
//! connection instead of once per request.
//!
//! The peer certificate, Envoy's verdict on its chain, the URI SAN, the
//! addresses and the SNI do not change while a connection lives, and a
//! sidecar's clients keep their connections alive for many requests. Each
//! property read is a host call (and a guest allocation for the answer), so
//! the facts are kept per connection, keyed by Envoy's `connection.id`
//! (unique within the proxy process, never reused). Only raw property
//! values are kept, never a verdict: every request still runs the whole
//! identity check on them (validity windows against the clock, the
//! configuration of the moment), and whatever is per request (XFCC, tokens,
//! headers) is read per request.
//!
//! Fail-safe: no `connection.id` (another host, a test harness without one)
//! means no caching; a cache that cannot be borrowed is bypassed; a miss
//! reads the host. The cache holds at most [`CAPACITY`] connections and
//! forgets the oldest first, so a proxy with many connections only reads
//! more often, never grows.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// At most this many connections are remembered per VM (per worker).
pub const CAPACITY: usize = 64;

/// What a request needs to know about its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    /// `connection.peer_certificate` (PEM), for configurations that check
    /// the X.509-SVID rules themselves.
    pub peer_certificate: bool,
    /// The request facts of the authorization filter: source address,
    /// destination port, SNI.
    pub addresses: bool,
}

/// The connection's properties, as the host encoded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `connection.mtls`, raw (one byte, `1` when a client certificate was
    /// presented).
    pub mtls: Option<Vec<u8>>,
    /// `connection.peer_certificate_valid` is exactly `true`.
    pub peer_certificate_valid: bool,
    /// `connection.uri_san_peer_certificate`.
    pub uri_san: Option<Vec<u8>>,
    /// `connection.peer_certificate`, if it was wanted.
    pub peer_certificate: Option<Vec<u8>>,
    /// `source.address`, if addresses were wanted.
    pub source_address: Option<Vec<u8>>,
    /// `destination.port`, if addresses were wanted.
    pub destination_port: Option<Vec<u8>>,
    /// `connection.requested_server_name`, if addresses were wanted.
    pub requested_server_name: Option<Vec<u8>>,
    /// What was read: an entry is reused only for a request that wants no
    /// more than this.
    read: Wants,
}

impl Connection {
    /// Whether a certificate was presented and Envoy validated its chain:
    /// only then is the connection's peer a verified one.
    pub fn verified_mtls(&self) -> bool {
        matches!(self.mtls.as_deref(), Some([1])) && self.peer_certificate_valid
    }

    /// A client certificate was presented (`connection.mtls`).
    pub fn presented(&self) -> bool {
        matches!(self.mtls.as_deref(), Some([1]))
    }

    /// Reads what `wants` asks for from the host.
    fn read(wants: Wants) -> Self {
        let p = |name: &str| crate::property(&["connection", name]);
        let addresses = wants.addresses;
        Self {
            mtls: p("mtls"),
            peer_certificate_valid: matches!(p("peer_certificate_valid").as_deref(), Some([1])),
            uri_san: p("uri_san_peer_certificate"),
            peer_certificate: if wants.peer_certificate {
                p("peer_certificate")
            } else {
                None
            },
            source_address: if addresses {
                crate::property(&["source", "address"])
            } else {
                None
            },
            destination_port: if addresses {
                crate::property(&["destination", "port"])
            } else {
                None
            },
            requested_server_name: if addresses {
                p("requested_server_name")
            } else {
                None
            },
            read: wants,
        }
    }

    fn covers(&self, wants: Wants) -> bool {
        (self.read.peer_certificate || !wants.peer_certificate)
            && (self.read.addresses || !wants.addresses)
    }
}

/// The per-VM cache of [`Connection`]s, keyed by `connection.id`.
#[derive(Debug, Default)]
pub struct Connections {
    entries: VecDeque<(u64, Rc<Connection>)>,
}

/// A cache shared by a root context and its streams.
pub type SharedConnections = Rc<RefCell<Connections>>;

impl Connections {
    /// The entry for connection `id` if it covers `wants`.
    fn get(&self, id: u64, wants: Wants) -> Option<Rc<Connection>> {
        self.entries
            .iter()
            .find(|(k, c)| *k == id && c.covers(wants))
            .map(|(_, c)| Rc::clone(c))
    }

    /// Remembers `conn` for connection `id`, forgetting any older entry for
    /// it and, beyond [`CAPACITY`], the oldest connection.
    fn put(&mut self, id: u64, conn: Rc<Connection>) {
        self.entries.retain(|(k, _)| *k != id);
        while self.entries.len() >= CAPACITY && self.entries.pop_front().is_some() {}
        self.entries.push_back((id, conn));
    }

    /// How many connections are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every connection (a new configuration may want other facts).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// This request's connection facts: from `cache` when this connection was
/// seen before, else read from the host (and remembered when the host names
/// the connection).
pub fn connection(cache: &SharedConnections, wants: Wants) -> Rc<Connection> {
    let id = crate::property(&["connection", "id"])
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes);
    let Some(id) = id else {
        return Rc::new(Connection::read(wants));
    };
    if let Some(hit) = cache.try_borrow().ok().and_then(|c| c.get(id, wants)) {
        return hit;
    }
    let conn = Rc::new(Connection::read(wants));
    if let Ok(mut c) = cache.try_borrow_mut() {
        c.put(id, Rc::clone(&conn));
    }
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(san: &str, wants: Wants) -> Rc<Connection> {
        Rc::new(Connection {
            uri_san: Some(san.as_bytes().to_vec()),
            read: wants,
            ..Connection::default()
        })
    }

    #[test]
    fn entries_are_per_connection_and_bounded() {
        let mut c = Connections::default();
        let w = Wants::default();
        c.put(1, conn("a", w));
        c.put(2, conn("b", w));
        assert_eq!(c.get(1, w).unwrap().uri_san.as_deref(), Some(&b"a"[..]));
        assert_eq!(c.get(2, w).unwrap().uri_san.as_deref(), Some(&b"b"[..]));
        assert!(c.get(3, w).is_none());
        // A newer entry for the same connection replaces the old one.
        c.put(1, conn("c", w));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(1, w).unwrap().uri_san.as_deref(), Some(&b"c"[..]));
        for id in 10..10 + CAPACITY as u64 * 3 {
            c.put(id, conn("x", w));
        }
        assert_eq!(c.len(), CAPACITY);
        // The oldest went first.
        assert!(c.get(2, w).is_none());
        assert!(c.get(10 + CAPACITY as u64 * 3 - 1, w).is_some());
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn an_entry_serves_only_requests_wanting_no_more() {
        let mut c = Connections::default();
        c.put(1, conn("a", Wants::default()));
        let more = Wants {
            peer_certificate: true,
            addresses: false,
        };
        assert!(c.get(1, more).is_none());
        c.put(
            1,
            conn(
                "a",
                Wants {
                    peer_certificate: true,
                    addresses: true,
                },
            ),
        );
        assert!(c.get(1, more).is_some());
        assert!(c.get(1, Wants::default()).is_some());
    }

    #[test]
    fn only_a_validated_presented_certificate_is_verified() {
        let mut c = Connection {
            mtls: Some(vec![1]),
            ..Connection::default()
        };
        assert!(c.presented() && !c.verified_mtls());
        c.peer_certificate_valid = true;
        assert!(c.verified_mtls());
        c.mtls = Some(vec![2]);
        assert!(!c.verified_mtls());
    }
}
