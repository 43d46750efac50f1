//! The request as Cedar's JSON forms, for tools that explain a decision
//! (`meshward explain`). It is read through the same accessors the
//! evaluator reads during evaluation, from the same [`Req`], so what it
//! shows is what the policies saw. The filter never calls it.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{
    ACTION, EntityRef, HEADER_VALUES, HEADERS, HOST, Kind, PARAM_VALUES, PARAMS, REQUEST, Req,
    USER, WORKLOAD,
};
use crate::eval::{Ctx, Uid, Val};

/// Every context attribute of the schema, in its order.
const CONTEXT: [&str; 17] = [
    "method",
    "host",
    "authority",
    "authority_port",
    "path",
    "query",
    "params",
    "param_values",
    "port",
    "headers",
    "header_values",
    "source_ip",
    "source_port",
    "sni",
    "mtls",
    "user",
    "time",
];

const PRINCIPAL_ATTRS: [&str; 6] = [
    "authenticated",
    "spiffe_id",
    "trust_domain",
    "path",
    "namespace",
    "service_account",
];

const USER_ATTRS: [&str; 4] = ["issuer", "subject", "request_principal", "audiences"];

fn uid(ty: &str, id: &str) -> Value {
    json!({"type": ty, "id": id})
}

fn val(v: &Val<'_>) -> Value {
    match v {
        Val::Bool(b) => (*b).into(),
        Val::Long(n) => (*n).into(),
        Val::Str(s) => (*s).into(),
        Val::Entity(e) => json!({"__entity": uid(e.ty, e.id)}),
        Val::Set(items) => Value::Array(items.iter().map(val).collect()),
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), val(v)))
                .collect(),
        ),
        Val::Ip(ip) => {
            let full = if ip.addr.is_ipv4() { 32 } else { 128 };
            let arg = if ip.prefix == full {
                ip.addr.to_string()
            } else {
                format!("{}/{}", ip.addr, ip.prefix)
            };
            json!({"__extn": {"fn": "ip", "arg": arg}})
        }
        Val::DateTime(ms) => {
            // Request times are whole seconds since the epoch.
            let secs = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
            let text = crate::view::cedar_datetime(UNIX_EPOCH + Duration::from_secs(secs));
            json!({"__extn": {"fn": "datetime", "arg": text}})
        }
        Val::Duration(ms) => json!({"__extn": {"fn": "duration", "arg": format!("{ms}ms")}}),
    }
}

impl Req<'_> {
    /// `principal`, `action` and `resource` (entity uids), `context` (a
    /// record) and `entities` (a list), in Cedar's JSON formats. Headers,
    /// query parameters and claims are the ones the policies read.
    pub(crate) fn cedar_json(&self) -> Value {
        let (principal, action, resource) = (self.principal(), self.action(), self.resource());
        let mut context = Map::new();
        for name in CONTEXT {
            let attr = Ctx::of(name);
            if self.context_has(&attr)
                && let Ok(v) = self.context(&attr)
            {
                context.insert(name.to_owned(), val(&v));
            }
        }
        let parents =
            |list: &[Uid]| -> Vec<Value> { list.iter().map(|u| uid(&u.ty, &u.id)).collect() };
        let mut entities = vec![
            json!({"uid": uid(WORKLOAD, principal.id), "attrs": self.attrs_of(principal, &PRINCIPAL_ATTRS), "parents": parents(&self.parents)}),
            json!({"uid": uid(ACTION, action.id), "attrs": {}, "parents": parents(self.action_ancestors)}),
            json!({"uid": uid(HOST, resource.id), "attrs": self.attrs_of(resource, &["name"]), "parents": []}),
        ];
        let names =
            |t: &crate::view::Tagged| -> Vec<String> { t.iter().map(|(k, _)| k.clone()).collect() };
        let header_names = names(&self.headers);
        let param_names = names(&self.params);
        for (ty, kind, list) in [
            (HEADERS, Kind::Headers, &header_names),
            (HEADER_VALUES, Kind::HeaderValues, &header_names),
            (PARAMS, Kind::Params, &param_names),
            (PARAM_VALUES, Kind::ParamValues, &param_names),
        ] {
            let e = self.request_entity(ty, kind);
            let list: Vec<&str> = list.iter().map(String::as_str).collect();
            entities.push(json!({"uid": uid(ty, REQUEST), "attrs": {}, "parents": [], "tags": self.tags_of(e, list)}));
        }
        if let Some((user, id)) = self.user() {
            let e = self.entity(USER, id);
            let list: Vec<&str> = user.tags.iter().map(|(k, _)| k.as_str()).collect();
            entities.push(json!({"uid": uid(USER, id), "attrs": self.attrs_of(e, &USER_ATTRS), "parents": [], "tags": self.tags_of(e, list)}));
        }
        json!({
            "principal": uid(WORKLOAD, principal.id),
            "action": uid(ACTION, action.id),
            "resource": uid(HOST, resource.id),
            "context": context,
            "entities": entities,
        })
    }

    fn attrs_of(&self, e: EntityRef<'_>, names: &[&str]) -> Map<String, Value> {
        names
            .iter()
            .filter_map(|n| Some(((*n).to_owned(), val(&self.attr_opt(e, n)?))))
            .collect()
    }

    fn tags_of(&self, e: EntityRef<'_>, names: Vec<&str>) -> Map<String, Value> {
        names
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), val(&self.tag_opt(e, n)?))))
            .collect()
    }
}
