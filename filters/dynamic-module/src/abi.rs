//! The C ABI between Envoy and this module, and every `unsafe` block of the
//! crate.
//!
//! The declarations are the part of Envoy's dynamic-module ABI
//! (`source/extensions/dynamic_modules/abi/abi.h` in Envoy's repository)
//! that meshward uses, written here from the header's documentation: event
//! hooks the module exports (`envoy_dynamic_module_on_*`) and callbacks
//! Envoy exports for the module (`envoy_dynamic_module_callback_*`,
//! resolved from the Envoy binary when it `dlopen`s the module). Envoy
//! resolves some HTTP hooks as required, so every HTTP-filter hook of
//! Envoy 1.40 is exported; the ones meshward has no use for do nothing.
//!
//! Rules kept here: no panic crosses into Envoy (each hook that runs
//! meshward code catches it; a request hook then answers 503
//! `filter_error`); pointers Envoy hands over are read only within the hook
//! that received them; what the module hands Envoy is borrowed for the
//! length of the call.

#![allow(
    unsafe_code,
    reason = "the C ABI with Envoy: declarations, exported hooks and the reads of Envoy's buffers"
)]

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use crate::chain::ChainConfig;
use crate::outcome::{Level, Reply};
use crate::stream::{self, Action, Connection, Host};

// ---------------------------------------------------------------- types

/// Bytes owned by Envoy (`envoy_dynamic_module_type_envoy_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

/// Bytes owned by the module (`envoy_dynamic_module_type_module_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// The null buffer: "no value" (a header to remove).
    fn null() -> Self {
        Self {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

/// A header owned by Envoy (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
pub struct ModuleHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// C enums are `int`-sized; each value below is its enumerator's position
/// in the header.
type CEnum = u32;

/// `envoy_dynamic_module_type_http_header_type_RequestHeader`.
const REQUEST_HEADER: CEnum = 0;

/// `envoy_dynamic_module_type_attribute_id_*`.
mod attribute {
    use super::CEnum;
    pub(super) const SOURCE_ADDRESS: CEnum = 24;
    pub(super) const SOURCE_PORT: CEnum = 25;
    pub(super) const DESTINATION_PORT: CEnum = 27;
    pub(super) const CONNECTION_MTLS: CEnum = 29;
    pub(super) const CONNECTION_REQUESTED_SERVER_NAME: CEnum = 30;
    pub(super) const CONNECTION_URI_SAN_PEER_CERTIFICATE: CEnum = 37;
}

/// `envoy_dynamic_module_type_log_level_*`.
fn log_level(level: Level) -> CEnum {
    match level {
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

/// `..._request_headers_status_Continue` and `_StopIteration`; the other
/// status enums also have `Continue` as 0.
const CONTINUE: CEnum = 0;
const STOP_ITERATION: CEnum = 1;

type ConfigEnvoyPtr = *mut c_void;
type ConfigModulePtr = *const c_void;
type FilterEnvoyPtr = *mut c_void;
type FilterModulePtr = *const c_void;

// ------------------------------------------------------------- callbacks

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: CEnum, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: CEnum) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: CEnum,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: CEnum,
        result: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: CEnum,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        id: CEnum,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        id: CEnum,
        result: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
        filter: FilterEnvoyPtr,
        id: CEnum,
        result: *mut bool,
    ) -> bool;
}

/// A copy of `length` bytes at `ptr`, or nothing for a null pointer.
///
/// # Safety
/// `ptr` is null or valid for reads of `length` bytes.
unsafe fn copy(ptr: *const c_char, length: usize) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null, and valid for `length` bytes by the caller's promise.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), length) }.to_vec())
}

fn log(level: Level, line: &str) {
    // SAFETY: the message is borrowed for the call only; Envoy copies it.
    unsafe {
        envoy_dynamic_module_callback_log(log_level(level), ModuleBuffer::of(line.as_bytes()))
    }
}

fn log_enabled(level: Level) -> bool {
    // SAFETY: a plain query with a valid enumerator.
    unsafe { envoy_dynamic_module_callback_log_enabled(log_level(level)) }
}

// ------------------------------------------------------------------ host

/// Envoy, as the filter of one stream sees it (valid within one hook).
struct Envoy(FilterEnvoyPtr);

impl Envoy {
    fn attribute_string(&self, id: CEnum) -> Option<Vec<u8>> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: `self.0` is the stream's filter pointer, valid during the
        // hook; `out` is a valid place for Envoy to write the buffer.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self.0, id, &mut out)
        };
        // SAFETY: on success Envoy wrote a buffer it owns that stays valid
        // until the hook returns; it is copied at once.
        ok.then(|| unsafe { copy(out.ptr, out.length) }).flatten()
    }

    fn attribute_int(&self, id: CEnum) -> Option<u64> {
        let mut out = 0u64;
        // SAFETY: as above; `out` is a valid `u64` place.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(self.0, id, &mut out)
        };
        ok.then_some(out)
    }

    fn attribute_bool(&self, id: CEnum) -> Option<bool> {
        let mut out = false;
        // SAFETY: as above; `out` is a valid `bool` place.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_bool(self.0, id, &mut out)
        };
        ok.then_some(out)
    }
}

impl Host for Envoy {
    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        // SAFETY: the stream's filter pointer, valid during the hook.
        let size =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, REQUEST_HEADER) };
        let empty = EnvoyHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut raw = vec![empty; size];
        // SAFETY: `raw` has room for the `size` headers Envoy just counted,
        // and nothing changes the map in between (one worker thread runs
        // this stream).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.0, REQUEST_HEADER, raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        raw.iter()
            .filter_map(|h| {
                // SAFETY: Envoy filled each entry with buffers of its header
                // map, valid until the hook returns or a header is set; they
                // are copied before either.
                let (key, value) = unsafe {
                    (
                        copy(h.key_ptr, h.key_length)?,
                        copy(h.value_ptr, h.value_length).unwrap_or_default(),
                    )
                };
                // Envoy's codecs admit only token header names, so this is
                // ASCII; a lossy reading could not change one.
                Some((String::from_utf8_lossy(&key).into_owned(), value))
            })
            .collect()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        let value = value.map_or_else(ModuleBuffer::null, ModuleBuffer::of);
        // SAFETY: the filter pointer is valid during the hook; key and value
        // are borrowed for the call, and Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                value,
            );
        }
    }

    fn connection(&self) -> Connection {
        Connection {
            mtls: self.attribute_bool(attribute::CONNECTION_MTLS),
            uri_san: self.attribute_string(attribute::CONNECTION_URI_SAN_PEER_CERTIFICATE),
            source_address: self.attribute_string(attribute::SOURCE_ADDRESS),
            source_port: self.attribute_int(attribute::SOURCE_PORT),
            destination_port: self.attribute_int(attribute::DESTINATION_PORT),
            requested_server_name: self
                .attribute_string(attribute::CONNECTION_REQUESTED_SERVER_NAME),
        }
    }

    fn log_enabled(&self, level: Level) -> bool {
        log_enabled(level)
    }

    fn log(&self, level: Level, line: &str) {
        log(level, line);
    }

    fn reply(&self, reply: &Reply) {
        send(self.0, reply);
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

fn send(filter: FilterEnvoyPtr, reply: &Reply) {
    let mut headers: Vec<ModuleHeader> = reply
        .headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect();
    // SAFETY: the filter pointer is valid during the hook; the header array
    // and the body are borrowed for the call, and Envoy copies them.
    unsafe {
        envoy_dynamic_module_callback_http_send_response(
            filter,
            reply.status,
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(reply.body.as_bytes()),
            ModuleBuffer::of(b"meshward"),
        );
    }
}

// ----------------------------------------------------------- event hooks

/// The ABI version this module declares: Envoy 1.40's. The declarations
/// above were written from the newest public header found (`v0.1.0`), whose
/// HTTP-filter part Envoy keeps compatible in the next minor version, and
/// were checked in Envoy 1.40 by `tests/all/dynamic_module.rs`.
static ABI_VERSION: &CStr = c"v0.2.0";

/// Called once when Envoy loads the module; the ABI version it returns is
/// compared with Envoy's own (a mismatch loads with a warning).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr()
}

/// A filter configuration: parsed once, shared by every stream. A refused
/// configuration (or a panic) returns null, and Envoy rejects the filter.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ConfigModulePtr {
    let loaded = catch_unwind(|| {
        // SAFETY: Envoy's buffers are valid during this hook; copied at once.
        let (name, config) = unsafe {
            (
                copy(name.ptr, name.length).unwrap_or_default(),
                copy(config.ptr, config.length).unwrap_or_default(),
            )
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        ChainConfig::from_json(&name, &config)
    });
    match loaded {
        Ok(Ok(config)) => Box::into_raw(Box::new(config)).cast_const().cast(),
        Ok(Err(e)) => {
            log(
                Level::Error,
                &format!("meshward: configuration refused: {e}"),
            );
            std::ptr::null()
        }
        Err(_) => {
            log(Level::Error, "meshward: reading the configuration failed");
            std::ptr::null()
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ConfigModulePtr) {
    if !config.is_null() {
        // SAFETY: `config` came from `Box::into_raw` in `config_new`, and
        // Envoy destroys each configuration once, after its last stream.
        drop(unsafe { Box::from_raw(config.cast_mut().cast::<ChainConfig>()) });
    }
}

/// Per-route configuration is not offered: refusing it (null) makes Envoy
/// reject a route that tries, rather than ignore it.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    std::ptr::null()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

/// A stream's filter: it only needs its configuration, so the module
/// pointer is the configuration pointer itself (nothing to allocate or free
/// per stream).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ConfigModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    config
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: FilterEnvoyPtr,
    filter_module: FilterModulePtr,
    _end_of_stream: bool,
) -> CEnum {
    if filter_module.is_null() {
        send(filter_envoy, &Reply::filter_error());
        return STOP_ITERATION;
    }
    // SAFETY: the pointer is a live `ChainConfig` from `config_new`: Envoy
    // keeps a configuration until its streams are gone.
    let config = unsafe { &*filter_module.cast::<ChainConfig>() };
    let host = Envoy(filter_envoy);
    match catch_unwind(AssertUnwindSafe(|| {
        stream::on_request_headers(config, &host)
    })) {
        Ok(Action::Continue) => CONTINUE,
        Ok(Action::Stop) => STOP_ITERATION,
        Err(_) => {
            // A panic is a failure of the filter, never an allow.
            log(
                Level::Error,
                "meshward: the filter failed on a request; denied",
            );
            send(filter_envoy, &Reply::filter_error());
            STOP_ITERATION
        }
    }
}

// The hooks below run no meshward code (nothing in them can panic): the
// module's work is done on the request headers.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _end_of_stream: bool,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _end_of_stream: bool,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _end_of_stream: bool,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_m: FilterModulePtr) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _status: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> CEnum {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _event: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _event: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}

// Callouts and streams: meshward starts none, so Envoy never calls these.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _result: CEnum,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _trailers: *mut EnvoyHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _f: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _reason: CEnum,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _result: CEnum,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _trailers: *mut EnvoyHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _c: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _reason: CEnum,
) {
}
