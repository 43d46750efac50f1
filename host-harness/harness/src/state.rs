//! The host state of one VM, kept in its wasmtime `Store`.

//!
//! Envoy's semantics for the host calls are methods on [`HostState`], one
//! child module per ABI area, so they can be tested without a wasm module;
//! `imports` only decodes guest memory and calls them.

mod attributes;
mod buffers;
mod callouts;
mod maps;
mod roots;
mod streams;
mod vm;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::ResourceLimiter;

use crate::abi::{BufferType, LogLevel};
use crate::callout::{
    ForeignFunction, GrpcCallRequest, GrpcReply, GrpcUpstream, HttpCallRequest, HttpUpstream,
};
use crate::host::PluginConfig;
use crate::http::{Headers, LocalReply};
use crate::memory::GuestExports;
use crate::metrics::Metrics;
use crate::properties::Properties;
use crate::shared::Shared;

pub(crate) use self::maps::decode_headers;

/// One line a filter logged, with `proxy_log` or on stdout/stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The level (stdout is `Info`, stderr `Error`, as in Envoy).
    pub level: LogLevel,
    /// The message, without a trailing newline.
    pub message: String,
    /// The context that was running (0 when none).
    pub context_id: u32,
}

/// The two directions of an HTTP stream. Envoy runs both through the same
/// filter-manager logic; so does the harness, with the direction as a
/// parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// One direction's maps and buffer as the filter sees them, and whether
/// the filter asked to resume it.
#[derive(Debug, Default)]
struct Half {
    headers: Option<Headers>,
    body: Option<Vec<u8>>,
    trailers: Option<Headers>,
    resume: bool,
}

/// Per-stream host state: the maps and buffers the filter can reach, and
/// the actions it asked for that the host applies after the callback.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    request: Half,
    response: Half,
    properties: Properties,
    local_reply: Option<LocalReply>,
    sending_local_reply: bool,
    reset: bool,
    route_cache_cleared: bool,
    /// A network (TCP) connection's context rather than an HTTP stream's:
    /// the stream control calls act on the connection instead.
    network: bool,
}

impl StreamState {
    /// Makes this the state of a network (TCP) connection's context.
    pub(crate) fn set_network(&mut self) {
        self.network = true;
    }

    fn half(&self, direction: Direction) -> &Half {
        match direction {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    fn half_mut(&mut self, direction: Direction) -> &mut Half {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    /// The headers of `direction`, once they arrived.
    pub(crate) fn headers(&self, direction: Direction) -> Option<&Headers> {
        self.half(direction).headers.as_ref()
    }

    pub(crate) fn set_headers(&mut self, direction: Direction, headers: Option<Headers>) {
        self.half_mut(direction).headers = headers;
    }

    /// The body the filter sees (what is buffered), if any arrived.
    pub(crate) fn body(&self, direction: Direction) -> Option<&Vec<u8>> {
        self.half(direction).body.as_ref()
    }

    pub(crate) fn set_body(&mut self, direction: Direction, body: Option<Vec<u8>>) {
        self.half_mut(direction).body = body;
    }

    /// Buffers `chunk`; returns the buffered size.
    pub(crate) fn append_body(&mut self, direction: Direction, chunk: &[u8]) -> usize {
        let body = self.half_mut(direction).body.get_or_insert_with(Vec::new);
        body.extend_from_slice(chunk);
        body.len()
    }

    /// Moves the buffered body to `out` (it was forwarded); the buffer
    /// stays, empty.
    pub(crate) fn drain_body_into(&mut self, direction: Direction, out: &mut Vec<u8>) {
        if let Some(body) = self.half_mut(direction).body.as_mut() {
            out.append(body);
        }
    }

    pub(crate) fn trailers(&self, direction: Direction) -> Option<&Headers> {
        self.half(direction).trailers.as_ref()
    }

    pub(crate) fn set_trailers(&mut self, direction: Direction, trailers: Option<Headers>) {
        self.half_mut(direction).trailers = trailers;
    }

    /// True once if the filter asked to resume `direction`.
    pub(crate) fn take_resume(&mut self, direction: Direction) -> bool {
        std::mem::take(&mut self.half_mut(direction).resume)
    }

    /// The properties only this stream sees.
    pub(crate) fn properties_mut(&mut self) -> &mut Properties {
        &mut self.properties
    }

    /// The local reply the filter asked for, once.
    pub(crate) fn take_local_reply(&mut self) -> Option<LocalReply> {
        self.local_reply.take()
    }

    /// True once the filter reset the stream.
    pub(crate) fn is_reset(&self) -> bool {
        self.reset
    }

    /// Marks whether the host's own local reply is running through the
    /// filter (it may not send another).
    pub(crate) fn set_sending_local_reply(&mut self, sending: bool) {
        self.sending_local_reply = sending;
    }

    pub(crate) fn route_cache_cleared(&self) -> bool {
        self.route_cache_cleared
    }
}

/// The results of a callout, visible while `proxy_on_http_call_response` or
/// the gRPC callbacks run.
#[derive(Debug, Default)]
pub(crate) struct CalloutView {
    /// Response headers or gRPC initial metadata.
    headers: Option<Headers>,
    body: Option<Vec<u8>>,
    trailers: Option<Headers>,
    status: (u32, String),
}

impl CalloutView {
    /// An HTTP callout's response; `None` is a failed call (a reset).
    pub(crate) fn http(response: Option<crate::http::Response>) -> Self {
        match response {
            Some(r) => Self {
                headers: Some(r.header_map()),
                body: Some(r.body),
                trailers: Some(r.trailers),
                status: (0, String::new()),
            },
            None => Self {
                status: (14, "reset".into()),
                ..Self::default()
            },
        }
    }

    /// A gRPC message.
    pub(crate) fn message(message: Vec<u8>) -> Self {
        Self {
            body: Some(message),
            ..Self::default()
        }
    }

    /// gRPC initial metadata.
    pub(crate) fn initial_metadata(headers: Headers) -> Self {
        Self {
            headers: Some(headers),
            ..Self::default()
        }
    }

    /// gRPC trailing metadata.
    pub(crate) fn trailing_metadata(trailers: Headers) -> Self {
        Self {
            trailers: Some(trailers),
            ..Self::default()
        }
    }

    /// The gRPC status a call closed with.
    pub(crate) fn status(code: u32, message: String) -> Self {
        Self {
            status: (code, message),
            ..Self::default()
        }
    }
}

#[derive(Debug)]
pub(crate) enum Event {
    HttpResponse {
        token: u32,
        response: Option<crate::http::Response>,
    },
    Grpc {
        token: u32,
        reply: GrpcReply,
        close: bool,
        unary: bool,
    },
}

pub(crate) struct GrpcStream {
    request: GrpcCallRequest,
    sent_metadata: bool,
}

/// Everything the host functions of one VM need. It lives in the `Store`,
/// so VMs never share mutable state except through [`Shared`].
pub(crate) struct HostState {
    guest: Option<GuestExports>,
    memcap: MemoryCap,
    rng: u64,
    vm_uid: u64,
    vm_id: String,
    vm_configuration: Vec<u8>,
    plugin_configuration: Vec<u8>,
    /// The plugin whose callback (or whose stream's callback) runs; its
    /// configuration, properties and timer are the fields here.
    root_context_id: u32,
    /// The VM's other plugins.
    parked: BTreeMap<u32, roots::RootState>,
    /// Which plugin created each stream.
    context_roots: HashMap<u32, u32>,
    /// Which plugin made each callout, so its answer goes to it.
    token_roots: HashMap<u32, u32>,
    current_context: u32,
    effective_context: Option<u32>,
    /// Which configuration buffer the running callback may read.
    config_buffer: Option<BufferType>,
    streams: HashMap<u32, StreamState>,
    properties: Properties,
    log_level: LogLevel,
    logs: Vec<LogRecord>,
    metrics: Metrics,
    now: SystemTime,
    monotonic: Duration,
    tick_period: Option<Duration>,
    next_tick: Option<Duration>,
    http_upstreams: Arc<BTreeMap<String, HttpUpstream>>,
    grpc_upstreams: Arc<BTreeMap<String, GrpcUpstream>>,
    foreign: Arc<BTreeMap<String, ForeignFunction>>,
    env: Vec<(String, String)>,
    shared: Shared,
    next_token: u32,
    events: VecDeque<Event>,
    held_http_calls: BTreeMap<u32, HttpCallRequest>,
    /// When each held callout times out, on the monotonic clock.
    held_deadlines: BTreeMap<u32, Duration>,
    grpc_streams: HashMap<u32, GrpcStream>,
    callout: CalloutView,
    foreign_args: Option<Vec<u8>>,
    pending_done: Option<u32>,
    done_called: bool,
    access_log: bool,
}

impl HostState {
    /// The state of a VM about to start with `config`; `vm_uid` is unique
    /// per VM and seeds its random numbers.
    pub(crate) fn new(config: PluginConfig, vm_uid: u64, memory_cap: usize) -> Self {
        let mut properties = Properties::new();
        properties
            .set("plugin_name", config.name.as_str())
            .set("plugin_root_id", config.root_id.as_str())
            .set("plugin_vm_id", config.vm_id.as_str());
        properties.extend(&config.properties);
        Self {
            guest: None,
            memcap: MemoryCap {
                cap: memory_cap,
                hit: false,
            },
            rng: vm_uid,
            vm_uid,
            vm_id: config.vm_id,
            vm_configuration: config.vm_configuration,
            plugin_configuration: config.configuration,
            root_context_id: 1,
            parked: BTreeMap::new(),
            context_roots: HashMap::new(),
            token_roots: HashMap::new(),
            current_context: 0,
            effective_context: None,
            config_buffer: None,
            streams: HashMap::new(),
            properties,
            log_level: config.log_level,
            logs: Vec::new(),
            metrics: Metrics::default(),
            now: config.time.unwrap_or_else(SystemTime::now),
            monotonic: Duration::ZERO,
            tick_period: None,
            next_tick: None,
            http_upstreams: Arc::new(config.http_upstreams),
            grpc_upstreams: Arc::new(config.grpc_upstreams),
            foreign: Arc::new(config.foreign),
            env: config.env,
            shared: config.shared,
            next_token: 0,
            events: VecDeque::new(),
            held_http_calls: BTreeMap::new(),
            held_deadlines: BTreeMap::new(),
            grpc_streams: HashMap::new(),
            callout: CalloutView::default(),
            foreign_args: None,
            pending_done: None,
            done_called: false,
            access_log: false,
        }
    }

    /// The memory limiter wasmtime consults.
    pub(crate) fn limiter(&mut self) -> &mut MemoryCap {
        &mut self.memcap
    }

    /// True once the guest tried to grow memory past the cap.
    pub(crate) fn memory_cap_hit(&self) -> bool {
        self.memcap.hit
    }

    /// Connects the host calls to the instantiated guest.
    pub(crate) fn attach(&mut self, guest: GuestExports) {
        self.guest = Some(guest);
    }

    /// Makes configuration buffer `kind` readable while `proxy_on_vm_start`
    /// or `proxy_on_configure` runs; returns its length.
    pub(crate) fn open_config(&mut self, kind: BufferType) -> usize {
        self.config_buffer = Some(kind);
        match kind {
            BufferType::VmConfiguration => self.vm_configuration.len(),
            BufferType::PluginConfiguration => self.plugin_configuration.len(),
            _ => 0,
        }
    }

    /// Hides the configuration again once its callback returned.
    pub(crate) fn close_config(&mut self) {
        self.config_buffer = None;
    }

    /// Drops the effective context a callback set, once it returned.
    pub(crate) fn clear_effective_context(&mut self) {
        self.effective_context = None;
    }

    /// The state of stream `id`, created on first use.
    pub(crate) fn stream_state(&mut self, id: u32) -> &mut StreamState {
        self.streams.entry(id).or_default()
    }

    /// Forgets stream `id`, returning its last state.
    pub(crate) fn remove_stream(&mut self, id: u32) -> Option<StreamState> {
        self.context_roots.remove(&id);
        self.streams.remove(&id)
    }

    /// Marks whether access logs (`proxy_on_log`) are running.
    pub(crate) fn set_access_log(&mut self, running: bool) {
        self.access_log = running;
    }

    /// Queue notifications for this VM: `(context, queue)` pairs.
    pub(crate) fn take_queue_notifications(&self) -> Vec<(u32, u32)> {
        self.shared.take_notifications(self.vm_uid)
    }

    /// The next callout result to deliver.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues a callout result for delivery.
    pub(crate) fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// What the callout callbacks may read while they run.
    pub(crate) fn show_callout(&mut self, view: CalloutView) {
        self.callout = view;
    }

    /// Everything the filter logged so far.
    pub(crate) fn logs(&self) -> &[LogRecord] {
        &self.logs
    }

    /// Removes and returns the captured logs.
    pub(crate) fn take_logs(&mut self) -> Vec<LogRecord> {
        std::mem::take(&mut self.logs)
    }

    /// Replaces the captured logs (a restart keeps the old VM's).
    pub(crate) fn set_logs(&mut self, logs: Vec<LogRecord>) {
        self.logs = logs;
    }

    /// Every metric the filter defined.
    pub(crate) fn metrics(&self) -> &[crate::metrics::Metric] {
        self.metrics.all()
    }

    /// The virtual wall clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.now
    }

    /// The virtual monotonic clock.
    pub(crate) fn monotonic(&self) -> Duration {
        self.monotonic
    }

    /// The tick period the filter set, if any.
    pub(crate) fn tick_period(&self) -> Option<Duration> {
        self.tick_period
    }

    /// If a tick falls due at or before `target`, moves both clocks to it,
    /// schedules the next one and returns true.
    pub(crate) fn tick_due(&mut self, target: Duration) -> bool {
        let (Some(next), Some(period)) = (self.next_tick, self.tick_period) else {
            return false;
        };
        if next > target {
            return false;
        }
        self.advance_clock_to(next);
        self.next_tick = Some(next + period);
        true
    }

    /// Moves both clocks forward to monotonic time `target`.
    pub(crate) fn advance_clock_to(&mut self, target: Duration) {
        let step = target.saturating_sub(self.monotonic);
        self.monotonic = target;
        self.now += step;
    }

    /// HTTP callouts the test upstream held, by token.
    pub(crate) fn pending_http_calls(&self) -> Vec<(u32, HttpCallRequest)> {
        self.held_http_calls
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Releases a held HTTP callout; false when none has this token.
    pub(crate) fn release_http_call(&mut self, token: u32) -> bool {
        self.held_deadlines.remove(&token);
        self.held_http_calls.remove(&token).is_some()
    }

    /// The shared data and queues this VM uses.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The plugin-level properties.
    pub(crate) fn plugin_properties_mut(&mut self) -> &mut Properties {
        &mut self.properties
    }

    /// Accepts `proxy_done` from `context` (the one being shut down), or
    /// from none.
    pub(crate) fn expect_done(&mut self, context: Option<u32>) {
        self.pending_done = context;
    }

    /// True once the filter called `proxy_done` as expected.
    pub(crate) fn done_called(&self) -> bool {
        self.done_called
    }

    /// The guest's memory and allocator, once instantiated.
    pub(crate) fn guest_exports(&self) -> Option<&GuestExports> {
        self.guest.as_ref()
    }

    /// Makes `context` the one whose callback runs.
    pub(crate) fn enter(&mut self, context: u32) {
        let root = self.root_of(context);
        self.switch_root(root);
        self.current_context = context;
        self.effective_context = None;
    }

    /// The context host calls act on: the effective one if the filter set
    /// it, else the one whose callback is running.
    pub(crate) fn context(&self) -> u32 {
        self.effective_context.unwrap_or(self.current_context)
    }

    pub(crate) fn stream(&mut self) -> Option<&mut StreamState> {
        let id = self.context();
        self.streams.get_mut(&id)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        tracing::debug!(target: "meshward_harness::guest", ?level, %message, "filter log");
        let context_id = self.context();
        self.logs.push(LogRecord {
            level,
            message,
            context_id,
        });
    }

    pub(crate) fn token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.token_roots
            .insert(self.next_token, self.root_context_id);
        self.next_token
    }
}

/// Caps linear memory and remembers that the cap was hit, so the failure
/// can be reported as a memory limit rather than a bare trap.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    cap: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Err(wasmtime::Error::msg("memory cap reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables of function references stay small in real filters; a
        // runaway one is bounded like memory.
        Ok(desired <= 1_000_000)
    }
}

/// Host states for the semantic tests, without a wasm module.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect()
    }

    /// A VM in the callback of stream 2, whose request headers are `request`.
    pub(crate) fn in_stream(request: Headers) -> HostState {
        let mut s = HostState::new(PluginConfig::new(), 1, usize::MAX);
        s.streams.insert(
            2,
            StreamState {
                request: Half {
                    headers: Some(request),
                    ..Half::default()
                },
                ..StreamState::default()
            },
        );
        s.enter(2);
        s
    }
}
