//! The host state of one VM, kept in its wasmtime `Store`.

//!
//! Envoy's semantics for the host calls are methods on [`HostState`], one
//! child module per ABI area, so they can be tested without a wasm module;
//! `imports` only decodes guest memory and calls them.

mod attributes;
mod buffers;
mod callouts;
mod maps;
mod streams;
mod vm;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::ResourceLimiter;

use crate::abi::LogLevel;
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

/// Per-stream host state: the maps and buffers the filter can reach, and
/// the actions it asked for that the host applies after the callback.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) request_headers: Option<Headers>,
    pub(crate) request_body: Option<Vec<u8>>,
    pub(crate) request_trailers: Option<Headers>,
    pub(crate) response_headers: Option<Headers>,
    pub(crate) response_body: Option<Vec<u8>>,
    pub(crate) response_trailers: Option<Headers>,
    pub(crate) properties: Properties,
    pub(crate) local_reply: Option<LocalReply>,
    pub(crate) sending_local_reply: bool,
    pub(crate) resume_request: bool,
    pub(crate) resume_response: bool,
    pub(crate) reset: bool,
    pub(crate) route_cache_cleared: bool,
}

/// The results of a callout, visible while `proxy_on_http_call_response` or
/// the gRPC callbacks run.
#[derive(Debug, Default)]
pub(crate) struct CalloutView {
    pub(crate) headers: Option<Headers>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) trailers: Option<Headers>,
    pub(crate) status: (u32, String),
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
    pub(crate) request: GrpcCallRequest,
    pub(crate) sent_metadata: bool,
}

/// Everything the host functions of one VM need. It lives in the `Store`,
/// so VMs never share mutable state except through [`Shared`].
pub(crate) struct HostState {
    pub(crate) guest: Option<GuestExports>,
    pub(crate) memcap: MemoryCap,
    pub(crate) rng: u64,
    pub(crate) vm_uid: u64,
    pub(crate) vm_id: String,
    pub(crate) vm_configuration: Vec<u8>,
    pub(crate) plugin_configuration: Vec<u8>,
    pub(crate) root_context_id: u32,
    pub(crate) current_context: u32,
    pub(crate) effective_context: Option<u32>,
    /// Which configuration buffer the running callback may read.
    pub(crate) config_buffer: Option<crate::abi::BufferType>,
    pub(crate) streams: HashMap<u32, StreamState>,
    pub(crate) properties: Properties,
    pub(crate) log_level: LogLevel,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) metrics: Metrics,
    pub(crate) now: SystemTime,
    pub(crate) monotonic: Duration,
    pub(crate) tick_period: Option<Duration>,
    pub(crate) next_tick: Option<Duration>,
    pub(crate) http_upstreams: Arc<BTreeMap<String, HttpUpstream>>,
    pub(crate) grpc_upstreams: Arc<BTreeMap<String, GrpcUpstream>>,
    pub(crate) foreign: Arc<BTreeMap<String, ForeignFunction>>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) shared: Shared,
    pub(crate) next_token: u32,
    pub(crate) events: VecDeque<Event>,
    pub(crate) held_http_calls: BTreeMap<u32, HttpCallRequest>,
    pub(crate) grpc_streams: HashMap<u32, GrpcStream>,
    pub(crate) callout: CalloutView,
    pub(crate) foreign_args: Option<Vec<u8>>,
    pub(crate) pending_done: Option<u32>,
    pub(crate) done_called: bool,
    pub(crate) exit_code: Option<i32>,
    pub(crate) access_log: bool,
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
            grpc_streams: HashMap::new(),
            callout: CalloutView::default(),
            foreign_args: None,
            pending_done: None,
            done_called: false,
            exit_code: None,
            access_log: false,
        }
    }

    /// The guest's memory and allocator, once instantiated.
    pub(crate) fn guest_exports(&self) -> Option<&GuestExports> {
        self.guest.as_ref()
    }

    /// Makes `context` the one whose callback runs.
    pub(crate) fn enter(&mut self, context: u32) {
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
        self.next_token
    }
}

/// Caps linear memory and remembers that the cap was hit, so the failure
/// can be reported as a memory limit rather than a bare trap.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    pub(crate) cap: usize,
    pub(crate) hit: bool,
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
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A VM in the callback of stream 2, whose request headers are `request`.
    pub(crate) fn in_stream(request: Headers) -> HostState {
        let mut s = HostState::new(PluginConfig::new(), 1, usize::MAX);
        s.streams.insert(
            2,
            StreamState {
                request_headers: Some(request),
                ..StreamState::default()
            },
        );
        s.enter(2);
        s
    }
}
