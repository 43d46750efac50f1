//! The HTTP stream state machine, following Envoy's filter manager.

use crate::callout::{HttpCallReply, HttpCallRequest};
use crate::error::Failure;
use crate::http::{End, Exchange, Headers, LocalReply, Message, Request, Response, lower};
use crate::plugin::{Callback, Plugin, StreamCallbacks};
use crate::state::Direction::{self, Request as Req, Response as Resp};

/// What happened to the data just given to the stream, once the callback
/// returned and every callout it started was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Forwarded (with anything held before it).
    Continue,
    /// Held by the filter (paused; bodies are buffered).
    Pause,
    /// The filter answered locally; the stream is over.
    LocalReply,
    /// The filter reset the stream; it is over.
    Reset,
    /// The stream was already over; nothing was delivered.
    Ended,
}

/// One HTTP stream through a plugin. Feed it the request (and then the
/// response) piece by piece and watch each [`Step`]; dropping it ends the
/// stream like [`HttpStream::finish`].
pub struct HttpStream<'p> {
    plugin: &'p mut Plugin,
    id: u32,
    request: Flow,
    response: Flow,
    local_reply: Option<LocalReply>,
    end: Option<End>,
    bypass: bool,
    failure: Option<Failure>,
    finished: bool,
}

/// One direction's progress through the filter: the request toward the
/// upstream, the response toward the downstream.
#[derive(Debug, Default)]
struct Flow {
    /// The filter holds this direction.
    paused: bool,
    /// The peer sent the end of this direction.
    ended: bool,
    /// What passed the filter so far.
    out: Message,
    headers_sent: bool,
    /// Body data arrived while the filter held the headers; it is
    /// buffered and delivered in one call once the headers go on.
    held: bool,
    /// Everything, up to the end, passed the filter.
    complete: bool,
}

impl std::fmt::Debug for HttpStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream")
            .field("id", &self.id)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

const FAIL_DETAILS: &str = "wasm_fail_stream";

impl<'p> HttpStream<'p> {
    pub(crate) fn new(plugin: &'p mut Plugin) -> Self {
        let id = plugin.new_context();
        plugin.stream_state(id);
        let root = plugin.root_id;
        plugin.bind_context(id, root);
        let created = plugin.call(
            "proxy_on_context_create",
            plugin.exports.on_context_create.clone(),
            id,
            (id as i32, root as i32),
        );
        let mut stream = Self {
            plugin,
            id,
            request: Flow::default(),
            response: Flow::default(),
            local_reply: None,
            end: None,
            bypass: false,
            failure: None,
            finished: false,
        };
        // A VM that failed earlier fails this stream at its first event.
        if let Err(failure) = created {
            stream.failure = Some(failure);
        } else if let Some(failure) = stream.plugin.failure.clone() {
            stream.failure = Some(failure);
        }
        stream
    }

    /// This stream's context id.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// Sets a property only this stream sees (e.g. `source.address`).
    pub fn set_property(&mut self, name: &str, value: impl Into<crate::properties::Value>) {
        self.plugin
            .stream_state(self.id)
            .properties_mut()
            .set(name, value);
    }

    /// The properties this stream holds so far: those set for it and
    /// those the filter set with `proxy_set_property` (Envoy's filter
    /// state), so a host running a chain of filters, one plugin each, can
    /// hand them to the next filter's stream as Envoy's shared filter state
    /// would.
    pub fn properties(&mut self) -> crate::properties::Properties {
        self.plugin.stream_state(self.id).properties_mut().clone()
    }

    fn over(&self) -> bool {
        self.end.is_some()
    }

    fn flow(&mut self, direction: Direction) -> &mut Flow {
        match direction {
            Req => &mut self.request,
            Resp => &mut self.response,
        }
    }

    /// Delivers request headers (`proxy_on_request_headers`).
    pub fn request_headers(&mut self, headers: Headers, end_of_stream: bool) -> Step {
        self.headers(Req, headers, end_of_stream)
    }

    /// Delivers a request body chunk (`proxy_on_request_body`). While the
    /// filter pauses, chunks accumulate and it sees the buffered total.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Step {
        self.body(Req, chunk, end_of_stream)
    }

    /// Delivers request trailers (`proxy_on_request_trailers`); they end
    /// the request.
    pub fn request_trailers(&mut self, trailers: Headers) -> Step {
        self.trailers(Req, trailers)
    }

    /// Delivers response headers, including `:status`.
    pub fn response_headers(&mut self, headers: Headers, end_of_stream: bool) -> Step {
        self.headers(Resp, headers, end_of_stream)
    }

    /// Delivers a response body chunk.
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Step {
        self.body(Resp, chunk, end_of_stream)
    }

    /// Delivers response trailers; they end the response.
    pub fn response_trailers(&mut self, trailers: Headers) -> Step {
        self.trailers(Resp, trailers)
    }

    fn headers(&mut self, direction: Direction, headers: Headers, end_of_stream: bool) -> Step {
        if self.over() {
            return Step::Ended;
        }
        let headers = lower(headers);
        let n = headers.len() as i32;
        self.plugin
            .stream_state(self.id)
            .set_headers(direction, Some(headers));
        let params = (self.id as i32, n, i32::from(end_of_stream));
        self.deliver(direction, end_of_stream, |c| &c.headers, params)
    }

    fn body(&mut self, direction: Direction, chunk: &[u8], end_of_stream: bool) -> Step {
        if self.over() {
            return Step::Ended;
        }
        let size = self
            .plugin
            .stream_state(self.id)
            .append_body(direction, chunk) as i32;
        let flow = self.flow(direction);
        if flow.paused && !flow.headers_sent {
            // Envoy's filter manager buffers data for a filter that holds
            // the headers and calls it once they continue, with the end of
            // stream if it came meanwhile (recorded: tests/data/fidelity).
            flow.held = true;
            flow.ended = end_of_stream;
            return self.step();
        }
        let params = (self.id as i32, size, i32::from(end_of_stream));
        self.deliver(direction, end_of_stream, |c| &c.body, params)
    }

    fn trailers(&mut self, direction: Direction, trailers: Headers) -> Step {
        if self.over() {
            return Step::Ended;
        }
        let trailers = lower(trailers);
        let n = trailers.len() as i32;
        self.plugin
            .stream_state(self.id)
            .set_trailers(direction, Some(trailers));
        let params = (self.id as i32, n);
        self.deliver(direction, true, |c| &c.trailers, params)
    }

    /// Runs the stream callback `pick` of `direction` on what was just
    /// stored for the filter, then applies what it asked for.
    fn deliver<P: wasmtime::WasmParams + crate::trace::TraceArgs>(
        &mut self,
        direction: Direction,
        ended: bool,
        pick: fn(&StreamCallbacks) -> &Callback<P>,
        params: P,
    ) -> Step {
        self.flow(direction).ended = ended;
        let callback = pick(self.plugin.exports.stream(direction));
        let callback = (callback.name, callback.f.clone());
        let action = self.run(callback, params);
        self.flow(direction).paused = action != Some(0);
        self.settle()
    }

    /// Runs a stream callback. `None` means the callback is absent or the
    /// VM failed; failure is turned into fail-open or fail-closed here.
    fn run<P: wasmtime::WasmParams + crate::trace::TraceArgs>(
        &mut self,
        (name, f): (&str, Option<wasmtime::TypedFunc<P, i32>>),
        params: P,
    ) -> Option<i32> {
        if self.bypass {
            return Some(0);
        }
        if self.failure.is_none() {
            match self.plugin.call(name, f, self.id, params) {
                Ok(Some(action)) => return Some(action),
                Ok(None) => return Some(0),
                Err(failure) => self.failure = Some(failure),
            }
        }
        if self.plugin.fail_open {
            self.bypass = true;
            return Some(0);
        }
        self.fail_closed();
        None
    }

    fn fail_closed(&mut self) {
        if self.response.headers_sent {
            self.end = Some(End::Reset);
            return;
        }
        let reply = LocalReply {
            status: 503,
            details: FAIL_DETAILS.into(),
            grpc_status: -1,
            headers: Vec::new(),
            body: Vec::new(),
        };
        self.response.out = Message {
            headers: local_reply_headers(&reply),
            ..Message::default()
        };
        self.local_reply = Some(reply);
        self.response.headers_sent = true;
        self.response.complete = true;
        self.end = Some(End::Completed);
    }

    /// Applies what the callback asked for once it returned: callouts are
    /// answered, then a local reply, a reset or a resume takes effect.
    fn settle(&mut self) -> Step {
        if self.over() {
            return self.step();
        }
        self.plugin.drain_events();
        if self.failure.is_none()
            && let Some(failure) = self.plugin.failure.clone()
        {
            // A callout callback trapped while this stream waited on it.
            self.failure = Some(failure);
            if self.plugin.fail_open {
                self.bypass = true;
                self.request.paused = false;
                self.response.paused = false;
            } else {
                self.fail_closed();
                return self.step();
            }
        }
        let state = self.plugin.stream_state(self.id);
        if state.is_reset() {
            self.end = Some(End::Reset);
            return Step::Reset;
        }
        if let Some(reply) = state.take_local_reply() {
            self.send_local_reply(reply);
            return Step::LocalReply;
        }
        for direction in [Req, Resp] {
            if self.plugin.stream_state(self.id).take_resume(direction) {
                self.flow(direction).paused = false;
            }
        }
        for direction in [Req, Resp] {
            let flow = self.flow(direction);
            if !flow.paused && flow.held {
                flow.held = false;
                let ended = flow.ended;
                let size = self
                    .plugin
                    .stream_state(self.id)
                    .body(direction)
                    .map_or(0, Vec::len) as i32;
                let params = (self.id as i32, size, i32::from(ended));
                return self.deliver(direction, ended, |c| &c.body, params);
            }
        }
        for direction in [Req, Resp] {
            if !self.flow(direction).paused {
                self.flush(direction);
            }
        }
        self.step()
    }

    fn step(&self) -> Step {
        match self.end {
            Some(End::Reset) => Step::Reset,
            Some(_) if self.local_reply.is_some() => Step::LocalReply,
            Some(_) => Step::Ended,
            None if self.request.paused && !self.request.complete => Step::Pause,
            None if self.response.paused => Step::Pause,
            None => Step::Continue,
        }
    }

    /// Passes what the filter let through in `direction` on: the headers
    /// once, the buffered body, the trailers once. The end of the response
    /// ends the stream.
    fn flush(&mut self, direction: Direction) {
        let state = self.plugin.stream_state(self.id);
        let Some(headers) = state.headers(direction).cloned() else {
            return;
        };
        let flow = match direction {
            Req => &mut self.request,
            Resp => &mut self.response,
        };
        if !flow.headers_sent {
            flow.out.headers = headers;
            flow.headers_sent = true;
        }
        state.drain_body_into(direction, &mut flow.out.body);
        if let Some(trailers) = state.trailers(direction)
            && flow.out.trailers.is_empty()
        {
            flow.out.trailers = trailers.clone();
        }
        if flow.ended {
            flow.complete = true;
            if direction == Resp {
                self.end = Some(End::Completed);
            }
        }
    }

    /// Sends a local reply. Before the response started, Envoy passes its
    /// own local reply through the filter's response callbacks (which may
    /// edit headers but not send another reply); after, it replaces the
    /// response.
    fn send_local_reply(&mut self, reply: LocalReply) {
        self.local_reply = Some(reply.clone());
        let headers = local_reply_headers(&reply);
        if self.response.headers_sent {
            self.end = Some(End::Reset);
            return;
        }
        let id = self.id as i32;
        let state = self.plugin.stream_state(self.id);
        // Envoy answers a `HEAD` with the reply's headers (its
        // `content-length` included) and no body.
        let head = state
            .headers(Req)
            .and_then(|h| crate::http::find_header(h, ":method"))
            .is_some_and(|m| m.eq_ignore_ascii_case("HEAD"));
        let body = if head { Vec::new() } else { reply.body.clone() };
        let started = state.headers(Resp).is_some();
        state.set_sending_local_reply(true);
        state.set_headers(Resp, Some(headers.clone()));
        state.set_body(Resp, None);
        state.set_trailers(Resp, None);
        let mut out = Message {
            headers,
            body: body.clone(),
            trailers: Vec::new(),
        };
        if !started && self.failure.is_none() && !self.bypass {
            let n = out.headers.len() as i32;
            let eos = i32::from(body.is_empty());
            let Callback { name, f } = &self.plugin.exports.stream(Resp).headers;
            let (name, f) = (*name, f.clone());
            if self.plugin.call(name, f, self.id, (id, n, eos)).is_ok() {
                if !body.is_empty() {
                    self.plugin
                        .stream_state(self.id)
                        .set_body(Resp, Some(body.clone()));
                    let Callback { name, f } = &self.plugin.exports.stream(Resp).body;
                    let (name, f) = (*name, f.clone());
                    let size = body.len() as i32;
                    let _ = self.plugin.call(name, f, self.id, (id, size, 1));
                }
                let state = self.plugin.stream_state(self.id);
                if let Some(h) = state.headers(Resp) {
                    out.headers = h.clone();
                }
                if let Some(b) = state.body(Resp) {
                    out.body = b.clone();
                }
            }
        }
        let state = self.plugin.stream_state(self.id);
        state.set_sending_local_reply(false);
        state.take_local_reply();
        self.response.out = out;
        self.response.headers_sent = true;
        self.response.complete = true;
        self.end = Some(End::Completed);
    }

    /// Callouts the test upstream left pending.
    pub fn pending_http_calls(&self) -> Vec<(u32, HttpCallRequest)> {
        self.plugin.pending_http_calls()
    }

    /// Answers a pending callout; the filter may resume the stream or reply.
    pub fn complete_http_call(
        &mut self,
        token: u32,
        reply: HttpCallReply,
    ) -> Result<Step, crate::Error> {
        self.plugin.complete_http_call(token, reply)?;
        Ok(self.settle())
    }

    /// Moves the plugin's virtual clock (ticks may resume the stream).
    pub fn advance(&mut self, by: std::time::Duration) -> Step {
        self.plugin.advance(by);
        self.settle()
    }

    /// True once the whole request reached the upstream.
    pub fn request_complete(&self) -> bool {
        self.request.complete
    }

    /// Ends the stream (`proxy_on_log`, `proxy_on_done`, `proxy_on_delete`)
    /// and reports its outcome.
    pub fn finish(mut self) -> Exchange {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Exchange {
        if !self.finished {
            self.finished = true;
            if self.failure.is_none() && !self.bypass {
                self.plugin.end_stream(self.id);
            }
        }
        let route_cache_cleared = self
            .plugin
            .remove_stream(self.id)
            .is_some_and(|s| s.route_cache_cleared());
        let end = self.end.unwrap_or(End::Stalled);
        // What reached the client stays visible when the stream was reset
        // after the response started (a trap mid-response): its status,
        // headers and the body passed so far.
        let response = match end {
            End::Completed | End::Reset if self.response.headers_sent => {
                let out = &self.response.out;
                Some(Response::from_map(
                    &out.headers,
                    out.body.clone(),
                    out.trailers.clone(),
                ))
            }
            _ => None,
        };
        Exchange {
            upstream_request: Some(self.request.out.clone()).filter(|_| self.request.headers_sent),
            response,
            local_reply: self.local_reply.clone(),
            end,
            failure: self.failure.clone().or_else(|| self.plugin.failure.clone()),
            route_cache_cleared,
        }
    }

    pub(crate) fn exchange(plugin: &mut Plugin, request: Request) -> Exchange {
        let mut s = HttpStream::new(plugin);
        for (name, value) in request.properties_iter() {
            s.set_property(&name, value);
        }
        let has_trailers = !request.trailers.is_empty();
        let chunks = request.chunks.len();
        s.request_headers(request.headers, chunks == 0 && !has_trailers);
        for (i, chunk) in request.chunks.iter().enumerate() {
            s.request_body(chunk, i + 1 == chunks && !has_trailers);
        }
        if has_trailers {
            s.request_trailers(request.trailers);
        }
        if !s.over() && s.request.complete {
            let r = request.upstream;
            let has_trailers = !r.trailers.is_empty();
            s.response_headers(r.header_map(), r.body.is_empty() && !has_trailers);
            if !r.body.is_empty() {
                s.response_body(&r.body, !has_trailers);
            }
            if has_trailers {
                s.response_trailers(r.trailers);
            }
        }
        s.finish()
    }
}

impl Drop for HttpStream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish_inner();
        }
    }
}

/// The headers Envoy puts on a local reply, in its order: `:status`, the
/// filter's headers, then `content-length` and `content-type` (issue 13,
/// seen on the wire from Envoy 1.40). Envoy sets both only for a non-empty
/// body; an empty reply reaches the filter as `:status` and the filter's
/// headers (its codec frames it later). Found by tests/all/differential.rs.
fn local_reply_headers(reply: &LocalReply) -> Headers {
    let mut h: Headers = vec![(":status".to_owned(), reply.status.to_string().into())];
    h.extend(reply.headers.iter().cloned());
    if !reply.body.is_empty() {
        h.push(("content-length".into(), reply.body.len().to_string().into()));
        if !h.iter().any(|(k, _)| k == "content-type") {
            h.push(("content-type".into(), "text/plain".into()));
        }
    }
    h
}
