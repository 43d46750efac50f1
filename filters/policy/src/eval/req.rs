//! One request as the evaluator sees it: the entities and context of
//! `policies/meshward.cedarschema`, computed from the facts when a policy
//! first reads them, never built as Cedar values.

mod cedar_json;

use std::cell::OnceCell;
use std::rc::Rc;

use super::ext::IpNet;
use super::{Ctx, EvalError, Uid, Val};
use crate::facts::RequestFacts;
use crate::view::{self, ANONYMOUS, Authority, TagFilter, Tagged, UserData};

pub(crate) const WORKLOAD: &str = "Mesh::Workload";
pub(crate) const ACTION: &str = "Mesh::Action";
const HOST: &str = "Mesh::Host";
const TRUST_DOMAIN: &str = "Mesh::TrustDomain";
const NAMESPACE: &str = "Mesh::Namespace";
const SERVICE_ACCOUNT: &str = "Mesh::ServiceAccount";
const USER: &str = "Mesh::User";
const HEADERS: &str = "Mesh::Headers";
const HEADER_VALUES: &str = "Mesh::HeaderValues";
const PARAMS: &str = "Mesh::Params";
const PARAM_VALUES: &str = "Mesh::ParamValues";
const REQUEST: &str = "request";

/// Which of the request's entities a uid names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Principal,
    Action,
    Resource,
    Headers,
    HeaderValues,
    Params,
    ParamValues,
    User,
    /// An entity the request does not have: no attributes, no parents.
    Absent,
}

/// An entity uid, with what the request knows of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntityRef<'a> {
    ty: &'a str,
    id: &'a str,
    kind: Kind,
    ancestors: &'a [Uid],
}

impl PartialEq for EntityRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.ty == other.ty && self.id == other.id
    }
}

impl EntityRef<'_> {
    pub(crate) fn ty(&self) -> &str {
        self.ty
    }

    pub(crate) fn is(&self, u: &Uid) -> bool {
        self.ty == &*u.ty && self.id == &*u.id
    }

    /// Cedar's `in`: the entity itself or one of its ancestors.
    pub(crate) fn is_in(&self, u: &Uid) -> bool {
        self.is(u) || self.ancestors.iter().any(|a| a == u)
    }

    pub(crate) fn is_in_entity(&self, other: &EntityRef<'_>) -> bool {
        self == other
            || self
                .ancestors
                .iter()
                .any(|a| &*a.ty == other.ty && &*a.id == other.id)
    }
}

/// Why a request cannot be put to the policies at all.
#[derive(Debug)]
pub(crate) enum ReqError {
    Invalid(crate::facts::InvalidRequest),
    Internal(String),
}

/// The request's entities and context.
pub(crate) struct Req<'a> {
    facts: &'a RequestFacts,
    tags: &'a TagFilter,
    principal_id: &'a str,
    parents: Vec<Uid>,
    action_id: &'a str,
    action_ancestors: &'a [Uid],
    authority: Authority,
    headers: Tagged,
    params: Tagged,
    time_ms: i64,
    source_ip: Option<IpNet>,
    headers_joined: OnceCell<Vec<String>>,
    header_sets: OnceCell<Vec<Vec<String>>>,
    params_joined: OnceCell<Vec<String>>,
    param_sets: OnceCell<Vec<Vec<String>>>,
    user: OnceCell<Option<(UserData, String)>>,
}

fn joined(t: &Tagged) -> Vec<String> {
    t.iter().map(|(_, v)| v.join(",")).collect()
}

fn sets(t: &Tagged) -> Vec<Vec<String>> {
    t.iter()
        .map(|(_, v)| view::value_set(v).into_iter().map(str::to_owned).collect())
        .collect()
}

fn str_set<'a>(values: &'a [String]) -> Val<'a> {
    Val::Set(Rc::new(values.iter().map(|s| Val::Str(s)).collect()))
}

fn missing<T>(what: &str) -> Result<T, EvalError> {
    Err(EvalError(what.to_owned()))
}

impl<'a> Req<'a> {
    /// The request's view, or why it has none: the same checks, in the same
    /// order, as the Cedar reference's request building.
    pub(crate) fn new(
        facts: &'a RequestFacts,
        tags: &'a TagFilter,
        actions: &'a std::collections::HashMap<Box<str>, Vec<Uid>>,
    ) -> Result<Self, ReqError> {
        let (principal_id, parents) = match &facts.peer {
            None => (ANONYMOUS, Vec::new()),
            Some(peer) => {
                let mut parents = vec![Uid {
                    ty: TRUST_DOMAIN.into(),
                    id: peer.trust_domain_name().into(),
                }];
                if let Some(ns) = peer.namespace() {
                    parents.push(Uid {
                        ty: NAMESPACE.into(),
                        id: ns.into(),
                    });
                    if let Some(sa) = peer.service_account() {
                        parents.push(Uid {
                            ty: SERVICE_ACCOUNT.into(),
                            id: format!("{ns}/{sa}").into(),
                        });
                    }
                }
                (peer.as_str(), parents)
            }
        };
        let action_id = view::action_id(&facts.method);
        let action_ancestors = actions.get(action_id).ok_or_else(|| {
            ReqError::Internal(format!(
                "the schema has no action `{ACTION}::\"{action_id}\"`"
            ))
        })?;
        let authority =
            view::parse_authority(&facts.host).map_err(|e| ReqError::Invalid(e.into()))?;
        let headers = view::header_values(facts, tags).map_err(ReqError::Invalid)?;
        let params = view::param_values(&facts.query, tags).map_err(ReqError::Invalid)?;
        let secs = view::unix_seconds(facts.time);
        if secs >= view::DATETIME_END {
            return Err(ReqError::Internal(
                "the request time is past year 9999".to_owned(),
            ));
        }
        let time_ms = i64::try_from(secs)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| ReqError::Internal("the request time is out of range".to_owned()))?;
        let source_ip = match facts.source {
            None => None,
            // Cedar refuses the text of an IPv4-mapped IPv6 address; the
            // reference engine fails such a request, so this one does too.
            Some(s) => Some(IpNet::parse(&s.ip().to_string()).ok_or_else(|| {
                ReqError::Internal(format!("source address `{}` is not a Cedar ipaddr", s.ip()))
            })?),
        };
        Ok(Self {
            facts,
            tags,
            principal_id,
            parents,
            action_id,
            action_ancestors,
            authority,
            headers,
            params,
            time_ms,
            source_ip,
            headers_joined: OnceCell::new(),
            header_sets: OnceCell::new(),
            params_joined: OnceCell::new(),
            param_sets: OnceCell::new(),
            user: OnceCell::new(),
        })
    }

    /// The principal and the entities it is `in`: the index's keys.
    pub(crate) fn principal_keys(&self) -> (&str, &[Uid]) {
        (self.principal_id, &self.parents)
    }

    pub(crate) fn action_keys(&self) -> (&str, &[Uid]) {
        (self.action_id, self.action_ancestors)
    }

    pub(crate) fn host(&self) -> &str {
        &self.authority.host
    }

    fn user(&'a self) -> Option<&'a (UserData, String)> {
        self.user
            .get_or_init(|| {
                self.facts.jwt_claims.as_ref().map(|c| {
                    let u = view::user_data(c, self.tags);
                    let id = u.principal();
                    (u, id)
                })
            })
            .as_ref()
    }

    pub(crate) fn principal(&'a self) -> EntityRef<'a> {
        EntityRef {
            ty: WORKLOAD,
            id: self.principal_id,
            kind: Kind::Principal,
            ancestors: &self.parents,
        }
    }

    pub(crate) fn action(&'a self) -> EntityRef<'a> {
        EntityRef {
            ty: ACTION,
            id: self.action_id,
            kind: Kind::Action,
            ancestors: self.action_ancestors,
        }
    }

    pub(crate) fn resource(&'a self) -> EntityRef<'a> {
        EntityRef {
            ty: HOST,
            id: &self.authority.host,
            kind: Kind::Resource,
            ancestors: &[],
        }
    }

    fn request_entity(&'a self, ty: &'static str, kind: Kind) -> EntityRef<'a> {
        EntityRef {
            ty,
            id: REQUEST,
            kind,
            ancestors: &[],
        }
    }

    /// The entity a uid in a policy names: one of the request's, or absent.
    pub(crate) fn entity(&'a self, ty: &'a str, id: &'a str) -> EntityRef<'a> {
        let mine = [self.principal(), self.action(), self.resource()];
        if let Some(e) = mine.into_iter().find(|e| e.ty == ty && e.id == id) {
            return e;
        }
        let kind = match (ty, id) {
            (HEADERS, REQUEST) => Kind::Headers,
            (HEADER_VALUES, REQUEST) => Kind::HeaderValues,
            (PARAMS, REQUEST) => Kind::Params,
            (PARAM_VALUES, REQUEST) => Kind::ParamValues,
            (USER, _) if self.user().is_some_and(|(_, uid)| uid == id) => Kind::User,
            _ => Kind::Absent,
        };
        EntityRef {
            ty,
            id,
            kind,
            ancestors: &[],
        }
    }

    pub(crate) fn context(&'a self, attr: &'a Ctx) -> Result<Val<'a>, EvalError> {
        let f = self.facts;
        Ok(match attr {
            Ctx::Method => Val::Str(&f.method),
            Ctx::Host => Val::Str(&self.authority.host),
            Ctx::Authority => Val::Str(&f.host),
            Ctx::AuthorityPort => match self.authority.port {
                Some(p) => Val::Long(i64::from(p)),
                None => return missing("context does not have the attribute `authority_port`"),
            },
            Ctx::Path => Val::Str(&f.path),
            Ctx::Query => Val::Str(&f.query),
            Ctx::Params => Val::Entity(self.request_entity(PARAMS, Kind::Params)),
            Ctx::ParamValues => Val::Entity(self.request_entity(PARAM_VALUES, Kind::ParamValues)),
            Ctx::Port => Val::Long(i64::from(f.port)),
            Ctx::Headers => Val::Entity(self.request_entity(HEADERS, Kind::Headers)),
            Ctx::HeaderValues => {
                Val::Entity(self.request_entity(HEADER_VALUES, Kind::HeaderValues))
            }
            Ctx::SourceIp => match self.source_ip {
                Some(ip) => Val::Ip(ip),
                None => return missing("context does not have the attribute `source_ip`"),
            },
            Ctx::SourcePort => match f.source {
                Some(s) => Val::Long(i64::from(s.port())),
                None => return missing("context does not have the attribute `source_port`"),
            },
            Ctx::Sni => match &f.sni {
                Some(s) => Val::Str(s),
                None => return missing("context does not have the attribute `sni`"),
            },
            Ctx::Mtls => Val::Bool(f.mtls),
            Ctx::User => match self.user() {
                Some((_, id)) => Val::Entity(EntityRef {
                    ty: USER,
                    id,
                    kind: Kind::User,
                    ancestors: &[],
                }),
                None => return missing("context does not have the attribute `user`"),
            },
            Ctx::Time => Val::DateTime(self.time_ms),
            Ctx::Unknown(name) => {
                return missing(&format!("context does not have the attribute `{name}`"));
            }
        })
    }

    pub(crate) fn context_has(&self, attr: &Ctx) -> bool {
        let f = self.facts;
        match attr {
            Ctx::AuthorityPort => self.authority.port.is_some(),
            Ctx::SourceIp | Ctx::SourcePort => f.source.is_some(),
            Ctx::Sni => f.sni.is_some(),
            Ctx::User => f.jwt_claims.is_some(),
            Ctx::Unknown(_) => false,
            _ => true,
        }
    }

    /// `e.name`: an error when the entity is absent or lacks it.
    pub(crate) fn attr(&'a self, e: EntityRef<'a>, name: &str) -> Result<Val<'a>, EvalError> {
        match self.attr_opt(e, name) {
            Some(v) => Ok(v),
            None if e.kind == Kind::Absent => missing(&format!(
                "entity `{}::\"{}\"` does not exist",
                e.ty,
                e.id.escape_debug()
            )),
            None => missing(&format!(
                "`{}::\"{}\"` does not have the attribute `{name}`",
                e.ty,
                e.id.escape_debug()
            )),
        }
    }

    /// `e has name`: false for an absent entity.
    pub(crate) fn has_attr(&'a self, e: EntityRef<'a>, name: &str) -> bool {
        self.attr_opt(e, name).is_some()
    }

    fn attr_opt(&'a self, e: EntityRef<'a>, name: &str) -> Option<Val<'a>> {
        match e.kind {
            Kind::Principal => {
                let peer = self.facts.peer.as_ref();
                Some(match name {
                    "authenticated" => Val::Bool(peer.is_some()),
                    "spiffe_id" => Val::Str(peer.map_or("", |p| p.as_str())),
                    "trust_domain" => Val::Str(peer.map_or("", |p| p.trust_domain_name())),
                    "path" => Val::Str(peer.map_or("", |p| p.path())),
                    "namespace" => Val::Str(peer?.namespace()?),
                    "service_account" => Val::Str(peer?.service_account()?),
                    _ => return None,
                })
            }
            Kind::Resource => (name == "name").then(|| Val::Str(&self.authority.host)),
            Kind::User => {
                let (u, id) = self.user()?;
                Some(match name {
                    "issuer" => Val::Str(&u.issuer),
                    "subject" => Val::Str(&u.subject),
                    "request_principal" => Val::Str(id),
                    "audiences" => str_set(&u.audiences),
                    _ => return None,
                })
            }
            Kind::Action
            | Kind::Headers
            | Kind::HeaderValues
            | Kind::Params
            | Kind::ParamValues
            | Kind::Absent => None,
        }
    }

    /// `e.hasTag(tag)`.
    pub(crate) fn has_tag(&'a self, e: EntityRef<'a>, tag: &str) -> bool {
        self.tag_opt(e, tag).is_some()
    }

    /// `e.getTag(tag)`: an error when the entity is absent or lacks it.
    pub(crate) fn tag(&'a self, e: EntityRef<'a>, tag: &str) -> Result<Val<'a>, EvalError> {
        self.tag_opt(e, tag).map_or_else(
            || {
                missing(&format!(
                    "`{}::\"{}\"` does not have the tag `{}`",
                    e.ty,
                    e.id.escape_debug(),
                    tag.escape_debug()
                ))
            },
            Ok,
        )
    }

    fn tag_opt(&'a self, e: EntityRef<'a>, tag: &str) -> Option<Val<'a>> {
        let find = |t: &Tagged| t.binary_search_by(|(k, _)| k.as_str().cmp(tag)).ok();
        match e.kind {
            Kind::Headers => {
                let i = find(&self.headers)?;
                Some(Val::Str(
                    self.headers_joined
                        .get_or_init(|| joined(&self.headers))
                        .get(i)?,
                ))
            }
            Kind::HeaderValues => {
                let i = find(&self.headers)?;
                Some(str_set(
                    self.header_sets
                        .get_or_init(|| sets(&self.headers))
                        .get(i)?,
                ))
            }
            Kind::Params => {
                let i = find(&self.params)?;
                Some(Val::Str(
                    self.params_joined
                        .get_or_init(|| joined(&self.params))
                        .get(i)?,
                ))
            }
            Kind::ParamValues => {
                let i = find(&self.params)?;
                Some(str_set(
                    self.param_sets.get_or_init(|| sets(&self.params)).get(i)?,
                ))
            }
            Kind::User => {
                let (u, _) = self.user()?;
                let i = find(&u.tags)?;
                Some(str_set(&u.tags.get(i)?.1))
            }
            Kind::Principal | Kind::Action | Kind::Resource | Kind::Absent => None,
        }
    }
}
