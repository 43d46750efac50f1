//! The engine: one compiled configuration, many decisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::config::{
    COMPILED_FORMAT, CompiledConfig, CompiledPolicy, ConfigError, EntityRefJson, Mode,
};
use crate::eval::req::{ACTION, Req, ReqError, WORKLOAD};
use crate::eval::{Policy, Scope, Uid, lower};
use crate::facts::{Headers, InvalidRequest, RequestFacts};
use crate::view::TagFilter;

/// The id of a policy: its `@id("...")` annotation, else `policyN` for the
/// N-th policy (from 0) of the policies text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyId(String);

impl PolicyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Other implementations of the engine (the Cedar reference, the compiled
/// filter driven through a host) report their decisions with the same type.
impl From<&str> for PolicyId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a request was allowed or denied. Exhaustive on purpose: a new way to
/// deny must be handled by every match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// At least one permit was satisfied and no forbid was satisfied or
    /// failed.
    Permitted,
    /// At least one forbid was satisfied.
    Forbidden,
    /// No forbid was satisfied, but evaluating one failed: the request is
    /// denied, since the forbid might have applied (fail closed; Cedar
    /// itself would skip the forbid). [`Decision::determining`] names the
    /// failed forbids, [`Decision::errors`] says why.
    PolicyError,
    /// No policy was satisfied (default deny); evaluation errors, if any, are
    /// in [`Decision::errors`].
    NoPermit,
    /// The request had no peer identity and the configuration requires one.
    NoPeerIdentity,
    /// The request could not be put to the policies (never expected; fails
    /// closed).
    BadRequest,
    /// The request has no meaning a policy can be sure of: a method,
    /// authority or path that is not valid text, a path with no normal form,
    /// an authority with userinfo, a header or query parameter a policy reads
    /// that is not UTF-8. [`Decision::errors`] says which
    /// ([`InvalidRequest`](crate::InvalidRequest)).
    InvalidRequest,
}

impl Reason {
    /// A short stable code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Permitted => "permitted",
            Self::Forbidden => "forbidden",
            Self::PolicyError => "policy_error",
            Self::NoPermit => "no_permit",
            Self::NoPeerIdentity => "no_peer_identity",
            Self::BadRequest => "bad_request",
            Self::InvalidRequest => "invalid_request",
        }
    }

    /// Whether this reason allows the request; only [`Reason::Permitted`] does.
    pub fn allows(self) -> bool {
        matches!(self, Self::Permitted)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A decision with what the policies saw ([`PolicyEngine::explain`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Explanation {
    /// The decision, as [`PolicyEngine::decide`] makes it.
    pub decision: Decision,
    /// `principal`, `action`, `resource`, `context` and `entities` in
    /// Cedar's JSON formats (entity uids, a context record, an entity
    /// list), the headers, query parameters and claims among them only
    /// those the policies read; none when the request was decided before
    /// any policy (invalid, or no peer where one is required).
    pub request: Option<serde_json::Value>,
}

/// The engine's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed; true exactly when `reason` is
    /// [`Reason::Permitted`].
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The policies that determined the decision, sorted: the satisfied
    /// forbids when forbidden, the failed forbids on a policy error, the
    /// satisfied permits when permitted, none otherwise.
    pub determining: Vec<PolicyId>,
    /// Evaluation errors, sorted, each naming its policy. A failed permit
    /// counts as not satisfied; a failed forbid denies.
    pub errors: Vec<String>,
}

impl Decision {
    /// A denial that evaluated no policy.
    pub fn denied(reason: Reason, error: Option<String>) -> Self {
        Self {
            allowed: false,
            reason,
            determining: Vec::new(),
            errors: error.into_iter().collect(),
        }
    }

    fn invalid(e: &InvalidRequest) -> Self {
        Self::denied(Reason::InvalidRequest, Some(e.to_string()))
    }

    /// The decision for what the policies said, by Cedar's rules plus the
    /// fail-closed rule for forbids: a satisfied forbid denies
    /// (`forbidden`), else a failed forbid denies (`policy_error`), else a
    /// satisfied permit allows, else deny (`no_permit`). Each list is of
    /// policy ids; `errors` are messages.
    pub fn combine(
        mut forbids: Vec<String>,
        mut failed_forbids: Vec<String>,
        mut permits: Vec<String>,
        mut errors: Vec<String>,
    ) -> Self {
        let (reason, determining) = if !forbids.is_empty() {
            (Reason::Forbidden, std::mem::take(&mut forbids))
        } else if !failed_forbids.is_empty() {
            (Reason::PolicyError, std::mem::take(&mut failed_forbids))
        } else if !permits.is_empty() {
            (Reason::Permitted, std::mem::take(&mut permits))
        } else {
            (Reason::NoPermit, Vec::new())
        };
        let mut determining: Vec<PolicyId> = determining.into_iter().map(PolicyId).collect();
        determining.sort();
        determining.dedup();
        errors.sort();
        errors.dedup();
        Self {
            allowed: reason.allows(),
            reason,
            determining,
            errors,
        }
    }
}

/// One level of the scope index: policies that name no entity in this
/// scope, and policies by the entity (type, then id) they name.
#[derive(Debug, Default)]
struct Level<T> {
    any: Option<T>,
    by_uid: HashMap<Box<str>, HashMap<Box<str>, T>>,
}

impl<T: Default> Level<T> {
    fn slot(&mut self, key: Option<&Uid>) -> &mut T {
        match key {
            None => self.any.get_or_insert_with(T::default),
            Some(u) => self
                .by_uid
                .entry(u.ty.clone())
                .or_default()
                .entry(u.id.clone())
                .or_default(),
        }
    }

    fn visit<'s>(&'s self, ty: &str, id: &str, parents: &[Uid], out: &mut impl FnMut(&'s T)) {
        if let Some(any) = &self.any {
            out(any);
        }
        if self.by_uid.is_empty() {
            return;
        }
        let mut one = |ty: &str, id: &str| {
            if let Some(t) = self.by_uid.get(ty).and_then(|m| m.get(id)) {
                out(t);
            }
        };
        one(ty, id);
        for p in parents {
            one(&p.ty, &p.id);
        }
    }
}

/// Policies sliced by the entities their scopes name, so a request
/// evaluates only the policies whose scope it can satisfy: a policy whose
/// scope names an entity the request is not `in` can neither be satisfied
/// nor fail (the scope is checked first, and cannot fail).
#[derive(Debug, Default)]
struct Index {
    root: Level<Level<Level<Vec<u32>>>>,
}

fn scope_key(s: &Scope) -> Vec<Option<&Uid>> {
    match s {
        Scope::Any | Scope::Is(_) => vec![None],
        Scope::Eq(u) | Scope::In(u) | Scope::IsIn(_, u) => vec![Some(u)],
        Scope::InAny(us) if us.is_empty() => vec![None],
        Scope::InAny(us) => {
            let mut unique: Vec<Option<&Uid>> = Vec::new();
            for u in us {
                if !unique.contains(&Some(u)) {
                    unique.push(Some(u));
                }
            }
            unique
        }
    }
}

/// A compiled policy set, ready to decide requests.
///
/// Everything that does not depend on the request (lowering, pre-parsed
/// literals, the index, the action hierarchy) is done once in the
/// constructor.
#[derive(Debug)]
pub struct PolicyEngine {
    mode: Mode,
    require_peer_identity: bool,
    policies: Vec<Policy>,
    index: Index,
    actions: HashMap<Box<str>, Vec<Uid>>,
    tags: TagFilter,
}

impl PolicyEngine {
    /// Builds an engine from its compiled JSON configuration (see
    /// [`CompiledConfig`]; `meshward compile` makes it). A configuration
    /// with Cedar text is refused with [`ConfigError::NotCompiled`].
    pub fn from_config(json: &[u8]) -> Result<Self, ConfigError> {
        // Straight from the text, each policy lowered as soon as it is read
        // (`Lowering`): a JSON tree of the whole set, or of every policy at
        // once, would multiply what configuring costs at its peak, and a
        // VM's linear memory keeps its peak.
        let config: StreamedConfig = match serde_json::from_slice(json) {
            Ok(config) => config,
            Err(e) => {
                /// Cedar text where compiled policies belong.
                #[derive(serde::Deserialize)]
                struct Text {
                    #[expect(dead_code, reason = "only its type is checked")]
                    policies: String,
                }
                if serde_json::from_slice::<Text>(json).is_ok() {
                    return Err(ConfigError::NotCompiled);
                }
                return Err(ConfigError::Json(e.to_string()));
            }
        };
        Self::finish(
            &config.format,
            config.policies,
            &config.actions,
            config.mode,
            config.require_peer_identity,
        )
    }

    /// Builds an engine from a compiled configuration.
    #[doc(hidden)]
    pub fn from_compiled(config: &CompiledConfig) -> Result<Self, ConfigError> {
        let mut lowering = Lowering::default();
        for p in &config.policies {
            lowering.add(p);
        }
        Self::finish(
            &config.format,
            lowering,
            &config.actions,
            config.mode,
            config.require_peer_identity,
        )
    }

    fn finish(
        format: &str,
        lowering: Lowering,
        actions: &BTreeMap<String, Vec<EntityRefJson>>,
        mode: Mode,
        require_peer_identity: bool,
    ) -> Result<Self, ConfigError> {
        if format != COMPILED_FORMAT {
            return Err(ConfigError::Json(format!(
                "unknown compiled format `{format}` (this filter loads `{COMPILED_FORMAT}`)"
            )));
        }
        let Lowering {
            policies,
            tags,
            error,
            ..
        } = lowering;
        if let Some(e) = error {
            return Err(e);
        }
        let mut index = Index::default();
        for (i, p) in policies.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| ConfigError::Json("too many policies".into()))?;
            for action in scope_key(&p.action) {
                for principal in scope_key(&p.principal) {
                    for resource in scope_key(&p.resource) {
                        index
                            .root
                            .slot(principal)
                            .slot(action)
                            .slot(resource)
                            .push(i);
                    }
                }
            }
        }
        let actions = actions
            .iter()
            .map(|(id, groups)| {
                let groups = groups
                    .iter()
                    .map(|g| Uid {
                        ty: g.ty.as_str().into(),
                        id: g.id.as_str().into(),
                    })
                    .collect();
                (id.as_str().into(), groups)
            })
            .collect();
        Ok(Self {
            mode,
            require_peer_identity,
            policies,
            index,
            actions,
            tags,
        })
    }

    /// Whether some policy reads request header `name` (any case). A
    /// filter need not hand over the others: they cannot change a decision
    /// (nor make a request invalid: see [`RequestFacts::headers`]).
    pub fn reads_header(&self, name: &str) -> bool {
        self.tags.keeps_lowercased(name)
    }

    /// The request headers a decision reads, out of all of them as a
    /// filter got them: no pseudo-header (`:path` and the like are facts of
    /// their own), none no policy reads, none named in `leave_out` (a
    /// client's copy of an identity header, which is no fact).
    pub fn headers_read(&self, all: &[(String, Vec<u8>)], leave_out: &[&str]) -> Headers {
        all.iter()
            .filter(|(name, _)| {
                !name.starts_with(':')
                    && self.reads_header(name)
                    && !leave_out.contains(&name.as_str())
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// What the filter should do with denies.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a request without a peer identity is denied before any
    /// policy is evaluated.
    pub fn requires_peer_identity(&self) -> bool {
        self.require_peer_identity
    }

    /// The ids of the configured policies, sorted.
    pub fn policy_ids(&self) -> Vec<PolicyId> {
        let mut ids: Vec<_> = self
            .policies
            .iter()
            .map(|p| PolicyId(p.id.to_string()))
            .collect();
        ids.sort();
        ids
    }

    /// Decides one request, evaluating only the policies its scope can match.
    pub fn decide(&self, facts: &RequestFacts) -> Decision {
        match self.request(facts) {
            Ok(req) => self.evaluate(&req),
            Err(decided) => decided,
        }
    }

    /// [`PolicyEngine::decide`], and the request as the policies saw it:
    /// built from the same view of the request the decision was made on.
    /// For tools that explain a decision; it costs what building Cedar's
    /// JSON costs, so the filter never calls it.
    pub fn explain(&self, facts: &RequestFacts) -> Explanation {
        match self.request(facts) {
            Ok(req) => Explanation {
                decision: self.evaluate(&req),
                request: Some(req.cedar_json()),
            },
            Err(decision) => Explanation {
                decision,
                request: None,
            },
        }
    }

    /// The request's view, or the decision made before any policy.
    fn request<'a>(&'a self, facts: &'a RequestFacts) -> Result<Req<'a>, Decision> {
        if let Some(d) = precheck(facts, self.require_peer_identity) {
            return Err(d);
        }
        Req::new(facts, &self.tags, &self.actions).map_err(|e| match e {
            ReqError::Invalid(e) => Decision::invalid(&e),
            ReqError::Internal(e) => Decision::denied(Reason::BadRequest, Some(e)),
        })
    }

    fn evaluate(&self, req: &Req<'_>) -> Decision {
        let mut candidates: Vec<u32> = Vec::new();
        let (pid, pparents) = req.principal_keys();
        let (aid, aparents) = req.action_keys();
        let host = req.host();
        self.index
            .root
            .visit(WORKLOAD, pid, pparents, &mut |by_action| {
                by_action.visit(ACTION, aid, aparents, &mut |by_resource| {
                    by_resource.visit("Mesh::Host", host, &[], &mut |leaf| {
                        candidates.extend_from_slice(leaf);
                    });
                });
            });
        candidates.sort_unstable();
        candidates.dedup();
        let (mut forbids, mut failed, mut permits, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in candidates {
            let Some(p) = self.policies.get(i as usize) else {
                continue;
            };
            match p.satisfied(req) {
                Ok(true) if p.forbid => forbids.push(p.id.to_string()),
                Ok(true) => permits.push(p.id.to_string()),
                Ok(false) => {}
                Err(e) => {
                    errors.push(format!("policy `{}`: {}", p.id, e.0));
                    if p.forbid {
                        failed.push(p.id.to_string());
                    }
                }
            }
        }
        Decision::combine(forbids, failed, permits, errors)
    }
}

/// The denials that need no policy: a request that is not valid, or has no
/// peer identity when one is required. Shared with the Cedar reference.
pub fn precheck(facts: &RequestFacts, require_peer_identity: bool) -> Option<Decision> {
    // A malformed request is reported as such even without a peer: it is
    // the more useful reason in a log.
    if let Some(invalid) = facts.invalid() {
        return Some(Decision::invalid(invalid));
    }
    // `path` is a public field: a caller may have set it after
    // construction. Deciding on a path that is not in normal form is the
    // walk-around this crate exists to prevent.
    if !crate::path::is_normal(&facts.path, facts.path_options()) {
        return Some(Decision::invalid(&InvalidRequest::PathNotNormal));
    }
    if require_peer_identity && facts.peer.is_none() {
        return Some(Decision::denied(Reason::NoPeerIdentity, None));
    }
    None
}

/// The compiled configuration as [`PolicyEngine::from_config`] reads it:
/// [`CompiledConfig`] with the policies lowered as they are read.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamedConfig {
    format: String,
    policies: Lowering,
    actions: BTreeMap<String, Vec<EntityRefJson>>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "yes")]
    require_peer_identity: bool,
}

fn yes() -> bool {
    true
}

/// Policies lowered one at a time, with the tag names they read. The first
/// refusal (a duplicate id, a construct the evaluator does not support) is
/// kept and the rest only read, so that the error is the one the whole set
/// would give, without failing the JSON parse.
#[derive(Default)]
struct Lowering {
    policies: Vec<Policy>,
    ids: HashSet<String>,
    tags: TagFilter,
    error: Option<ConfigError>,
}

impl Lowering {
    fn add(&mut self, p: &CompiledPolicy) {
        if self.error.is_some() {
            return;
        }
        if !self.ids.insert(p.id.clone()) {
            self.error = Some(ConfigError::DuplicateId(p.id.clone()));
            return;
        }
        match lower::policy(&p.id, &p.policy) {
            Ok(lowered) => {
                self.tags.add_json(&p.policy);
                self.policies.push(lowered);
            }
            Err(u) => {
                self.error = Some(ConfigError::Unsupported {
                    policy: p.id.clone(),
                    construct: u.0,
                });
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Lowering {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> serde::de::Visitor<'de> for Each {
            type Value = Lowering;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of compiled policies")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Lowering, A::Error> {
                let mut lowering = Lowering::default();
                // One policy's tree at a time: dropped once lowered.
                while let Some(p) = seq.next_element::<CompiledPolicy>()? {
                    lowering.add(&p);
                }
                Ok(lowering)
            }
        }
        deserializer.deserialize_seq(Each)
    }
}

#[cfg(test)]
mod tests;
