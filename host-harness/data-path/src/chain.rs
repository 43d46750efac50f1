//! The filter chain: one wasmtime VM per filter per instance, a pool of
//! instances, and one request through them as Envoy's filter manager would
//! pass it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use meshward_harness::{End, Filter, Headers, Host, LogLevel, Plugin, PluginConfig, Value};

use sha2::Digest;

use crate::config::FilterSpec;
use crate::error::Error;

/// A request as it enters the chain.
pub(crate) struct ChainRequest<'a> {
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
    /// What Envoy would know about the connection (`connection.*`,
    /// `source.*`, `destination.*`).
    pub(crate) properties: &'a [(&'static str, Value)],
}

/// What the chain made of a request.
pub(crate) enum ChainOutcome {
    /// Every filter let it through: forward this (the filters may have
    /// changed headers and body).
    Forward { headers: Headers, body: Vec<u8> },
    /// A filter (or the host, failing closed) answered.
    Reply {
        status: u16,
        headers: Headers,
        body: Vec<u8>,
    },
    /// A filter reset the stream.
    Reset,
    /// A filter paused and nothing resumed it (Envoy would time out).
    Stalled,
    /// No filter instance could be started.
    Unavailable(String),
}

/// A filter that failed (trapped, ran out of time or memory) while
/// deciding one request.
pub(crate) struct FilterFailure {
    /// The filter's name in the chain.
    pub(crate) filter: String,
    /// Whether the request went on past it (`fail_open`) or was answered
    /// 503 by the host.
    pub(crate) fail_open: bool,
    /// What went wrong, as the harness tells it.
    pub(crate) message: String,
}

/// Compiled modules by their sha256, so a reload that keeps a module does
/// not compile it again.
pub(crate) type ModuleCache = Mutex<HashMap<[u8; 32], Filter>>;

/// The compiled filters of one configuration and their instances.
pub(crate) struct Chain {
    filters: Vec<(FilterSpec, Filter)>,
    // Instances are taken for the length of one request's filter calls
    // (never across an await), so the pool holds about as many as there
    // are worker threads: a pool per worker without thread-locals.
    pool: Mutex<Vec<Vec<Plugin>>>,
}

impl Chain {
    /// Compiles every filter and starts one instance, so that a module that
    /// does not load or a configuration a filter refuses is an error now,
    /// not a 503 later.
    pub(crate) fn new(
        host: &Host,
        cache: &ModuleCache,
        specs: &[FilterSpec],
    ) -> Result<Self, Error> {
        let mut filters = Vec::with_capacity(specs.len());
        for spec in specs {
            let key: [u8; 32] = sha2::Sha256::digest(&*spec.wasm).into();
            let cached = cache.lock().ok().and_then(|c| c.get(&key).cloned());
            let filter = match cached {
                Some(f) => f,
                None => {
                    let f = host.load(&*spec.wasm).map_err(|e| Error::Filter {
                        name: spec.name.clone(),
                        message: e.to_string(),
                    })?;
                    if let Ok(mut c) = cache.lock() {
                        c.insert(key, f.clone());
                    }
                    f
                }
            };
            filters.push((spec.clone(), filter));
        }
        let chain = Self {
            filters,
            pool: Mutex::new(Vec::new()),
        };
        let first = chain
            .start_instance()
            .map_err(|(name, message)| Error::Filter { name, message })?;
        chain.checkin(first);
        Ok(chain)
    }

    fn start_instance(&self) -> Result<Vec<Plugin>, (String, String)> {
        self.filters
            .iter()
            .map(|(spec, filter)| {
                filter
                    .start(
                        PluginConfig::new()
                            .name(&spec.name)
                            .root_id(&spec.root_id)
                            .vm_id(&spec.vm_id)
                            .configuration(spec.configuration.as_bytes())
                            .fail_open(spec.fail_open)
                            .log_level(LogLevel::Info),
                    )
                    .map_err(|e| (spec.name.clone(), e.to_string()))
            })
            .collect()
    }

    fn checkout(&self) -> Result<Vec<Plugin>, String> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(instance) => Ok(instance),
            None => self
                .start_instance()
                .map_err(|(name, message)| format!("filter `{name}`: {message}")),
        }
    }

    fn checkin(&self, instance: Vec<Plugin>) {
        // A VM that failed stays failed (as in Envoy); a fresh one replaces
        // it on the next request instead of failing every request it gets.
        if instance.iter().any(|p| p.failure().is_some()) {
            return;
        }
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(instance);
        }
    }

    /// Runs `request` through every filter in order. Each filter gets the
    /// connection's properties plus the filter state the filters before it
    /// set (`proxy_set_property`), as they would share it in Envoy.
    /// Returns the outcome and the filters that failed on the way, so they
    /// are counted whether the chain failed closed or open.
    pub(crate) fn run(&self, request: ChainRequest<'_>) -> (ChainOutcome, Vec<FilterFailure>) {
        let mut instance = match self.checkout() {
            Ok(i) => i,
            Err(e) => return (ChainOutcome::Unavailable(e), Vec::new()),
        };
        let mut failures = Vec::new();
        let outcome = run_instance(&mut instance, &self.filters, request, &mut failures);
        for plugin in &mut instance {
            forward_logs(plugin);
        }
        self.checkin(instance);
        (outcome, failures)
    }
}

fn run_instance(
    instance: &mut [Plugin],
    filters: &[(FilterSpec, Filter)],
    request: ChainRequest<'_>,
    failures: &mut Vec<FilterFailure>,
) -> ChainOutcome {
    let ChainRequest {
        mut headers,
        mut body,
        properties,
    } = request;
    let now = SystemTime::now();
    let mut filter_state: Vec<(String, Value)> = Vec::new();
    for (plugin, (spec, _)) in instance.iter_mut().zip(filters) {
        // The harness's clock is virtual; a long-running data path moves
        // it to the real time before each request (certificates expire,
        // policies read `context.time`).
        if let Ok(behind) = now.duration_since(plugin.now()) {
            plugin.advance(behind);
        }
        let mut stream = plugin.stream();
        for (name, value) in properties {
            stream.set_property(name, value.clone());
        }
        for (name, value) in &filter_state {
            stream.set_property(name, value.clone());
        }
        stream.request_headers(std::mem::take(&mut headers), body.is_empty());
        if !body.is_empty() {
            stream.request_body(&body, true);
        }
        let state = stream.properties();
        let exchange = stream.finish();
        if let Some(failure) = &exchange.failure {
            failures.push(FilterFailure {
                filter: spec.name.clone(),
                fail_open: spec.fail_open,
                message: failure.to_string(),
            });
        }
        match exchange.upstream_request {
            Some(forwarded) => {
                headers = forwarded.headers;
                body = forwarded.body;
                filter_state = state
                    .iter()
                    .filter(|(name, _)| !properties.iter().any(|(p, _)| *p == name.as_str()))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
            }
            None => {
                return match (exchange.response, exchange.end) {
                    (Some(response), _) => ChainOutcome::Reply {
                        status: response.status,
                        headers: response.headers,
                        body: response.body,
                    },
                    (None, End::Reset) => ChainOutcome::Reset,
                    (None, _) => ChainOutcome::Stalled,
                };
            }
        }
    }
    ChainOutcome::Forward { headers, body }
}

fn forward_logs(plugin: &mut Plugin) {
    for record in plugin.take_logs() {
        let message = record.message;
        match record.level {
            LogLevel::Trace => tracing::trace!(target: "meshward::filter", "{message}"),
            LogLevel::Debug => tracing::debug!(target: "meshward::filter", "{message}"),
            LogLevel::Info => tracing::info!(target: "meshward::filter", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "meshward::filter", "{message}"),
            _ => tracing::error!(target: "meshward::filter", "{message}"),
        }
    }
}
