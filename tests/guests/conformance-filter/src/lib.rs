//! A proxy-wasm filter that exercises every host call, to test hosts against each other.
//!
//! The request path picks what it does (`/op/<name>`); it reports what the
//! host returned in request headers named `x-conf-*` (which the upstream
//! sees), in logs and in metrics, so a test can compare two hosts (the
//! harness and Envoy) on the same requests; `/op/props-raw` reports the raw
//! bytes (hex) of each property named in the `x-conf-props` request header.
//! The plugin configuration is a list of words: `reject` makes `proxy_on_configure` fail, `tick` starts a
//! 1 s timer, `defer-done` makes the root context finish later through
//! `proxy_done`.

mod raw;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

const QUEUE: &str = "conformance_queue";
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Default)]
struct Metrics {
    requests: u32,
    gauge: u32,
    histogram: u32,
    ticks: u32,
}

#[derive(Default)]
struct Root {
    config: String,
    vm_id: String,
    metrics: Metrics,
    defer_done: bool,
    done_pending: bool,
}

fn log(level: LogLevel, message: &str) {
    // Logging never fails in a conforming host; nothing useful to do if it does.
    let _ = hostcalls::log(level, message);
}

fn text(bytes: Option<Vec<u8>>) -> String {
    bytes.map_or_else(
        || "none".to_owned(),
        |b| String::from_utf8_lossy(&b).into_owned(),
    )
}

fn hex(bytes: Option<Vec<u8>>) -> String {
    bytes.map_or_else(
        || "none".to_owned(),
        |b| b.iter().map(|x| format!("{x:02x}")).collect(),
    )
}

fn define(kind: MetricType, name: &str) -> u32 {
    hostcalls::define_metric(kind, name).unwrap_or(0)
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        if self.defer_done {
            self.done_pending = true;
            let _ = hostcalls::set_tick_period(Duration::from_millis(10));
            log(LogLevel::Info, "root done deferred");
            return false;
        }
        true
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::VmConfiguration, 0, size);
        log(
            LogLevel::Info,
            &format!("vm_start config={}", text(config.ok().flatten())),
        );
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size);
        self.config = text(config.ok().flatten());
        let status = raw::buffer_status(BufferType::PluginConfiguration);
        log(
            LogLevel::Info,
            &format!(
                "configure config={} size={size} buffer_status={status:?}",
                self.config
            ),
        );
        if self.config.split_whitespace().any(|w| w == "reject") {
            log(LogLevel::Error, "configuration rejected");
            return false;
        }
        self.vm_id = text(hostcalls::get_property(vec!["plugin_vm_id"]).ok().flatten());
        self.metrics = Metrics {
            requests: define(MetricType::Counter, "conformance_requests"),
            gauge: define(MetricType::Gauge, "conformance_gauge"),
            histogram: define(MetricType::Histogram, "conformance_histogram"),
            ticks: define(MetricType::Counter, "conformance_ticks"),
        };
        let queue = hostcalls::register_shared_queue(QUEUE);
        let level = hostcalls::get_log_level();
        log(
            LogLevel::Info,
            &format!("queue={queue:?} log_level={level:?}"),
        );
        self.defer_done = self.config.split_whitespace().any(|w| w == "defer-done");
        if self.config.split_whitespace().any(|w| w == "tick") {
            let _ = hostcalls::set_tick_period(Duration::from_secs(1));
        }
        true
    }

    fn on_tick(&mut self) {
        let _ = hostcalls::increment_metric(self.metrics.ticks, 1);
        if self.done_pending {
            self.done_pending = false;
            let _ = hostcalls::set_tick_period(Duration::ZERO);
            let done = hostcalls::done();
            log(LogLevel::Info, &format!("proxy_done={done:?}"));
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let item = hostcalls::dequeue_shared_queue(queue_id);
        let again = hostcalls::dequeue_shared_queue(queue_id);
        log(
            LogLevel::Info,
            &format!(
                "queue_ready item={} again={again:?}",
                text(item.ok().flatten())
            ),
        );
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            id: context_id,
            op: String::new(),
            metrics: self.metrics,
            vm_id: self.vm_id.clone(),
            grpc: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    id: u32,
    op: String,
    metrics: Metrics,
    vm_id: String,
    grpc: Vec<String>,
}

impl Http {
    fn report(&self, name: &str, value: &str) {
        self.add_http_request_header(&format!("x-conf-{name}"), value);
    }

    fn callout(&self, upstream: &str) -> Result<u32, proxy_wasm::types::Status> {
        self.dispatch_http_call(
            upstream,
            vec![
                (":method", "GET"),
                (":path", "/check"),
                (":authority", "auth"),
            ],
            Some(b"callout body"),
            vec![("x-callout-trailer", "1")],
            CALL_TIMEOUT,
        )
    }

    fn basic(&self) {
        let seen = self.get_http_request_header("x-in");
        self.report("in", seen.as_deref().unwrap_or("none"));
        self.add_http_request_header("x-added", "1");
        self.set_http_request_header("x-replace", Some("new"));
        self.set_http_request_header("x-remove", None);
        let size = raw::header_map_size(MapType::HttpRequestHeaders);
        self.report("map-size", &format!("{size:?}"));
        let trailers = raw::header_map_size(MapType::HttpRequestTrailers);
        self.report("trailers-size", &format!("{trailers:?}"));
        let count = self.get_http_request_headers().len();
        self.report("count", &count.to_string());
    }

    fn properties(&self) {
        for (name, path) in [
            ("plugin-name", vec!["plugin_name"]),
            ("plugin-root-id", vec!["plugin_root_id"]),
            ("peer", vec!["connection", "uri_san_peer_certificate"]),
            ("source", vec!["source", "address"]),
            ("path", vec!["request", "path"]),
            ("namespace", vec!["node", "metadata", "NAMESPACE"]),
        ] {
            self.report(&format!("p-{name}"), &text(self.get_property(path)));
        }
        self.report(
            "p-mtls",
            &hex(self.get_property(vec!["connection", "mtls"])),
        );
        self.report("p-port", &hex(self.get_property(vec!["source", "port"])));
        self.report("p-missing", &text(self.get_property(vec!["no", "such"])));
        let set = hostcalls::set_property(vec!["conformance", "key"], Some(b"stored"));
        self.report("p-set", &format!("{set:?}"));
        self.report(
            "p-get-set",
            &text(self.get_property(vec!["conformance", "key"])),
        );
    }

    /// Reports the raw bytes (hex) of every property named in the
    /// `x-conf-props` request header (dotted names, comma-separated), in a
    /// header and a log line each, so two hosts' encodings can be compared
    /// byte for byte.
    fn raw_properties(&self) {
        let names = self
            .get_http_request_header("x-conf-props")
            .unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let value = hex(self.get_property(name.split('.').collect()));
            log(LogLevel::Info, &format!("property {name} {value}"));
            self.report(&format!("raw-{}", name.replace(['.', '_'], "-")), &value);
        }
    }

    fn environment(&self) {
        for (level, name) in [
            (LogLevel::Trace, "trace"),
            (LogLevel::Debug, "debug"),
            (LogLevel::Info, "info"),
            (LogLevel::Warn, "warn"),
            (LogLevel::Error, "error"),
            (LogLevel::Critical, "critical"),
        ] {
            log(level, &format!("level {name}"));
        }
        println!("stdout line");
        eprintln!("stderr line");
        let level = hostcalls::get_log_level();
        self.report("log-level", &format!("{level:?}"));
        let env = std::env::var("CONFORMANCE_ENV").unwrap_or_else(|_| "unset".into());
        self.report("env", &env);
        self.report("args", &std::env::args().count().to_string());
        let proxy_now = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        self.report("time-proxy", &proxy_now.to_string());
        let wasi_now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.report("time-wasi", &wasi_now.to_string());
        let monotonic = std::time::Instant::now();
        self.report("monotonic", &format!("{}", monotonic.elapsed().as_secs()));
        // A fresh RandomState draws its keys with `random_get`.
        let hash = RandomState::new().hash_one("x");
        self.report("random", if hash == 0 { "zero" } else { "ok" });
    }

    fn shared(&self) {
        let before = self.get_shared_data("conformance_key");
        self.report("shared-before", &format!("{:?}", before.1));
        let first = self.set_shared_data("conformance_key", Some(b"v1"), None);
        let (value, cas) = self.get_shared_data("conformance_key");
        let second = self.set_shared_data("conformance_key", Some(b"v2"), cas);
        let stale = self.set_shared_data("conformance_key", Some(b"v3"), cas);
        let (after, _) = self.get_shared_data("conformance_key");
        self.report(
            "shared",
            &format!(
                "{first:?} {} {second:?} {stale:?} {}",
                text(value),
                text(after)
            ),
        );
    }

    fn queue(&self) {
        let id = hostcalls::resolve_shared_queue(&self.vm_id, QUEUE);
        let missing = hostcalls::resolve_shared_queue(&self.vm_id, "no_such_queue");
        let enqueued = id
            .ok()
            .flatten()
            .map(|q| hostcalls::enqueue_shared_queue(q, Some(b"item")));
        let unknown = hostcalls::enqueue_shared_queue(9999, Some(b"x"));
        self.report(
            "queue",
            &format!(
                "{:?} {missing:?} {enqueued:?} {unknown:?}",
                id.map(|q| q.is_some())
            ),
        );
    }

    fn metrics(&self) {
        let m = self.metrics;
        let inc = hostcalls::increment_metric(m.requests, 1);
        let _ = hostcalls::increment_metric(m.gauge, 5);
        let _ = hostcalls::increment_metric(m.gauge, -2);
        let rec = hostcalls::record_metric(m.histogram, 42);
        let value = hostcalls::get_metric(m.requests);
        let gauge = hostcalls::get_metric(m.gauge);
        let negative = hostcalls::increment_metric(m.requests, -1);
        let histogram = hostcalls::get_metric(m.histogram);
        let unknown = hostcalls::get_metric(9999);
        self.report(
            "metrics",
            &format!("{inc:?} {rec:?} {value:?} {gauge:?} {negative:?} {histogram:?} {unknown:?}"),
        );
    }

    fn grpc_stop(&self) {
        let call = self.dispatch_grpc_call(
            "grpc",
            "conformance.Service",
            "Unary",
            vec![],
            Some(b"cancel me"),
            CALL_TIMEOUT,
        );
        let cancel = call.map(hostcalls::cancel_grpc_call);
        let stream = self.open_grpc_stream("grpc", "conformance.Service", "Stream", vec![]);
        let close = stream.map(hostcalls::close_grpc_stream);
        let unknown = hostcalls::cancel_grpc_call(9999);
        self.report("grpc-stop", &format!("{cancel:?} {close:?} {unknown:?}"));
    }
}

impl Context for Http {
    fn on_http_call_response(&mut self, _token: u32, headers: usize, body: usize, trailers: usize) {
        let status = hostcalls::get_grpc_status();
        if self.op == "pause-response" {
            let code = self.get_http_call_response_header(":status");
            self.add_http_response_header("x-conf-callout", code.as_deref().unwrap_or("none"));
            self.resume_http_response();
            return;
        }
        if headers == 0 {
            self.send_http_response(
                503,
                vec![
                    ("x-conf-callout", "failed"),
                    ("x-conf-status", &format!("{status:?}")),
                ],
                Some(b"callout failed"),
            );
            return;
        }
        let code = self.get_http_call_response_header(":status");
        let bytes = self.get_http_call_response_body(0, body);
        let trailer_count = self.get_http_call_response_trailers().len();
        if code.as_deref() == Some("200") {
            self.report("callout-body", &text(bytes));
            self.report("callout-trailers", &format!("{trailers} {trailer_count}"));
            self.report("callout-status", &format!("{status:?}"));
            self.resume_http_request();
        } else {
            self.send_http_response(403, vec![("x-conf-callout", "denied")], Some(b"denied"));
        }
    }

    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        let body = self.get_grpc_call_response_body(0, size);
        let grpc_status = hostcalls::get_grpc_status();
        self.report("grpc", &format!("{status} {} {grpc_status:?}", text(body)));
        self.resume_http_request();
    }

    fn on_grpc_stream_initial_metadata(&mut self, _token: u32, count: u32) {
        let md = self.get_grpc_stream_initial_metadata();
        self.grpc.push(format!("initial:{count}:{}", md.len()));
    }

    fn on_grpc_stream_message(&mut self, _token: u32, size: usize) {
        let message = self.get_grpc_stream_message(0, size);
        self.grpc.push(format!("message:{}", text(message)));
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token: u32, count: u32) {
        let md = self.get_grpc_stream_trailing_metadata();
        self.grpc.push(format!("trailing:{count}:{}", md.len()));
    }

    fn on_grpc_stream_close(&mut self, _token: u32, status: u32) {
        let grpc_status = hostcalls::get_grpc_status();
        self.grpc.push(format!("close:{status}:{grpc_status:?}"));
        self.report("grpc-stream", &self.grpc.join(" "));
        self.resume_http_request();
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, count: usize, end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        self.op = path
            .strip_prefix("/op/")
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_owned();
        self.report("context", &format!("{} {count} {end_of_stream}", self.id));
        let _ = hostcalls::increment_metric(self.metrics.requests, 1);
        match self.op.as_str() {
            "basic" => self.basic(),
            "pairs" => {
                let mut pairs = self.get_http_request_headers();
                pairs.retain(|(k, _)| k != "x-drop");
                pairs.push(("x-set-pairs".into(), "1".into()));
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.set_http_request_headers(refs);
            }
            "props" => self.properties(),
            "props-raw" => self.raw_properties(),
            "env" => self.environment(),
            "shared" => self.shared(),
            "queue" => self.queue(),
            "metrics" => self.metrics(),
            "grpc-stop" => self.grpc_stop(),
            "reply" => {
                self.send_http_response(418, vec![("x-conf-reply", "1")], Some(b"teapot"));
                return Action::Pause;
            }
            "reply-continue" => {
                // The reply wins although the callback returns Continue.
                self.send_http_response(401, vec![], None);
                return Action::Continue;
            }
            // The body is held by its own callback: Envoy (proxy-wasm-cpp-host)
            // turns a paused headers callback into StopAllIteration, so no
            // body callback would come while the headers are held.
            "trailers-hold" => return Action::Pause,
            "callout" | "callout-fail" | "callout-deny" | "callout-pending" => {
                let upstream = match self.op.as_str() {
                    "callout" => "auth",
                    "callout-fail" => "broken",
                    "callout-deny" => "deny",
                    _ => "slow",
                };
                return match self.callout(upstream) {
                    Ok(_) => Action::Pause,
                    Err(status) => {
                        self.report("callout-error", &format!("{status:?}"));
                        Action::Continue
                    }
                };
            }
            "callout-unknown" => {
                let err = self.callout("no_such_cluster");
                self.report("callout-error", &format!("{err:?}"));
            }
            "grpc" | "grpc-fail" => {
                let call = self.dispatch_grpc_call(
                    if self.op == "grpc" {
                        "grpc"
                    } else {
                        "grpc-fail"
                    },
                    "conformance.Service",
                    "Unary",
                    vec![("x-md", b"1".as_slice())],
                    Some(b"ping"),
                    CALL_TIMEOUT,
                );
                if call.is_ok() {
                    return Action::Pause;
                }
                self.report("grpc-error", &format!("{call:?}"));
            }
            "grpc-unknown" => {
                let call = self.dispatch_grpc_call(
                    "no_such_cluster",
                    "conformance.Service",
                    "Unary",
                    vec![],
                    None,
                    CALL_TIMEOUT,
                );
                self.report("grpc-error", &format!("{call:?}"));
            }
            "grpc-stream" => {
                if let Ok(token) = self.open_grpc_stream(
                    "grpc",
                    "conformance.Service",
                    "Stream",
                    vec![("x-md", b"1".as_slice())],
                ) {
                    self.send_grpc_stream_message(token, Some(b"one"), false);
                    self.send_grpc_stream_message(token, Some(b"two"), true);
                    return Action::Pause;
                }
            }
            "foreign" => {
                let echo = hostcalls::call_foreign_function("echo", Some(b"abc"));
                let missing = hostcalls::call_foreign_function("missing", None);
                self.report(
                    "foreign",
                    &format!("{} {missing:?}", text(echo.ok().flatten())),
                );
            }
            "effective" => {
                let bad = hostcalls::set_effective_context(999_999);
                let good = hostcalls::set_effective_context(self.id);
                self.report("effective", &format!("{bad:?} {good:?}"));
            }
            "close" => {
                self.reset_http_request();
                return Action::Pause;
            }
            "exit" => std::process::exit(7),
            "trap" => trap(),
            "spin" => loop {
                std::hint::spin_loop();
            },
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    if hoard.len() == usize::MAX {
                        break;
                    }
                }
            }
            _ => {}
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.op != "body" {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        let status = raw::buffer_status(BufferType::HttpRequestBody);
        self.report(
            "body",
            &format!("{size} {status:?} {}", String::from_utf8_lossy(&body)),
        );
        self.set_http_request_body(0, size, &body.to_ascii_uppercase());
        self.set_http_request_body(0, 0, b"<");
        self.set_http_request_body(usize::MAX >> 1, 0, b">");
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, count: usize) -> Action {
        let trailers = self.get_http_request_trailers();
        self.add_http_request_trailer("x-conf-trailer", &format!("{count} {}", trailers.len()));
        if self.op == "trailers-hold" {
            self.resume_http_request();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, count: usize, end_of_stream: bool) -> Action {
        self.add_http_response_header("x-conf-response", &format!("{count} {end_of_stream}"));
        let size = raw::header_map_size(MapType::HttpResponseHeaders);
        self.add_http_response_header("x-conf-response-size", &format!("{size:?}"));
        if self.op == "pause-response" && self.callout("auth").is_ok() {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.op != "response-body" {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, size).unwrap_or_default();
        self.set_http_response_body(0, size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, count: usize) -> Action {
        self.add_http_response_trailer("x-conf-trailer", &count.to_string());
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log(LogLevel::Info, &format!("access {path} {status}"));
    }
}

/// A wasm `unreachable` trap, the way a filter crashes under `panic =
/// "abort"`. The crate also compiles natively (workspace builds and tests),
/// where there is no wasm instruction to emit.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}
