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
    /// The policy's namespace: a service account named without one is in it.
    namespace: &'a str,
    options: &'a ImportOptions,
    /// An ALLOW policy: where a condition cannot be exact, its rules must
    /// match less (a DENY policy's, more).
    allow: bool,
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
    let mut dry_run = Vec::new();
    let mut enforced = Vec::new();
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
        let ctx = Ctx {
            policy: &name,
            namespace: &namespace,
            options,
            allow: spec.action.as_deref().is_none_or(|a| a == "ALLOW"),
        };
        match doc
            .metadata
            .annotations
            .get("istio.io/dry-run")
            .map(String::as_str)
        {
            None | Some("false") => enforced.push(name.clone()),
            Some("true") => dry_run.push(name.clone()),
            Some(other) => {
                return Err(ctx.bad(
                    "metadata.annotations[istio.io/dry-run]",
                    other,
                    "is neither `true` nor `false`",
                ));
            }
        }
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
    // Dry-run is a mode of the whole engine, so one translation is all one
    // or all the other; Istio would enforce some and shadow the others.
    if let (Some(d), Some(e)) = (dry_run.first(), enforced.first()) {
        return Err(ImportError::Unsupported {
            policy: d.clone(),
            what: format!(
                "`istio.io/dry-run: \"true\"` beside the enforced `{e}` (import dry-run and enforced policies separately)"
            ),
        });
    }
    out.dry_run = !dry_run.is_empty();
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
            let mut source = single.source.clone();
            // Put one exact principal in the policy scope, where the
            // engine's index can use it.
            let principals = ctx.principals(&source.principals);
            if let [p] = principals.as_slice()
                && !p.contains('*')
                && source.service_accounts.is_empty()
                && source.not_service_accounts.is_empty()
            {
                principal_scope = format!(
                    "principal == Mesh::Workload::\"{}\"",
                    escape(&format!("spiffe://{p}"))
                );
                source.principals.clear();
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

impl Ctx<'_> {
    /// Principals as Istio matches them: each naming the mesh's trust
    /// domain, one of its aliases or `cluster.local` stands for all of them.
    fn principals(&self, values: &[String]) -> Vec<String> {
        let mut bundle = vec![self.options.trust_domain.clone()];
        bundle.extend(self.options.trust_domain_aliases.iter().cloned());
        let mut out = Vec::new();
        for principal in values {
            let parts: Vec<&str> = principal.split('/').collect();
            let td = match parts.as_slice() {
                [td, _, _, _, _] if *td != "*" => *td,
                // Not `<td>/ns/<ns>/sa/<sa>`, or any trust domain: as is.
                _ => {
                    out.push(principal.clone());
                    continue;
                }
            };
            if !(td_matches(td, &bundle) || td == "cluster.local") {
                out.push(principal.clone());
                continue;
            }
            let rest = parts.get(1..).unwrap_or_default().join("/");
            for alias in &bundle {
                let rewritten = if suffix_pattern(alias, td) {
                    principal.clone()
                } else {
                    format!("{alias}/{rest}")
                };
                if !out.contains(&rewritten) {
                    out.push(rewritten);
                }
            }
        }
        out
    }
}

/// Whether `td` matches one of `bundle`, either side holding the pattern.
fn td_matches(td: &str, bundle: &[String]) -> bool {
    bundle.iter().any(|s| {
        td == s
            || s == "*"
            || prefix_pattern(td, s)
            || prefix_pattern(s, td)
            || suffix_pattern(td, s)
            || suffix_pattern(s, td)
    })
}

fn prefix_pattern(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|p| a.starts_with(p))
}

fn suffix_pattern(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|p| a.ends_with(p))
}

fn source_clause(ctx: &Ctx<'_>, s: &Source) -> Result<Clause, ImportError> {
    if !s.remote_ip_blocks.is_empty() || !s.not_remote_ip_blocks.is_empty() {
        return Err(ctx.unsupported("`remoteIpBlocks` (requests carry no original client address)"));
    }
    if s.trust_domains.is_some() || s.not_trust_domains.is_some() {
        return Err(ctx.unsupported(
            "`trustDomains`/`notTrustDomains` (not a field of Istio's AuthorizationPolicy source: match trust domains in `principals`)",
        ));
    }
    let by_sa = !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty();
    let by_name = !s.principals.is_empty()
        || !s.not_principals.is_empty()
        || !s.namespaces.is_empty()
        || !s.not_namespaces.is_empty();
    if by_sa && by_name {
        return Err(ctx.unsupported(
            "`serviceAccounts` with `principals` or `namespaces` in one source (Istio refuses the combination)",
        ));
    }
    let namespace = |field: &'static str| move |v: &str| namespace(ctx, field, v);
    let sa = |field: &'static str| move |v: &str| service_account(ctx, field, v);
    let rp = |field: &'static str| move |v: &str| request_principal(ctx, field, v);
    Ok(all(vec![
        field(&ctx.principals(&s.principals), |v| Ok(principal(v)))?,
        not(field(&ctx.principals(&s.not_principals), |v| {
            Ok(principal(v))
        })?),
        field(&s.request_principals, rp("requestPrincipals"))?,
        not(field(
            &s.not_request_principals,
            rp("notRequestPrincipals"),
        )?),
        field(&s.namespaces, namespace("namespaces"))?,
        not(field(&s.not_namespaces, namespace("notNamespaces"))?),
        field(&s.service_accounts, sa("serviceAccounts"))?,
        not(field(&s.not_service_accounts, sa("notServiceAccounts"))?),
        ip_blocks(ctx, "ipBlocks", &s.ip_blocks)?,
        not(ip_blocks(ctx, "notIpBlocks", &s.not_ip_blocks)?),
    ]))
}

fn operation_clause(ctx: &Ctx<'_>, o: &Operation) -> Result<Clause, ImportError> {
    let host = |field: &'static str| move |v: &str| host(ctx, field, v);
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
        field(&o.hosts, host("hosts"))?,
        not(field(&o.not_hosts, host("notHosts"))?),
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
        return header_condition(ctx, key, name, c);
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
        "source.namespace" => both(&|v| namespace(ctx, key, v)),
        "source.principal" => Ok(all(vec![
            field(&ctx.principals(&c.values), |v| Ok(principal(v)))?,
            not(field(&ctx.principals(&c.not_values), |v| Ok(principal(v)))?),
        ])),
        "request.auth.principal" => both(&|v| request_principal(ctx, key, v)),
        "request.auth.audiences" => both(&|v| {
            claim_value(ctx, key, v)?;
            Ok(format!(
                "(context has user && context.user.audiences.contains(\"{}\"))",
                escape(v)
            ))
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

/// Envoy matches a header on each of its values (a repeated header
/// matches if one value does), and `*` on its presence, even empty. Cedar
/// has the values joined with `,` (`headers`), which is the one value when
/// the header is sent once with no `,` in it: there the translation is
/// exact; elsewhere it fails closed (see `headers_fail_closed`).
fn header_condition(
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
    c: &Condition,
) -> Result<Clause, ImportError> {
    let name = escape(&name.to_ascii_lowercase());
    let joined = format!("context.headers.getTag(\"{name}\")");
    let present = format!("context.headers.hasTag(\"{name}\")");
    let ambiguous = format!("{joined} like \"*,*\"");
    // `surely`: matches only where the match is certain; otherwise where
    // it is possible.
    let one = |v: &str, surely: bool| -> Result<String, ImportError> {
        if v == "*" {
            return Ok(present.clone());
        }
        if !ctx.options.headers_fail_closed {
            return Err(ctx.unsupported(format!(
                "value `{v}` on `{key}` (Envoy matches each value of a repeated header, which Cedar cannot; the option `headers_fail_closed` (`--headers-fail-closed`) translates it, failing closed on repeated or comma-separated values)"
            )));
        }
        let m = string_match(&joined, v);
        Ok(if surely {
            format!("({present} && !({ambiguous}) && {m})")
        } else {
            format!("({present} && ({ambiguous} || {m}))")
        })
    };
    // An ALLOW rule matches less where it cannot be sure, a DENY rule more;
    // under `notValues` the sense turns.
    let allow = ctx.allow;
    Ok(all(vec![
        field(&c.values, |v| one(v, allow))?,
        not(field(&c.not_values, |v| one(v, !allow))?),
    ]))
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

/// Istio matches claims among their string values only. meshward's claim
/// tags are sets of strings that also hold numbers and booleans as their
/// JSON text, and Cedar cannot apply `like` to every element of a set, so
/// only exact values a number or boolean cannot also spell translate.
fn claim_value(ctx: &Ctx<'_>, key: &str, v: &str) -> Result<(), ImportError> {
    if v == "*" {
        return Err(ctx.unsupported(format!(
            "presence match `*` on `{key}` (a number or boolean claim would match)"
        )));
    }
    if v.starts_with('*') || v.ends_with('*') {
        return Err(ctx.unsupported(format!("prefix or suffix match `{v}` on `{key}`")));
    }
    if v == "true" || v == "false" || serde_json::from_str::<serde_json::Number>(v).is_ok() {
        return Err(ctx.unsupported(format!(
            "value `{v}` on `{key}` (a number or boolean claim would also match it, which Istio never matches)"
        )));
    }
    Ok(())
}

fn claim(ctx: &Ctx<'_>, key: &str, tag: &str, v: &str) -> Result<String, ImportError> {
    claim_value(ctx, key, v)?;
    let tag = escape(tag);
    Ok(format!(
        "(context has user && context.user.hasTag(\"{tag}\") && context.user.getTag(\"{tag}\").contains(\"{}\"))",
        escape(v)
    ))
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

/// Istio splits a request principal at its last `/` into the issuer and
/// the subject and matches each: `*` as any non-empty value, a leading `*`
/// as a suffix of the issuer (or of the subject, with no `/`), a trailing
/// `*` as a prefix of the subject (or of the issuer, with no `/`).
fn request_principal(ctx: &Ctx<'_>, field: &str, v: &str) -> Result<String, ImportError> {
    const ISS: &str = "context.user.issuer";
    const SUB: &str = "context.user.subject";
    let nonempty = |e: &str| format!("{e} != \"\"");
    let (iss, sub) = match v.rfind('/') {
        Some(at) => (v.get(..at), v.get(at + 1..)),
        None => (Some(v), None),
    };
    let iss = iss.unwrap_or_default();
    // An exact match on an empty part would also match a token without
    // the claim (meshward reads a missing or non-string claim as empty).
    let exact = |e: &str, part: &str| {
        if part.is_empty() {
            Err(ctx.bad(
                field,
                v,
                "names an empty issuer or subject, which a token without one would also match",
            ))
        } else {
            Ok(format!("{e} == \"{}\"", escape(part)))
        }
    };
    let (m_iss, m_sub) = if v == "*" {
        (nonempty(ISS), nonempty(SUB))
    } else if let Some(rest) = v.strip_prefix('*') {
        match sub {
            Some(sub) => {
                let m_iss = if iss == "*" {
                    nonempty(ISS)
                } else {
                    format!(
                        "{ISS} like \"*{}\"",
                        like_literal(iss.strip_prefix('*').unwrap_or(iss))
                    )
                };
                (m_iss, exact(SUB, sub)?)
            }
            None => (
                nonempty(ISS),
                format!("{SUB} like \"*{}\"", like_literal(rest)),
            ),
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        match sub {
            Some(sub) => {
                let m_sub = if sub == "*" {
                    nonempty(SUB)
                } else {
                    format!(
                        "{SUB} like \"{}*\"",
                        like_literal(sub.strip_suffix('*').unwrap_or(sub))
                    )
                };
                (exact(ISS, iss)?, m_sub)
            }
            None => (
                format!("{ISS} like \"{}*\"", like_literal(rest)),
                nonempty(SUB),
            ),
        }
    } else {
        (exact(ISS, iss)?, exact(SUB, sub.unwrap_or_default())?)
    };
    Ok(format!("(context has user && {m_iss} && {m_sub})"))
}

/// Characters Istio puts into a regular expression unescaped: names with
/// any other character would match more than their text.
fn plain_name(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Istio matches a namespace as `/ns/<ns>/` anywhere in the peer's SPIFFE
/// ID (a `*` in it matching anything), not only IDs shaped
/// `/ns/<ns>/sa/<sa>`.
fn namespace(ctx: &Ctx<'_>, field: &str, v: &str) -> Result<String, ImportError> {
    if !v.split('*').all(|p| p.is_empty() || plain_name(p)) {
        return Err(ctx.bad(
            field,
            v,
            "is not a namespace name (Istio would read it as a regular expression)",
        ));
    }
    // `*` is Istio's `.*`, Cedar's `*`: any text, empty included.
    Ok(format!("principal.spiffe_id like \"*/ns/{v}/*\""))
}

/// Istio matches a service account `<ns>/<sa>` (or `<sa>`, in the policy's
/// namespace) as `spiffe://<td>/ns/<ns>/.../sa/<sa>`, with anything between
/// and `/...` after; SPIFFE IDs have no empty segments, so Cedar's `*`
/// (which matches the empty text too) decides the same.
fn service_account(ctx: &Ctx<'_>, field: &str, v: &str) -> Result<String, ImportError> {
    let (ns, sa) = v.split_once('/').unwrap_or((ctx.namespace, v));
    if !plain_name(ns) || !plain_name(sa) {
        return Err(ctx.bad(
            field,
            v,
            "is not `<namespace>/<name>` of plain names (no wildcards; Istio would read other characters as a regular expression)",
        ));
    }
    let alts = [
        format!("spiffe://*/ns/{ns}/sa/{sa}"),
        format!("spiffe://*/ns/{ns}/*/sa/{sa}"),
        format!("spiffe://*/ns/{ns}/sa/{sa}/*"),
        format!("spiffe://*/ns/{ns}/*/sa/{sa}/*"),
    ];
    Ok(format!(
        "({})",
        alts.iter()
            .map(|p| format!("principal.spiffe_id like \"{p}\""))
            .collect::<Vec<_>>()
            .join(" || ")
    ))
}

/// Istio compares a host, ignoring case, with the authority as the client
/// sent it, port included (`example.com` is not `example.com:8080`). Cedar
/// cannot lower-case, so the comparison goes through the canonical host
/// (lower-cased, without a final dot or port) and the authority's text for
/// the parts that have no case: its port and its final dot.
fn host(ctx: &Ctx<'_>, field: &str, v: &str) -> Result<String, ImportError> {
    const NO_PORT: &str = "!(context.authority like \"*:*\")";
    let v = v.to_ascii_lowercase();
    if v == "*" {
        // Present: every request has an authority.
        return Ok("true".to_owned());
    }
    if v.contains(['[', ']', '"', '\\']) || v.matches(':').count() > 1 {
        return Err(ctx.bad(field, &v, "is not a host name with an optional port"));
    }
    let has_letter = |s: &str| s.bytes().any(|b| b.is_ascii_alphabetic());
    // The authority's final dot, before the port if any.
    let dot = |port: Option<&str>| match port {
        Some(p) => format!("context.authority like \"*.:{}\"", like_literal(p)),
        None => "context.authority like \"*.\"".to_owned(),
    };
    let dot_is = |want: bool, port: Option<&str>| {
        if want {
            dot(port)
        } else {
            format!("!({})", dot(port))
        }
    };
    if let Some(suffix) = v.strip_prefix('*') {
        if !has_letter(suffix) {
            return Ok(format!(
                "context.authority like \"*{}\"",
                like_literal(suffix)
            ));
        }
        if suffix.contains(':') {
            return Err(ctx.unsupported(format!("host suffix `{v}` naming both a name and a port")));
        }
        let (stem, final_dot) = match suffix.strip_suffix('.') {
            Some(s) => (s, true),
            None => (suffix, false),
        };
        return Ok(format!(
            "({NO_PORT} && {} && context.host like \"*{}\")",
            dot_is(final_dot, None),
            like_literal(stem)
        ));
    }
    if let Some(prefix) = v.strip_suffix('*') {
        if let Some((name, port)) = prefix.split_once(':') {
            // `name:` then a port starting with `port`: the authority's host
            // is exactly `name`, with no final dot.
            if name.is_empty() || name.ends_with('.') || name.contains('*') {
                return Err(ctx.unsupported(format!("host prefix `{v}`")));
            }
            return Ok(format!(
                "(context.host == \"{}\" && !(context.authority like \"*.:*\") && context.authority like \"*:{}*\")",
                escape(name),
                like_literal(port)
            ));
        }
        let mut alts = vec![format!("context.host like \"{}*\"", like_literal(prefix))];
        // `api.` is also a prefix of the authority `api.:80` or `API.`.
        if let Some(stem) = prefix.strip_suffix('.') {
            alts.push(format!(
                "(context.host == \"{}\" && (context.authority like \"*.\" || context.authority like \"*.:*\"))",
                escape(stem)
            ));
        }
        return Ok(format!("({})", alts.join(" || ")));
    }
    let (name, port) = match v.split_once(':') {
        Some((n, p)) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ctx.bad(field, &v, "has a port that is not a number"));
            }
            (n, Some(p))
        }
        None => (v.as_str(), None),
    };
    let (stem, final_dot) = match name.strip_suffix('.') {
        Some(s) => (s, true),
        None => (name, false),
    };
    let port_clause = match port {
        Some(p) => format!("context.authority like \"*:{}\"", like_literal(p)),
        None => NO_PORT.to_owned(),
    };
    Ok(format!(
        "(context.host == \"{}\" && {port_clause} && {})",
        escape(stem),
        dot_is(final_dot, port)
    ))
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
