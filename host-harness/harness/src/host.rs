//! The engine, compiled filters and plugin configuration.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use wasmtime::{Config, Engine, Extern, ExternType, InstancePre, Linker, Module, Store};

use crate::abi::{AbiVersion, LogLevel};
use crate::callout::{
    ForeignFunction, GrpcCallRequest, GrpcReply, GrpcUpstream, HttpCallReply, HttpCallRequest,
    HttpUpstream,
};
use crate::error::Error;
use crate::imports;
use crate::plugin::Plugin;
use crate::properties::{Properties, Value};
use crate::shared::Shared;
use crate::state::HostState;

/// How often the engine's epoch advances; deadlines are rounded up to it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bounds on guest execution, so a runaway filter fails a test quickly
/// instead of hanging it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Wall-clock time one callback may run (epoch interruption). Default
    /// 500 ms: generous for real filters, short enough for a test.
    pub deadline: Duration,
    /// Fuel per callback, for deterministic bounds; `None` (the default)
    /// leaves fuel off, which keeps calls faster.
    pub fuel: Option<u64>,
    /// The largest linear memory a VM may have. Default 256 MiB.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(500),
            fuel: None,
            memory_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// Sets the per-callback wall-clock limit.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets (or turns off) the per-callback fuel.
    pub fn fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets the memory cap.
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }
}

/// A wasmtime engine set up to run proxy-wasm filters. Create one and load
/// modules with it; modules compile once and instantiate per VM.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    limits: Limits,
    vm_ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host with default [`Limits`].
    pub fn new() -> Result<Self, Error> {
        Self::with_limits(Limits::default())
    }

    /// A host with `limits`.
    pub fn with_limits(limits: Limits) -> Result<Self, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        let engine = Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))?;
        // The ticker holds only a weak handle and stops when the engine goes.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("meshward-harness-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| Error::Engine(e.to_string()))?;
        Ok(Self {
            engine,
            limits,
            vm_ids: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The limits every VM of this host gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles a module (binary or WAT text) and checks it the way Envoy
    /// does before starting it: a supported ABI version marker, an
    /// allocator, and only imports this host provides.
    pub fn load(&self, bytes: impl AsRef<[u8]>) -> Result<Filter, Error> {
        let module = Module::new(&self.engine, bytes.as_ref())
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        let exports: HashSet<&str> = module.exports().map(|e| e.name()).collect();
        let abi = [AbiVersion::V0_2_1, AbiVersion::V0_2_0]
            .into_iter()
            .find(|v| exports.contains(v.marker()))
            .ok_or(Error::MissingAbiVersion)?;
        if !exports.contains("proxy_on_memory_allocate") && !exports.contains("malloc") {
            return Err(Error::MissingAllocator);
        }
        if !exports.contains("memory") {
            return Err(Error::MissingMemory);
        }
        let linker =
            imports::build(&self.engine, abi).map_err(|e| Error::Engine(format!("{e:#}")))?;
        check_imports(&self.engine, &linker, &module)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| Error::Instantiate(format!("{e:#}")))?;
        Ok(Filter {
            inner: Arc::new(FilterInner {
                engine: self.engine.clone(),
                pre,
                abi,
                limits: self.limits.clone(),
                vm_ids: self.vm_ids.clone(),
            }),
        })
    }

    /// Reads and loads a `.wasm` file.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Filter, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load(bytes)
    }
}

/// Checks every import against what the host defines, by wasmtime's types
/// (not its error text): an import the host lacks, or one whose function
/// type differs from the host's, is refused by name.
fn check_imports(
    engine: &Engine,
    linker: &Linker<HostState>,
    module: &Module,
) -> Result<(), Error> {
    // Host functions are only typed inside a store; this one holds no
    // instance and is dropped at once.
    let mut store = Store::new(engine, HostState::new(PluginConfig::new(), 0, 0));
    for import in module.imports() {
        let unknown = || Error::UnknownImport {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
        };
        let ExternType::Func(wanted) = import.ty() else {
            return Err(unknown());
        };
        let Some(Extern::Func(provided)) = linker.get_by_import(&mut store, &import) else {
            return Err(unknown());
        };
        let provided = provided.ty(&store);
        if !provided.matches(&wanted) {
            return Err(Error::ImportSignature {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
                message: format!("the module wants `{wanted}`, the host provides `{provided}`"),
            });
        }
    }
    Ok(())
}

/// A compiled, checked filter module. Cheap to clone; start as many
/// plugins (VMs) from it as a test needs.
#[derive(Clone)]
pub struct Filter {
    inner: Arc<FilterInner>,
}

struct FilterInner {
    engine: Engine,
    pre: InstancePre<HostState>,
    abi: AbiVersion,
    limits: Limits,
    vm_ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("abi", &self.inner.abi)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// The ABI version the module declared.
    pub fn abi(&self) -> AbiVersion {
        self.inner.abi
    }

    /// Starts a VM and a plugin in it, as Envoy does when it loads the
    /// filter: `_initialize` (and `main`) or `_start`, then
    /// `proxy_on_context_create` for the root context,
    /// `proxy_on_vm_start` and `proxy_on_configure`.
    pub fn start(&self, config: PluginConfig) -> Result<Plugin, Error> {
        let vm_uid = self.inner.vm_ids.fetch_add(1, Ordering::Relaxed);
        Plugin::start(
            &self.inner.engine,
            &self.inner.pre,
            &self.inner.limits,
            vm_uid,
            vec![config],
        )
    }

    /// Starts one VM with several plugins in it, as Envoy does for plugins
    /// with the same `vm_id`, VM configuration and code: the module starts
    /// once, each configuration gets its own root context (ids 1, 2, ... in
    /// order) with `proxy_on_context_create`, `proxy_on_vm_start` and
    /// `proxy_on_configure`, and the plugins share the module's globals,
    /// logs, metrics and shared data. The VM-wide settings (environment,
    /// clock, shared data, trace, [`PluginConfig::envoy_startup`]) are the
    /// first configuration's; callout upstreams are the union. The returned
    /// plugin acts on root 1 until [`Plugin::select_root`].
    pub fn start_vm(
        &self,
        configs: impl IntoIterator<Item = PluginConfig>,
    ) -> Result<Plugin, Error> {
        let vm_uid = self.inner.vm_ids.fetch_add(1, Ordering::Relaxed);
        Plugin::start(
            &self.inner.engine,
            &self.inner.pre,
            &self.inner.limits,
            vm_uid,
            configs.into_iter().collect(),
        )
    }
}

/// How a plugin is configured: what Envoy's `WasmPlugin` or filter config
/// says, plus the test upstreams and the host's properties.
#[derive(Clone)]
pub struct PluginConfig {
    pub(crate) name: String,
    pub(crate) root_id: String,
    pub(crate) vm_id: String,
    pub(crate) configuration: Vec<u8>,
    pub(crate) vm_configuration: Vec<u8>,
    pub(crate) properties: Properties,
    pub(crate) fail_open: bool,
    pub(crate) log_level: LogLevel,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) http_upstreams: BTreeMap<String, HttpUpstream>,
    pub(crate) grpc_upstreams: BTreeMap<String, GrpcUpstream>,
    pub(crate) foreign: BTreeMap<String, ForeignFunction>,
    pub(crate) shared: Shared,
    pub(crate) time: Option<SystemTime>,
    pub(crate) trace: bool,
    pub(crate) envoy_startup: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginConfig")
            .field("name", &self.name)
            .field("root_id", &self.root_id)
            .field("vm_id", &self.vm_id)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl PluginConfig {
    /// Plugin `test`, empty root and VM ids, no configuration, fail closed,
    /// log level `Trace` (every filter log is captured).
    pub fn new() -> Self {
        Self {
            name: "test".into(),
            root_id: String::new(),
            vm_id: String::new(),
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            properties: Properties::new(),
            fail_open: false,
            log_level: LogLevel::Trace,
            env: Vec::new(),
            http_upstreams: BTreeMap::new(),
            grpc_upstreams: BTreeMap::new(),
            foreign: BTreeMap::new(),
            shared: Shared::new(),
            time: None,
            trace: false,
            envoy_startup: false,
        }
    }

    /// The plugin name (`plugin_name` property).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The root id (`plugin_root_id`).
    pub fn root_id(mut self, root_id: &str) -> Self {
        self.root_id = root_id.into();
        self
    }

    /// The VM id (`plugin_vm_id`); shared data and queues are per VM id.
    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    /// The plugin configuration, given to `proxy_on_configure`.
    pub fn configuration(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.configuration = bytes.into();
        self
    }

    /// The VM configuration, given to `proxy_on_vm_start`.
    pub fn vm_configuration(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.vm_configuration = bytes.into();
        self
    }

    /// Sets one property every context sees.
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.set(name, value);
        self
    }

    /// Adds a set of properties (e.g. [`Properties::istio_inbound_mtls`]).
    pub fn properties(mut self, properties: &Properties) -> Self {
        self.properties.extend(properties);
        self
    }

    /// Fail open (let traffic through) instead of closed (503) after the VM
    /// fails, as Envoy's `fail_open`.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// The level `proxy_get_log_level` reports; lower logs are still kept.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// An environment variable the VM sees through `environ_get`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Answers HTTP callouts to `upstream` (an Envoy cluster name) with
    /// `handler`. Callouts to other upstreams fail with `BAD_ARGUMENT`, as
    /// for an unknown cluster.
    pub fn http_upstream(
        mut self,
        upstream: &str,
        handler: impl Fn(&HttpCallRequest) -> HttpCallReply + Send + Sync + 'static,
    ) -> Self {
        self.http_upstreams
            .insert(upstream.into(), Arc::new(handler));
        self
    }

    /// Answers gRPC calls and stream messages to `upstream` with `handler`.
    pub fn grpc_upstream(
        mut self,
        upstream: &str,
        handler: impl Fn(&GrpcCallRequest) -> GrpcReply + Send + Sync + 'static,
    ) -> Self {
        self.grpc_upstreams
            .insert(upstream.into(), Arc::new(handler));
        self
    }

    /// Registers a foreign function.
    pub fn foreign_function(
        mut self,
        name: &str,
        f: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        self.foreign.insert(name.into(), Arc::new(f));
        self
    }

    /// Shares data and queues with other plugins given the same `Shared`.
    pub fn shared(mut self, shared: &Shared) -> Self {
        self.shared = shared.clone();
        self
    }

    /// Starts the virtual clock at `time` (default: the real time when the
    /// plugin starts). The clock moves only with
    /// [`Plugin::advance`](crate::Plugin::advance).
    pub fn time(mut self, time: SystemTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Records every callback the host makes into the filter
    /// ([`Plugin::trace`](crate::Plugin::trace)).
    pub fn trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// Starts the plugin as Envoy does: once on the main thread, then
    /// again in the worker that serves streams, so the filter's start-up
    /// callbacks (and their log lines) come twice. Off by default.
    pub fn envoy_startup(mut self, envoy_startup: bool) -> Self {
        self.envoy_startup = envoy_startup;
        self
    }
}
