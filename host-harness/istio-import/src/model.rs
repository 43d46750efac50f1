//! Istio's AuthorizationPolicy, as much of it as can be read (security.istio.io
//! v1 and v1beta1 share this shape). Unknown fields of the spec are errors:
//! a field this importer does not know would silently widen or narrow the
//! translated policy.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    pub(crate) api_version: String,
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: Metadata,
    /// Read as a [`Spec`] only once the kind is known, so other kinds'
    /// specs are not held to this one's fields.
    #[serde(default)]
    pub(crate) spec: Option<serde_yaml_ng::Value>,
    /// `kind: List`, as `kubectl get -o yaml` prints several objects.
    #[serde(default)]
    pub(crate) items: Vec<Document>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Spec {
    #[serde(default)]
    pub(crate) selector: Option<Selector>,
    #[serde(default)]
    pub(crate) target_ref: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(crate) target_refs: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(crate) action: Option<String>,
    #[serde(default)]
    pub(crate) provider: Option<serde_yaml_ng::Value>,
    /// `None`: no rules at all (matches nothing); `Some(vec![])` likewise.
    #[serde(default)]
    pub(crate) rules: Option<Vec<Rule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Selector {
    #[serde(default)]
    pub(crate) match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    #[serde(default)]
    pub(crate) from: Vec<From>,
    #[serde(default)]
    pub(crate) to: Vec<To>,
    #[serde(default)]
    pub(crate) when: Vec<Condition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct From {
    #[serde(default)]
    pub(crate) source: Source,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct To {
    #[serde(default)]
    pub(crate) operation: Operation,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Source {
    #[serde(default)]
    pub(crate) principals: Vec<String>,
    #[serde(default)]
    pub(crate) not_principals: Vec<String>,
    #[serde(default)]
    pub(crate) request_principals: Vec<String>,
    #[serde(default)]
    pub(crate) not_request_principals: Vec<String>,
    #[serde(default)]
    pub(crate) namespaces: Vec<String>,
    #[serde(default)]
    pub(crate) not_namespaces: Vec<String>,
    #[serde(default)]
    pub(crate) ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) not_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) not_remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) service_accounts: Vec<String>,
    #[serde(default)]
    pub(crate) not_service_accounts: Vec<String>,
    /// Not fields of Istio's `Source`; read only to refuse them by name
    /// rather than as unknown YAML.
    #[serde(default)]
    pub(crate) trust_domains: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(crate) not_trust_domains: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Operation {
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default)]
    pub(crate) not_hosts: Vec<String>,
    #[serde(default)]
    pub(crate) ports: Vec<String>,
    #[serde(default)]
    pub(crate) not_ports: Vec<String>,
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    #[serde(default)]
    pub(crate) not_methods: Vec<String>,
    #[serde(default)]
    pub(crate) paths: Vec<String>,
    #[serde(default)]
    pub(crate) not_paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Condition {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) values: Vec<String>,
    #[serde(default)]
    pub(crate) not_values: Vec<String>,
}
