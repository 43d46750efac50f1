//! The scenario file: what to send, what the upstreams answer, what to
//! expect. YAML or JSON (JSON is YAML).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// Header lists as the file writes them: `[[name, value], ...]`, in order;
/// a value is [`Bytes`].
pub type HeaderList = Vec<(String, Bytes)>;

/// Bytes as a scenario file writes them: a string stands for its UTF-8
/// bytes; bytes that are not UTF-8 (a header value with obs-text, a binary
/// body) are written `{ base64: "..." }` (standard alphabet, padded). The
/// recorder writes this form only when the bytes are not UTF-8, so text
/// stays readable.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text when they are UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Bytes {
    /// Text in quotes; bytes that are not UTF-8 as `b"..."` with `\xNN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_str() {
            Some(text) => std::fmt::Debug::fmt(text, f),
            None => write!(f, "b\"{}\"", meshward_harness::escape_bytes(&self.0)),
        }
    }
}

impl std::fmt::Display for Bytes {
    /// Text as is; bytes that are not UTF-8 with `\xNN` escapes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&meshward_harness::escape_bytes(&self.0))
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for Bytes {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(b: Vec<u8>) -> Self {
        Self(b)
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl PartialEq<str> for Bytes {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// The file's two forms of [`Bytes`].
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum BytesRepr {
    Text(String),
    Base64 { base64: String },
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        match self.to_str() {
            Some(text) => BytesRepr::Text(text.to_owned()),
            None => BytesRepr::Base64 {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        match BytesRepr::deserialize(d)? {
            BytesRepr::Text(text) => Ok(Self(text.into_bytes())),
            BytesRepr::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64.as_bytes())
                .map(Self)
                .map_err(|e| serde::de::Error::custom(format!("bad `base64` value: {e}"))),
        }
    }
}

/// A whole scenario file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The filter module, relative to the file (the command line's
    /// `--wasm` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<String>,
    /// An Envoy bootstrap whose `envoy.filters.http.wasm` entries give the
    /// modules and plugin settings (the command line's `--bootstrap` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// The plugin, when no bootstrap gives it.
    #[serde(default)]
    pub plugin: PluginSpec,
    /// Model what Envoy's connection manager and router add around the
    /// filter (on unless set to false).
    #[serde(default = "yes")]
    pub front: bool,
    /// What the upstream answers unless a step says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<ResponseSpec>,
    /// How each callout cluster answers, unless a step says otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callouts: BTreeMap<String, CalloutSpec>,
    /// The filter's start-up log lines (at info and above) that must be
    /// seen, in order; left out, they are not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Vec<String>>,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
}

fn yes() -> bool {
    true
}

/// The plugin's settings, as an Envoy wasm filter entry gives them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// `config.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `config.root_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_id: Option<String>,
    /// `vm_config.vm_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// `config.configuration` (the string value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// `vm_config.configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_configuration: Option<String>,
    /// `config.fail_open`.
    #[serde(default)]
    pub fail_open: bool,
}

/// One step: a request, or a move of the clock, or both (the clock first).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// A name for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The bootstrap listener the request goes to: it reaches that
    /// listener's wasm filter (default: the bootstrap's first one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// Moves the virtual clock by this many milliseconds (timers fire,
    /// held callouts time out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advance_ms: Option<u64>,
    /// The request the client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    /// What the upstream answers this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<ResponseSpec>,
    /// Callout answers for this step only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callouts: BTreeMap<String, CalloutSpec>,
    /// What must be seen; fields left out are not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Outcome>,
}

/// A request as the client writes it on the wire (HTTP/1.1).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// The path and query (default `/`).
    #[serde(default = "root")]
    pub path: String,
    /// Headers in order; `host` is HTTP/1's `:authority` (default
    /// `example.com` when left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: HeaderList,
    /// The body; sent with `content-length` unless `chunked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Bytes>,
    /// Send the body chunked (one chunk per item of `chunks` if given).
    #[serde(default, skip_serializing_if = "is_false")]
    pub chunked: bool,
    /// Trailers (chunked requests only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trailers: HeaderList,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn get() -> String {
    "GET".into()
}

fn root() -> String {
    "/".into()
}

/// A response as an upstream writes it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// The status (default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// Headers in order, framing headers excluded (they follow the body).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: HeaderList,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Bytes>,
    /// Send the body chunked instead of with `content-length`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub chunked: bool,
    /// Trailers (chunked responses only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trailers: HeaderList,
}

fn ok() -> u16 {
    200
}

impl Default for ResponseSpec {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: None,
            chunked: false,
            trailers: Vec::new(),
        }
    }
}

/// How a callout cluster answers: a response (`status`, `headers`,
/// `body`), or `fail: timeout` (Envoy's 504 after the filter's timeout) or
/// `fail: reset` (no response at all).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutSpec {
    /// The failure, instead of a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<String>,
    /// The status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: HeaderList,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_text_or_base64_and_write_back_the_same() {
        let text = "[[x-a, caf\u{e9}], [x-b, {base64: Y2Fm6f8=}]]";
        let list: HeaderList = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(list[0].1.as_bytes(), "caf\u{e9}".as_bytes());
        assert_eq!(list[1].1.as_bytes(), b"caf\xe9\xff");
        let again: HeaderList =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&list).unwrap()).unwrap();
        assert_eq!(again, list);
        let written = serde_yaml_ng::to_string(&list[1].1).unwrap();
        assert!(written.contains("base64: Y2Fm6f8="), "{written}");
        assert_eq!(format!("{:?}", list[1].1), "b\"caf\\xe9\\xff\"");
        assert!(serde_yaml_ng::from_str::<Bytes>("{base64: '%%'}").is_err());
    }
}
