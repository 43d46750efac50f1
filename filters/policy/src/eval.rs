//! A small evaluator for Cedar policies, over the request directly.
//!
//! Policies arrive in Cedar's JSON policy format, already parsed and
//! strictly validated by Cedar on the host (`meshward compile`); `lower`
//! turns them into the form below once, at configure time, refusing any
//! construct not implemented here. Evaluation then follows Cedar's
//! semantics (the differential test in `meshward-policy-cedar` holds it to
//! Cedar's own answers): scope first, then each `when`/`unless` in order,
//! `&&`, `||` and `if` short-circuiting, type mismatches, missing
//! attributes and tags and long overflow are errors, and an erroring policy
//! is not satisfied.

use std::cmp::Ordering;
use std::rc::Rc;

pub(crate) mod ext;
pub(crate) mod lower;
pub(crate) mod req;

use self::ext::IpNet;
use self::req::{EntityRef, Req};

/// An entity uid as written in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Uid {
    pub(crate) ty: Box<str>,
    pub(crate) id: Box<str>,
}

/// A scope constraint.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    Any,
    Eq(Uid),
    In(Uid),
    /// `action in [a, b]`.
    InAny(Vec<Uid>),
    Is(Box<str>),
    IsIn(Box<str>, Uid),
}

#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub(crate) when: bool,
    pub(crate) body: Expr,
}

/// One lowered policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) id: Box<str>,
    pub(crate) forbid: bool,
    pub(crate) principal: Scope,
    pub(crate) action: Scope,
    pub(crate) resource: Scope,
    pub(crate) conditions: Vec<Cond>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Var {
    Principal,
    Action,
    Resource,
}

/// The attributes of meshward's request context
/// (`Mesh::RequestContext`), resolved when a policy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ctx {
    Method,
    Host,
    Authority,
    AuthorityPort,
    Path,
    Query,
    Params,
    ParamValues,
    Port,
    Headers,
    HeaderValues,
    SourceIp,
    SourcePort,
    Sni,
    Mtls,
    User,
    Time,
    /// A name the context never has: `has` is false, access an error.
    Unknown(String),
}

impl Ctx {
    pub(crate) fn of(name: &str) -> Self {
        match name {
            "method" => Self::Method,
            "host" => Self::Host,
            "authority" => Self::Authority,
            "authority_port" => Self::AuthorityPort,
            "path" => Self::Path,
            "query" => Self::Query,
            "params" => Self::Params,
            "param_values" => Self::ParamValues,
            "port" => Self::Port,
            "headers" => Self::Headers,
            "header_values" => Self::HeaderValues,
            "source_ip" => Self::SourceIp,
            "source_port" => Self::SourcePort,
            "sni" => Self::Sni,
            "mtls" => Self::Mtls,
            "user" => Self::User,
            "time" => Self::Time,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Const {
    Bool(bool),
    Long(i64),
    Str(String),
    Entity(Uid),
    Ip(IpNet),
    DateTime(i64),
    Duration(i64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    In,
    Contains,
    ContainsAll,
    ContainsAny,
    HasTag,
    GetTag,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ExtFn {
    IsIpv4,
    IsIpv6,
    IsLoopback,
    IsMulticast,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternElem {
    Char(char),
    Any,
}

/// A `like` pattern, one element per character or wildcard.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(pub(crate) Vec<PatternElem>);

impl Pattern {
    /// Whether `s` matches: `*` stands for any run of characters.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let p = &self.0;
        let text: Vec<char> = s.chars().collect();
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(PatternElem::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(PatternElem::Char(c)) if text.get(ti) == Some(c) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|e| *e == PatternElem::Any))
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Lit(Const),
    Var(Var),
    Ctx(Ctx),
    CtxHas(Ctx),
    Attr(Box<Expr>, String),
    Has(Box<Expr>, String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsEmpty(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Like(Box<Expr>, Pattern),
    Is(Box<Expr>, String, Option<Box<Expr>>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Set(Vec<Expr>),
    Record(Vec<(String, Expr)>),
    Ext1(ExtFn, Box<Expr>),
    InRange(Box<Expr>, Box<Expr>),
}

/// A value during evaluation, borrowing from the policies and the request.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    Entity(EntityRef<'a>),
    Set(Rc<Vec<Val<'a>>>),
    /// Fields sorted by name.
    Record(Rc<Vec<(&'a str, Val<'a>)>>),
    Ip(IpNet),
    DateTime(i64),
    Duration(i64),
}

/// Why an expression has no value; the policy is then not satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError(pub(crate) String);

type Result<T> = std::result::Result<T, EvalError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(EvalError(message.into()))
}

fn type_name(v: &Val<'_>) -> &'static str {
    match v {
        Val::Bool(_) => "bool",
        Val::Long(_) => "long",
        Val::Str(_) => "string",
        Val::Entity(_) => "entity",
        Val::Set(_) => "set",
        Val::Record(_) => "record",
        Val::Ip(_) => "ipaddr",
        Val::DateTime(_) => "datetime",
        Val::Duration(_) => "duration",
    }
}

fn type_error<T>(expected: &str, got: &Val<'_>) -> Result<T> {
    err(format!(
        "type error: expected {expected}, got {}",
        type_name(got)
    ))
}

impl Val<'_> {
    fn as_bool(&self) -> Result<bool> {
        match self {
            Val::Bool(b) => Ok(*b),
            other => type_error("bool", other),
        }
    }

    fn as_long(&self) -> Result<i64> {
        match self {
            Val::Long(n) => Ok(*n),
            other => type_error("long", other),
        }
    }

    fn as_ip(&self) -> Result<IpNet> {
        match self {
            Val::Ip(ip) => Ok(*ip),
            other => type_error("ipaddr", other),
        }
    }
}

impl PartialEq for Val<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Long(a), Val::Long(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Entity(a), Val::Entity(b)) => a == b,
            (Val::Set(a), Val::Set(b)) => {
                a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
            }
            (Val::Record(a), Val::Record(b)) => a == b,
            (Val::Ip(a), Val::Ip(b)) => a == b,
            (Val::DateTime(a), Val::DateTime(b)) => a == b,
            (Val::Duration(a), Val::Duration(b)) => a == b,
            _ => false,
        }
    }
}

impl Policy {
    /// Whether the policy is satisfied by the request: `Ok(false)` when its
    /// scope or a condition does not hold, `Err` when evaluation fails.
    pub(crate) fn satisfied<'a>(&'a self, req: &'a Req<'a>) -> Result<bool> {
        if !(scope(&self.principal, req.principal())
            && scope(&self.action, req.action())
            && scope(&self.resource, req.resource()))
        {
            return Ok(false);
        }
        for c in &self.conditions {
            if eval(&c.body, req)?.as_bool()? != c.when {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn scope(s: &Scope, e: EntityRef<'_>) -> bool {
    match s {
        Scope::Any => true,
        Scope::Eq(u) => e.is(u),
        Scope::In(u) => e.is_in(u),
        Scope::InAny(us) => us.iter().any(|u| e.is_in(u)),
        Scope::Is(ty) => e.ty() == &**ty,
        Scope::IsIn(ty, u) => e.ty() == &**ty && e.is_in(u),
    }
}

fn constant<'a>(c: &'a Const, req: &'a Req<'a>) -> Val<'a> {
    match c {
        Const::Bool(b) => Val::Bool(*b),
        Const::Long(n) => Val::Long(*n),
        Const::Str(s) => Val::Str(s),
        Const::Entity(u) => Val::Entity(req.entity(&u.ty, &u.id)),
        Const::Ip(ip) => Val::Ip(*ip),
        Const::DateTime(t) => Val::DateTime(*t),
        Const::Duration(d) => Val::Duration(*d),
    }
}

fn compare(op: BinOp, a: &Val<'_>, b: &Val<'_>) -> Result<bool> {
    let ord: Ordering = match (a, b) {
        (Val::Long(x), Val::Long(y)) => x.cmp(y),
        (Val::DateTime(x), Val::DateTime(y)) => x.cmp(y),
        (Val::Duration(x), Val::Duration(y)) => x.cmp(y),
        (Val::Long(_) | Val::DateTime(_) | Val::Duration(_), other) => {
            return type_error(type_name(a), other);
        }
        (other, _) => return type_error("long, datetime or duration", other),
    };
    Ok(match op {
        BinOp::Lt => ord.is_lt(),
        BinOp::Le => ord.is_le(),
        BinOp::Gt => ord.is_gt(),
        _ => ord.is_ge(),
    })
}

fn arith(op: BinOp, a: &Val<'_>, b: &Val<'_>) -> Result<i64> {
    let (x, y) = (a.as_long()?, b.as_long()?);
    let r = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        _ => x.checked_mul(y),
    };
    r.map_or_else(|| err(format!("integer overflow: {x} and {y}")), Ok)
}

fn set<'v, 'a>(v: &'v Val<'a>) -> Result<&'v [Val<'a>]> {
    match v {
        Val::Set(s) => Ok(s),
        other => type_error("set", other),
    }
}

fn entity<'a>(v: &Val<'a>) -> Result<EntityRef<'a>> {
    match v {
        Val::Entity(e) => Ok(*e),
        other => type_error("entity", other),
    }
}

fn in_op(a: &Val<'_>, b: &Val<'_>) -> Result<bool> {
    let e = entity(a)?;
    match b {
        Val::Entity(target) => Ok(e.is_in_entity(target)),
        Val::Set(items) => {
            let mut found = false;
            for item in items.iter() {
                let target = entity(item)?;
                found = found || e.is_in_entity(&target);
            }
            Ok(found)
        }
        other => type_error("entity or set", other),
    }
}

pub(crate) fn eval<'a>(e: &'a Expr, req: &'a Req<'a>) -> Result<Val<'a>> {
    Ok(match e {
        Expr::Lit(c) => constant(c, req),
        Expr::Var(Var::Principal) => Val::Entity(req.principal()),
        Expr::Var(Var::Action) => Val::Entity(req.action()),
        Expr::Var(Var::Resource) => Val::Entity(req.resource()),
        Expr::Ctx(attr) => req.context(attr)?,
        Expr::CtxHas(attr) => Val::Bool(req.context_has(attr)),
        Expr::Attr(of, name) => match eval(of, req)? {
            Val::Entity(ent) => req.attr(ent, name)?,
            Val::Record(fields) => match fields.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => v.clone(),
                None => return err(format!("record does not have the attribute `{name}`")),
            },
            other => return type_error("entity or record", &other),
        },
        Expr::Has(of, name) => match eval(of, req)? {
            Val::Entity(ent) => Val::Bool(req.has_attr(ent, name)),
            Val::Record(fields) => Val::Bool(fields.iter().any(|(k, _)| *k == name)),
            other => return type_error("entity or record", &other),
        },
        Expr::Not(a) => Val::Bool(!eval(a, req)?.as_bool()?),
        Expr::Neg(a) => {
            let n = eval(a, req)?.as_long()?;
            Val::Long(
                n.checked_neg()
                    .map_or_else(|| err(format!("integer overflow: -({n})")), Ok)?,
            )
        }
        Expr::IsEmpty(a) => Val::Bool(set(&eval(a, req)?)?.is_empty()),
        Expr::And(a, b) => Val::Bool(eval(a, req)?.as_bool()? && eval(b, req)?.as_bool()?),
        Expr::Or(a, b) => Val::Bool(eval(a, req)?.as_bool()? || eval(b, req)?.as_bool()?),
        Expr::If(c, t, f) => {
            if eval(c, req)?.as_bool()? {
                eval(t, req)?
            } else {
                eval(f, req)?
            }
        }
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval(a, req)?, eval(b, req)?);
            match op {
                BinOp::Eq => Val::Bool(a == b),
                BinOp::Ne => Val::Bool(a != b),
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => Val::Bool(compare(*op, &a, &b)?),
                BinOp::Add | BinOp::Sub | BinOp::Mul => Val::Long(arith(*op, &a, &b)?),
                BinOp::In => Val::Bool(in_op(&a, &b)?),
                BinOp::Contains => Val::Bool(set(&a)?.contains(&b)),
                BinOp::ContainsAll => {
                    let (x, y) = (set(&a)?, set(&b)?);
                    Val::Bool(y.iter().all(|v| x.contains(v)))
                }
                BinOp::ContainsAny => {
                    let (x, y) = (set(&a)?, set(&b)?);
                    Val::Bool(y.iter().any(|v| x.contains(v)))
                }
                BinOp::HasTag | BinOp::GetTag => {
                    let ent = entity(&a)?;
                    let Val::Str(tag) = b else {
                        return type_error("string", &b);
                    };
                    if matches!(op, BinOp::HasTag) {
                        Val::Bool(req.has_tag(ent, tag))
                    } else {
                        req.tag(ent, tag)?
                    }
                }
            }
        }
        Expr::Like(a, pattern) => match eval(a, req)? {
            Val::Str(s) => Val::Bool(pattern.matches(s)),
            other => return type_error("string", &other),
        },
        Expr::Is(a, ty, within) => {
            let ent = entity(&eval(a, req)?)?;
            if ent.ty() != ty.as_str() {
                Val::Bool(false)
            } else {
                match within {
                    None => Val::Bool(true),
                    Some(w) => Val::Bool(in_op(&Val::Entity(ent), &eval(w, req)?)?),
                }
            }
        }
        Expr::Set(items) => Val::Set(Rc::new(
            items.iter().map(|i| eval(i, req)).collect::<Result<_>>()?,
        )),
        Expr::Record(fields) => Val::Record(Rc::new(
            fields
                .iter()
                .map(|(k, v)| Ok((k.as_str(), eval(v, req)?)))
                .collect::<Result<_>>()?,
        )),
        Expr::Ext1(f, a) => {
            let ip = eval(a, req)?.as_ip()?;
            Val::Bool(match f {
                ExtFn::IsIpv4 => ip.addr.is_ipv4(),
                ExtFn::IsIpv6 => ip.addr.is_ipv6(),
                ExtFn::IsLoopback => ip.is_loopback(),
                ExtFn::IsMulticast => ip.is_multicast(),
            })
        }
        Expr::InRange(a, b) => {
            let (a, b) = (eval(a, req)?.as_ip()?, eval(b, req)?.as_ip()?);
            Val::Bool(a.is_in_range(&b))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Pattern {
        Pattern(
            s.chars()
                .map(|c| {
                    if c == '*' {
                        PatternElem::Any
                    } else {
                        PatternElem::Char(c)
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn like() {
        assert!(pat("/admin/*").matches("/admin/"));
        assert!(pat("/admin/*").matches("/admin/x/y"));
        assert!(!pat("/admin/*").matches("/admin"));
        assert!(pat("*").matches(""));
        assert!(pat("").matches(""));
        assert!(!pat("").matches("a"));
        assert!(pat("a*b*c").matches("aXbYbc"));
        assert!(!pat("a*b*c").matches("aXbYb"));
        assert!(pat("**").matches("é"));
        assert!(pat("é?").matches("é?"));
    }
}
