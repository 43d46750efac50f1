//! From request facts to Cedar: the entity model of `policies/meshward.cedarschema`.
//!
//! Entities and context are built without the schema at request time, because
//! checking them against it costs more than the decision; the shapes built
//! here are checked against the configured schema once, when the engine is
//! configured (see `check_against_schema`).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::SystemTime;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};
use meshward_identity::SpiffeId;

use meshward_policy::view::{self, TagFilter, UserData, parse_authority};

use meshward_policy::{InvalidRequest, RequestFacts};
use view::{ANONYMOUS, cedar_datetime, header_values, param_values, unix_seconds, user_data};

/// Every tag name `hasTag`/`getTag` are called with in `policies`.
pub(crate) fn tag_filter(policies: &cedar_policy::PolicySet) -> TagFilter {
    let mut json = Vec::new();
    let mut all = false;
    for p in policies.policies() {
        match p.to_json() {
            Ok(j) => json.push(j),
            Err(_) => all = true,
        }
    }
    let mut filter = TagFilter::of_json(&json);
    if all {
        filter.keep_all();
    }
    filter
}

/// The entity types and action ids of the schema, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    workload: EntityTypeName,
    trust_domain: EntityTypeName,
    namespace: EntityTypeName,
    service_account: EntityTypeName,
    user: EntityTypeName,
    host: EntityTypeName,
    headers: EntityTypeName,
    header_values: EntityTypeName,
    params: EntityTypeName,
    param_values: EntityTypeName,
    action: EntityTypeName,
}

/// Why request facts could not be turned into a Cedar request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// The request is not one a policy can be sure of.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// Cedar refused what was built (never expected).
    #[error("{0}")]
    Internal(String),
}

fn internal(e: &dyn std::fmt::Display) -> BuildError {
    BuildError::Internal(e.to_string())
}

fn type_name(name: &str) -> Result<EntityTypeName, BuildError> {
    EntityTypeName::from_str(name).map_err(|e| internal(&e))
}

impl Names {
    pub(crate) fn new() -> Result<Self, BuildError> {
        Ok(Self {
            workload: type_name("Mesh::Workload")?,
            trust_domain: type_name("Mesh::TrustDomain")?,
            namespace: type_name("Mesh::Namespace")?,
            service_account: type_name("Mesh::ServiceAccount")?,
            user: type_name("Mesh::User")?,
            host: type_name("Mesh::Host")?,
            headers: type_name("Mesh::Headers")?,
            header_values: type_name("Mesh::HeaderValues")?,
            params: type_name("Mesh::Params")?,
            param_values: type_name("Mesh::ParamValues")?,
            action: type_name("Mesh::Action")?,
        })
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    /// The action for an HTTP method: methods the schema names are actions of
    /// their own when spelt exactly so (methods are case-sensitive), every
    /// other method and spelling is `OTHER`, which the schema puts in
    /// `write`: an upstream may upper-case `delete` and execute it, so
    /// nothing unknown may pass as a read.
    pub(crate) fn action(&self, method: &str) -> EntityUid {
        Self::uid(&self.action, view::action_id(method))
    }

    /// The principal of a request and the uids it is `in`.
    pub(crate) fn principal(&self, peer: Option<&SpiffeId>) -> (EntityUid, Vec<EntityUid>) {
        let Some(peer) = peer else {
            return (Self::uid(&self.workload, ANONYMOUS), Vec::new());
        };
        let mut parents = vec![Self::uid(&self.trust_domain, peer.trust_domain_name())];
        if let Some(ns) = peer.namespace() {
            parents.push(Self::uid(&self.namespace, ns));
        }
        if let (Some(ns), Some(sa)) = (peer.namespace(), peer.service_account()) {
            parents.push(Self::uid(&self.service_account, &format!("{ns}/{sa}")));
        }
        (Self::uid(&self.workload, peer.as_str()), parents)
    }

    /// The resource of a request, for its canonical host.
    pub(crate) fn resource(&self, host: &str) -> EntityUid {
        Self::uid(&self.host, host)
    }
}

/// Extension values of recent requests.
///
/// Cedar's `RestrictedExpression::new_ip` and `new_datetime` run Cedar's
/// parser on the function name every time (several µs each, more than the
/// rest of a decision), so the expressions are kept for the source addresses
/// and the second last seen. Bounded, so a scan of many source addresses
/// cannot grow it without limit.
#[derive(Debug, Default)]
pub(crate) struct ExtCache {
    ips: HashMap<std::net::IpAddr, RestrictedExpression>,
    time: Option<(u64, RestrictedExpression)>,
    // Building `Entities` recomputes Cedar's transitive closure, the largest
    // single cost of a decision; requests of one peer usually share them.
    entities: HashMap<EntitiesKey, Entities>,
}

const MAX_CACHED_IPS: usize = 1024;

impl ExtCache {
    fn ip(&mut self, ip: std::net::IpAddr) -> RestrictedExpression {
        if let Some(e) = self.ips.get(&ip) {
            return e.clone();
        }
        let e = RestrictedExpression::new_ip(ip.to_string());
        if self.ips.len() >= MAX_CACHED_IPS {
            self.ips.clear();
        }
        self.ips.insert(ip, e.clone());
        e
    }

    fn time(&mut self, time: SystemTime) -> RestrictedExpression {
        let secs = unix_seconds(time);
        match &self.time {
            Some((s, e)) if *s == secs => e.clone(),
            _ => {
                let e = RestrictedExpression::new_datetime(cedar_datetime(time));
                self.time = Some((secs, e.clone()));
                e
            }
        }
    }
}

/// Everything the request's entities are built from, after filtering.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntitiesKey {
    peer: Option<SpiffeId>,
    action: String,
    host: String,
    /// Lower-case names, sorted; each with its values in arrival order.
    headers: Vec<(String, Vec<String>)>,
    params: Vec<(String, Vec<String>)>,
    user: Option<UserData>,
}

const MAX_CACHED_ENTITIES: usize = 256;

/// A request ready for Cedar, with the uids the index looks up.
pub(crate) struct Built {
    pub(crate) request: Request,
    pub(crate) entities: Entities,
    /// The principal and every entity it is `in`.
    pub(crate) principal_keys: Vec<EntityUid>,
    /// The action and every action group it is `in`.
    pub(crate) action_keys: Vec<EntityUid>,
    /// The resource.
    pub(crate) resource_keys: Vec<EntityUid>,
}

/// Builds the Cedar request and entities for `facts`.
///
/// `action_entity` gives the action's entity (with its groups as parents) and
/// the groups, as the schema declares them; `schema` is passed only when the
/// shapes are being checked.
pub(crate) fn build(
    names: &Names,
    facts: &RequestFacts,
    action_entity: impl Fn(&EntityUid) -> Option<(Entity, Vec<EntityUid>)>,
    schema: Option<&Schema>,
    tags: &TagFilter,
    cache: &mut ExtCache,
) -> Result<Built, BuildError> {
    let (principal, parents) = names.principal(facts.peer.as_ref());
    let mut principal_keys = parents.clone();
    principal_keys.push(principal.clone());

    let action = names.action(&facts.method);
    let (action_entity, groups) = action_entity(&action)
        .ok_or_else(|| BuildError::Internal(format!("the schema has no action `{action}`")))?;
    let mut action_keys = groups;
    action_keys.push(action.clone());

    let authority = parse_authority(&facts.host).map_err(InvalidRequest::from)?;
    let resource = names.resource(&authority.host);
    let headers_uid = Names::uid(&names.headers, "request");
    let header_values_uid = Names::uid(&names.header_values, "request");
    let params_uid = Names::uid(&names.params, "request");
    let param_values_uid = Names::uid(&names.param_values, "request");

    let key = EntitiesKey {
        peer: facts.peer.clone(),
        action: action.id().unescaped().to_owned(),
        host: authority.host.clone(),
        headers: header_values(facts, tags)?,
        params: param_values(&facts.query, tags)?,
        user: facts.jwt_claims.as_ref().map(|c| user_data(c, tags)),
    };
    let user_uid = key
        .user
        .as_ref()
        .map(|u| Names::uid(&names.user, &u.principal()));

    let cached = if schema.is_none() {
        cache.entities.get(&key).cloned()
    } else {
        None
    };
    let entities = match cached {
        Some(entities) => entities,
        None => {
            let mut list = vec![
                workload_entity(&principal, &parents, facts.peer.as_ref())?,
                action_entity,
                Entity::new(
                    resource.clone(),
                    HashMap::from([("name".to_owned(), str_expr(&authority.host))]),
                    Default::default(),
                )
                .map_err(|e| internal(&e))?,
                Entity::new_with_tags(headers_uid.clone(), [], [], joined_tags(&key.headers))
                    .map_err(|e| internal(&e))?,
                Entity::new_with_tags(header_values_uid.clone(), [], [], set_tags(&key.headers))
                    .map_err(|e| internal(&e))?,
                Entity::new_with_tags(params_uid.clone(), [], [], joined_tags(&key.params))
                    .map_err(|e| internal(&e))?,
                Entity::new_with_tags(param_values_uid.clone(), [], [], set_tags(&key.params))
                    .map_err(|e| internal(&e))?,
            ];
            if let (Some(user), Some(uid)) = (&key.user, &user_uid) {
                list.push(user_entity(uid, user)?);
            }
            let entities = Entities::from_entities(list, schema).map_err(|e| internal(&e))?;
            if schema.is_none() {
                if cache.entities.len() >= MAX_CACHED_ENTITIES {
                    cache.entities.clear();
                }
                cache.entities.insert(key, entities.clone());
            }
            entities
        }
    };

    let mut context = vec![
        ("method".to_owned(), str_expr(&facts.method)),
        ("host".to_owned(), str_expr(&authority.host)),
        ("authority".to_owned(), str_expr(&facts.host)),
        ("path".to_owned(), str_expr(&facts.path)),
        ("query".to_owned(), str_expr(&facts.query)),
        (
            "params".to_owned(),
            RestrictedExpression::new_entity_uid(params_uid),
        ),
        (
            "param_values".to_owned(),
            RestrictedExpression::new_entity_uid(param_values_uid),
        ),
        (
            "port".to_owned(),
            RestrictedExpression::new_long(i64::from(facts.port)),
        ),
        (
            "headers".to_owned(),
            RestrictedExpression::new_entity_uid(headers_uid),
        ),
        (
            "header_values".to_owned(),
            RestrictedExpression::new_entity_uid(header_values_uid),
        ),
        (
            "mtls".to_owned(),
            RestrictedExpression::new_bool(facts.mtls),
        ),
        ("time".to_owned(), cache.time(facts.time)),
    ];
    if let Some(port) = authority.port {
        context.push((
            "authority_port".to_owned(),
            RestrictedExpression::new_long(i64::from(port)),
        ));
    }
    if let Some(source) = facts.source {
        context.push(("source_ip".to_owned(), cache.ip(source.ip())));
        context.push((
            "source_port".to_owned(),
            RestrictedExpression::new_long(i64::from(source.port())),
        ));
    }
    if let Some(sni) = &facts.sni {
        context.push(("sni".to_owned(), str_expr(sni)));
    }
    if let Some(uid) = user_uid {
        context.push(("user".to_owned(), RestrictedExpression::new_entity_uid(uid)));
    }

    let context = Context::from_pairs(context).map_err(|e| internal(&e))?;
    let request = Request::new(principal, action, resource.clone(), context, schema)
        .map_err(|e| internal(&e))?;
    Ok(Built {
        request,
        entities,
        principal_keys,
        action_keys,
        resource_keys: vec![resource],
    })
}

fn str_expr(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn workload_entity(
    uid: &EntityUid,
    parents: &[EntityUid],
    peer: Option<&SpiffeId>,
) -> Result<Entity, BuildError> {
    let mut attrs = vec![
        (
            "authenticated".to_owned(),
            RestrictedExpression::new_bool(peer.is_some()),
        ),
        (
            "spiffe_id".to_owned(),
            str_expr(peer.map_or("", SpiffeId::as_str)),
        ),
        (
            "trust_domain".to_owned(),
            str_expr(peer.map_or("", SpiffeId::trust_domain_name)),
        ),
        ("path".to_owned(), str_expr(peer.map_or("", SpiffeId::path))),
    ];
    if let Some(ns) = peer.and_then(SpiffeId::namespace) {
        attrs.push(("namespace".to_owned(), str_expr(ns)));
    }
    if let Some(sa) = peer.and_then(SpiffeId::service_account) {
        attrs.push(("service_account".to_owned(), str_expr(sa)));
    }
    Entity::new_with_tags(uid.clone(), attrs, parents.iter().cloned(), []).map_err(|e| internal(&e))
}

/// Repeated names joined with `,`, as HTTP joins repeated headers.
fn joined_tags(
    pairs: &[(String, Vec<String>)],
) -> impl Iterator<Item = (String, RestrictedExpression)> + '_ {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.join(","))))
}

fn set_tags(
    pairs: &[(String, Vec<String>)],
) -> impl Iterator<Item = (String, RestrictedExpression)> + '_ {
    pairs.iter().map(|(k, v)| {
        let set = view::value_set(v)
            .into_iter()
            .map(|e| RestrictedExpression::new_string(e.to_owned()));
        (k.clone(), RestrictedExpression::new_set(set))
    })
}

fn user_entity(uid: &EntityUid, user: &UserData) -> Result<Entity, BuildError> {
    let set = |values: &[String]| {
        RestrictedExpression::new_set(values.iter().cloned().map(RestrictedExpression::new_string))
    };
    Entity::new_with_tags(
        uid.clone(),
        [
            ("issuer".to_owned(), str_expr(&user.issuer)),
            ("subject".to_owned(), str_expr(&user.subject)),
            ("request_principal".to_owned(), str_expr(&user.principal())),
            ("audiences".to_owned(), set(&user.audiences)),
        ],
        [],
        user.tags.iter().map(|(k, v)| (k.clone(), set(v))),
    )
    .map_err(|e| internal(&e))
}
