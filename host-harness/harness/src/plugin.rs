//! One VM with one plugin (root context): lifecycle, callbacks, events,
//! timers.

use std::time::{Duration, SystemTime};

use wasmtime::{Engine, Instance, InstancePre, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::{BufferType, LogLevel};
use crate::callout::{HttpCallReply, HttpCallRequest};
use crate::error::{Error, Failure, FailureKind};
use crate::host::{EPOCH_TICK, Limits, PluginConfig};
use crate::imports::ProcExit;
use crate::memory::GuestExports;
use crate::metrics::Metric;
use crate::properties::Value;
use crate::shared::Shared;
use crate::state::{CalloutView, Direction, Event, HostState, LogRecord, StreamState};
use crate::stream::HttpStream;
use crate::trace::{Call, TraceArgs, TraceResult};

type F<P, R> = Option<TypedFunc<P, R>>;

/// The callbacks a module may export; absent ones are skipped, as in Envoy.
pub(crate) struct Exports {
    pub(crate) on_context_create: F<(i32, i32), ()>,
    on_vm_start: F<(i32, i32), i32>,
    on_configure: F<(i32, i32), i32>,
    pub(crate) on_done: F<i32, i32>,
    pub(crate) on_log: F<i32, ()>,
    pub(crate) on_delete: F<i32, ()>,
    on_tick: F<i32, ()>,
    on_queue_ready: F<(i32, i32), ()>,
    request: StreamCallbacks,
    response: StreamCallbacks,
    on_http_call_response: F<(i32, i32, i32, i32, i32), ()>,
    on_grpc_initial_metadata: F<(i32, i32, i32), ()>,
    on_grpc_receive: F<(i32, i32, i32), ()>,
    on_grpc_trailing_metadata: F<(i32, i32, i32), ()>,
    on_grpc_close: F<(i32, i32, i32), ()>,
    pub(crate) network: NetworkCallbacks,
}

/// The callbacks of a network (TCP) filter.
pub(crate) struct NetworkCallbacks {
    /// `(context)`.
    pub(crate) on_new_connection: F<i32, i32>,
    /// `(context, buffered size, end of stream)`.
    pub(crate) on_downstream_data: F<(i32, i32, i32), i32>,
    pub(crate) on_upstream_data: F<(i32, i32, i32), i32>,
    /// `(context, peer type)`.
    pub(crate) on_downstream_close: F<(i32, i32), ()>,
    pub(crate) on_upstream_close: F<(i32, i32), ()>,
}

fn export<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Result<F<P, R>, Error> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => f
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|_| Error::ExportSignature(name.to_owned())),
    }
}

/// A stream callback: its export name and function, if exported.
pub(crate) struct Callback<P> {
    pub(crate) name: &'static str,
    pub(crate) f: F<P, i32>,
}

impl<P: WasmParams> Callback<P> {
    fn resolve(
        instance: &Instance,
        store: &mut Store<HostState>,
        name: &'static str,
    ) -> Result<Self, Error> {
        Ok(Self {
            name,
            f: export(instance, store, name)?,
        })
    }
}

/// The callbacks of one direction of an HTTP stream.
pub(crate) struct StreamCallbacks {
    /// `(context, header count, end of stream)`.
    pub(crate) headers: Callback<(i32, i32, i32)>,
    /// `(context, buffered size, end of stream)`.
    pub(crate) body: Callback<(i32, i32, i32)>,
    /// `(context, trailer count)`.
    pub(crate) trailers: Callback<(i32, i32)>,
}

impl StreamCallbacks {
    fn resolve(
        instance: &Instance,
        store: &mut Store<HostState>,
        direction: Direction,
    ) -> Result<Self, Error> {
        let [headers, body, trailers] = match direction {
            Direction::Request => [
                "proxy_on_request_headers",
                "proxy_on_request_body",
                "proxy_on_request_trailers",
            ],
            Direction::Response => [
                "proxy_on_response_headers",
                "proxy_on_response_body",
                "proxy_on_response_trailers",
            ],
        };
        Ok(Self {
            headers: Callback::resolve(instance, store, headers)?,
            body: Callback::resolve(instance, store, body)?,
            trailers: Callback::resolve(instance, store, trailers)?,
        })
    }
}

impl Exports {
    /// The stream callbacks of `direction`.
    pub(crate) fn stream(&self, direction: Direction) -> &StreamCallbacks {
        match direction {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    fn resolve(instance: &Instance, store: &mut Store<HostState>) -> Result<Self, Error> {
        Ok(Self {
            on_context_create: export(instance, store, "proxy_on_context_create")?,
            on_vm_start: export(instance, store, "proxy_on_vm_start")?,
            on_configure: export(instance, store, "proxy_on_configure")?,
            on_done: export(instance, store, "proxy_on_done")?,
            on_log: export(instance, store, "proxy_on_log")?,
            on_delete: export(instance, store, "proxy_on_delete")?,
            on_tick: export(instance, store, "proxy_on_tick")?,
            on_queue_ready: export(instance, store, "proxy_on_queue_ready")?,
            request: StreamCallbacks::resolve(instance, store, Direction::Request)?,
            response: StreamCallbacks::resolve(instance, store, Direction::Response)?,
            on_http_call_response: export(instance, store, "proxy_on_http_call_response")?,
            on_grpc_initial_metadata: export(
                instance,
                store,
                "proxy_on_grpc_receive_initial_metadata",
            )?,
            on_grpc_receive: export(instance, store, "proxy_on_grpc_receive")?,
            on_grpc_trailing_metadata: export(
                instance,
                store,
                "proxy_on_grpc_receive_trailing_metadata",
            )?,
            on_grpc_close: export(instance, store, "proxy_on_grpc_close")?,
            network: NetworkCallbacks {
                on_new_connection: export(instance, store, "proxy_on_new_connection")?,
                on_downstream_data: export(instance, store, "proxy_on_downstream_data")?,
                on_upstream_data: export(instance, store, "proxy_on_upstream_data")?,
                on_downstream_close: export(
                    instance,
                    store,
                    "proxy_on_downstream_connection_close",
                )?,
                on_upstream_close: export(instance, store, "proxy_on_upstream_connection_close")?,
            },
        })
    }
}

/// A running VM with one plugin (root context), as one Envoy worker holds
/// it, or with several plugins sharing the VM
/// ([`Filter::start_vm`](crate::Filter::start_vm)). Streams go through it
/// one at a time; its logs, metrics and clock are its own (a shared VM's
/// are shared by its plugins, as in Envoy).
pub struct Plugin {
    store: Store<HostState>,
    pub(crate) exports: Exports,
    /// The plugin that streams, shutdown and restart act on
    /// ([`Plugin::select_root`]).
    pub(crate) root_id: u32,
    /// Every plugin of the VM: `(root context id, fail open)`.
    roots: Vec<(u32, bool)>,
    next_context: u32,
    pub(crate) failure: Option<Failure>,
    pub(crate) fail_open: bool,
    limits: Limits,
    /// The callbacks called so far, when the configuration asked for it.
    trace: Option<Vec<Call>>,
    /// What a restart needs to start the same plugin again.
    origin: Origin,
    /// How many of the start-up logs came from Envoy's main-thread VMs.
    main_thread_logs: usize,
}

/// Where a plugin came from, so it can be started again after a failure.
#[derive(Clone)]
struct Origin {
    engine: Engine,
    pre: InstancePre<HostState>,
    vm_uid: u64,
    configs: Vec<PluginConfig>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("root_id", &self.root_id)
            .field("roots", &self.roots)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// The id bit of the VMs Envoy starts on its main thread and discards, so
/// shared queues tell them apart from the worker's.
const MAIN_THREAD_VM: u64 = 1 << 62;

impl Plugin {
    /// Starts one VM with a plugin per configuration (root context ids 1,
    /// 2, ... in order); the first configuration's VM-wide settings
    /// (environment, clock, shared data, trace, start-up model) are the
    /// VM's.
    pub(crate) fn start(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        limits: &Limits,
        vm_uid: u64,
        configs: Vec<PluginConfig>,
    ) -> Result<Self, Error> {
        let first = configs.first().ok_or(Error::Usage("a VM needs a plugin"))?;
        if !first.envoy_startup {
            return Self::start_once(engine, pre, limits, vm_uid, configs);
        }
        // What Envoy 1.40 (proxy-wasm-cpp-host) does on its main thread
        // for the plugins of one vm key, in order: a base VM that only
        // runs the module's start functions; then for each plugin a clone
        // that starts and configures it and is discarded (the
        // configuration canary), and the main thread's own thread-local
        // VM, created with the first plugin, in which the plugin starts
        // too. Each worker then starts its VM with every plugin; the
        // worker's serves the streams. Start functions and start-up
        // callbacks log in each (recorded: tests/data/fidelity-vm).
        let main_uid = vm_uid | MAIN_THREAD_VM;
        let mut base = Self::instantiate(engine, pre, limits, main_uid, first)?;
        let mut logs = base.take_logs();
        let mut trace = base.take_trace();
        let mut main_tls: Option<Self> = None;
        for config in &configs {
            let mut canary = Self::start_once(engine, pre, limits, main_uid, vec![config.clone()])?;
            logs.append(&mut canary.take_logs());
            trace.append(&mut canary.take_trace());
            let tls = match main_tls.as_mut() {
                Some(tls) => tls,
                None => main_tls.insert(Self::instantiate(engine, pre, limits, main_uid, first)?),
            };
            tls.add_plugin(config)?;
            logs.append(&mut tls.take_logs());
            trace.append(&mut tls.take_trace());
        }
        let main_thread_logs = logs.len();
        let mut worker = Self::start_once(engine, pre, limits, vm_uid, configs)?;
        logs.append(&mut worker.take_logs());
        worker.store.data_mut().set_logs(logs);
        worker.main_thread_logs = main_thread_logs;
        if let Some(second) = worker.trace.as_mut() {
            trace.append(second);
            *second = trace;
        }
        Ok(worker)
    }

    /// Instantiates the module and runs its start functions, as Envoy
    /// does for every VM before any plugin starts in it. `config` gives
    /// the VM-wide settings and the first plugin's state, which
    /// [`Plugin::add_plugin`] then starts.
    fn instantiate(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        limits: &Limits,
        vm_uid: u64,
        config: &PluginConfig,
    ) -> Result<Self, Error> {
        let origin = Origin {
            engine: engine.clone(),
            pre: pre.clone(),
            vm_uid,
            configs: Vec::new(),
        };
        let trace = config.trace.then(Vec::new);
        let fail_open = config.fail_open;
        let state = HostState::new(config.clone(), vm_uid, limits.memory_bytes);
        let mut store = Store::new(engine, state);
        store.limiter(|s| s.limiter());
        store.epoch_deadline_trap();
        arm(&mut store, limits);
        let instance = pre.instantiate(&mut store).map_err(|e| {
            if store.data().memory_cap_hit() {
                Error::Failed(Failure {
                    callback: "instantiate".into(),
                    kind: FailureKind::MemoryLimit(limits.memory_bytes),
                })
            } else {
                Error::Instantiate(format!("{e:#}"))
            }
        })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(Error::MissingMemory)?;
        let alloc = match export::<i32, i32>(&instance, &mut store, "proxy_on_memory_allocate")? {
            Some(f) => f,
            None => export::<i32, i32>(&instance, &mut store, "malloc")?
                .ok_or(Error::MissingAllocator)?,
        };
        store.data_mut().attach(GuestExports { memory, alloc });
        let exports = Exports::resolve(&instance, &mut store)?;
        let initialize: F<(), ()> = export(&instance, &mut store, "_initialize")?;
        let main: F<(i32, i32), i32> = export(&instance, &mut store, "main")?;
        let start: F<(), ()> = export(&instance, &mut store, "_start")?;
        let mut plugin = Self {
            store,
            exports,
            root_id: 1,
            roots: Vec::new(),
            next_context: 1,
            failure: None,
            fail_open,
            limits: limits.clone(),
            trace,
            origin,
            main_thread_logs: 0,
        };
        // A reactor gets `_initialize` then `main`; a command gets `_start`.
        if initialize.is_some() {
            plugin.call("_initialize", initialize, 0, ())?;
            plugin.call("main", main, 0, (0, 0))?;
        } else {
            plugin.call("_start", start, 0, ())?;
        }
        Ok(plugin)
    }

    fn start_once(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        limits: &Limits,
        vm_uid: u64,
        configs: Vec<PluginConfig>,
    ) -> Result<Self, Error> {
        let first = configs.first().ok_or(Error::Usage("a VM needs a plugin"))?;
        let mut plugin = Self::instantiate(engine, pre, limits, vm_uid, first)?;
        for config in &configs {
            plugin.add_plugin(config)?;
        }
        plugin.root_id = 1;
        plugin.fail_open = first.fail_open;
        Ok(plugin)
    }

    /// Starts one more plugin in this VM (the next root context id). The
    /// first one's state was made with the VM.
    fn add_plugin(&mut self, config: &PluginConfig) -> Result<u32, Error> {
        let id = self.roots.len() as u32 + 1;
        if id > 1 {
            self.store.data_mut().add_root(id, config);
        }
        self.roots.push((id, config.fail_open));
        self.origin.configs.push(config.clone());
        self.next_context = self.next_context.max(id + 1);
        self.start_root(id)?;
        Ok(id)
    }

    /// Of the start-up log lines ([`Plugin::logs`] until they are taken),
    /// how many came from the VMs Envoy runs on its main thread (see
    /// [`PluginConfig::envoy_startup`]); the worker's follow. Zero without
    /// the Envoy start-up model.
    pub fn main_thread_log_count(&self) -> usize {
        self.main_thread_logs
    }

    /// Creates root context `id` and starts its plugin:
    /// `proxy_on_context_create`, `proxy_on_vm_start`, `proxy_on_configure`.
    fn start_root(&mut self, id: u32) -> Result<(), Error> {
        let root = id as i32;
        self.call(
            "proxy_on_context_create",
            self.exports.on_context_create.clone(),
            id,
            (root, 0),
        )?;
        // The configuration buffers are the running plugin's.
        self.store.data_mut().switch_root(id);
        let vm_config_len = self
            .store
            .data_mut()
            .open_config(BufferType::VmConfiguration) as i32;
        let started = self.call(
            "proxy_on_vm_start",
            self.exports.on_vm_start.clone(),
            id,
            (root, vm_config_len),
        );
        self.store.data_mut().close_config();
        if started? == Some(0) {
            return Err(Error::VmStartRejected);
        }
        let config_len = self
            .store
            .data_mut()
            .open_config(BufferType::PluginConfiguration) as i32;
        let configured = self.call(
            "proxy_on_configure",
            self.exports.on_configure.clone(),
            id,
            (root, config_len),
        );
        self.store.data_mut().close_config();
        if configured? == Some(0) {
            return Err(Error::ConfigureRejected);
        }
        self.drain_events();
        if let Some(failure) = &self.failure {
            return Err(Error::Failed(failure.clone()));
        }
        Ok(())
    }

    /// The root context ids of the plugins in this VM, in start order.
    pub fn root_ids(&self) -> Vec<u32> {
        self.roots.iter().map(|(id, _)| *id).collect()
    }

    /// Makes plugin `root_id` of this VM the one that [`Plugin::stream`],
    /// [`Plugin::send`], [`Plugin::shutdown`] and [`Plugin::root_context_id`]
    /// act on. A VM started with one plugin has only root 1.
    pub fn select_root(&mut self, root_id: u32) -> Result<(), Error> {
        let (id, fail_open) = self
            .roots
            .iter()
            .find(|(id, _)| *id == root_id)
            .copied()
            .ok_or(Error::Usage(
                "no plugin with this root context id in the VM",
            ))?;
        self.root_id = id;
        self.fail_open = fail_open;
        self.store.data_mut().switch_root(id);
        Ok(())
    }

    /// Calls an export with the limits armed and `context` current. A
    /// failure marks the VM failed for good, as Envoy does.
    pub(crate) fn call<P: WasmParams + TraceArgs, R: WasmResults + TraceResult>(
        &mut self,
        name: &str,
        f: F<P, R>,
        context: u32,
        params: P,
    ) -> Result<Option<R>, Failure> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let Some(f) = f else {
            return Ok(None);
        };
        let args = self.trace.is_some().then(|| params.words());
        arm(&mut self.store, &self.limits);
        self.store.data_mut().enter(context);
        let result = f.call(&mut self.store, params);
        self.store.data_mut().clear_effective_context();
        if let (Some(trace), Some(args)) = (self.trace.as_mut(), args) {
            trace.push(Call {
                callback: name.to_owned(),
                context_id: context,
                args,
                result: result.as_ref().ok().and_then(TraceResult::word),
            });
        }
        match result {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let failure = Failure {
                    callback: name.to_owned(),
                    kind: self.classify(&e),
                };
                tracing::warn!(%failure, error = ?e, "filter vm failed");
                self.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    fn classify(&self, e: &wasmtime::Error) -> FailureKind {
        if self.store.data().memory_cap_hit() {
            return FailureKind::MemoryLimit(self.limits.memory_bytes);
        }
        if let Some(exit) = e.downcast_ref::<ProcExit>() {
            return FailureKind::ProcExit(exit.0);
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => FailureKind::Deadline(self.limits.deadline),
            Some(Trap::OutOfFuel) => FailureKind::OutOfFuel(self.limits.fuel.unwrap_or(0)),
            Some(trap) => FailureKind::Trap(trap.to_string()),
            None => FailureKind::Host(format!("{e:#}")),
        }
    }

    pub(crate) fn new_context(&mut self) -> u32 {
        let id = self.next_context;
        self.next_context = self
            .next_context
            .wrapping_add(1)
            .max(self.roots.len() as u32 + 1);
        id
    }

    /// Delivers callout results and queue notifications until none are
    /// left, as Envoy's event loop would between stream events.
    pub(crate) fn drain_events(&mut self) {
        loop {
            if self.failure.is_some() {
                return;
            }
            for (ctx, queue) in self.store.data().take_queue_notifications() {
                let _ = self.call(
                    "proxy_on_queue_ready",
                    self.exports.on_queue_ready.clone(),
                    ctx,
                    (ctx as i32, queue as i32),
                );
            }
            let Some(event) = self.store.data_mut().next_event() else {
                return;
            };
            // The answer goes to the plugin that made the call.
            let token = match &event {
                Event::HttpResponse { token, .. } | Event::Grpc { token, .. } => *token,
            };
            let root = self.store.data().token_root(token).unwrap_or(self.root_id);
            let root_arg = root as i32;
            match event {
                Event::HttpResponse { token, response } => {
                    let (h, b, t) = match &response {
                        Some(r) => (r.header_map().len(), r.body.len(), r.trailers.len()),
                        None => (0, 0, 0),
                    };
                    self.store
                        .data_mut()
                        .show_callout(CalloutView::http(response));
                    let _ = self.call(
                        "proxy_on_http_call_response",
                        self.exports.on_http_call_response.clone(),
                        root,
                        (root_arg, token as i32, h as i32, b as i32, t as i32),
                    );
                }
                Event::Grpc {
                    token,
                    reply,
                    close,
                    unary,
                } => {
                    let token = token as i32;
                    // A unary call ends in exactly one callback, as in Envoy:
                    // the response on success, the close on failure.
                    if unary {
                        if reply.status == 0 {
                            let message = reply.messages.concat();
                            let n = message.len() as i32;
                            self.store
                                .data_mut()
                                .show_callout(CalloutView::message(message));
                            let _ = self.call(
                                "proxy_on_grpc_receive",
                                self.exports.on_grpc_receive.clone(),
                                root,
                                (root_arg, token, n),
                            );
                        } else {
                            self.store.data_mut().show_callout(CalloutView::status(
                                reply.status,
                                reply.status_message.clone(),
                            ));
                            let _ = self.call(
                                "proxy_on_grpc_close",
                                self.exports.on_grpc_close.clone(),
                                root,
                                (root_arg, token, reply.status as i32),
                            );
                        }
                        self.store.data_mut().show_callout(CalloutView::default());
                        continue;
                    }
                    if !reply.initial_metadata.is_empty() {
                        let n = reply.initial_metadata.len() as i32;
                        self.store
                            .data_mut()
                            .show_callout(CalloutView::initial_metadata(
                                reply.initial_metadata.clone(),
                            ));
                        let _ = self.call(
                            "proxy_on_grpc_receive_initial_metadata",
                            self.exports.on_grpc_initial_metadata.clone(),
                            root,
                            (root_arg, token, n),
                        );
                    }
                    for message in &reply.messages {
                        let n = message.len() as i32;
                        self.store
                            .data_mut()
                            .show_callout(CalloutView::message(message.clone()));
                        let _ = self.call(
                            "proxy_on_grpc_receive",
                            self.exports.on_grpc_receive.clone(),
                            root,
                            (root_arg, token, n),
                        );
                    }
                    if close {
                        if !reply.trailing_metadata.is_empty() {
                            let n = reply.trailing_metadata.len() as i32;
                            self.store
                                .data_mut()
                                .show_callout(CalloutView::trailing_metadata(
                                    reply.trailing_metadata.clone(),
                                ));
                            let _ = self.call(
                                "proxy_on_grpc_receive_trailing_metadata",
                                self.exports.on_grpc_trailing_metadata.clone(),
                                root,
                                (root_arg, token, n),
                            );
                        }
                        self.store.data_mut().show_callout(CalloutView::status(
                            reply.status,
                            reply.status_message.clone(),
                        ));
                        let _ = self.call(
                            "proxy_on_grpc_close",
                            self.exports.on_grpc_close.clone(),
                            root,
                            (root_arg, token, reply.status as i32),
                        );
                    }
                }
            }
            self.store.data_mut().show_callout(CalloutView::default());
        }
    }

    /// Starts an HTTP stream (a new stream context).
    pub fn stream(&mut self) -> HttpStream<'_> {
        HttpStream::new(self)
    }

    /// Opens a TCP connection through the plugin as a network filter
    /// (`envoy.filters.network.wasm`): a new context, then
    /// `proxy_on_new_connection`.
    pub fn connection(&mut self) -> crate::network::TcpConnection<'_> {
        crate::network::TcpConnection::new(self)
    }

    /// Sends `request` through the filter and, if it reaches the upstream,
    /// the upstream's response back; then ends the stream (`proxy_on_log`,
    /// `proxy_on_done`, `proxy_on_delete`).
    pub fn send(&mut self, request: crate::http::Request) -> crate::http::Exchange {
        HttpStream::exchange(self, request)
    }

    /// Everything the filter logged so far.
    pub fn logs(&self) -> &[LogRecord] {
        self.store.data().logs()
    }

    /// Removes and returns the captured logs.
    pub fn take_logs(&mut self) -> Vec<LogRecord> {
        self.store.data_mut().take_logs()
    }

    /// The messages logged at `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs()
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// Every metric the filter defined.
    pub fn metrics(&self) -> &[Metric] {
        self.store.data().metrics()
    }

    /// The metric named `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// The value of counter or gauge `name`.
    pub fn metric_value(&self, name: &str) -> Option<i64> {
        self.metric(name).map(|m| m.value)
    }

    /// The failure that stopped the VM, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The root context's id.
    pub fn root_context_id(&self) -> u32 {
        self.root_id
    }

    /// The virtual wall clock.
    pub fn now(&self) -> SystemTime {
        self.store.data().now()
    }

    /// The tick period the filter set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        self.store.data().tick_period()
    }

    /// Moves the virtual clock forward, calling `proxy_on_tick` for every
    /// tick that falls due, then delivering what the ticks started.
    pub fn advance(&mut self, by: Duration) {
        let target = self.store.data().monotonic() + by;
        // Each plugin has its own timer; they fire in time order.
        while let Some(root) = self.store.data().next_tick_root(target) {
            self.store.data_mut().switch_root(root);
            if !self.store.data_mut().tick_due(target) {
                break;
            }
            if self
                .call(
                    "proxy_on_tick",
                    self.exports.on_tick.clone(),
                    root,
                    root as i32,
                )
                .is_err()
            {
                break;
            }
            self.drain_events();
        }
        self.store.data_mut().advance_clock_to(target);
        // Envoy's async client answers a callout past its timeout itself.
        self.store.data_mut().expire_http_calls();
        self.drain_events();
    }

    /// HTTP callouts a test upstream answered with
    /// [`HttpCallReply::Pending`], by token.
    pub fn pending_http_calls(&self) -> Vec<(u32, HttpCallRequest)> {
        self.store.data().pending_http_calls()
    }

    /// Answers a pending HTTP callout and delivers the answer.
    pub fn complete_http_call(&mut self, token: u32, reply: HttpCallReply) -> Result<(), Error> {
        if !self.store.data_mut().release_http_call(token) {
            return Err(Error::Usage("no pending http call with this token"));
        }
        let response = match reply {
            HttpCallReply::Response(r) => Some(r),
            HttpCallReply::Failure => None,
            HttpCallReply::Timeout => Some(crate::callout::timeout_response()),
            HttpCallReply::Pending => return Err(Error::Usage("a completion cannot be pending")),
        };
        self.store
            .data_mut()
            .push_event(Event::HttpResponse { token, response });
        self.drain_events();
        Ok(())
    }

    /// The callbacks called so far, in order, when the plugin was started
    /// with [`PluginConfig::trace`]; empty otherwise.
    pub fn trace(&self) -> &[Call] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// Removes and returns the trace so far.
    pub fn take_trace(&mut self) -> Vec<Call> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Answers HTTP callouts to `upstream` with `handler` from now on,
    /// replacing the one the configuration set: a test can change the
    /// answer between steps.
    pub fn set_http_upstream(
        &mut self,
        upstream: &str,
        handler: impl Fn(&HttpCallRequest) -> HttpCallReply + Send + Sync + 'static,
    ) {
        self.store
            .data_mut()
            .set_http_upstream(upstream, std::sync::Arc::new(handler));
    }

    /// Starts the plugin again in a fresh VM, as Envoy does after a VM
    /// failure with `failure_policy: FAIL_RELOAD`: the configuration and
    /// upstreams are the original ones; the logs so far are kept, the
    /// failure is cleared.
    pub fn restart(&mut self) -> Result<(), Error> {
        let origin = self.origin.clone();
        let limits = self.limits.clone();
        let mut fresh = Self::start_once(
            &origin.engine,
            &origin.pre,
            &limits,
            origin.vm_uid,
            origin.configs,
        )?;
        fresh.select_root(self.root_id)?;
        let mut logs = self.take_logs();
        logs.append(&mut fresh.take_logs());
        fresh.store.data_mut().set_logs(logs);
        *self = fresh;
        Ok(())
    }

    /// Delivers queue notifications from other VMs sharing this one's
    /// [`Shared`].
    pub fn poll(&mut self) {
        self.drain_events();
    }

    /// The shared data and queues this VM uses.
    pub fn shared(&self) -> &Shared {
        self.store.data().shared()
    }

    /// Sets a plugin-level property (of the selected plugin).
    pub fn set_property(&mut self, name: &str, value: impl Into<Value>) {
        self.store.data_mut().switch_root(self.root_id);
        self.store
            .data_mut()
            .plugin_properties_mut()
            .set(name, value);
    }

    /// Ends the plugin as Envoy does on a configuration change:
    /// `proxy_on_done` on the root context, then (if it returned true, or
    /// after it called `proxy_done` during pending work) `proxy_on_log`
    /// and `proxy_on_delete`. Returns whether the root context finished.
    pub fn shutdown(&mut self) -> Result<bool, Error> {
        let root = self.root_id;
        self.store.data_mut().expect_done(Some(root));
        let done = self.call(
            "proxy_on_done",
            self.exports.on_done.clone(),
            root,
            root as i32,
        )?;
        let finished = done.is_none_or(|d| d != 0) || self.store.data().done_called();
        if !finished {
            // The filter may finish its work (callouts, queues) and call
            // `proxy_done` from their callbacks.
            self.drain_events();
            if !self.store.data().done_called() {
                return Ok(false);
            }
        }
        self.store.data_mut().expect_done(None);
        self.call(
            "proxy_on_log",
            self.exports.on_log.clone(),
            root,
            root as i32,
        )?;
        self.call(
            "proxy_on_delete",
            self.exports.on_delete.clone(),
            root,
            root as i32,
        )?;
        Ok(true)
    }

    /// Ends stream `id` as Envoy 1.40 does: its access log first
    /// (`proxy_on_log`, which sees missing maps as `NOT_FOUND`), then the
    /// filter's destruction (`proxy_on_done`, `proxy_on_delete`). The order
    /// was seen on real Envoy (issue 13). A failure is recorded on the
    /// plugin.
    pub(crate) fn end_stream(&mut self, id: u32) {
        let arg = id as i32;
        self.store.data_mut().set_access_log(true);
        let _ = self.call("proxy_on_log", self.exports.on_log.clone(), id, arg);
        self.store.data_mut().set_access_log(false);
        let _ = self.call("proxy_on_done", self.exports.on_done.clone(), id, arg);
        let _ = self.call("proxy_on_delete", self.exports.on_delete.clone(), id, arg);
    }

    /// Ends connection `id` as Envoy 1.40 does for a network filter: its
    /// destruction first (`proxy_on_done`), then the access log
    /// (`proxy_on_log`) and `proxy_on_delete` (recorded:
    /// tests/data/fidelity-tcp).
    pub(crate) fn end_connection(&mut self, id: u32) {
        let arg = id as i32;
        let _ = self.call("proxy_on_done", self.exports.on_done.clone(), id, arg);
        self.store.data_mut().set_access_log(true);
        let _ = self.call("proxy_on_log", self.exports.on_log.clone(), id, arg);
        self.store.data_mut().set_access_log(false);
        let _ = self.call("proxy_on_delete", self.exports.on_delete.clone(), id, arg);
    }

    /// Forgets stream `id`, returning its last state.
    pub(crate) fn remove_stream(&mut self, id: u32) -> Option<StreamState> {
        self.store.data_mut().remove_stream(id)
    }

    /// Records that stream `id` belongs to plugin `root`.
    pub(crate) fn bind_context(&mut self, id: u32, root: u32) {
        self.store.data_mut().bind_context(id, root);
    }

    pub(crate) fn stream_state(&mut self, id: u32) -> &mut StreamState {
        self.store.data_mut().stream_state(id)
    }
}

fn arm(store: &mut Store<HostState>, limits: &Limits) {
    let ticks = limits
        .deadline
        .as_nanos()
        .div_ceil(EPOCH_TICK.as_nanos())
        .max(1);
    // One extra tick because the current one may be about to end.
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1));
    if let Some(fuel) = limits.fuel {
        // Only fails when fuel is off in the engine, which `Host` prevents.
        let _ = store.set_fuel(fuel);
    }
}
