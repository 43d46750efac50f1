//! Cedar's JSON policy format (the EST) lowered to the evaluator's form.
//! Everything the evaluator does not implement exactly is refused here,
//! naming the construct: a policy is never approximated.

use serde_json::{Map, Value};

use super::ext::{IpNet, parse_datetime, parse_duration};
use super::{BinOp, Cond, Const, Ctx, Expr, ExtFn, Pattern, PatternElem, Policy, Scope, Uid, Var};

/// Why a policy cannot be loaded: the construct, as Cedar names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported(pub(crate) String);

type Result<T> = std::result::Result<T, Unsupported>;

fn bad(what: impl Into<String>) -> Unsupported {
    Unsupported(what.into())
}

fn obj<'v>(v: &'v Value, what: &str) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| bad(format!("malformed {what}")))
}

fn field<'v>(m: &'v Map<String, Value>, name: &str, what: &str) -> Result<&'v Value> {
    m.get(name)
        .ok_or_else(|| bad(format!("malformed {what}: no `{name}`")))
}

fn string<'v>(v: &'v Value, what: &str) -> Result<&'v str> {
    v.as_str().ok_or_else(|| bad(format!("malformed {what}")))
}

/// An entity reference: `{"type", "id"}` or `{"__entity": {"type", "id"}}`.
fn uid(v: &Value) -> Result<Uid> {
    let m = obj(v, "entity reference")?;
    let m = match m.get("__entity") {
        Some(inner) => obj(inner, "entity reference")?,
        None => m,
    };
    if m.len() != 2 {
        return Err(bad("malformed entity reference"));
    }
    Ok(Uid {
        ty: string(field(m, "type", "entity reference")?, "entity type")?.into(),
        id: string(field(m, "id", "entity reference")?, "entity id")?.into(),
    })
}

/// One policy in Cedar's JSON policy format.
pub(crate) fn policy(id: &str, v: &Value) -> Result<Policy> {
    let m = obj(v, "policy")?;
    for key in m.keys() {
        if !matches!(
            key.as_str(),
            "effect" | "principal" | "action" | "resource" | "conditions" | "annotations"
        ) {
            return Err(bad(format!("policy field `{key}`")));
        }
    }
    let forbid = match string(field(m, "effect", "policy")?, "effect")? {
        "permit" => false,
        "forbid" => true,
        other => return Err(bad(format!("effect `{other}`"))),
    };
    let principal = entity_scope(field(m, "principal", "policy")?)?;
    let action = action_scope(field(m, "action", "policy")?)?;
    let resource = entity_scope(field(m, "resource", "policy")?)?;
    let mut conditions = Vec::new();
    if let Some(conds) = m.get("conditions") {
        let conds = conds
            .as_array()
            .ok_or_else(|| bad("malformed conditions"))?;
        for c in conds {
            let c = obj(c, "condition")?;
            let when = match string(field(c, "kind", "condition")?, "condition kind")? {
                "when" => true,
                "unless" => false,
                other => return Err(bad(format!("condition `{other}`"))),
            };
            conditions.push(Cond {
                when,
                body: expr(field(c, "body", "condition")?)?,
            });
        }
    }
    Ok(Policy {
        id: id.into(),
        forbid,
        principal,
        action,
        resource,
        conditions,
    })
}

fn scope_entity(m: &Map<String, Value>, key: &str) -> Result<Uid> {
    let v = field(m, key, "scope")?;
    if v.get("slot").is_some() {
        return Err(bad("template slot"));
    }
    uid(v)
}

fn entity_scope(v: &Value) -> Result<Scope> {
    let m = obj(v, "scope")?;
    if m.contains_key("slot") {
        return Err(bad("template slot"));
    }
    Ok(match string(field(m, "op", "scope")?, "scope op")? {
        "All" => Scope::Any,
        "==" => Scope::Eq(scope_entity(m, "entity")?),
        "in" => Scope::In(scope_entity(m, "entity")?),
        "is" => {
            let ty = string(field(m, "entity_type", "scope")?, "entity type")?.into();
            match m.get("in") {
                None => Scope::Is(ty),
                Some(inner) => Scope::IsIn(ty, scope_entity(obj(inner, "scope")?, "entity")?),
            }
        }
        other => return Err(bad(format!("scope operator `{other}`"))),
    })
}

fn action_scope(v: &Value) -> Result<Scope> {
    let m = obj(v, "action scope")?;
    Ok(match string(field(m, "op", "action scope")?, "scope op")? {
        "All" => Scope::Any,
        "==" => Scope::Eq(scope_entity(m, "entity")?),
        "in" => match (m.get("entity"), m.get("entities")) {
            (Some(e), None) => Scope::In(uid(e)?),
            (None, Some(list)) => Scope::InAny(
                list.as_array()
                    .ok_or_else(|| bad("malformed action scope"))?
                    .iter()
                    .map(uid)
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(bad("malformed action scope")),
        },
        other => return Err(bad(format!("action scope operator `{other}`"))),
    })
}

fn two(v: &Value, what: &str) -> Result<(Expr, Expr)> {
    let m = obj(v, what)?;
    Ok((
        expr(field(m, "left", what)?)?,
        expr(field(m, "right", what)?)?,
    ))
}

fn boxed2(v: &Value, what: &str) -> Result<(Box<Expr>, Box<Expr>)> {
    let (l, r) = two(v, what)?;
    Ok((Box::new(l), Box::new(r)))
}

fn args(v: &Value, n: usize, what: &str) -> Result<Vec<Value>> {
    let a = v
        .as_array()
        .ok_or_else(|| bad(format!("malformed call of `{what}`")))?;
    if a.len() != n {
        return Err(bad(format!("`{what}` with {} arguments", a.len())));
    }
    Ok(a.clone())
}

fn string_literal(v: &Value, what: &str) -> Result<String> {
    match v.get("Value") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(bad(format!(
            "`{what}` of something other than a string literal"
        ))),
    }
}

/// One expression.
pub(crate) fn expr(v: &Value) -> Result<Expr> {
    let m = obj(v, "expression")?;
    let mut entries = m.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(bad("malformed expression"));
    };
    let op = op.as_str();
    Ok(match op {
        "Value" => Expr::Lit(literal(arg)?),
        "Var" => match string(arg, "variable")? {
            "principal" => Expr::Var(Var::Principal),
            "action" => Expr::Var(Var::Action),
            "resource" => Expr::Var(Var::Resource),
            "context" => return Err(bad("`context` other than through its attributes")),
            other => return Err(bad(format!("variable `{other}`"))),
        },
        "Slot" => return Err(bad("template slot")),
        "Unknown" => return Err(bad("unknown")),
        "!" => Expr::Not(Box::new(expr(field(obj(arg, "!")?, "arg", "!")?)?)),
        "neg" => Expr::Neg(Box::new(expr(field(obj(arg, "neg")?, "arg", "neg")?)?)),
        "isEmpty" => Expr::IsEmpty(Box::new(expr(field(
            obj(arg, "isEmpty")?,
            "arg",
            "isEmpty",
        )?)?)),
        "&&" => {
            let (l, r) = boxed2(arg, op)?;
            Expr::And(l, r)
        }
        "||" => {
            let (l, r) = boxed2(arg, op)?;
            Expr::Or(l, r)
        }
        "==" | "!=" | "<" | "<=" | ">" | ">=" | "+" | "-" | "*" | "in" | "contains"
        | "containsAll" | "containsAny" | "hasTag" | "getTag" => {
            let bin = match op {
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "in" => BinOp::In,
                "contains" => BinOp::Contains,
                "containsAll" => BinOp::ContainsAll,
                "containsAny" => BinOp::ContainsAny,
                "hasTag" => BinOp::HasTag,
                _ => BinOp::GetTag,
            };
            let (l, r) = boxed2(arg, op)?;
            Expr::Bin(bin, l, r)
        }
        "." | "has" => {
            let a = obj(arg, op)?;
            let left = field(a, "left", op)?;
            let path: Vec<String> = match field(a, "attr", op)? {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|i| string(i, "attribute").map(str::to_owned))
                    .collect::<Result<_>>()?,
                _ => return Err(bad(format!("malformed `{op}`"))),
            };
            if op == "." {
                let [attr] = path.as_slice() else {
                    return Err(bad("malformed attribute access"));
                };
                attr_of(left, attr)?
            } else {
                has_path(left, &path)?
            }
        }
        "like" => {
            let a = obj(arg, "like")?;
            let left = expr(field(a, "left", "like")?)?;
            let elems = field(a, "pattern", "like")?
                .as_array()
                .ok_or_else(|| bad("malformed `like`"))?;
            let mut pattern = Vec::new();
            for e in elems {
                match e {
                    Value::String(s) if s == "Wildcard" => pattern.push(PatternElem::Any),
                    Value::Object(l) => match l.get("Literal") {
                        Some(Value::String(s)) if l.len() == 1 => {
                            pattern.extend(s.chars().map(PatternElem::Char));
                        }
                        _ => return Err(bad("malformed `like` pattern")),
                    },
                    _ => return Err(bad("malformed `like` pattern")),
                }
            }
            Expr::Like(Box::new(left), Pattern(pattern))
        }
        "is" => {
            let a = obj(arg, "is")?;
            let left = Box::new(expr(field(a, "left", "is")?)?);
            let ty = string(field(a, "entity_type", "is")?, "entity type")?.to_owned();
            let within = a.get("in").map(expr).transpose()?.map(Box::new);
            Expr::Is(left, ty, within)
        }
        "if-then-else" => {
            let a = obj(arg, "if-then-else")?;
            Expr::If(
                Box::new(expr(field(a, "if", op)?)?),
                Box::new(expr(field(a, "then", op)?)?),
                Box::new(expr(field(a, "else", op)?)?),
            )
        }
        "Set" => Expr::Set(
            arg.as_array()
                .ok_or_else(|| bad("malformed set"))?
                .iter()
                .map(expr)
                .collect::<Result<_>>()?,
        ),
        "Record" => {
            let mut fields: Vec<(String, Expr)> = obj(arg, "record")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), expr(v)?)))
                .collect::<Result<_>>()?;
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Expr::Record(fields)
        }
        "ip" => {
            let [a] = <[Value; 1]>::try_from(args(arg, 1, "ip")?)
                .map_err(|_| bad("malformed call of `ip`"))?;
            let s = string_literal(&a, "ip")?;
            Expr::Lit(Const::Ip(
                IpNet::parse(&s).ok_or_else(|| bad(format!("`ip(\"{s}\")`: not an address")))?,
            ))
        }
        "datetime" => {
            let [a] = <[Value; 1]>::try_from(args(arg, 1, "datetime")?)
                .map_err(|_| bad("malformed call of `datetime`"))?;
            let s = string_literal(&a, "datetime")?;
            Expr::Lit(Const::DateTime(parse_datetime(&s).ok_or_else(|| {
                bad(format!("`datetime(\"{s}\")`: not a datetime"))
            })?))
        }
        "duration" => {
            let [a] = <[Value; 1]>::try_from(args(arg, 1, "duration")?)
                .map_err(|_| bad("malformed call of `duration`"))?;
            let s = string_literal(&a, "duration")?;
            Expr::Lit(Const::Duration(parse_duration(&s).ok_or_else(|| {
                bad(format!("`duration(\"{s}\")`: not a duration"))
            })?))
        }
        "isIpv4" | "isIpv6" | "isLoopback" | "isMulticast" => {
            let [a] = <[Value; 1]>::try_from(args(arg, 1, op)?)
                .map_err(|_| bad(format!("malformed call of `{op}`")))?;
            let f = match op {
                "isIpv4" => ExtFn::IsIpv4,
                "isIpv6" => ExtFn::IsIpv6,
                "isLoopback" => ExtFn::IsLoopback,
                _ => ExtFn::IsMulticast,
            };
            Expr::Ext1(f, Box::new(expr(&a)?))
        }
        "isInRange" => {
            let [a, b] = <[Value; 2]>::try_from(args(arg, 2, op)?)
                .map_err(|_| bad("malformed call of `isInRange`"))?;
            Expr::InRange(Box::new(expr(&a)?), Box::new(expr(&b)?))
        }
        other => return Err(bad(format!("`{other}`"))),
    })
}

fn literal(v: &Value) -> Result<Const> {
    Ok(match v {
        Value::Bool(b) => Const::Bool(*b),
        Value::Number(n) => Const::Long(n.as_i64().ok_or_else(|| bad(format!("number `{n}`")))?),
        Value::String(s) => Const::Str(s.clone()),
        Value::Object(m) if m.contains_key("__entity") => Const::Entity(uid(v)?),
        Value::Object(m) if m.contains_key("__extn") => {
            return Err(bad("extension value literal"));
        }
        // Cedar's JSON format allows sets and records as literal values.
        _ => return Err(bad("literal of this form")),
    })
}

/// `left.attr`, with `context.attr` resolved now.
fn attr_of(left: &Value, attr: &str) -> Result<Expr> {
    if is_context(left) {
        return Ok(Expr::Ctx(Ctx::of(attr)));
    }
    Ok(Expr::Attr(Box::new(expr(left)?), attr.to_owned()))
}

/// `left has a.b.c`: `left has a && left.a has b && left.a.b has c`.
fn has_path(left: &Value, path: &[String]) -> Result<Expr> {
    let Some((first, rest)) = path.split_first() else {
        return Err(bad("malformed `has`"));
    };
    let mut out = if is_context(left) {
        Expr::CtxHas(Ctx::of(first))
    } else {
        Expr::Has(Box::new(expr(left)?), first.clone())
    };
    let mut reached = attr_of(left, first)?;
    for attr in rest {
        let step = Expr::Has(Box::new(reached.clone()), attr.clone());
        out = Expr::And(Box::new(out), Box::new(step));
        reached = Expr::Attr(Box::new(reached), attr.clone());
    }
    Ok(out)
}

fn is_context(v: &Value) -> bool {
    v.get("Var").and_then(Value::as_str) == Some("context")
}
