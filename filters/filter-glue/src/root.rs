//! The root context every meshward filter uses: it loads the plugin
//! configuration (refusing a bad one loudly, after which every request is
//! denied), defines the counters once, and hands both, with the
//! per-connection cache, to each new stream.

use std::fmt::Display;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::connection::SharedConnections;

/// One meshward filter: its per-stream context and what its root needs to
/// build one.
pub trait Filter: HttpContext + Sized + 'static {
    /// The name in log lines, e.g. `meshward-authz`.
    const NAME: &'static str;
    /// The accepted configuration.
    type Config: 'static;
    /// Why a configuration was refused.
    type Error: Display;
    /// The filter's counters.
    type Metrics: 'static;

    /// Parses and checks the plugin configuration.
    fn configure(bytes: &[u8]) -> Result<Self::Config, Self::Error>;
    /// Defines the counters; `None` if the host refused one.
    fn define_metrics() -> Option<Self::Metrics>;
    /// The context for one new HTTP stream.
    fn stream(shared: Shared<Self>) -> Self;
}

/// What the root hands each stream: the configuration, `None` until one was
/// accepted (and after one was refused), and the counters.
pub struct Shared<F: Filter> {
    /// The accepted configuration; `None` means deny every request.
    pub config: Option<Rc<F::Config>>,
    /// The counters, if the host let them be defined.
    pub metrics: Option<Rc<F::Metrics>>,
    /// What this VM remembers about the connections it has seen.
    pub connections: SharedConnections,
}

impl<F: Filter> Clone for Shared<F> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            connections: Rc::clone(&self.connections),
        }
    }
}

struct Root<F: Filter> {
    shared: Shared<F>,
}

/// Registers `F`'s root context; call it from `proxy_wasm::main!`.
pub fn install<F: Filter>() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root::<F>());
}

/// A new root context for `F`, for a module that serves several root ids
/// and picks the filter by the plugin's `root_id`.
pub fn root<F: Filter>() -> Box<dyn RootContext> {
    Box::new(Root::<F> {
        shared: Shared {
            config: None,
            metrics: None,
            connections: SharedConnections::default(),
        },
    })
}

impl<F: Filter> Context for Root<F> {}

impl<F: Filter> RootContext for Root<F> {
    fn on_configure(&mut self, _size: usize) -> bool {
        if self.shared.metrics.is_none() {
            self.shared.metrics = F::define_metrics().map(Rc::new);
        }
        // The SDK's `get_plugin_configuration` unwraps the host's status;
        // an error here is an empty configuration, which is refused.
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        // A new configuration may want other connection facts.
        if let Ok(mut c) = self.shared.connections.try_borrow_mut() {
            c.clear();
        }
        match F::configure(&bytes) {
            Ok(config) => {
                self.shared.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                self.shared.config = None;
                crate::log(
                    LogLevel::Error,
                    &format!(
                        "{}: configuration refused, denying every request: {e}",
                        F::NAME
                    ),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(F::stream(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
