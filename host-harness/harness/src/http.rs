//! HTTP messages a test sends through a filter, and what comes out.

use std::borrow::Cow;
use std::fmt;

use crate::error::Failure;
use crate::properties::{Properties, Value};

/// Header lists keep order and repeated names, as Envoy's header maps do.
/// Names are lowercase, as Envoy stores them; values are bytes, since
/// HTTP/1.1 allows obs-text (0x80-0xFF) in a value and Envoy passes it on
/// untouched.
pub type Headers = Vec<(String, HeaderValue)>;

/// A header value as bytes: no UTF-8 is required of it, and none is
/// assumed on its way through the filter. It compares equal to a `&str`
/// with the same bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderValue(Vec<u8>);

impl HeaderValue {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value when it is UTF-8, `None` otherwise.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value as text, each byte that is not part of UTF-8 written
    /// `\xNN` (and a backslash `\\`), so that no two values read the same.
    pub fn escaped(&self) -> Cow<'_, str> {
        escape_bytes(&self.0)
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `bytes` as text: UTF-8 as is; when some bytes are not UTF-8, those and
/// ASCII control characters are written `\xNN` and a backslash doubled
/// (so that UTF-8 values read plainly).
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_str() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "b\"{}\"", self.escaped()),
        }
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl AsRef<[u8]> for HeaderValue {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for HeaderValue {
    fn from(v: &str) -> Self {
        Self(v.as_bytes().to_vec())
    }
}

impl From<&&str> for HeaderValue {
    fn from(v: &&str) -> Self {
        Self(v.as_bytes().to_vec())
    }
}

impl From<&String> for HeaderValue {
    fn from(v: &String) -> Self {
        Self(v.as_bytes().to_vec())
    }
}

impl From<String> for HeaderValue {
    fn from(v: String) -> Self {
        Self(v.into_bytes())
    }
}

impl From<Vec<u8>> for HeaderValue {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for HeaderValue {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for HeaderValue {
    fn from(v: &[u8; N]) -> Self {
        Self(v.to_vec())
    }
}

impl From<&HeaderValue> for HeaderValue {
    fn from(v: &HeaderValue) -> Self {
        v.clone()
    }
}

impl PartialEq<str> for HeaderValue {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for HeaderValue {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<String> for HeaderValue {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for HeaderValue {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

/// Builds a header list from `(name, value)` pairs of anything that reads
/// as text or bytes; names are lowercased.
pub fn headers<K: AsRef<str>, V: Into<HeaderValue>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Headers {
    pairs
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
        .collect()
}

/// The first value of `name` (case-insensitive).
pub(crate) fn find_value<'a>(
    headers: &'a [(String, HeaderValue)],
    name: &str,
) -> Option<&'a HeaderValue> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The first value of `name` when it is UTF-8.
pub(crate) fn find_header<'a>(headers: &'a [(String, HeaderValue)], name: &str) -> Option<&'a str> {
    find_value(headers, name).and_then(HeaderValue::to_str)
}

/// The size Envoy reports for a header map (`HeaderMap::byteSize()`): the
/// lengths of every name and value.
pub(crate) fn byte_size(headers: &[(String, HeaderValue)]) -> usize {
    headers.iter().map(|(k, v)| k.len() + v.len()).sum()
}

pub(crate) fn lower(headers: impl IntoIterator<Item = (String, HeaderValue)>) -> Headers {
    headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// A request as the downstream client sends it, plus the answer the
/// upstream gives if the request reaches it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub(crate) headers: Headers,
    pub(crate) chunks: Vec<Vec<u8>>,
    pub(crate) trailers: Headers,
    pub(crate) properties: Properties,
    pub(crate) upstream: Response,
}

impl Request {
    /// A request with `method` and `path` plus two explicit defaults,
    /// `:authority` `example.com` and `:scheme` `https` (what a client
    /// of an HTTPS listener sends); the upstream answers `200` with no
    /// body. Same as `Request::bare(method, path)` followed by
    /// `.authority("example.com").scheme("https")`, in Envoy's
    /// pseudo-header order.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            headers: vec![
                (":authority".into(), "example.com".into()),
                (":path".into(), path.into()),
                (":method".into(), method.into()),
                (":scheme".into(), "https".into()),
            ],
            ..Self::bare(method, path)
        }
    }

    /// A request with only `:method` and `:path`: nothing is added that the
    /// test does not write (see [`Request::authority`], [`Request::scheme`]).
    pub fn bare(method: &str, path: &str) -> Self {
        Self {
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
            ],
            chunks: Vec::new(),
            trailers: Vec::new(),
            properties: Properties::new(),
            upstream: Response::new(200),
        }
    }

    /// Sets `:authority` (HTTP/1's `host`), in place if present.
    pub fn authority(self, authority: &str) -> Self {
        self.set_header(":authority", authority)
    }

    /// Sets `:scheme`, in place if present.
    pub fn scheme(self, scheme: &str) -> Self {
        self.set_header(":scheme", scheme)
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header (the name is lowercased).
    pub fn header(mut self, name: &str, value: impl Into<HeaderValue>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Replaces every existing value of `name` (e.g. `:authority`): the
    /// first keeps its position, the others go; a new header is appended.
    pub fn set_header(mut self, name: &str, value: impl Into<HeaderValue>) -> Self {
        let value = value.into();
        let name = name.to_ascii_lowercase();
        match self.headers.iter().position(|(k, _)| *k == name) {
            Some(first) => {
                let mut index = 0;
                self.headers.retain(|(k, _)| {
                    let keep = *k != name || index == first;
                    index += 1;
                    keep
                });
                if let Some(entry) = self.headers.get_mut(first) {
                    entry.1 = value;
                }
            }
            None => self.headers.push((name, value)),
        }
        self
    }

    /// The headers as the downstream sends them, for the stream API.
    pub fn headers(&self) -> Headers {
        self.headers.clone()
    }

    /// Adds a body chunk; several calls send the body in several chunks.
    pub fn body(mut self, chunk: impl Into<Vec<u8>>) -> Self {
        self.chunks.push(chunk.into());
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: impl Into<HeaderValue>) -> Self {
        self.trailers
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets a per-request property (e.g. `source.address`), shadowing the
    /// plugin's.
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.set(name, value);
        self
    }

    pub(crate) fn properties_iter(&self) -> Vec<(String, Value)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sets what the upstream answers if the request reaches it.
    pub fn upstream_response(mut self, response: Response) -> Self {
        self.upstream = response;
        self
    }
}

/// An HTTP response: from the upstream, or what the downstream received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code (`:status`).
    pub status: u16,
    /// Headers without `:status`.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Headers,
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<HeaderValue>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: impl Into<HeaderValue>) -> Self {
        self.trailers
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive), when it is
    /// UTF-8; [`Response::get_header_bytes`] gives any value.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The first value of header `name` (case-insensitive), as bytes.
    pub fn get_header_bytes(&self, name: &str) -> Option<&[u8]> {
        find_value(&self.headers, name).map(HeaderValue::as_bytes)
    }

    /// The body as UTF-8 (lossy), for assertions.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header_map(&self) -> Headers {
        let mut h = Vec::with_capacity(self.headers.len() + 1);
        h.push((":status".to_owned(), self.status.to_string().into()));
        h.extend(self.headers.iter().cloned());
        h
    }

    pub(crate) fn from_map(
        headers: &[(String, HeaderValue)],
        body: Vec<u8>,
        trailers: Headers,
    ) -> Self {
        let status = find_header(headers, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Self {
            status,
            headers: headers
                .iter()
                .filter(|(k, _)| k != ":status")
                .cloned()
                .collect(),
            body,
            trailers,
        }
    }
}

/// A request as it reached the upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers, including pseudo-headers.
    pub headers: Headers,
    /// The body, all chunks joined.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Headers,
}

impl Message {
    /// The first value of header `name` (case-insensitive), when it is
    /// UTF-8; [`Message::header_bytes`] gives any value.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The first value of header `name` (case-insensitive), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        find_value(&self.headers, name).map(HeaderValue::as_bytes)
    }
}

/// A response the filter (or the host, failing closed) sent instead of
/// forwarding, with the fields Envoy records for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// The status code.
    pub status: u16,
    /// The response code details (Envoy's `%RESPONSE_CODE_DETAILS%`).
    pub details: String,
    /// The gRPC status, when the filter gave one (`-1` means none).
    pub grpc_status: i32,
    /// Headers the filter added.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

/// Where a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// The downstream received a complete response.
    Completed,
    /// The filter closed (reset) the stream with `proxy_close_stream`.
    Reset,
    /// The filter paused and nothing resumed it: in Envoy the stream would
    /// wait for a timeout.
    Stalled,
}

/// The outcome of a request sent through a filter: what the upstream saw,
/// what the downstream received, and whether the filter answered locally.
/// The fields are what a test can also observe in front of real Envoy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request as it reached the upstream; `None` when it never did.
    pub upstream_request: Option<Message>,
    /// What the downstream received; `None` when the stream was reset or
    /// stalled before a response. After a reset mid-response (a trap once
    /// the headers were sent) it holds what reached the client before.
    pub response: Option<Response>,
    /// Set when the response is a local reply.
    pub local_reply: Option<LocalReply>,
    /// How the stream ended.
    pub end: End,
    /// Set when the VM failed during this stream (or before it).
    pub failure: Option<Failure>,
    /// True when the filter called `proxy_clear_route_cache`.
    pub route_cache_cleared: bool,
}

impl Exchange {
    /// The status the downstream received (0 when none).
    pub fn status(&self) -> u16 {
        self.response.as_ref().map_or(0, |r| r.status)
    }

    /// True when the request reached the upstream.
    pub fn forwarded(&self) -> bool {
        self.upstream_request.is_some()
    }

    /// A header of the request as the upstream saw it.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream_request.as_ref()?.header(name)
    }

    /// A header of the response as the downstream saw it.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response.as_ref()?.get_header(name)
    }

    /// The response body as the downstream saw it, as UTF-8 (lossy).
    pub fn body_text(&self) -> String {
        self.response
            .as_ref()
            .map(Response::body_text)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_that_are_not_utf8_are_escaped() {
        assert_eq!(escape_bytes("caf\u{e9} \\x".as_bytes()), "caf\u{e9} \\x");
        assert_eq!(escape_bytes(b"\x00a\\\xe9"), "\\x00a\\\\\\xe9");
        assert_eq!(
            format!("{:?}", HeaderValue::from(&b"\xff"[..])),
            "b\"\\xff\""
        );
        assert_eq!(HeaderValue::from("v"), "v");
    }

    #[test]
    fn byte_size_counts_names_and_values_only() {
        let h = headers([(":status", "418"), ("x-conf-reply", "1")]);
        assert_eq!(byte_size(&h), 7 + 3 + 12 + 1);
        assert_eq!(byte_size(&[]), 0);
    }
}
