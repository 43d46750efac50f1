//! A model of what Envoy 1.40 adds around an HTTP filter chain, for a
//! client speaking HTTP/1.1: the codec's header map, the connection
//! manager's `x-forwarded-proto`, `x-request-id` and `server`, the router's
//! `x-envoy-expected-rq-timeout-ms` and `x-envoy-upstream-service-time`,
//! framing (`content-length` or chunked), `HEAD` and direct responses.
//! Each rule was read off real Envoy (tests/data/fidelity/recorded.yaml).

use meshward_harness::{HeaderValue, Headers, Response};

use crate::spec::{Bytes, HeaderList, RequestSpec, ResponseSpec};

/// A scenario file's header list as the harness holds one (bytes kept).
pub fn to_harness(list: &[(String, Bytes)]) -> Headers {
    list.iter()
        .map(|(k, v)| (k.clone(), HeaderValue::from(v.as_bytes())))
        .collect()
}

/// A harness header list as a scenario file writes one (bytes kept).
pub fn from_harness(headers: &[(String, HeaderValue)]) -> HeaderList {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.as_bytes())))
        .collect()
}

/// The `x-request-id` the model gives a request without one (Envoy makes
/// a random UUID; expectations write `*`).
pub const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000000";

/// The header map Envoy's filters see for a client's HTTP/1.1 request:
/// pseudo-headers first (`host` becomes `:authority`), the client's
/// headers in order, then what the connection manager adds.
pub fn request_headers(r: &RequestSpec) -> Headers {
    let host = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(&b"example.com"[..], |(_, v)| v.as_bytes());
    let mut h: Headers = vec![
        (":authority".into(), host.into()),
        (":path".into(), r.path.as_str().into()),
        (":method".into(), r.method.as_str().into()),
        (":scheme".into(), "http".into()),
    ];
    for (k, v) in &r.headers {
        if !k.eq_ignore_ascii_case("host") {
            h.push((k.to_ascii_lowercase(), v.as_bytes().into()));
        }
    }
    if r.chunked {
        h.push(("transfer-encoding".into(), "chunked".into()));
    } else if let Some(body) = &r.body {
        h.push(("content-length".into(), body.len().to_string().into()));
    }
    h.push(("x-forwarded-proto".into(), "http".into()));
    if !h.iter().any(|(k, _)| k == "x-request-id") {
        h.push(("x-request-id".into(), REQUEST_ID.into()));
    }
    h
}

/// The headers the upstream receives on the wire for the header map that
/// left the filter chain: `host` from `:authority`, the rest in order,
/// then the router's timeout header.
pub fn upstream_wire(map: &[(String, HeaderValue)]) -> HeaderList {
    let mut h = HeaderList::new();
    if let Some((_, a)) = map.iter().find(|(k, _)| k == ":authority") {
        h.push(("host".into(), a.as_bytes().into()));
    }
    for (k, v) in map {
        if !k.starts_with(':') {
            h.push((k.clone(), v.as_bytes().into()));
        }
    }
    h.push(("x-envoy-expected-rq-timeout-ms".into(), "15000".into()));
    chunked_last(&mut h);
    h
}

/// The HTTP/1 codec writes `transfer-encoding` after every other header.
fn chunked_last(h: &mut HeaderList) {
    if let Some(i) = h.iter().position(|(k, _)| k == "transfer-encoding") {
        let te = h.remove(i);
        h.push(te);
    }
}

/// The upstream's response as the filter sees it: the upstream's headers
/// with their framing header, then the router's
/// `x-envoy-upstream-service-time` (the router handles the response
/// before the filters do, so headers a filter adds come after it; seen
/// with tests/data/fidelity-as). Its value is a time in Envoy; `0` here.
pub fn upstream_response(r: &ResponseSpec, head: bool) -> Response {
    let mut resp = Response::new(r.status);
    for (k, v) in &r.headers {
        resp = resp.header(k, v.as_bytes());
    }
    let body = r.body.clone().unwrap_or_default().0;
    if r.chunked {
        resp = resp.header("transfer-encoding", "chunked");
    } else {
        resp = resp.header("content-length", body.len().to_string());
    }
    resp = resp.header("x-envoy-upstream-service-time", "0");
    for (k, v) in &r.trailers {
        resp = resp.trailer(k, v.as_bytes());
    }
    if !head {
        resp = resp.body(body);
    }
    resp
}

/// What the client receives for the response that left the filter chain:
/// its headers in order plus what the connection manager adds, and chunked
/// framing when nothing gives a length. (`_forwarded` is kept for callers:
/// the router's header is in the response the filters saw, see
/// [`upstream_response`].)
pub fn client_headers(resp: &Response, _forwarded: bool, head: bool) -> HeaderList {
    let mut h: HeaderList = from_harness(&resp.headers);
    h.push(("date".into(), "*".into()));
    h.push(("server".into(), "envoy".into()));
    let framed = h
        .iter()
        .any(|(k, _)| k == "content-length" || k == "transfer-encoding");
    chunked_last(&mut h);
    if !framed && !head {
        if resp.body.is_empty() {
            h.push(("content-length".into(), "0".into()));
        } else {
            h.push(("transfer-encoding".into(), "chunked".into()));
        }
    }
    h
}
