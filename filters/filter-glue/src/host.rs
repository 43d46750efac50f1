//! Host reads and writes that never abort the VM on what a client sent.
//!
//! The SDK's `String` getters (`get_http_request_header`,
//! `get_http_request_headers`) `unwrap` a UTF-8 conversion of the value, and
//! its trait methods `unwrap` every host status: one request with a header
//! value such as `\xff` aborts the VM, and with it every later request on
//! that worker. Everything here reads bytes through `hostcalls` and turns a
//! host error into "absent".
//!
//! What remains in the SDK, and why it is safe: `hostcalls::get_map_bytes`
//! still converts header *names* with `String::from_utf8(..).unwrap()`;
//! Envoy's HTTP/1 and HTTP/2 codecs refuse a request whose header names are
//! not tokens (tested in `tests/all/adversarial.rs`), so a name reaching a
//! filter is ASCII. `hostcalls::set_property` and the header-map setters
//! panic on a status other than `Ok`, which Envoy returns only for a
//! read-only filter-state object of the same name (an operator's
//! misconfiguration, not a client's doing) or outside a stream.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, MetricType};

/// The value of request header `name` (the first, if repeated), as bytes.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// Every request header, pseudo-headers included, in order; values as
/// bytes.
pub fn request_headers() -> Vec<(String, Vec<u8>)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
}

/// Replaces (or, with `None`, removes every value of) request header `name`.
pub fn set_request_header(name: &str, value: Option<&[u8]>) {
    hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value).ok();
}

/// The property at `path`, as the raw bytes the host encoded.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// Whether the property at `path` is a boolean `true`: exactly one byte,
/// `1`. Anything else, absence included, is `false`.
pub fn property_is_true(path: &[&str]) -> bool {
    matches!(property(path).as_deref(), Some([1]))
}

/// Whether the host would keep a log line at `level`, so that a line
/// nobody reads is never formatted (Istio's sidecars log at `warning`, and
/// the allow lines are at `info`). A host that will not say is asked to log:
/// a line too many, never a decision record lost.
pub fn log_enabled(level: LogLevel) -> bool {
    fn rank(l: LogLevel) -> u8 {
        match l {
            LogLevel::Trace => 0,
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
            LogLevel::Critical => 5,
        }
    }
    hostcalls::get_log_level().map_or(true, |host| rank(host) <= rank(level))
}

/// Writes a log line; a host that refuses it is ignored.
pub fn log(level: LogLevel, message: &str) {
    hostcalls::log(level, message).ok();
}

/// Defines a counter.
pub fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

/// Adds one to counter `id`.
pub fn increment(id: u32) {
    hostcalls::increment_metric(id, 1).ok();
}

/// Answers the request locally. A host that refuses (the stream is already
/// gone) leaves nothing to answer.
pub fn reply(status: u32, headers: &[(&str, &str)], body: &[u8]) {
    hostcalls::send_http_response(status, headers.to_vec(), Some(body)).ok();
}

/// The host's clock; the Unix epoch if the host will not say, which makes
/// every certificate and token look not yet valid: a denial, never an
/// allow.
pub fn now() -> std::time::SystemTime {
    hostcalls::get_current_time().unwrap_or(std::time::UNIX_EPOCH)
}
