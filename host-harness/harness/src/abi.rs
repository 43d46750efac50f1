//! Numeric values and the pair encoding of the proxy-wasm ABI (0.2.0 and 0.2.1).

/// Status codes returned by every `proxy_*` host function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    #[allow(
        dead_code,
        reason = "listed for completeness; no property here fails to serialize"
    )]
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

/// WASI errno values the preview1 shims return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Errno {
    Success = 0,
    Badf = 8,
    Fault = 21,
    Inval = 28,
    Noent = 44,
    Nosys = 52,
    Notsup = 58,
}

impl Errno {
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

/// The proxy-wasm ABI version a module declares by exporting a marker function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbiVersion {
    /// `proxy_abi_version_0_2_0`.
    V0_2_0,
    /// `proxy_abi_version_0_2_1`.
    V0_2_1,
}

impl AbiVersion {
    /// The export whose presence declares this version.
    pub fn marker(self) -> &'static str {
        match self {
            Self::V0_2_0 => "proxy_abi_version_0_2_0",
            Self::V0_2_1 => "proxy_abi_version_0_2_1",
        }
    }
}

/// Log levels, as numbered by the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0.
    Trace,
    /// 1.
    Debug,
    /// 2.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
    /// 5.
    Critical,
}

impl LogLevel {
    pub(crate) fn from_abi(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    pub(crate) fn to_abi(self) -> i32 {
        self as i32
    }
}

/// The header and metadata maps of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitialMetadata,
    GrpcTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    pub(crate) fn from_abi(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcInitialMetadata,
            5 => Self::GrpcTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// The byte buffers of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufferType {
    RequestBody,
    ResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    pub(crate) fn from_abi(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Stream types of `proxy_continue_stream` and `proxy_close_stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamType {
    Request,
    Response,
    Downstream,
    Upstream,
}

impl StreamType {
    pub(crate) fn from_abi(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Request,
            1 => Self::Response,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// Serializes pairs the way the ABI does: a count, then key and value
/// lengths, then each key and value followed by a NUL byte.
pub(crate) fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Parses the pair encoding; `None` when the bytes are malformed. An empty
/// input is an empty map, as the spec allows.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() || bytes == [0] {
        return Some(Vec::new());
    }
    let count = usize::try_from(read_u32(bytes, 0)?).ok()?;
    if count == 0 {
        return Some(Vec::new());
    }
    // Each pair needs at least 8 bytes of lengths and 2 NULs, so a count
    // larger than that cannot be honest and must not drive an allocation.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 8;
        let k = usize::try_from(read_u32(bytes, at)?).ok()?;
        let v = usize::try_from(read_u32(bytes, at + 4)?).ok()?;
        sizes.push((k, v));
    }
    let mut pos = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for (k, v) in sizes {
        let key = bytes.get(pos..pos.checked_add(k)?)?.to_vec();
        pos = pos.checked_add(k)?.checked_add(1)?;
        let value = bytes.get(pos..pos.checked_add(v)?)?.to_vec();
        pos = pos.checked_add(v)?.checked_add(1)?;
        pairs.push((key, value));
    }
    if pos > bytes.len() {
        return None;
    }
    Some(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"22".to_vec()),
        ];
        let encoded = encode_pairs(&pairs);
        assert_eq!(
            encoded,
            [
                2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b',
                0, b'2', b'2', 0
            ]
        );
        assert_eq!(decode_pairs(&encoded), Some(pairs));
    }

    #[test]
    fn malformed_pairs_are_rejected_without_panicking() {
        assert_eq!(decode_pairs(&[]), Some(vec![]));
        assert_eq!(decode_pairs(&[0]), Some(vec![]));
        assert_eq!(decode_pairs(&[1]), None);
        assert_eq!(decode_pairs(&[0, 0, 0, 0]), Some(vec![]));
        assert_eq!(decode_pairs(&[255, 255, 255, 255, 1, 0, 0, 0]), None);
        assert_eq!(
            decode_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, b'a', 0]),
            None
        );
    }
}
