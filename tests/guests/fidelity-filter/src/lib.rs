//! A proxy-wasm filter, written with the Rust SDK, that logs every callback
//! it gets (`<name> cb <callback> <args>`) and does what the request's
//! `x-fid-op` header asks (a comma-separated list):
//!
//! - `reply`: answers locally with `x-fid-status` (default 403), headers
//!   `x-fid-a: 1` and `x-fid-b: 2`, and the body `x-fid-body` (if any);
//! - `replace`: replaces request header `x-fid-target`, then logs the
//!   request header names in order;
//! - `empty`: logs what the SDK returns for header `x-fid-empty` and for
//!   property `request.query`;
//! - `callout` / `callout-hang` / `callout-fail`: holds the request, calls
//!   cluster `upstream` / `hang` / `nowhere` (timeout `x-fid-timeout` ms,
//!   default 5000), logs the answer, then resumes;
//! - `rewrite`: replaces the response body with `rewritten`;
//! - `trap-response-body`: panics (traps) in the first response body call;
//! - `shared`: writes and reads back shared data;
//! - `bytes`: works on header values and bodies as bytes, which need not
//!   be UTF-8 (obs-text): logs request header `x-fid-bin` in hex, adds its
//!   bytes again as `x-fid-bin-copy`, replaces `x-fid-bin-set` with
//!   non-UTF-8 bytes, reads the whole map and writes it back with
//!   `x-fid-bin-map` added; logs the bodies in hex, the upstream's
//!   `x-up-bin` in hex, and adds response header `x-fid-bin-resp`;
//! - `globals`: logs the module's global counters (root contexts and
//!   stream contexts created in this VM), which plugins sharing a VM share.
//!
//! The plugin configuration is its name in the logs, so two instances in
//! one chain can be told apart. A configuration starting with `tcp` makes
//! the plugin a network (TCP) filter instead: it logs its callbacks and the
//! data, and prefixes each downstream chunk with `[<name>]`; downstream
//! data containing `hold` is held, `go` continues the downstream
//! (`proxy_continue_stream`) and holds the chunk, `close-down` closes the
//! downstream (`proxy_close_stream`); upstream data containing `close-up`
//! closes the upstream. Each call's result is logged. `main` logs `fidelity main`, so every VM
//! start shows, including those that start no plugin.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, PeerType};

// In a private module: the macro's exported entry point has no docs.
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Trace);
        super::info("fidelity main");
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> {
            super::ROOTS.fetch_add(1, super::Ordering::Relaxed);
            Box::new(super::Root { name: String::new() })
        });
    }}
}

/// Root contexts created in this VM: one per plugin sharing it.
static ROOTS: AtomicU32 = AtomicU32::new(0);
/// Stream contexts created in this VM, by every plugin sharing it.
static STREAMS: AtomicU32 = AtomicU32::new(0);

/// `bytes` as lowercase hex, so that logs stay text whatever the bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn info(message: &str) {
    // Logging cannot fail in a conforming host; nothing to do if it does.
    let _ = proxy_wasm::hostcalls::log(LogLevel::Info, message);
}

struct Root {
    name: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        info("fidelity vm_start");
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        self.name = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        info(&format!("{} cb on_configure", self.name));
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        STREAMS.fetch_add(1, Ordering::Relaxed);
        Some(Box::new(Stream {
            name: self.name.clone(),
            ops: Vec::new(),
            trapped: false,
        }))
    }

    fn create_stream_context(&self, _id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(Tcp {
            name: self.name.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        if self.name.starts_with("tcp") {
            Some(ContextType::StreamContext)
        } else {
            Some(ContextType::HttpContext)
        }
    }
}

/// A TCP connection through the plugin as a network filter.
struct Tcp {
    name: String,
}

impl Tcp {
    fn log(&self, message: &str) {
        info(&format!("{} {message}", self.name));
    }
}

impl Context for Tcp {
    fn on_done(&mut self) -> bool {
        self.log("cb on_done");
        true
    }
}

impl StreamContext for Tcp {
    fn on_new_connection(&mut self) -> Action {
        self.log("cb on_new_connection");
        Action::Continue
    }

    fn on_downstream_data(&mut self, size: usize, eos: bool) -> Action {
        let data = self.get_downstream_data(0, size).unwrap_or_default();
        self.log(&format!(
            "cb on_downstream_data size={size} eos={eos} data={:?}",
            String::from_utf8_lossy(&data)
        ));
        if size > 0 {
            let prefix = format!("[{}]", self.name);
            self.set_downstream_data(0, 0, prefix.as_bytes());
        }
        let text = String::from_utf8_lossy(&data);
        if text.contains("close-down") {
            let result = proxy_wasm::hostcalls::close_downstream();
            self.log(&format!("close_downstream {result:?}"));
            return Action::Pause;
        }
        if text.contains("go") {
            let result = proxy_wasm::hostcalls::resume_downstream();
            self.log(&format!("resume_downstream {result:?}"));
            return Action::Pause;
        }
        if text.contains("hold") {
            self.log("holding");
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_downstream_close(&mut self, peer: PeerType) {
        self.log(&format!("cb on_downstream_close peer={peer:?}"));
    }

    fn on_upstream_data(&mut self, size: usize, eos: bool) -> Action {
        let data = self.get_upstream_data(0, size).unwrap_or_default();
        self.log(&format!(
            "cb on_upstream_data size={size} eos={eos} data={:?}",
            String::from_utf8_lossy(&data)
        ));
        if String::from_utf8_lossy(&data).contains("close-up") {
            let result = proxy_wasm::hostcalls::close_upstream();
            self.log(&format!("close_upstream {result:?}"));
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_upstream_close(&mut self, peer: PeerType) {
        self.log(&format!("cb on_upstream_close peer={peer:?}"));
    }

    fn on_log(&mut self) {
        self.log("cb on_log");
    }
}

struct Stream {
    name: String,
    ops: Vec<String>,
    trapped: bool,
}

impl Stream {
    fn log(&self, message: &str) {
        info(&format!("{} {message}", self.name));
    }

    fn has(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }

    fn names(&self) -> String {
        self.get_http_request_headers()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn callout(&mut self, cluster: &str) -> Action {
        let timeout = self
            .get_http_request_header("x-fid-timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(5000);
        let result = self.dispatch_http_call(
            cluster,
            vec![
                (":method", "GET"),
                (":path", "/callout"),
                (":authority", cluster),
            ],
            None,
            vec![],
            Duration::from_millis(timeout),
        );
        match result {
            Ok(_) => Action::Pause,
            Err(status) => {
                self.log(&format!("dispatch failed {status:?}"));
                Action::Continue
            }
        }
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, _token: u32, headers: usize, body: usize, trailers: usize) {
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "none".into());
        let names: Vec<String> = self
            .get_http_call_response_headers()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "date" && k != "x-envoy-upstream-service-time")
            .collect();
        let text = self
            .get_http_call_response_body(0, body)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        self.log(&format!(
            "cb on_http_call_response headers={headers} body={body} trailers={trailers} status={status} names={} body={text:?}",
            names.join(",")
        ));
        self.resume_http_request();
    }

    fn on_done(&mut self) -> bool {
        self.log("cb on_done");
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        self.ops = self
            .get_http_request_header("x-fid-op")
            .map(|o| o.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        self.log(&format!("cb on_request_headers eos={eos}"));
        if self.has("reply") {
            let status = self
                .get_http_request_header("x-fid-status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(403);
            let body = self.get_http_request_header("x-fid-body");
            self.send_http_response(
                status,
                vec![("x-fid-a", "1"), ("x-fid-b", "2")],
                body.as_deref().map(str::as_bytes),
            );
            return Action::Pause;
        }
        if self.has("replace") {
            self.set_http_request_header("x-fid-target", Some("new"));
            self.log(&format!("names {}", self.names()));
        }
        if self.has("empty") {
            let header = self.get_http_request_header("x-fid-empty");
            let query = self.get_property(vec!["request", "query"]);
            self.log(&format!("empty header={header:?} query={query:?}"));
        }
        if self.has("bytes") {
            let value = self.get_http_request_header_bytes("x-fid-bin");
            self.log(&format!(
                "bin {}",
                value.as_deref().map_or_else(|| "none".to_owned(), hex)
            ));
            self.add_http_request_header_bytes("x-fid-bin-copy", &value.unwrap_or_default());
            self.set_http_request_header_bytes("x-fid-bin-set", Some(b"\xfe\x80set"));
            let mut map = self.get_http_request_headers_bytes();
            self.log(&format!(
                "map {}",
                map.iter()
                    .filter(|(k, _)| k.starts_with("x-fid-bin"))
                    .map(|(k, v)| format!("{k}={}", hex(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            map.push(("x-fid-bin-map".to_owned(), b"\xc0\xff".to_vec()));
            self.set_http_request_headers_bytes(
                map.iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect(),
            );
        }
        if self.has("globals") {
            self.log(&format!(
                "globals roots={} streams={}",
                ROOTS.load(Ordering::Relaxed),
                STREAMS.load(Ordering::Relaxed)
            ));
        }
        if self.has("shared") {
            let set = self.set_shared_data("fidelity", Some(b"v1"), None);
            let (value, cas) = self.get_shared_data("fidelity");
            self.log(&format!(
                "shared set={set:?} value={:?} cas_some={}",
                value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                cas.is_some()
            ));
        }
        for (op, cluster) in [
            ("callout", "upstream"),
            ("callout-hang", "hang"),
            ("callout-fail", "nowhere"),
        ] {
            if self.has(op) {
                return self.callout(cluster);
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        self.log(&format!("cb on_request_body size={size} eos={eos}"));
        if self.has("bytes") && size > 0 {
            let body = self.get_http_request_body(0, size).unwrap_or_default();
            self.log(&format!("request body {}", hex(&body)));
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        self.log(&format!("cb on_request_trailers n={n}"));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, eos: bool) -> Action {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.log(&format!("cb on_response_headers eos={eos} status={status}"));
        if self.has("bytes") {
            let up = self.get_http_response_header_bytes("x-up-bin");
            self.log(&format!(
                "up bin {}",
                up.as_deref().map_or_else(|| "none".to_owned(), hex)
            ));
            self.add_http_response_header_bytes("x-fid-bin-resp", b"\xe9t\xe9");
        }
        if self.has("rewrite") {
            self.set_http_response_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        self.log(&format!("cb on_response_body size={size} eos={eos}"));
        if self.has("bytes") && size > 0 {
            let body = self.get_http_response_body(0, size).unwrap_or_default();
            self.log(&format!("response body {}", hex(&body)));
        }
        if self.has("trap-response-body") && !self.trapped {
            self.trapped = true;
            #[expect(clippy::panic, reason = "the trap is what this op tests")]
            {
                panic!("trap requested");
            }
        }
        if self.has("rewrite") {
            if !eos {
                return Action::Pause;
            }
            self.set_http_response_body(0, size, b"rewritten");
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        self.log(&format!("cb on_response_trailers n={n}"));
        Action::Continue
    }

    fn on_log(&mut self) {
        self.log("cb on_log");
    }
}
