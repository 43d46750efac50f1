//! A proxy-wasm filter that fails on demand, so tests can show what a
//! failing filter does to meshward's chain without a fault hook in the
//! shipped filters.
//!
//! The plugin configuration is a list of words:
//! - `trap-on-header`: a request carrying `x-fault: trap` traps the VM (an
//!   abort, as a panic in a filter built with `panic = "abort"` does);
//!   other requests pass unchanged;
//! - `trap-on-configure`: `proxy_on_configure` traps;
//! - `reject`: `proxy_on_configure` refuses the configuration.
//!
//! Every request it lets through is counted in `fault_filter_passed`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

/// The header that makes a request trap, and its value.
const TRAP_HEADER: (&str, &str) = ("x-fault", "trap");

#[derive(Default)]
struct Root {
    trap_on_header: bool,
    passed: u32,
}

/// The VM's end: what a panic in a filter built with `panic = "abort"`
/// becomes.
fn trap() -> ! {
    std::process::abort()
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let words: Vec<&str> = config.split_whitespace().collect();
        if words.contains(&"trap-on-configure") {
            trap();
        }
        self.trap_on_header = words.contains(&"trap-on-header");
        self.passed =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "fault_filter_passed")
                .unwrap_or(0);
        !words.contains(&"reject")
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            trap_on_header: self.trap_on_header,
            passed: self.passed,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    trap_on_header: bool,
    passed: u32,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if self.trap_on_header
            && self.get_http_request_header(TRAP_HEADER.0).as_deref() == Some(TRAP_HEADER.1)
        {
            trap();
        }
        // Counting never fails in a conforming host; nothing to do if it does.
        let _ = proxy_wasm::hostcalls::increment_metric(self.passed, 1);
        Action::Continue
    }
}
