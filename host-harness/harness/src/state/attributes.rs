//! Properties (`proxy_get_property`, `proxy_set_property`): Envoy's
//! attributes as one stream or the plugin sees them.

use super::{HostState, StreamState};
use crate::abi::Status;
use crate::http::HeaderValue;
use crate::properties::Value;

impl HostState {
    /// Resolves a property: the stream's own first, then attributes Envoy
    /// derives from the request and response, then the plugin's.
    pub(crate) fn property(&mut self, path: &[u8]) -> Result<Vec<u8>, Status> {
        if let Some(stream) = self.stream() {
            if let Some(v) = stream.properties.lookup(path) {
                return Ok(v.encode());
            }
            if let Some(v) = derived_property(stream, path) {
                return Ok(v.encode());
            }
        }
        self.properties
            .lookup(path)
            .map(Value::encode)
            .ok_or(Status::NotFound)
    }

    /// Sets a property on the running stream, or on the plugin when no
    /// stream runs.
    pub(crate) fn set_property_path(&mut self, path: &[u8], value: Vec<u8>) -> Result<(), Status> {
        let ok = match self.stream() {
            Some(stream) => stream.properties.set_path(path, value),
            None => self.properties.set_path(path, value),
        };
        if ok { Ok(()) } else { Err(Status::BadArgument) }
    }
}

fn derived_property(stream: &StreamState, path: &[u8]) -> Option<Value> {
    let dotted: Vec<u8> = path
        .iter()
        .map(|b| if *b == 0 { b'.' } else { *b })
        .collect();
    let name = std::str::from_utf8(&dotted).ok()?;
    let req = stream.request.headers.as_deref();
    // Values are handed over as the bytes they are, UTF-8 or not.
    let header = |h: Option<&[(String, HeaderValue)]>, k: &str| {
        h.and_then(|h| crate::http::find_value(h, k))
            .map(|v| Value::Bytes(v.as_bytes().to_vec()))
    };
    let map = |h: Option<&[(String, HeaderValue)]>| {
        h.map(|h| {
            Value::Map(
                h.iter()
                    .map(|(k, v)| (k.clone(), Value::Bytes(v.as_bytes().to_vec())))
                    .collect(),
            )
        })
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
        "response.code" => header(stream.response.headers.as_deref(), ":status")
            .and_then(|v| match v {
                Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse::<i64>().ok(),
                _ => None,
            })
            .map(Value::Int),
        "response.headers" => map(stream.response.headers.as_deref()),
        "response.trailers" => map(stream.response.trailers.as_deref()),
        _ => {
            // `request.headers.<name>` and friends index into the maps.
            let (prefix, key) = name.split_once(".headers.")?;
            match prefix {
                "request" => header(req, key),
                "response" => header(stream.response.headers.as_deref(), key),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{headers, in_stream};

    fn stream(path: &str) -> StreamState {
        let mut stream = StreamState::default();
        stream.set_headers(
            crate::state::Direction::Request,
            Some(vec![(":path".to_owned(), path.into())]),
        );
        stream
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

    #[test]
    fn set_properties_are_filter_state_under_their_whole_path() {
        // As in Envoy 1.40: a filter's `set_property` writes filter state
        // under the path as given; a one-segment path reads back, a path of
        // several segments is stored where no read reaches it, and it never
        // changes what the request's own attributes say.
        let mut s = in_stream(headers(&[(":path", "/p"), (":method", "GET")]));
        assert_eq!(s.property(b"request\0path"), Ok(b"/p".to_vec()));
        s.set_property_path(b"request\0path", b"/set".to_vec())
            .unwrap();
        assert_eq!(s.property(b"request\0path"), Ok(b"/p".to_vec()));
        s.set_property_path(b"meshward.peer_id", b"spiffe://a/b".to_vec())
            .unwrap();
        assert_eq!(
            s.property(b"meshward.peer_id"),
            Ok(b"spiffe://a/b".to_vec())
        );
        assert_eq!(s.property(b"request\0method"), Ok(b"GET".to_vec()));
        assert_eq!(s.property(b"no\0such"), Err(Status::NotFound));
    }
}
