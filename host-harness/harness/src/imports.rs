//! The functions the host provides to filters: the proxy-wasm ABI and the
//! WASI preview1 subset Envoy provides.

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use wasmtime::{Caller, Engine, IntoFunc, Linker};

use crate::abi::{self, AbiVersion, BufferType, LogLevel, MapType, Status, StreamType, errno};
use crate::callout::{GrpcCallRequest, HttpCallReply, HttpCallRequest};
use crate::http::{Headers, LocalReply};
use crate::properties::Value;
use crate::state::{Event, GrpcStream, HostState};

type C<'a> = Caller<'a, HostState>;

/// A host call either answers with a status or must trap (the guest
/// allocator failed while the host returned data).
enum Fault {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fault {
    fn from(s: Status) -> Self {
        Self::Status(s)
    }
}

type R = Result<(), Fault>;

fn ret(r: R) -> wasmtime::Result<i32> {
    match r {
        Ok(()) => Ok(Status::Ok.code()),
        Err(Fault::Status(s)) => Ok(s.code()),
        Err(Fault::Trap(e)) => Err(e),
    }
}

/// The guest's `proc_exit`, carried as a trap.
#[derive(Debug, thiserror::Error)]
#[error("guest called `proc_exit({0})`")]
pub(crate) struct ProcExit(pub(crate) i32);

// Guest pointers and sizes are u32 in wasm32; wasmtime passes them as i32.
fn addr(v: i32) -> usize {
    v as u32 as usize
}

fn read(c: &C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = addr(ptr);
    let end = start
        .checked_add(addr(len))
        .ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data(c)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

fn read_string(c: &C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    memory
        .write(&mut *c, addr(ptr), bytes)
        .map_err(|_| Status::InvalidMemoryAccess)
}

fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Copies `bytes` into memory the guest allocates, and writes the pointer
/// and size where the guest asked, as Envoy does for every returned value.
fn copy_out(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    let alloc = c.data().alloc.clone().ok_or(Status::InvalidMemoryAccess)?;
    let size = i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let ptr = alloc.call(&mut *c, size).map_err(Fault::Trap)?;
    if ptr == 0 && !bytes.is_empty() {
        return Err(Status::InvalidMemoryAccess.into());
    }
    write(c, ptr, bytes)?;
    write_u32(c, ptr_ptr, ptr as u32)?;
    write_u32(c, size_ptr, len_u32(bytes.len()))?;
    Ok(())
}

fn decode_headers(bytes: &[u8]) -> Result<Headers, Status> {
    let pairs = abi::decode_pairs(bytes).ok_or(Status::BadArgument)?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

/// Collects the linker and the names it defines, so a missing import can
/// be reported by name before wasmtime sees the module.
pub(crate) struct Imports {
    pub(crate) linker: Linker<HostState>,
    pub(crate) names: HashSet<(String, String)>,
}

impl Imports {
    fn def<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<HostState, Params, Args> + Clone,
    ) -> wasmtime::Result<()> {
        self.linker.func_wrap(module, name, f)?;
        self.names.insert((module.to_owned(), name.to_owned()));
        Ok(())
    }

    fn wasi<Params, Args>(
        &mut self,
        name: &str,
        f: impl IntoFunc<HostState, Params, Args> + Clone,
    ) -> wasmtime::Result<()> {
        // Envoy serves the same functions under both WASI module names.
        self.def("wasi_snapshot_preview1", name, f.clone())?;
        self.def("wasi_unstable", name, f)
    }
}

pub(crate) fn build(engine: &Engine, abi: AbiVersion) -> wasmtime::Result<Imports> {
    let mut i = Imports {
        linker: Linker::new(engine),
        names: HashSet::new(),
    };
    logging(&mut i, abi)?;
    properties(&mut i)?;
    streams(&mut i)?;
    maps(&mut i)?;
    buffers(&mut i)?;
    callouts(&mut i)?;
    shared(&mut i)?;
    metrics(&mut i)?;
    contexts(&mut i)?;
    wasi(&mut i)?;
    Ok(i)
}

fn logging(i: &mut Imports, abi: AbiVersion) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| {
            ret((|| {
                let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
                let message = read_string(&c, ptr, len)?;
                c.data_mut().log(level, message);
                Ok(())
            })())
        },
    )?;
    // Envoy links `proxy_get_log_level` only for ABI 0.2.1 modules.
    if abi == AbiVersion::V0_2_1 {
        i.def("env", "proxy_get_log_level", |mut c: C<'_>, ptr: i32| {
            ret((|| {
                let level = c.data().log_level.to_abi() as u32;
                write_u32(&mut c, ptr, level)?;
                Ok(())
            })())
        })?;
    }
    i.def(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ptr: i32| {
            ret((|| {
                let now = nanos_since_epoch(&c);
                write_u64(&mut c, ptr, now)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| {
            let s = c.data_mut();
            let period = Duration::from_millis(u64::from(period as u32));
            if period.is_zero() {
                s.tick_period = None;
                s.next_tick = None;
            } else {
                s.tick_period = Some(period);
                s.next_tick = Some(s.monotonic + period);
            }
            Status::Ok.code()
        },
    )?;
    i.def("env", "pthread_equal", |a: i32, b: i32| i32::from(a == b))?;
    i.def("env", "emscripten_notify_memory_growth", |_: i32| {})?;
    Ok(())
}

fn nanos_since_epoch(c: &C<'_>) -> u64 {
    c.data()
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn properties(i: &mut Imports) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, path: i32, path_len: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let path = read(&c, path, path_len)?;
                let value = lookup_property(c.data_mut(), &path).ok_or(Status::NotFound)?;
                copy_out(&mut c, &value, ptr_ptr, size_ptr)
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, path: i32, path_len: i32, value: i32, value_len: i32| {
            ret((|| {
                let path = read(&c, path, path_len)?;
                let value = read(&c, value, value_len)?;
                let s = c.data_mut();
                let ok = match s.stream() {
                    Some(stream) => stream.properties.set_path(&path, value),
                    None => s.properties.set_path(&path, value),
                };
                if ok {
                    Ok(())
                } else {
                    Err(Status::BadArgument.into())
                }
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_get_configuration",
        |mut c: C<'_>, ptr_ptr: i32, size_ptr: i32| {
            let config = c.data().plugin_configuration.clone();
            ret(copy_out(&mut c, &config, ptr_ptr, size_ptr))
        },
    )?;
    Ok(())
}

/// Resolves a property: the stream's own first, then attributes Envoy
/// derives from the request and response, then the plugin's.
fn lookup_property(s: &mut HostState, path: &[u8]) -> Option<Vec<u8>> {
    if let Some(stream) = s.stream() {
        if let Some(v) = stream.properties.lookup(path) {
            return Some(v.encode());
        }
        if let Some(v) = derived_property(stream, path) {
            return Some(v.encode());
        }
    }
    s.properties.lookup(path).map(Value::encode)
}

fn derived_property(stream: &crate::state::StreamState, path: &[u8]) -> Option<Value> {
    let dotted: Vec<u8> = path
        .iter()
        .map(|b| if *b == 0 { b'.' } else { *b })
        .collect();
    let name = std::str::from_utf8(&dotted).ok()?;
    let req = stream.request_headers.as_deref();
    let header = |h: Option<&[(String, String)]>, k: &str| {
        h.and_then(|h| crate::http::find_header(h, k))
            .map(Value::from)
    };
    let map = |h: Option<&[(String, String)]>| {
        h.map(|h| Value::string_map(h.iter().map(|(k, v)| (k.clone(), v.clone()))))
    };
    match name {
        "request.path" => header(req, ":path"),
        "request.url_path" => req
            .and_then(|h| crate::http::find_header(h, ":path"))
            .map(|p| Value::from(p.split('?').next().unwrap_or(p))),
        // Envoy has no `request.query` when the path has no `?`.
        "request.query" => req
            .and_then(|h| crate::http::find_header(h, ":path"))
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| Value::from(q)),
        "request.method" => header(req, ":method"),
        "request.host" => header(req, ":authority"),
        "request.scheme" => header(req, ":scheme"),
        "request.id" => header(req, "x-request-id"),
        "request.useragent" => header(req, "user-agent"),
        "request.referer" => header(req, "referer"),
        "request.protocol" => req.map(|_| Value::from("HTTP/2")),
        "request.headers" => map(req),
        "response.code" => header(stream.response_headers.as_deref(), ":status")
            .and_then(|v| match v {
                Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse::<i64>().ok(),
                _ => None,
            })
            .map(Value::Int),
        "response.headers" => map(stream.response_headers.as_deref()),
        "response.trailers" => map(stream.response_trailers.as_deref()),
        _ => {
            // `request.headers.<name>` and friends index into the maps.
            let (prefix, key) = name.split_once(".headers.")?;
            match prefix {
                "request" => header(req, key),
                "response" => header(stream.response_headers.as_deref(), key),
                _ => None,
            }
        }
    }
}

fn streams(i: &mut Imports) -> wasmtime::Result<()> {
    fn resume(c: &mut C<'_>, kind: Option<StreamType>) -> i32 {
        let Some(kind) = kind else {
            return Status::BadArgument.code();
        };
        let Some(stream) = c.data_mut().stream() else {
            // A root context has no stream to resume.
            return Status::Unimplemented.code();
        };
        match kind {
            StreamType::Request => stream.resume_request = true,
            StreamType::Response => stream.resume_response = true,
            StreamType::Downstream | StreamType::Upstream => {
                return Status::Unimplemented.code();
            }
        }
        Status::Ok.code()
    }
    i.def("env", "proxy_continue_stream", |mut c: C<'_>, kind: i32| {
        resume(&mut c, StreamType::from_abi(kind))
    })?;
    i.def("env", "proxy_continue_request", |mut c: C<'_>| {
        resume(&mut c, Some(StreamType::Request))
    })?;
    i.def("env", "proxy_continue_response", |mut c: C<'_>| {
        resume(&mut c, Some(StreamType::Response))
    })?;
    i.def("env", "proxy_close_stream", |mut c: C<'_>, kind: i32| {
        let Some(kind) = StreamType::from_abi(kind) else {
            return Status::BadArgument.code();
        };
        let Some(stream) = c.data_mut().stream() else {
            return Status::Unimplemented.code();
        };
        match kind {
            StreamType::Request | StreamType::Response => {
                stream.reset = true;
                Status::Ok.code()
            }
            StreamType::Downstream | StreamType::Upstream => Status::Unimplemented.code(),
        }
    })?;
    i.def("env", "proxy_clear_route_cache", |mut c: C<'_>| {
        if let Some(stream) = c.data_mut().stream() {
            stream.route_cache_cleared = true;
        }
        Status::Ok.code()
    })?;
    i.def(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32| {
            ret((|| {
                let details = read_string(&c, details, details_len)?;
                let body = read(&c, body, body_len)?;
                let headers = decode_headers(&read(&c, headers, headers_len)?)?;
                let Some(stream) = c.data_mut().stream() else {
                    // Envoy ignores a local reply without a stream but still
                    // answers OK.
                    tracing::warn!("proxy_send_local_response outside a stream ignored");
                    return Ok(());
                };
                if stream.sending_local_reply {
                    tracing::warn!("proxy_send_local_response during a local reply ignored");
                    return Ok(());
                }
                // Deferred: the host applies it when the callback returns, and
                // the callback's own return value no longer matters.
                stream.local_reply = Some(LocalReply {
                    status: u16::try_from(status as u32).unwrap_or(u16::MAX),
                    details,
                    grpc_status,
                    headers,
                    body,
                });
                Ok(())
            })())
        },
    )?;
    Ok(())
}

/// Envoy answers `NOT_FOUND` for a map that does not exist while access
/// logs run (`proxy_on_log`), and `BAD_ARGUMENT` at any other time.
fn missing_map(s: &HostState) -> Status {
    if s.access_log {
        Status::NotFound
    } else {
        Status::BadArgument
    }
}

fn maps(i: &mut Imports) -> wasmtime::Result<()> {
    fn map_of(kind: i32) -> Result<MapType, Status> {
        MapType::from_abi(kind).ok_or(Status::BadArgument)
    }
    i.def(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let key = read_string(&c, key, key_len)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                let value = crate::http::find_header(map, &key)
                    .ok_or(Status::NotFound)?
                    .to_owned();
                copy_out(&mut c, value.as_bytes(), ptr_ptr, size_ptr)
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_add_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let key = read_string(&c, key, key_len)?.to_ascii_lowercase();
                let value = read_string(&c, value, value_len)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                map.push((key, value));
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let key = read_string(&c, key, key_len)?.to_ascii_lowercase();
                let value = read_string(&c, value, value_len)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                // Replaces the first value in place and drops the others,
                // keeping the header's position, or adds it.
                match map.iter().position(|(k, _)| *k == key) {
                    Some(first) => {
                        if let Some(entry) = map.get_mut(first) {
                            entry.1 = value;
                        }
                        let mut index = 0;
                        map.retain(|(k, _)| {
                            let keep = *k != key || index == first;
                            index += 1;
                            keep
                        });
                    }
                    None => map.push((key, value)),
                }
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let key = read_string(&c, key, key_len)?.to_ascii_lowercase();
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                map.retain(|(k, _)| *k != key);
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                let bytes = if map.is_empty() {
                    Vec::new()
                } else {
                    abi::encode_pairs(map)
                };
                copy_out(&mut c, &bytes, ptr_ptr, size_ptr)
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr: i32, len: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let pairs = decode_headers(&read(&c, ptr, len)?)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                *map = pairs;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_get_header_map_size",
        |mut c: C<'_>, kind: i32, size_ptr: i32| {
            ret((|| {
                let kind = map_of(kind)?;
                let missing = missing_map(c.data());
                let map = c.data_mut().map(kind).ok_or(missing)?;
                // Envoy answers `HeaderMap::byteSize()`: the lengths of the
                // names and values, not the size of the pair encoding
                // (found by tests/all/differential.rs).
                let size = crate::http::byte_size(map);
                write_u32(&mut c, size_ptr, len_u32(size))?;
                Ok(())
            })())
        },
    )?;
    Ok(())
}

/// The buffer `kind` as the running callback sees it.
fn buffer(s: &mut HostState, kind: BufferType) -> Option<&mut Vec<u8>> {
    match kind {
        BufferType::RequestBody => s.stream()?.request_body.as_mut(),
        BufferType::ResponseBody => s.stream()?.response_body.as_mut(),
        BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer => s.callout.body.as_mut(),
        BufferType::VmConfiguration if s.config_buffer == Some(kind) => {
            Some(&mut s.vm_configuration)
        }
        BufferType::PluginConfiguration if s.config_buffer == Some(kind) => {
            Some(&mut s.plugin_configuration)
        }
        BufferType::CallData => s.foreign_args.as_mut(),
        _ => None,
    }
}

fn buffers(i: &mut Imports) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let kind = BufferType::from_abi(kind).ok_or(Status::BadArgument)?;
                let (start, max) = (addr(start), addr(max));
                start.checked_add(max).ok_or(Status::BadArgument)?;
                let buf = buffer(c.data_mut(), kind).ok_or(Status::NotFound)?;
                let end = start.saturating_add(max).min(buf.len());
                let bytes = buf.get(start..end).map(<[u8]>::to_vec).unwrap_or_default();
                if bytes.is_empty() {
                    write_u32(&mut c, ptr_ptr, 0)?;
                    write_u32(&mut c, size_ptr, 0)?;
                    return Ok(());
                }
                copy_out(&mut c, &bytes, ptr_ptr, size_ptr)
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_get_buffer_status",
        |mut c: C<'_>, kind: i32, len_ptr: i32, flags_ptr: i32| {
            ret((|| {
                let kind = BufferType::from_abi(kind).ok_or(Status::BadArgument)?;
                let len = buffer(c.data_mut(), kind).ok_or(Status::NotFound)?.len();
                write_u32(&mut c, len_ptr, len_u32(len))?;
                write_u32(&mut c, flags_ptr, 0)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            ret((|| {
                let kind = BufferType::from_abi(kind).ok_or(Status::BadArgument)?;
                let data = read(&c, ptr, len)?;
                let buf = buffer(c.data_mut(), kind).ok_or(Status::NotFound)?;
                let (start, size) = (addr(start), addr(size));
                // Envoy's rules: (0, 0) prepends, (0, n) replaces everything,
                // a start at or past the end appends; anything else is refused.
                if start == 0 {
                    if size == 0 {
                        buf.splice(0..0, data);
                    } else {
                        *buf = data;
                    }
                } else if start >= buf.len() {
                    buf.extend_from_slice(&data);
                } else {
                    return Err(Status::BadArgument.into());
                }
                Ok(())
            })())
        },
    )?;
    Ok(())
}

fn callouts(i: &mut Imports) -> wasmtime::Result<()> {
    #[allow(clippy::too_many_arguments, reason = "mirrors the ABI")]
    fn http_call(
        c: &mut C<'_>,
        upstream: i32,
        upstream_len: i32,
        headers: i32,
        headers_len: i32,
        body: i32,
        body_len: i32,
        trailers: i32,
        trailers_len: i32,
        timeout: i32,
        token_ptr: i32,
    ) -> wasmtime::Result<i32> {
        ret((|| {
            let upstream = read_string(c, upstream, upstream_len)?;
            let headers = decode_headers(&read(c, headers, headers_len)?)?;
            let body = read(c, body, body_len)?;
            let trailers = decode_headers(&read(c, trailers, trailers_len)?)?;
            // Check the token's memory before starting, as Envoy does.
            write_u32(c, token_ptr, 0)?;
            let handler = c
                .data()
                .http_upstreams
                .get(&upstream)
                .cloned()
                .ok_or(Status::BadArgument)?;
            for required in [":method", ":path", ":authority"] {
                crate::http::find_header(&headers, required).ok_or(Status::BadArgument)?;
            }
            let request = HttpCallRequest {
                upstream,
                headers,
                body,
                trailers,
                timeout: Duration::from_millis(u64::from(timeout as u32)),
            };
            let s = c.data_mut();
            let token = s.token();
            match handler(&request) {
                HttpCallReply::Response(response) => s.events.push_back(Event::HttpResponse {
                    token,
                    response: Some(response),
                }),
                HttpCallReply::Failure => s.events.push_back(Event::HttpResponse {
                    token,
                    response: None,
                }),
                HttpCallReply::Pending => {
                    s.held_http_calls.insert(token, request);
                }
            }
            write_u32(c, token_ptr, token)?;
            Ok(())
        })())
    }
    i.def(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         j: i32,
         k: i32,
         l: i32| { http_call(&mut c, a, b, d, e, f, g, h, j, k, l) },
    )?;
    // The name some older SDKs use for the same call.
    i.def(
        "env",
        "proxy_dispatch_http_call",
        |mut c: C<'_>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         j: i32,
         k: i32,
         l: i32| { http_call(&mut c, a, b, d, e, f, g, h, j, k, l) },
    )?;
    i.def(
        "env",
        "proxy_grpc_call",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         service: i32,
         service_len: i32,
         method: i32,
         method_len: i32,
         metadata: i32,
         metadata_len: i32,
         message: i32,
         message_len: i32,
         _timeout: i32,
         token_ptr: i32| {
            ret((|| {
                let request = GrpcCallRequest {
                    upstream: read_string(&c, upstream, upstream_len)?,
                    service: read_string(&c, service, service_len)?,
                    method: read_string(&c, method, method_len)?,
                    initial_metadata: decode_headers(&read(&c, metadata, metadata_len)?)?,
                    message: read(&c, message, message_len)?,
                    end_of_stream: true,
                };
                let handler = c
                    .data()
                    .grpc_upstreams
                    .get(&request.upstream)
                    .cloned()
                    .ok_or(Status::ParseFailure)?;
                let reply = handler(&request);
                let s = c.data_mut();
                let token = s.token();
                s.events.push_back(Event::Grpc {
                    token,
                    reply,
                    close: true,
                    unary: true,
                });
                write_u32(&mut c, token_ptr, token)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_grpc_stream",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         service: i32,
         service_len: i32,
         method: i32,
         method_len: i32,
         metadata: i32,
         metadata_len: i32,
         token_ptr: i32| {
            ret((|| {
                let request = GrpcCallRequest {
                    upstream: read_string(&c, upstream, upstream_len)?,
                    service: read_string(&c, service, service_len)?,
                    method: read_string(&c, method, method_len)?,
                    initial_metadata: decode_headers(&read(&c, metadata, metadata_len)?)?,
                    message: Vec::new(),
                    end_of_stream: false,
                };
                if !c.data().grpc_upstreams.contains_key(&request.upstream) {
                    return Err(Status::ParseFailure.into());
                }
                let s = c.data_mut();
                let token = s.token();
                s.grpc_streams.insert(
                    token,
                    GrpcStream {
                        request,
                        sent_metadata: false,
                    },
                );
                write_u32(&mut c, token_ptr, token)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_grpc_send",
        |mut c: C<'_>, token: i32, message: i32, message_len: i32, end_stream: i32| {
            ret((|| {
                let message = read(&c, message, message_len)?;
                let token = token as u32;
                let s = c.data_mut();
                let stream = s.grpc_streams.get_mut(&token).ok_or(Status::NotFound)?;
                let mut request = stream.request.clone();
                request.message = message;
                request.end_of_stream = end_stream != 0;
                let handler = s
                    .grpc_upstreams
                    .get(&request.upstream)
                    .cloned()
                    .ok_or(Status::NotFound)?;
                let mut reply = handler(&request);
                if stream.sent_metadata {
                    reply.initial_metadata.clear();
                }
                stream.sent_metadata = true;
                if request.end_of_stream {
                    s.grpc_streams.remove(&token);
                }
                s.events.push_back(Event::Grpc {
                    token,
                    reply,
                    close: request.end_of_stream,
                    unary: false,
                });
                Ok(())
            })())
        },
    )?;
    fn grpc_stop(c: &mut C<'_>, token: i32) -> i32 {
        let token = token as u32;
        let s = c.data_mut();
        let known = s.grpc_streams.remove(&token).is_some()
            | s.events
                .iter()
                .any(|e| matches!(e, Event::Grpc { token: t, .. } if *t == token));
        // Nothing is delivered for a call the filter cancelled or closed.
        s.events
            .retain(|e| !matches!(e, Event::Grpc { token: t, .. } if *t == token));
        if known {
            Status::Ok.code()
        } else {
            Status::NotFound.code()
        }
    }
    i.def("env", "proxy_grpc_cancel", |mut c: C<'_>, token: i32| {
        grpc_stop(&mut c, token)
    })?;
    i.def("env", "proxy_grpc_close", |mut c: C<'_>, token: i32| {
        grpc_stop(&mut c, token)
    })?;
    i.def(
        "env",
        "proxy_get_status",
        |mut c: C<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let (code, message) = c.data().callout.status.clone();
                write_u32(&mut c, code_ptr, code)?;
                copy_out(&mut c, message.as_bytes(), ptr_ptr, size_ptr)
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_call_foreign_function",
        |mut c: C<'_>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         ptr_ptr: i32,
         size_ptr: i32| {
            ret((|| {
                let name = read_string(&c, name, name_len)?;
                let args = read(&c, args, args_len)?;
                let f = c
                    .data()
                    .foreign
                    .get(&name)
                    .cloned()
                    .ok_or(Status::NotFound)?;
                let result = f(&args).ok_or(Status::InternalFailure)?;
                if ptr_ptr != 0 {
                    copy_out(&mut c, &result, ptr_ptr, size_ptr)?;
                } else if size_ptr != 0 {
                    write_u32(&mut c, size_ptr, len_u32(result.len()))?;
                }
                Ok(())
            })())
        },
    )?;
    Ok(())
}

fn shared(i: &mut Imports) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| {
            ret((|| {
                let key = read(&c, key, key_len)?;
                let s = c.data();
                let (value, cas) = s.shared.get(&s.vm_id, &key).ok_or(Status::NotFound)?;
                copy_out(&mut c, &value, ptr_ptr, size_ptr)?;
                write_u32(&mut c, cas_ptr, cas)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_set_shared_data",
        |c: C<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: i32| {
            ret((|| {
                let key = read(&c, key, key_len)?;
                let value = read(&c, value, value_len)?;
                let s = c.data();
                match s.shared.set(&s.vm_id, &key, value, cas as u32) {
                    Status::Ok => Ok(()),
                    other => Err(other.into()),
                }
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_register_shared_queue",
        |mut c: C<'_>, name: i32, name_len: i32, id_ptr: i32| {
            ret((|| {
                let name = read(&c, name, name_len)?;
                let s = c.data();
                let id = s
                    .shared
                    .register_queue(&s.vm_id, &name, (s.vm_uid, s.root_context_id));
                write_u32(&mut c, id_ptr, id)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vm: i32, vm_len: i32, name: i32, name_len: i32, id_ptr: i32| {
            ret((|| {
                let vm = read_string(&c, vm, vm_len)?;
                let name = read(&c, name, name_len)?;
                let id = c
                    .data()
                    .shared
                    .resolve_queue(&vm, &name)
                    .ok_or(Status::NotFound)?;
                write_u32(&mut c, id_ptr, id)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_enqueue_shared_queue",
        |c: C<'_>, id: i32, value: i32, value_len: i32| {
            ret((|| {
                let value = read(&c, value, value_len)?;
                match c.data().shared.enqueue(id as u32, value) {
                    Status::Ok => Ok(()),
                    other => Err(other.into()),
                }
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32| {
            ret((|| {
                let value = c.data().shared.dequeue(id as u32)?;
                copy_out(&mut c, &value, ptr_ptr, size_ptr)
            })())
        },
    )?;
    Ok(())
}

fn metrics(i: &mut Imports) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, name: i32, name_len: i32, id_ptr: i32| {
            ret((|| {
                let name = read_string(&c, name, name_len)?;
                let id = c.data_mut().metrics.define(kind, name)?;
                write_u32(&mut c, id_ptr, id)?;
                Ok(())
            })())
        },
    )?;
    i.def(
        "env",
        "proxy_increment_metric",
        |mut c: C<'_>, id: i32, delta: i64| c.data_mut().metrics.increment(id as u32, delta).code(),
    )?;
    i.def(
        "env",
        "proxy_record_metric",
        |mut c: C<'_>, id: i32, value: i64| {
            c.data_mut().metrics.record(id as u32, value as u64).code()
        },
    )?;
    i.def(
        "env",
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, ptr: i32| {
            ret((|| {
                let value = c.data_mut().metrics.get(id as u32)?;
                write_u64(&mut c, ptr, value)?;
                Ok(())
            })())
        },
    )?;
    Ok(())
}

fn contexts(i: &mut Imports) -> wasmtime::Result<()> {
    i.def(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| {
            let id = id as u32;
            let s = c.data_mut();
            if id == s.root_context_id || s.streams.contains_key(&id) {
                s.effective_context = Some(id);
                Status::Ok.code()
            } else {
                Status::BadArgument.code()
            }
        },
    )?;
    i.def("env", "proxy_done", |mut c: C<'_>| {
        let s = c.data_mut();
        if s.pending_done.is_some() && s.pending_done == Some(s.context()) {
            s.done_called = true;
            Status::Ok.code()
        } else {
            Status::NotFound.code()
        }
    })?;
    Ok(())
}

fn wasi(i: &mut Imports) -> wasmtime::Result<()> {
    i.wasi(
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32| -> i32 {
            let level = match fd {
                1 => LogLevel::Info,
                2 => LogLevel::Error,
                _ => return errno::BADF,
            };
            let mut text = Vec::new();
            for n in 0..addr(iovs_len) {
                let Some(at) = n.checked_mul(8).and_then(|o| addr(iovs).checked_add(o)) else {
                    return errno::FAULT;
                };
                let Ok(iov) = read(&c, at as i32, 8) else {
                    return errno::FAULT;
                };
                let word = |o: usize| {
                    iov.get(o..o + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, i32::from_le_bytes)
                };
                let Ok(chunk) = read(&c, word(0), word(4)) else {
                    return errno::FAULT;
                };
                text.extend_from_slice(&chunk);
            }
            let written = len_u32(text.len());
            if text.last() == Some(&b'\n') {
                text.pop();
            }
            if !text.is_empty() {
                c.data_mut()
                    .log(level, String::from_utf8_lossy(&text).into_owned());
            }
            if write_u32(&mut c, written_ptr, written).is_err() {
                return errno::FAULT;
            }
            errno::SUCCESS
        },
    )?;
    i.wasi("fd_read", |_: i32, _: i32, _: i32, _: i32| errno::NOSYS)?;
    i.wasi("fd_seek", |_: i32, _: i64, _: i32, _: i32| {
        tracing::warn!("filter called fd_seek, which Envoy ignores");
        errno::SUCCESS
    })?;
    i.wasi("fd_close", |_: i32| {
        tracing::warn!("filter called fd_close, which Envoy ignores");
        errno::SUCCESS
    })?;
    i.wasi("fd_fdstat_get", |mut c: C<'_>, fd: i32, ptr: i32| {
        if fd != 1 && fd != 2 {
            return errno::BADF;
        }
        // A character device with only the fd_write right, as Envoy reports.
        let mut stat = [0_u8; 24];
        if let Some(rights) = stat.get_mut(8..16) {
            rights.copy_from_slice(&64_u64.to_le_bytes());
        }
        match write(&mut c, ptr, &stat) {
            Ok(()) => errno::SUCCESS,
            Err(_) => errno::FAULT,
        }
    })?;
    i.wasi("fd_prestat_get", |_: i32, _: i32| errno::BADF)?;
    i.wasi("fd_prestat_dir_name", |_: i32, _: i32, _: i32| errno::NOSYS)?;
    i.wasi(
        "path_open",
        |_: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| errno::NOENT,
    )?;
    i.wasi(
        "environ_sizes_get",
        |mut c: C<'_>, count_ptr: i32, size_ptr: i32| {
            let env = &c.data().env;
            let count = len_u32(env.len());
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            if write_u32(&mut c, count_ptr, count).is_err()
                || write_u32(&mut c, size_ptr, len_u32(size)).is_err()
            {
                return errno::FAULT;
            }
            errno::SUCCESS
        },
    )?;
    i.wasi("environ_get", |mut c: C<'_>, array: i32, buf: i32| {
        let env = c.data().env.clone();
        let (mut array, mut buf) = (addr(array), addr(buf));
        for (k, v) in env {
            let entry = format!("{k}={v}\0");
            if write_u32(&mut c, array as i32, buf as u32).is_err()
                || write(&mut c, buf as i32, entry.as_bytes()).is_err()
            {
                return errno::FAULT;
            }
            array = array.saturating_add(4);
            buf = buf.saturating_add(entry.len());
        }
        errno::SUCCESS
    })?;
    i.wasi("args_sizes_get", |mut c: C<'_>, argc: i32, size: i32| {
        if write_u32(&mut c, argc, 0).is_err() || write_u32(&mut c, size, 0).is_err() {
            return errno::FAULT;
        }
        errno::SUCCESS
    })?;
    i.wasi("args_get", |_: i32, _: i32| errno::SUCCESS)?;
    i.wasi(
        "clock_time_get",
        |mut c: C<'_>, id: i32, _precision: i64, ptr: i32| {
            let value = match id {
                0 => nanos_since_epoch(&c),
                1 => u64::try_from(c.data().monotonic.as_nanos()).unwrap_or(u64::MAX),
                _ => return errno::NOTSUP,
            };
            match write_u64(&mut c, ptr, value) {
                Ok(()) => errno::SUCCESS,
                Err(_) => errno::FAULT,
            }
        },
    )?;
    i.wasi("random_get", |mut c: C<'_>, ptr: i32, len: i32| {
        let len = addr(len);
        if len > 64 * 1024 {
            return errno::INVAL;
        }
        // Deterministic per VM (splitmix64), so test runs repeat exactly.
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            let s = c.data_mut();
            s.rng = s.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        bytes.truncate(len);
        match write(&mut c, ptr, &bytes) {
            Ok(()) => errno::SUCCESS,
            Err(_) => errno::FAULT,
        }
    })?;
    i.wasi(
        "proc_exit",
        |mut c: C<'_>, code: i32| -> wasmtime::Result<()> {
            c.data_mut().exit_code = Some(code);
            Err(wasmtime::Error::new(ProcExit(code)))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(path: &str) -> crate::state::StreamState {
        crate::state::StreamState {
            request_headers: Some(vec![(":path".to_owned(), path.to_owned())]),
            ..Default::default()
        }
    }

    #[test]
    fn request_query_is_absent_without_a_question_mark() {
        assert_eq!(
            derived_property(&stream("/a?b=c"), b"request.query"),
            Some(Value::from("b=c"))
        );
        assert_eq!(
            derived_property(&stream("/a?"), b"request.query"),
            Some(Value::from(""))
        );
        assert_eq!(derived_property(&stream("/a"), b"request\0query"), None);
    }
}
