//! The engine: one configuration, many decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use cedar_policy::{Authorizer, Entity, EntityUid, PolicySet, Schema, ValidationMode, Validator};

use crate::config::{ConfigError, EngineConfig, Mode, SHIPPED_SCHEMA};
use crate::diag::{ConfigDiagnostic, located};
use crate::facts::{InvalidRequest, RequestFacts};
use crate::index::{Combined, Index};
use crate::model::{self, ExtCache, Names, TagFilter};

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

/// Other implementations of the engine (the compiled filter, driven through
/// a host) report their decisions with the same type.
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
    /// At least one permit was satisfied and no forbid was.
    Permitted,
    /// At least one forbid was satisfied.
    Forbidden,
    /// No policy was satisfied (default deny); evaluation errors, if any, are
    /// in [`Decision::errors`].
    NoPermit,
    /// The request had no peer identity and the configuration requires one.
    NoPeerIdentity,
    /// The request could not be put to Cedar (never expected; fails closed).
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

/// The engine's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed; true exactly when `reason` is
    /// [`Reason::Permitted`].
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The policies that determined the decision, sorted: the satisfied
    /// forbids when forbidden, the satisfied permits when permitted, none
    /// otherwise.
    pub determining: Vec<PolicyId>,
    /// Evaluation errors, sorted, each naming its policy. An erroring policy
    /// counts as not satisfied, so errors never allow anything.
    pub errors: Vec<String>,
}

impl Decision {
    fn denied(reason: Reason, error: Option<String>) -> Self {
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

    fn from_build_error(e: model::BuildError) -> Self {
        match e {
            model::BuildError::Invalid(e) => Self::invalid(&e),
            model::BuildError::Internal(e) => Self::denied(Reason::BadRequest, Some(e)),
        }
    }

    fn from_combined(c: Combined) -> Self {
        let ids = |s: BTreeSet<String>| s.into_iter().map(PolicyId).collect();
        let (reason, determining) = if !c.forbids.is_empty() {
            (Reason::Forbidden, ids(c.forbids))
        } else if !c.permits.is_empty() {
            (Reason::Permitted, ids(c.permits))
        } else {
            (Reason::NoPermit, Vec::new())
        };
        Self {
            allowed: reason.allows(),
            reason,
            determining,
            errors: c.errors.into_iter().collect(),
        }
    }
}

/// A validated policy set, ready to decide requests.
///
/// Everything that does not depend on the request (parsing, validation, the
/// index, action entities) is done once in the constructor.
#[derive(Debug)]
pub struct PolicyEngine {
    mode: Mode,
    require_peer_identity: bool,
    names: Names,
    policies: PolicySet,
    index: Index,
    actions: HashMap<EntityUid, (Entity, Vec<EntityUid>)>,
    authorizer: Authorizer,
    tags: TagFilter,
    // A Mutex rather than a RefCell so the engine stays `Sync` for native
    // users; a contended or poisoned lock just means building without it.
    cache: Mutex<ExtCache>,
}

impl PolicyEngine {
    /// Builds an engine from its JSON configuration:
    /// `{"policies": "<cedar>", "schema": "<cedar schema>"?, "mode":
    /// "enforce"|"dry_run"?, "require_peer_identity": bool?}`.
    pub fn from_config(json: &[u8]) -> Result<Self, ConfigError> {
        let config: EngineConfig =
            serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::build(&config)
    }

    /// Builds an engine from policies alone: the shipped schema, enforce
    /// mode, a peer identity required.
    pub fn from_policies(policies: &str) -> Result<Self, ConfigError> {
        Self::build(&EngineConfig {
            policies: policies.to_owned(),
            schema: None,
            mode: Mode::Enforce,
            require_peer_identity: true,
        })
    }

    fn build(config: &EngineConfig) -> Result<Self, ConfigError> {
        let schema_text = config.schema.as_deref().unwrap_or(SHIPPED_SCHEMA);
        let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
            .map_err(|e| ConfigError::Schema(located(schema_text, &e, e.to_string())))?;
        let names = Names::new().map_err(|e| ConfigError::SchemaMismatch(e.to_string()))?;
        let actions = action_entities(&schema)?;
        let policies = parse_policies(&config.policies)?;
        validate(&schema, &policies, &config.policies)?;
        let tags = TagFilter::of(&policies);
        let index = Index::new(&policies)
            .map_err(|e| ConfigError::Validation(vec![ConfigDiagnostic::new(e)]))?;
        let engine = Self {
            mode: config.mode,
            require_peer_identity: config.require_peer_identity,
            names,
            policies,
            index,
            actions,
            authorizer: Authorizer::new(),
            cache: Mutex::new(ExtCache::default()),
            tags,
        };
        engine.check_schema_fits(&schema)?;
        Ok(engine)
    }

    /// What the filter should do with denies.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ids of the configured policies, sorted.
    pub fn policy_ids(&self) -> Vec<PolicyId> {
        let mut ids: Vec<_> = self
            .policies
            .policies()
            .map(|p| PolicyId(p.id().to_string()))
            .collect();
        ids.sort();
        ids
    }

    /// Decides one request, evaluating only the policies its scope can match.
    pub fn decide(&self, facts: &RequestFacts) -> Decision {
        self.decide_with(facts, |built| {
            self.index.evaluate(
                &self.authorizer,
                &built.request,
                &built.entities,
                &built.principal_keys,
                &built.action_keys,
                &built.resource_keys,
            )
        })
    }

    /// Decides one request by evaluating every policy, as plain Cedar does.
    /// Always the same decision as [`PolicyEngine::decide`], only slower: it
    /// is the reference the index is tested and benchmarked against (the
    /// `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn decide_unindexed(&self, facts: &RequestFacts) -> Decision {
        self.decide_with(facts, |built| {
            let mut combined = Combined::default();
            combined.add(&self.authorizer.is_authorized(
                &built.request,
                &self.policies,
                &built.entities,
            ));
            combined
        })
    }

    fn decide_with(
        &self,
        facts: &RequestFacts,
        evaluate: impl FnOnce(&model::Built) -> Combined,
    ) -> Decision {
        if let Some(d) = self.precheck(facts) {
            return d;
        }
        match self.build_request(facts, None) {
            Ok(built) => Decision::from_combined(evaluate(&built)),
            Err(e) => Decision::from_build_error(e),
        }
    }

    /// The denials that need no policy: a request that is not valid, or has
    /// no peer identity when one is required.
    fn precheck(&self, facts: &RequestFacts) -> Option<Decision> {
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
        if self.require_peer_identity && facts.peer.is_none() {
            return Some(Decision::denied(Reason::NoPeerIdentity, None));
        }
        None
    }

    fn build_request(
        &self,
        facts: &RequestFacts,
        schema: Option<&Schema>,
    ) -> Result<model::Built, model::BuildError> {
        let actions = |a: &EntityUid| self.actions.get(a).cloned();
        // Shapes are checked with every tag, whatever the policies read.
        let all = TagFilter::all();
        let tags = if schema.is_some() { &all } else { &self.tags };
        match self.cache.try_lock() {
            Ok(mut cache) => model::build(&self.names, facts, actions, schema, tags, &mut cache),
            Err(_) => model::build(
                &self.names,
                facts,
                actions,
                schema,
                tags,
                &mut ExtCache::default(),
            ),
        }
    }

    /// Plain Cedar with nothing cached, filtered or indexed: every tag in the
    /// entities, every policy evaluated.
    #[cfg(test)]
    pub(crate) fn decide_reference(&self, facts: &RequestFacts) -> Decision {
        if let Some(d) = self.precheck(facts) {
            return d;
        }
        let actions = |a: &EntityUid| self.actions.get(a).cloned();
        let built = model::build(
            &self.names,
            facts,
            actions,
            None,
            &TagFilter::all(),
            &mut ExtCache::default(),
        );
        match built {
            Ok(built) => {
                let mut combined = Combined::default();
                combined.add(&self.authorizer.is_authorized(
                    &built.request,
                    &self.policies,
                    &built.entities,
                ));
                Decision::from_combined(combined)
            }
            Err(e) => Decision::from_build_error(e),
        }
    }

    /// How many policies [`PolicyEngine::decide`] evaluates for `facts`.
    #[cfg(test)]
    pub(crate) fn reachable_policies(&self, facts: &RequestFacts) -> usize {
        self.build_request(facts, None)
            .map(|b| {
                self.index
                    .reachable(&b.principal_keys, &b.action_keys, &b.resource_keys)
            })
            .unwrap_or_default()
    }

    /// Builds sample requests against the schema, so that a custom schema
    /// that does not describe what `model` builds is refused now rather than
    /// failing (closed, but confusingly) on every request.
    fn check_schema_fits(&self, schema: &Schema) -> Result<(), ConfigError> {
        let peer = meshward_identity::SpiffeId::parse("spiffe://example.org/ns/default/sa/probe")
            .map_err(|e| ConfigError::SchemaMismatch(e.to_string()))?;
        let mut full = RequestFacts::new("GET", "probe.example:8080", "/p?a=1&a=2");
        full.peer = Some(peer);
        full.headers.push("x-probe", "1");
        full.source = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 1)));
        full.sni = Some("probe.example".to_owned());
        full.jwt_claims = Some(serde_json::json!({"iss": "i", "sub": "s", "aud": "a"}));
        let bare = RequestFacts::new("POST", "", "/");
        let other = RequestFacts::new("BREW", "", "/");
        for facts in [&full, &bare, &other] {
            self.build_request(facts, Some(schema))
                .map_err(|e| ConfigError::SchemaMismatch(e.to_string()))?;
        }
        Ok(())
    }
}

fn action_entities(
    schema: &Schema,
) -> Result<HashMap<EntityUid, (Entity, Vec<EntityUid>)>, ConfigError> {
    let entities = schema
        .action_entities()
        .map_err(|e| ConfigError::Schema(ConfigDiagnostic::new(e.to_string())))?;
    Ok(entities
        .iter()
        .map(|e| {
            let uid = e.uid();
            let groups = entities
                .ancestors(&uid)
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            (uid, (e.clone(), groups))
        })
        .collect())
}

/// Parses the policies, naming each by its `@id` annotation when it has one.
fn parse_policies(text: &str) -> Result<PolicySet, ConfigError> {
    let parsed = PolicySet::from_str(text).map_err(|errs| {
        ConfigError::Parse(
            errs.iter()
                .map(|e| located(text, e, e.to_string()))
                .collect(),
        )
    })?;
    if let Some(t) = parsed.templates().next() {
        return Err(ConfigError::Template(t.id().to_string()));
    }
    let mut policies = PolicySet::new();
    // Policies come back in no particular order; sort by the generated id's
    // number so that errors list in source order.
    let mut all: Vec<_> = parsed.policies().collect();
    all.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    for p in all {
        let policy = match p.annotation("id") {
            Some(id) => p.new_id(cedar_policy::PolicyId::new(id)),
            None => p.clone(),
        };
        let id = policy.id().to_string();
        policies
            .add(policy)
            .map_err(|_| ConfigError::DuplicateId(id))?;
    }
    Ok(policies)
}

fn validate(schema: &Schema, policies: &PolicySet, text: &str) -> Result<(), ConfigError> {
    let result = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    // Cedar reports a type error once per action the policy applies to; an
    // author wants it once, with the actions listed.
    let mut grouped: BTreeMap<ConfigDiagnostic, Vec<String>> = BTreeMap::new();
    for e in result.validation_errors() {
        let id = e.policy_id().to_string();
        let message = e.to_string();
        let message = message
            .strip_prefix(&format!("for policy `{id}`, "))
            .unwrap_or(&message);
        let (message, action) = split_action(message);
        let mut key = located(text, e, message);
        key.policy_id = Some(id);
        let actions = grouped.entry(key).or_default();
        actions.extend(action);
    }
    Err(ConfigError::Validation(
        grouped
            .into_iter()
            .map(|(mut d, actions)| {
                d.actions = actions;
                d
            })
            .collect(),
    ))
}

/// Takes the ` for <Namespace>::Action::"<id>"` out of a validation message,
/// returning the message without it and the action.
fn split_action(message: &str) -> (String, Option<String>) {
    let Some(at) = message.find("Action::\"") else {
        return (message.to_owned(), None);
    };
    let head = message.get(..at).unwrap_or_default();
    let start = head.rfind(' ').map_or(0, |i| i + 1);
    let tail = message.get(at + "Action::\"".len()..).unwrap_or_default();
    let Some(close) = tail.find('"') else {
        return (message.to_owned(), None);
    };
    let action = message.get(start..at + "Action::\"".len() + close + 1);
    let before = message.get(..start).unwrap_or_default();
    let before = before.strip_suffix("for ").unwrap_or(before).trim_end();
    let after = tail.get(close + 1..).unwrap_or_default();
    (format!("{before}{after}"), action.map(str::to_owned))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod walkaround;
