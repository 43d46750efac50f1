//! The reference engine: Cedar's own authorizer over Cedar entities and
//! context built from the request, as meshward decided before the
//! evaluator. It is the oracle the evaluator is tested against, and what
//! a tool uses to explain a decision in Cedar's terms.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Mutex;

use cedar_policy::{
    Authorizer, Effect, Entity, EntityUid, PolicySet, Schema, ValidationMode, Validator,
};
use meshward_policy::view::TagFilter;
use meshward_policy::{
    ConfigDiagnostic, ConfigError, Decision, Mode, Reason, RequestFacts, precheck,
};

use crate::index::{Combined, Index};
use crate::located::located;
use crate::model::{self, ExtCache, Names, tag_filter};
use crate::{AuthoringConfig, SHIPPED_SCHEMA};

/// A validated policy set decided by Cedar itself.
#[derive(Debug)]
pub struct CedarEngine {
    mode: Mode,
    require_peer_identity: bool,
    names: Names,
    pub(crate) policies: PolicySet,
    pub(crate) schema: Schema,
    index: Index,
    actions: HashMap<EntityUid, (Entity, Vec<EntityUid>)>,
    authorizer: Authorizer,
    tags: TagFilter,
    forbids: BTreeSet<String>,
    // A Mutex rather than a RefCell so the engine stays `Sync`; a contended
    // or poisoned lock just means building without it.
    cache: Mutex<ExtCache>,
}

impl CedarEngine {
    /// Builds an engine from an authoring configuration:
    /// `{"policies": "<cedar>", "schema": "<cedar schema>"?, "mode":
    /// "enforce"|"dry_run"?, "require_peer_identity": bool?}`.
    pub fn from_config(json: &[u8]) -> Result<Self, ConfigError> {
        let config: AuthoringConfig =
            serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::build(&config)
    }

    /// Builds an engine from policies alone: the shipped schema, enforce
    /// mode, a peer identity required.
    pub fn from_policies(policies: &str) -> Result<Self, ConfigError> {
        Self::build(&AuthoringConfig {
            policies: policies.to_owned(),
            schema: None,
            mode: Mode::Enforce,
            require_peer_identity: true,
        })
    }

    /// Like [`CedarEngine::from_config`] but without Cedar's validation:
    /// for differential tests of ill-typed policies, which the filter must
    /// decide as Cedar does even though `meshward compile` never hands them
    /// over.
    #[doc(hidden)]
    pub fn from_config_unvalidated(json: &[u8]) -> Result<Self, ConfigError> {
        let config: AuthoringConfig =
            serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::build_with(&config, false)
    }

    /// The compiled form of this engine's policies, as the filter loads it.
    pub fn compiled(&self) -> Result<meshward_policy::CompiledConfig, ConfigError> {
        crate::compile::compiled_from(self, self.mode, self.require_peer_identity)
    }

    pub(crate) fn build(config: &AuthoringConfig) -> Result<Self, ConfigError> {
        Self::build_with(config, true)
    }

    fn build_with(config: &AuthoringConfig, validated: bool) -> Result<Self, ConfigError> {
        let schema_text = config.schema.as_deref().unwrap_or(SHIPPED_SCHEMA);
        let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
            .map_err(|e| ConfigError::Schema(located(schema_text, &e, e.to_string())))?;
        let names = Names::new().map_err(|e| ConfigError::SchemaMismatch(e.to_string()))?;
        let actions = action_entities(&schema)?;
        let policies = parse_policies(&config.policies)?;
        if validated {
            validate(&schema, &policies, &config.policies)?;
        }
        let tags = tag_filter(&policies);
        let index = Index::new(&policies)
            .map_err(|e| ConfigError::Validation(vec![ConfigDiagnostic::new(e)]))?;
        let forbids = policies
            .policies()
            .filter(|p| p.effect() == Effect::Forbid)
            .map(|p| p.id().to_string())
            .collect();
        let engine = Self {
            mode: config.mode,
            require_peer_identity: config.require_peer_identity,
            names,
            policies,
            schema,
            index,
            actions,
            authorizer: Authorizer::new(),
            cache: Mutex::new(ExtCache::default()),
            tags,
            forbids,
        };
        engine.check_schema_fits()?;
        Ok(engine)
    }

    /// What the filter should do with denies.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a request without a peer identity is denied first.
    pub fn requires_peer_identity(&self) -> bool {
        self.require_peer_identity
    }

    /// The Cedar policies, with their meshward ids.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The ids of the configured policies, sorted.
    pub fn policy_ids(&self) -> Vec<meshward_policy::PolicyId> {
        let mut ids: Vec<_> = self
            .policies
            .policies()
            .map(|p| meshward_policy::PolicyId::from(p.id().to_string().as_str()))
            .collect();
        ids.sort();
        ids
    }

    /// [`CedarEngine::decide`], checked against the compiled evaluator.
    #[cfg(test)]
    #[track_caller]
    pub(crate) fn decide_both(&self, facts: &RequestFacts) -> Decision {
        let compiled = crate::compile::compiled_from(self, self.mode, self.require_peer_identity)
            .unwrap_or_else(|e| panic!("{e}"));
        let evaluator = meshward_policy::PolicyEngine::from_compiled(&compiled)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = self.decide(facts);
        let o = evaluator.decide(facts);
        assert_eq!(
            (d.allowed, d.reason, &d.determining, d.errors.len()),
            (o.allowed, o.reason, &o.determining, o.errors.len()),
            "cedar and the evaluator disagree on {facts:?}: {d:?} vs {o:?}"
        );
        d
    }

    /// The action entities of the schema, each with every group it is in.
    pub(crate) fn action_groups(&self) -> impl Iterator<Item = (&EntityUid, &[EntityUid])> {
        self.actions.iter().map(|(k, (_, g))| (k, g.as_slice()))
    }

    /// Decides one request with Cedar, evaluating only the policies its
    /// scope can match.
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
        if let Some(d) = precheck(facts, self.require_peer_identity) {
            return d;
        }
        match self.build_request(facts, None) {
            Ok(built) => self.decision(evaluate(&built)),
            Err(e) => from_build_error(e),
        }
    }

    /// Cedar's answer, plus the fail-closed rule: a forbid that errored
    /// denies when no forbid was satisfied.
    fn decision(&self, c: Combined) -> Decision {
        let failed = c
            .failed
            .iter()
            .filter(|id| self.forbids.contains(*id))
            .cloned()
            .collect();
        Decision::combine(
            c.forbids.into_iter().collect(),
            failed,
            c.permits.into_iter().collect(),
            c.errors.into_iter().collect(),
        )
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
        if let Some(d) = precheck(facts, self.require_peer_identity) {
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
                self.decision(combined)
            }
            Err(e) => from_build_error(e),
        }
    }

    /// How many policies [`CedarEngine::decide`] evaluates for `facts`.
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
    fn check_schema_fits(&self) -> Result<(), ConfigError> {
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
            self.build_request(facts, Some(&self.schema))
                .map_err(|e| ConfigError::SchemaMismatch(e.to_string()))?;
        }
        Ok(())
    }
}

fn from_build_error(e: model::BuildError) -> Decision {
    match e {
        model::BuildError::Invalid(e) => {
            Decision::denied(Reason::InvalidRequest, Some(e.to_string()))
        }
        model::BuildError::Internal(e) => Decision::denied(Reason::BadRequest, Some(e)),
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
