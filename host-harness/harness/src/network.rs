//! Network (TCP) filter contexts, as `envoy.filters.network.wasm` drives
//! them: a connection context, the downstream's and the upstream's data
//! as they arrive, and the close events.

use crate::error::Failure;
use crate::plugin::Plugin;
use crate::state::Direction::{self, Request as Down, Response as Up};

/// Which side closed a connection, as the ABI's peer type says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// Not known (0): Envoy 1.40 reports the upstream's close so.
    Unknown,
    /// Envoy closed it (1).
    Local,
    /// The other end closed it (2).
    Remote,
}

impl Peer {
    fn to_abi(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::Local => 1,
            Self::Remote => 2,
        }
    }
}

/// One TCP connection through a plugin's network filter. Feed it the
/// downstream's and the upstream's bytes; what the filter let through is
/// in [`TcpConnection::to_upstream`] and [`TcpConnection::to_downstream`].
/// A chunk the filter holds (`StopIteration`) stays buffered and is seen
/// again, with what follows, at the next data callback, as in Envoy, until
/// the filter continues the downstream (`proxy_continue_stream`): then
/// what is held goes on toward the upstream without the filter seeing it
/// again (Envoy's `continueReading`). When the filter closes the
/// connection (`proxy_close_stream`, downstream or upstream: both close
/// the downstream connection in Envoy), no more data is delivered; see
/// [`TcpConnection::closed_by_filter`]. Dropping it ends the connection
/// like [`TcpConnection::finish`].
pub struct TcpConnection<'p> {
    plugin: &'p mut Plugin,
    id: u32,
    to_upstream: Vec<u8>,
    to_downstream: Vec<u8>,
    failure: Option<Failure>,
    finished: bool,
    closed_by_filter: bool,
}

impl std::fmt::Debug for TcpConnection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnection")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<'p> TcpConnection<'p> {
    pub(crate) fn new(plugin: &'p mut Plugin) -> Self {
        let id = plugin.new_context();
        plugin.stream_state(id).set_network();
        let root = plugin.root_id;
        plugin.bind_context(id, root);
        let mut conn = Self {
            plugin,
            id,
            to_upstream: Vec::new(),
            to_downstream: Vec::new(),
            failure: None,
            finished: false,
            closed_by_filter: false,
        };
        let created = conn.plugin.call(
            "proxy_on_context_create",
            conn.plugin.exports.on_context_create.clone(),
            id,
            (id as i32, root as i32),
        );
        if let Err(f) = created {
            conn.failure = Some(f);
            return conn;
        }
        let f = conn.plugin.exports.network.on_new_connection.clone();
        if let Err(f) = conn
            .plugin
            .call("proxy_on_new_connection", f, id, id as i32)
        {
            conn.failure = Some(f);
        }
        conn.after_callback();
        conn
    }

    /// Applies what the filter asked for during a callback: continuing the
    /// downstream moves what it holds on toward the upstream; a close
    /// ends the delivery of data.
    fn after_callback(&mut self) {
        self.plugin.drain_events();
        let state = self.plugin.stream_state(self.id);
        if state.take_resume(Down) {
            state.drain_body_into(Down, &mut self.to_upstream);
        }
        if state.is_reset() && !self.closed_by_filter {
            self.closed_by_filter = true;
            // Envoy closes the downstream connection once the VM call
            // returns: the filter hears a local close of the downstream,
            // and nothing of the upstream (Envoy 1.40, recorded in
            // tests/data/fidelity-tcp).
            let f = self.plugin.exports.network.on_downstream_close.clone();
            let params = (self.id as i32, Peer::Local.to_abi());
            let closed =
                self.plugin
                    .call("proxy_on_downstream_connection_close", f, self.id, params);
            if let Err(f) = closed {
                self.failure = Some(f);
            }
            self.plugin.drain_events();
        }
    }

    /// True once the filter closed the connection (`proxy_close_stream`).
    /// Envoy then closes the downstream connection after flushing what was
    /// written to it, and the filter's downstream close callback runs
    /// (peer `Local`); no other event reaches the filter.
    pub fn closed_by_filter(&self) -> bool {
        self.closed_by_filter
    }

    /// This connection's context id.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// Delivers bytes from the downstream (`proxy_on_downstream_data`);
    /// returns whether the filter let the buffered data through.
    pub fn downstream_data(&mut self, chunk: &[u8], end_of_stream: bool) -> bool {
        self.data(Down, chunk, end_of_stream)
    }

    /// Delivers bytes from the upstream (`proxy_on_upstream_data`).
    pub fn upstream_data(&mut self, chunk: &[u8], end_of_stream: bool) -> bool {
        self.data(Up, chunk, end_of_stream)
    }

    fn data(&mut self, direction: Direction, chunk: &[u8], end_of_stream: bool) -> bool {
        if self.failure.is_some() || self.finished || self.closed_by_filter {
            return false;
        }
        let size = self
            .plugin
            .stream_state(self.id)
            .append_body(direction, chunk) as i32;
        let (name, f) = match direction {
            Down => (
                "proxy_on_downstream_data",
                self.plugin.exports.network.on_downstream_data.clone(),
            ),
            Up => (
                "proxy_on_upstream_data",
                self.plugin.exports.network.on_upstream_data.clone(),
            ),
        };
        let params = (self.id as i32, size, i32::from(end_of_stream));
        let action = match self.plugin.call(name, f, self.id, params) {
            Ok(a) => a.unwrap_or(0),
            Err(f) => {
                self.failure = Some(f);
                return false;
            }
        };
        self.after_callback();
        if action != 0 || self.closed_by_filter {
            return false;
        }
        let out = match direction {
            Down => &mut self.to_upstream,
            Up => &mut self.to_downstream,
        };
        self.plugin
            .stream_state(self.id)
            .drain_body_into(direction, out);
        true
    }

    /// The downstream connection closed
    /// (`proxy_on_downstream_connection_close`).
    pub fn downstream_closed(&mut self, peer: Peer) {
        let f = self.plugin.exports.network.on_downstream_close.clone();
        self.close("proxy_on_downstream_connection_close", f, peer);
    }

    /// The upstream connection closed
    /// (`proxy_on_upstream_connection_close`).
    pub fn upstream_closed(&mut self, peer: Peer) {
        let f = self.plugin.exports.network.on_upstream_close.clone();
        self.close("proxy_on_upstream_connection_close", f, peer);
    }

    fn close(&mut self, name: &str, f: Option<wasmtime::TypedFunc<(i32, i32), ()>>, peer: Peer) {
        if self.failure.is_some() || self.finished || self.closed_by_filter {
            return;
        }
        let params = (self.id as i32, peer.to_abi());
        if let Err(f) = self.plugin.call(name, f, self.id, params) {
            self.failure = Some(f);
        }
        self.after_callback();
    }

    /// The bytes the filter let through toward the upstream so far.
    pub fn to_upstream(&self) -> &[u8] {
        &self.to_upstream
    }

    /// The bytes the filter let through toward the downstream so far.
    pub fn to_downstream(&self) -> &[u8] {
        &self.to_downstream
    }

    /// The failure that stopped the filter on this connection, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// Ends the connection as Envoy does once both sides closed:
    /// `proxy_on_done`, then the access log (`proxy_on_log`), then
    /// `proxy_on_delete` (not the HTTP order).
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.plugin.end_connection(self.id);
        self.plugin.remove_stream(self.id);
    }
}

impl Drop for TcpConnection<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
