//! The Envoy load bench's baseline (`scripts/bench-envoy`): the least a Rust
//! proxy-wasm filter can do on every request and still touch it, namely set
//! one request header. What meshward's filters cost beyond this is what
//! their own work costs; what this costs beyond no filter is the price of
//! wasm in Envoy at all (a VM per worker, a context per stream, one host
//! call).
//!
//! Built with the other filters by `scripts/build-wasm` (it is a `cdylib`
//! in the workspace), with the same `filter` profile, so module size and
//! start-up compare like for like.

#![forbid(unsafe_code)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

// The entry point is exported by name for the host; nothing else uses it.
mod entry {
    use super::*;
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TrivialRoot) });
    }}
}

struct TrivialRoot;

impl Context for TrivialRoot {}

impl RootContext for TrivialRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TrivialStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TrivialStream;

impl Context for TrivialStream {}

impl HttpContext for TrivialStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_request_header("x-bench-trivial", Some("1"));
        Action::Continue
    }
}
