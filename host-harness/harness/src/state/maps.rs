//! Header and metadata maps (`proxy_*_header_map_*`), as Envoy's
//! `HeaderMap`s behave for a filter.

use super::HostState;
use crate::abi::{self, MapType, Status};
use crate::http::{HeaderValue, Headers};

/// Parses a map the filter passed in the pair encoding; names are stored
/// lowercase, as Envoy stores them, values as the bytes given.
pub(crate) fn decode_headers(bytes: &[u8]) -> Result<Headers, Status> {
    let pairs = abi::decode_pairs(bytes).ok_or(Status::BadArgument)?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).to_ascii_lowercase(),
                HeaderValue::from(v),
            )
        })
        .collect())
}

impl HostState {
    /// The header map `map` as the running callback sees it; `None` when
    /// Envoy would not expose it now.
    fn map(&mut self, map: MapType) -> Option<&mut Headers> {
        match map {
            MapType::HttpCallResponseHeaders | MapType::GrpcInitialMetadata => {
                self.callout.headers.as_mut()
            }
            MapType::HttpCallResponseTrailers | MapType::GrpcTrailingMetadata => {
                self.callout.trailers.as_mut()
            }
            MapType::RequestHeaders => self.stream()?.request.headers.as_mut(),
            MapType::RequestTrailers => self.stream()?.request.trailers.as_mut(),
            MapType::ResponseHeaders => self.stream()?.response.headers.as_mut(),
            MapType::ResponseTrailers => self.stream()?.response.trailers.as_mut(),
        }
    }

    /// The map, or the status Envoy answers when it does not exist:
    /// `NOT_FOUND` while access logs run (`proxy_on_log`), `BAD_ARGUMENT`
    /// at any other time.
    fn existing_map(&mut self, map: MapType) -> Result<&mut Headers, Status> {
        let missing = if self.access_log {
            Status::NotFound
        } else {
            Status::BadArgument
        };
        self.map(map).ok_or(missing)
    }

    /// `proxy_get_header_map_value`: the first value of `key`.
    pub(crate) fn header_value(&mut self, map: MapType, key: &str) -> Result<HeaderValue, Status> {
        let map = self.existing_map(map)?;
        crate::http::find_value(map, key)
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// `proxy_add_header_map_value`: appends, keeping other values.
    pub(crate) fn add_header(
        &mut self,
        map: MapType,
        key: &str,
        value: HeaderValue,
    ) -> Result<(), Status> {
        let map = self.existing_map(map)?;
        map.push((key.to_ascii_lowercase(), value));
        Ok(())
    }

    /// `proxy_replace_header_map_value`: Envoy 1.40 removes every value of
    /// `key` and appends the new one at the end of the map (observed with
    /// real Envoy, issue 13), so the header moves.
    pub(crate) fn replace_header(
        &mut self,
        map: MapType,
        key: &str,
        value: HeaderValue,
    ) -> Result<(), Status> {
        let key = key.to_ascii_lowercase();
        let map = self.existing_map(map)?;
        map.retain(|(k, _)| *k != key);
        map.push((key, value));
        Ok(())
    }

    /// `proxy_remove_header_map_value`: removes every value of `key`.
    pub(crate) fn remove_header(&mut self, map: MapType, key: &str) -> Result<(), Status> {
        let key = key.to_ascii_lowercase();
        self.existing_map(map)?.retain(|(k, _)| *k != key);
        Ok(())
    }

    /// `proxy_get_header_map_pairs`: the map in the pair encoding; an
    /// empty map is empty bytes, as Envoy returns it.
    pub(crate) fn header_pairs(&mut self, map: MapType) -> Result<Vec<u8>, Status> {
        let map = self.existing_map(map)?;
        Ok(if map.is_empty() {
            Vec::new()
        } else {
            abi::encode_pairs(map)
        })
    }

    /// `proxy_set_header_map_pairs`: replaces the whole map.
    pub(crate) fn set_header_pairs(&mut self, map: MapType, pairs: Headers) -> Result<(), Status> {
        *self.existing_map(map)? = pairs;
        Ok(())
    }

    /// `proxy_get_header_map_size`: Envoy answers `HeaderMap::byteSize()`,
    /// the lengths of the names and values, not the size of the pair
    /// encoding (found by tests/all/differential.rs).
    pub(crate) fn header_map_size(&mut self, map: MapType) -> Result<usize, Status> {
        Ok(crate::http::byte_size(self.existing_map(map)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{headers, in_stream};

    #[test]
    fn replace_removes_every_value_and_appends() {
        let mut s = in_stream(headers(&[("a", "1"), ("x", "2"), ("b", "3"), ("x", "4")]));
        s.replace_header(MapType::RequestHeaders, "X", "new".into())
            .unwrap();
        assert_eq!(
            s.header_pairs(MapType::RequestHeaders).unwrap(),
            abi::encode_pairs(&headers(&[("a", "1"), ("b", "3"), ("x", "new")]))
        );
        s.replace_header(MapType::RequestHeaders, "y", "5".into())
            .unwrap();
        assert_eq!(s.header_value(MapType::RequestHeaders, "Y"), Ok("5".into()));
    }

    #[test]
    fn add_remove_and_size() {
        let mut s = in_stream(headers(&[(":path", "/")]));
        s.add_header(MapType::RequestHeaders, "X-A", "1".into())
            .unwrap();
        s.add_header(MapType::RequestHeaders, "x-a", "2".into())
            .unwrap();
        assert_eq!(
            s.header_map_size(MapType::RequestHeaders),
            Ok(5 + 1 + 3 + 1 + 3 + 1)
        );
        s.remove_header(MapType::RequestHeaders, "X-A").unwrap();
        assert_eq!(
            s.header_value(MapType::RequestHeaders, "x-a"),
            Err(Status::NotFound)
        );
        assert_eq!(s.header_map_size(MapType::RequestHeaders), Ok(6));
    }

    #[test]
    fn a_missing_map_is_bad_argument_except_in_access_logs() {
        let mut s = in_stream(headers(&[]));
        assert_eq!(
            s.header_pairs(MapType::ResponseHeaders),
            Err(Status::BadArgument)
        );
        s.access_log = true;
        assert_eq!(
            s.header_pairs(MapType::ResponseHeaders),
            Err(Status::NotFound)
        );
        assert_eq!(s.header_pairs(MapType::RequestHeaders), Ok(Vec::new()));
    }

    #[test]
    fn values_are_bytes_both_ways() {
        let value: &[u8] = b"caf\xe9 \xff\x80";
        let bytes = abi::encode_pairs(&[("X-Bin", value)]);
        let decoded = decode_headers(&bytes).unwrap();
        assert_eq!(
            decoded,
            vec![("x-bin".to_owned(), HeaderValue::from(value))]
        );
        let mut s = in_stream(decoded);
        s.add_header(MapType::RequestHeaders, "x-add", value.into())
            .unwrap();
        assert_eq!(
            s.header_value(MapType::RequestHeaders, "x-add"),
            Ok(value.into())
        );
        assert_eq!(
            s.header_pairs(MapType::RequestHeaders).unwrap(),
            abi::encode_pairs(&[("x-bin", value), ("x-add", value)])
        );
        assert_eq!(
            s.header_map_size(MapType::RequestHeaders),
            Ok(5 + 7 + 5 + 7)
        );
    }

    #[test]
    fn decoded_names_are_lowercase() {
        let bytes = abi::encode_pairs(&[("X-Y", "V")]);
        assert_eq!(decode_headers(&bytes), Ok(headers(&[("x-y", "V")])));
        assert_eq!(decode_headers(&[1]), Err(Status::BadArgument));
    }
}
