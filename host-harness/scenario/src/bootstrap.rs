//! Reads what the harness needs from a user's Envoy bootstrap: the
//! `envoy.filters.http.wasm` entries (module, `root_id`, `vm_id`, plugin
//! and VM configuration, `fail_open`) in chain order, and the routes
//! answered directly (`direct_response`).

use serde_yaml_ng::Value;

use crate::ScenarioError;

/// One `envoy.filters.http.wasm` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmEntry {
    /// `config.name`.
    pub name: String,
    /// `config.root_id`.
    pub root_id: String,
    /// `config.vm_config.vm_id`.
    pub vm_id: String,
    /// `config.configuration` (a `StringValue`'s value, else the JSON of
    /// the message).
    pub configuration: String,
    /// `config.vm_config.configuration`.
    pub vm_configuration: String,
    /// `config.vm_config.code.local.filename`.
    pub filename: Option<String>,
    /// `config.fail_open`.
    pub fail_open: bool,
    /// The name of the listener whose chain holds the filter.
    pub listener: String,
}

/// A route answered by Envoy itself (`direct_response`), by path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectRoute {
    /// `match.prefix` (or `match.path`, matched exactly).
    pub prefix: String,
    /// True for `match.path`.
    pub exact: bool,
    /// `direct_response.status`.
    pub status: u16,
    /// `direct_response.body.inline_string`.
    pub body: String,
}

/// What a bootstrap says about the HTTP filter chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// The wasm filters, in chain order.
    pub filters: Vec<WasmEntry>,
    /// The routes in order; `None` for a route to a cluster.
    pub routes: Vec<Option<DirectRoute>>,
}

impl Bootstrap {
    /// Parses bootstrap YAML (or JSON).
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let root: Value =
            serde_yaml_ng::from_str(text).map_err(|e| ScenarioError::Bootstrap(e.to_string()))?;
        let mut out = Self::default();
        walk(&root, &mut out, "");
        if out.filters.is_empty() {
            return Err(ScenarioError::Bootstrap(
                "no `envoy.filters.http.wasm` filter in the bootstrap".into(),
            ));
        }
        Ok(out)
    }

    /// The direct response for `path`, if the first matching route is one.
    pub fn direct_response(&self, path: &str) -> Option<&DirectRoute> {
        let path = path.split('?').next().unwrap_or(path);
        for route in &self.routes {
            match route {
                Some(d)
                    if (d.exact && path == d.prefix)
                        || (!d.exact && path.starts_with(&d.prefix)) =>
                {
                    return Some(d);
                }
                // A route to a cluster: only a catch-all stops the search
                // (the model reads prefixes, not every matcher).
                _ => {}
            }
        }
        None
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// A `configuration` field: a `StringValue`'s `value`, or the message as
/// JSON without its `@type`.
fn configuration(v: Option<&Value>) -> String {
    match v {
        Some(Value::Mapping(m)) => {
            let ty = text(v.and_then(|v| v.get("@type")));
            if ty.ends_with("google.protobuf.StringValue") {
                return text(v.and_then(|v| v.get("value")));
            }
            let mut m = m.clone();
            m.remove("@type");
            let json: Result<serde_json::Value, _> = serde_yaml_ng::from_value(Value::Mapping(m));
            json.map(|j| j.to_string()).unwrap_or_default()
        }
        other => text(other),
    }
}

fn walk(v: &Value, out: &mut Bootstrap, listener: &str) {
    match v {
        Value::Mapping(m) => {
            let name = text(v.get("name"));
            let listener = if v.get("filter_chains").is_some() {
                name.as_str()
            } else {
                listener
            };
            if text(v.get("name")) == "envoy.filters.http.wasm"
                && let Some(config) = get(v, &["typed_config", "config"])
            {
                out.filters.push(WasmEntry {
                    name: text(config.get("name")),
                    root_id: text(config.get("root_id")),
                    vm_id: text(get(config, &["vm_config", "vm_id"])),
                    configuration: configuration(config.get("configuration")),
                    vm_configuration: configuration(get(config, &["vm_config", "configuration"])),
                    filename: get(config, &["vm_config", "code", "local", "filename"])
                        .map(|f| text(Some(f))),
                    fail_open: matches!(config.get("fail_open"), Some(Value::Bool(true))),
                    listener: listener.to_owned(),
                });
                return;
            }
            if let Some(Value::Sequence(routes)) = v.get("routes")
                && v.get("domains").is_some()
            {
                for r in routes {
                    let prefix = get(r, &["match", "prefix"]);
                    let path = get(r, &["match", "path"]);
                    out.routes
                        .push(r.get("direct_response").map(|d| DirectRoute {
                            prefix: text(prefix.or(path)),
                            exact: path.is_some(),
                            status: text(d.get("status")).parse().unwrap_or(200),
                            body: text(get(d, &["body", "inline_string"])),
                        }));
                }
            }
            for (_, child) in m {
                walk(child, out, listener);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| walk(i, out, listener)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_recorded_corpus_bootstrap() {
        let text = include_str!("../../../tests/data/fidelity/envoy.yaml");
        let b = Bootstrap::parse(text).unwrap();
        assert_eq!(
            b.filters,
            vec![WasmEntry {
                name: "fidelity".into(),
                root_id: "fidelity".into(),
                vm_id: "fidelity".into(),
                configuration: "A".into(),
                vm_configuration: String::new(),
                filename: Some("{{WASM}}".into()),
                fail_open: false,
                listener: "fidelity".into(),
            }]
        );
        let direct = b.direct_response("/direct/x").unwrap();
        assert_eq!(
            (direct.status, direct.body.as_str()),
            (418, "direct answer")
        );
        assert_eq!(b.direct_response("/other"), None);
    }

    #[test]
    fn filters_know_their_listener() {
        let text = include_str!("../../../tests/data/fidelity-vm/envoy.yaml");
        let b = Bootstrap::parse(text).unwrap();
        let seen: Vec<(&str, &str, &str)> = b
            .filters
            .iter()
            .map(|f| (f.listener.as_str(), f.name.as_str(), f.vm_id.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", "A", "fidelity"),
                ("b", "B", "fidelity"),
                ("c", "C", "other")
            ]
        );
    }

    #[test]
    fn a_json_configuration_is_passed_as_json() {
        let text = r#"
http_filters:
- name: envoy.filters.http.wasm
  typed_config:
    config:
      root_id: r
      configuration:
        "@type": type.googleapis.com/google.protobuf.Struct
        mode: enforce
      vm_config: { code: { local: { filename: f.wasm } } }
"#;
        let b = Bootstrap::parse(text).unwrap();
        assert_eq!(b.filters[0].configuration, r#"{"mode":"enforce"}"#);
        assert!(Bootstrap::parse("a: 1").is_err());
    }
}
