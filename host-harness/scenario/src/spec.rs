//! The scenario file: what to send, what the upstreams answer, what to
//! expect. YAML or JSON (JSON is YAML).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// Header lists as the file writes them: `[[name, value], ...]`, in order.
pub type HeaderList = Vec<(String, String)>;

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
    pub body: Option<String>,
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
    pub body: Option<String>,
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
    pub body: Option<String>,
}
