//! Istio AuthorizationPolicy semantics, in Cedar.
//!
//! Istio: a request is denied if any DENY policy matches; else, if any ALLOW
//! policy applies to the workload, it is allowed only if one matches; else it
//! is allowed. A policy matches if one of its rules does; a rule matches if
//! one of its `from`, one of its `to` and all of its `when` match; within a
//! source or operation, every field set must match, a field matching if any
//! of its values does, and a `not` field if none of its values does.
//!
//! Cedar has the same shape: each rule becomes one policy (a `forbid` for
//! DENY, a `permit` for ALLOW), forbid wins, and Cedar's default deny is
//! Istio's "ALLOW policies exist but none matched". The one difference, no
//! ALLOW policy at all, is made explicit with a permit-all policy.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Deserialize as _;

use crate::model::{Condition, Document, Operation, Rule, Source, Spec};
use crate::{ImportError, ImportOptions, Imported};

/// A Cedar boolean expression, or `None` for "always true" (an unset field).
type Clause = Option<String>;

struct Ctx<'a> {
    policy: &'a str,
}

impl Ctx<'_> {
    fn unsupported(&self, what: impl Into<String>) -> ImportError {
        ImportError::Unsupported {
            policy: self.policy.to_owned(),
            what: what.into(),
        }
    }

    fn bad(&self, field: &str, value: &str, reason: &str) -> ImportError {
        ImportError::BadValue {
            policy: self.policy.to_owned(),
            field: field.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

pub(crate) fn import(yaml: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value =
            serde_yaml_ng::Value::deserialize(doc).map_err(|e| ImportError::Yaml(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let doc: Document =
            serde_yaml_ng::from_value(value).map_err(|e| ImportError::Yaml(e.to_string()))?;
        flatten(doc, &mut docs);
    }

    let mut out = Imported::default();
    let mut cedar = String::new();
    let mut any_allow = false;
    for doc in docs {
        let namespace = doc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!("{namespace}/{}", doc.metadata.name);
        if doc.kind != "AuthorizationPolicy" || !doc.api_version.starts_with("security.istio.io/") {
            out.skipped.push(format!(
                "{name}: a `{}`, not an AuthorizationPolicy",
                doc.kind
            ));
            continue;
        }
        let spec: Spec = match doc.spec {
            Some(value) => serde_yaml_ng::from_value(value)
                .map_err(|e| ImportError::Yaml(format!("policy `{name}`: {e}")))?,
            None => Spec::default(),
        };
        if !applies(&spec, &namespace, options) {
            out.skipped
                .push(format!("{name}: does not apply to the workload"));
            continue;
        }
        let ctx = Ctx { policy: &name };
        let effect = match spec.action.as_deref().unwrap_or("ALLOW") {
            "ALLOW" => {
                any_allow = true;
                "permit"
            }
            "DENY" => "forbid",
            other => return Err(ctx.unsupported(format!("action `{other}`"))),
        };
        if spec.target_ref.is_some() || spec.target_refs.is_some() {
            return Err(ctx.unsupported("`targetRef`/`targetRefs` (gateway attachment)"));
        }
        if spec.provider.is_some() {
            return Err(ctx.unsupported("`provider` (external authorization)"));
        }
        let rules = spec.rules.unwrap_or_default();
        if rules.is_empty() {
            let _ = writeln!(
                cedar,
                "// istio {name} ({}): no rules, matches nothing\n",
                spec.action.as_deref().unwrap_or("ALLOW")
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let policy = rule_policy(&ctx, effect, rule)?;
            let _ = writeln!(
                cedar,
                "// istio {name} ({}), rule {i}\n@id(\"{}\")\n{policy}\n",
                spec.action.as_deref().unwrap_or("ALLOW"),
                escape(&format!("{name}/{i}"))
            );
        }
        out.translated.push(name);
    }
    if !any_allow {
        cedar.push_str(
            "// No ALLOW policy applies, so Istio allows what no DENY policy matches.\n\
             @id(\"istio-default-allow\")\npermit (principal, action, resource);\n",
        );
    }
    meshward_policy_cedar::engine_from_policies(&cedar)
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    out.cedar = cedar;
    Ok(out)
}

fn flatten(doc: Document, out: &mut Vec<Document>) {
    if doc.kind == "List" {
        for item in doc.items {
            flatten(item, out);
        }
    } else {
        out.push(doc);
    }
}

/// Whether a policy applies to the workload the translation is for: Istio
/// applies root-namespace policies everywhere and others in their namespace,
/// to the workloads their selector matches.
fn applies(spec: &Spec, namespace: &str, options: &ImportOptions) -> bool {
    let Some(workload) = &options.workload else {
        return true;
    };
    let in_scope = namespace == options.root_namespace || namespace == workload.namespace;
    let selected = spec.selector.as_ref().is_none_or(|s| {
        s.match_labels
            .iter()
            .all(|(k, v)| workload.labels.get(k) == Some(v))
    });
    in_scope && selected
}

fn rule_policy(ctx: &Ctx<'_>, effect: &str, rule: &Rule) -> Result<String, ImportError> {
    let mut principal_scope = "principal".to_owned();
    let from = match rule.from.as_slice() {
        [] => None,
        [single] => {
            let mut source = single.source.clone_fields();
            // Put one exact principal or namespace in the policy scope, where
            // the engine's index can use it.
            if let [p] = source.principals.as_slice()
                && !p.contains('*')
            {
                principal_scope = format!(
                    "principal == Mesh::Workload::\"{}\"",
                    escape(&format!("spiffe://{p}"))
                );
                source.principals.clear();
            } else if let [ns] = source.namespaces.as_slice()
                && !ns.contains('*')
            {
                principal_scope = format!("principal in Mesh::Namespace::\"{}\"", escape(ns));
                source.namespaces.clear();
            }
            source_clause(ctx, &source)?
        }
        many => any(many
            .iter()
            .map(|f| source_clause(ctx, &f.source))
            .collect::<Result<_, _>>()?),
    };
    let to = if rule.to.is_empty() {
        None
    } else {
        any(rule
            .to
            .iter()
            .map(|t| operation_clause(ctx, &t.operation))
            .collect::<Result<_, _>>()?)
    };
    let mut parts = vec![from, to];
    for c in &rule.when {
        parts.push(condition_clause(ctx, c)?);
    }
    let body = match all(parts) {
        Some(condition) => format!("\nwhen {{ {condition} }}"),
        None => String::new(),
    };
    Ok(format!(
        "{effect} ({principal_scope}, action, resource){body};"
    ))
}

impl Source {
    fn clone_fields(&self) -> Source {
        Source {
            principals: self.principals.clone(),
            not_principals: self.not_principals.clone(),
            request_principals: self.request_principals.clone(),
            not_request_principals: self.not_request_principals.clone(),
            namespaces: self.namespaces.clone(),
            not_namespaces: self.not_namespaces.clone(),
            ip_blocks: self.ip_blocks.clone(),
            not_ip_blocks: self.not_ip_blocks.clone(),
            remote_ip_blocks: self.remote_ip_blocks.clone(),
            not_remote_ip_blocks: self.not_remote_ip_blocks.clone(),
        }
    }
}

fn source_clause(ctx: &Ctx<'_>, s: &Source) -> Result<Clause, ImportError> {
    if !s.remote_ip_blocks.is_empty() || !s.not_remote_ip_blocks.is_empty() {
        return Err(ctx.unsupported("`remoteIpBlocks` (requests carry no original client address)"));
    }
    Ok(all(vec![
        field(&s.principals, |v| Ok(principal(v)))?,
        not(field(&s.not_principals, |v| Ok(principal(v)))?),
        field(&s.request_principals, |v| Ok(request_principal(v)))?,
        not(field(&s.not_request_principals, |v| {
            Ok(request_principal(v))
        })?),
        field(&s.namespaces, |v| Ok(namespace(v)))?,
        not(field(&s.not_namespaces, |v| Ok(namespace(v)))?),
        ip_blocks(ctx, "ipBlocks", &s.ip_blocks)?,
        not(ip_blocks(ctx, "notIpBlocks", &s.not_ip_blocks)?),
    ]))
}

fn operation_clause(ctx: &Ctx<'_>, o: &Operation) -> Result<Clause, ImportError> {
    let host = |v: &str| {
        if v.contains(':') {
            Err(ctx.unsupported(format!(
                "host `{v}` with a port (hosts are matched without one)"
            )))
        } else {
            Ok(string_match("context.host", &v.to_ascii_lowercase()))
        }
    };
    let port = |v: &str| port(ctx, "ports", v);
    let path = |v: &str| {
        if v.contains('{') {
            Err(ctx.unsupported(format!("path template `{v}`")))
        } else {
            Ok(string_match("context.path", v))
        }
    };
    let method = |v: &str| Ok(string_match("context.method", v));
    Ok(all(vec![
        field(&o.hosts, host)?,
        not(field(&o.not_hosts, host)?),
        field(&o.ports, port)?,
        not(field(&o.not_ports, port)?),
        field(&o.methods, method)?,
        not(field(&o.not_methods, method)?),
        field(&o.paths, path)?,
        not(field(&o.not_paths, path)?),
    ]))
}

fn condition_clause(ctx: &Ctx<'_>, c: &Condition) -> Result<Clause, ImportError> {
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(ctx.bad("when", &c.key, "has neither `values` nor `notValues`"));
    }
    let key = c.key.as_str();
    let both = |f: &dyn Fn(&str) -> Result<String, ImportError>| -> Result<Clause, ImportError> {
        Ok(all(vec![
            field(&c.values, f)?,
            not(field(&c.not_values, f)?),
        ]))
    };
    if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|k| k.strip_suffix(']'))
    {
        let name = escape(&name.to_ascii_lowercase());
        let tag = format!("context.headers.getTag(\"{name}\")");
        let present = format!("context.headers.hasTag(\"{name}\")");
        return both(&|v| Ok(format!("({present} && {})", string_match(&tag, v))));
    }
    if let Some(rest) = key.strip_prefix("request.auth.claims") {
        let path = claim_path(rest)
            .ok_or_else(|| ctx.bad("when", key, "is not `request.auth.claims[name]...`"))?;
        return both(&|v| claim(ctx, key, &path, v));
    }
    match key {
        "source.ip" => Ok(all(vec![
            ip_blocks(ctx, key, &c.values)?,
            not(ip_blocks(ctx, key, &c.not_values)?),
        ])),
        "source.namespace" => both(&|v| Ok(namespace(v))),
        "source.principal" => both(&|v| Ok(principal(v))),
        "request.auth.principal" => both(&|v| Ok(request_principal(v))),
        "request.auth.audiences" => both(&|v| {
            if v == "*" {
                Ok("(context has user && !context.user.audiences.isEmpty())".to_owned())
            } else if v.starts_with('*') || v.ends_with('*') {
                Err(ctx.unsupported(format!("prefix or suffix match `{v}` on `{key}`")))
            } else {
                Ok(format!(
                    "(context has user && context.user.audiences.contains(\"{}\"))",
                    escape(v)
                ))
            }
        }),
        "request.auth.presenter" => both(&|v| claim(ctx, key, "azp", v)),
        "destination.port" => both(&|v| port(ctx, key, v)),
        "connection.sni" => both(&|v| {
            Ok(format!(
                "(context has sni && {})",
                string_match("context.sni", v)
            ))
        }),
        "remote.ip" | "destination.ip" => Err(ctx.unsupported(format!(
            "condition on `{key}` (requests carry no such address)"
        ))),
        _ => Err(ctx.unsupported(format!("condition on `{key}`"))),
    }
}

/// `[a][b]` to `a.b`, the tag name of a nested claim.
fn claim_path(rest: &str) -> Option<String> {
    let mut segments = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        segments.push(inner.get(..end)?);
        rest = inner.get(end + 1..)?;
    }
    (!segments.is_empty() && segments.iter().all(|s| !s.is_empty())).then(|| segments.join("."))
}

/// Claims are sets of strings (see the schema), so only exact and presence
/// matches translate: Cedar cannot apply `like` to every element of a set.
fn claim(ctx: &Ctx<'_>, key: &str, tag: &str, v: &str) -> Result<String, ImportError> {
    let tag = escape(tag);
    let present = format!("context has user && context.user.hasTag(\"{tag}\")");
    if v == "*" {
        Ok(format!("({present})"))
    } else if v.starts_with('*') || v.ends_with('*') {
        Err(ctx.unsupported(format!("prefix or suffix match `{v}` on `{key}`")))
    } else {
        Ok(format!(
            "({present} && context.user.getTag(\"{tag}\").contains(\"{}\"))",
            escape(v)
        ))
    }
}

fn port(ctx: &Ctx<'_>, field: &str, v: &str) -> Result<String, ImportError> {
    let n: u16 = v
        .parse()
        .map_err(|_| ctx.bad(field, v, "is not a port number"))?;
    Ok(format!("context.port == {n}"))
}

fn principal(v: &str) -> String {
    if v == "*" {
        "principal.authenticated".to_owned()
    } else {
        // Istio principals are SPIFFE IDs without the scheme; a suffix match
        // (`*/sa/x`) keeps its wildcard right after the scheme.
        match v.strip_prefix('*') {
            Some(suffix) if !suffix.is_empty() => format!(
                "principal.spiffe_id like \"spiffe://*{}\"",
                like_literal(suffix)
            ),
            _ => string_match("principal.spiffe_id", &format!("spiffe://{v}")),
        }
    }
}

fn request_principal(v: &str) -> String {
    if v == "*" {
        "context has user".to_owned()
    } else {
        format!(
            "(context has user && {})",
            string_match("context.user.request_principal", v)
        )
    }
}

fn namespace(v: &str) -> String {
    if v == "*" {
        "principal has namespace".to_owned()
    } else if v.contains('*') {
        format!(
            "(principal has namespace && {})",
            string_match("principal.namespace", v)
        )
    } else {
        format!("principal in Mesh::Namespace::\"{}\"", escape(v))
    }
}

fn ip_blocks(ctx: &Ctx<'_>, field: &str, blocks: &[String]) -> Result<Clause, ImportError> {
    if blocks.is_empty() {
        return Ok(None);
    }
    let ranges = blocks
        .iter()
        .map(|b| {
            check_cidr(b).ok_or_else(|| ctx.bad(field, b, "is not an IP address or CIDR block"))?;
            Ok(format!("context.source_ip.isInRange(ip(\"{b}\"))"))
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    Ok(Some(format!(
        "(context has source_ip && ({}))",
        ranges.join(" || ")
    )))
}

fn check_cidr(block: &str) -> Option<()> {
    let (addr, prefix) = match block.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (block, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Some(()),
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).map(|_| ()),
    }
}

/// Istio's string match of `expr` against `v`: `*` alone means present and
/// non-empty, a leading or trailing `*` a suffix or prefix match, anything
/// else exact.
fn string_match(expr: &str, v: &str) -> String {
    if v == "*" {
        format!("{expr} != \"\"")
    } else if let Some(prefix) = v.strip_suffix('*') {
        format!("{expr} like \"{}*\"", like_literal(prefix))
    } else if let Some(suffix) = v.strip_prefix('*') {
        format!("{expr} like \"*{}\"", like_literal(suffix))
    } else {
        format!("{expr} == \"{}\"", escape(v))
    }
}

fn field(
    values: &[String],
    f: impl Fn(&str) -> Result<String, ImportError>,
) -> Result<Clause, ImportError> {
    if values.is_empty() {
        return Ok(None);
    }
    let alts: Vec<String> = values.iter().map(|v| f(v)).collect::<Result<_, _>>()?;
    Ok(Some(match alts.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", alts.join(" || ")),
    }))
}

fn not(c: Clause) -> Clause {
    c.map(|c| format!("!({c})"))
}

/// Any of the alternatives; an unset one (always true) makes all true.
fn any(alts: Vec<Clause>) -> Clause {
    let alts: Option<Vec<String>> = alts.into_iter().collect();
    let alts = alts?;
    Some(match alts.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", alts.join(" || ")),
    })
}

fn all(parts: Vec<Clause>) -> Clause {
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    match parts.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => Some(parts.join(" && ")),
    }
}

/// A Cedar string literal's contents.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// The contents of a `like` pattern matching `s` literally.
fn like_literal(s: &str) -> String {
    escape(s).replace('*', "\\*")
}
