//! The host state of one VM, kept in its wasmtime `Store`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::{Memory, ResourceLimiter, TypedFunc};

use crate::abi::{LogLevel, MapType};
use crate::callout::{
    ForeignFunction, GrpcCallRequest, GrpcReply, GrpcUpstream, HttpCallRequest, HttpUpstream,
};
use crate::http::{Headers, LocalReply};
use crate::metrics::Metrics;
use crate::properties::Properties;
use crate::shared::Shared;

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
    pub(crate) memory: Option<Memory>,
    pub(crate) alloc: Option<TypedFunc<i32, i32>>,
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

    /// The header map `map` as the running callback sees it; `None` when
    /// Envoy would not expose it now.
    pub(crate) fn map(&mut self, map: MapType) -> Option<&mut Headers> {
        if matches!(
            map,
            MapType::HttpCallResponseHeaders | MapType::GrpcInitialMetadata
        ) {
            return self.callout.headers.as_mut();
        }
        if matches!(
            map,
            MapType::HttpCallResponseTrailers | MapType::GrpcTrailingMetadata
        ) {
            return self.callout.trailers.as_mut();
        }
        let stream = self.stream()?;
        match map {
            MapType::RequestHeaders => stream.request_headers.as_mut(),
            MapType::RequestTrailers => stream.request_trailers.as_mut(),
            MapType::ResponseHeaders => stream.response_headers.as_mut(),
            MapType::ResponseTrailers => stream.response_trailers.as_mut(),
            _ => None,
        }
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
