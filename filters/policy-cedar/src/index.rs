//! Policies sliced by the scope entities they name, so a request evaluates
//! only the policies whose scope it can satisfy.
//!
//! Cedar evaluates every policy of a set, scope included, for every request
//! (about 0.45µs each). Here each policy is filed under the entity uid its
//! principal, action and resource scopes name (or "any" when a scope names
//! none), and a request visits only the leaves keyed by its own principal,
//! action and resource and the entities they are `in`. Each visited leaf is a
//! small policy set evaluated by Cedar itself.
//!
//! Why this gives Cedar's answer: a policy whose scope names an entity the
//! request is not `in` cannot be satisfied and cannot error (the scope is
//! checked before the conditions, and `in` against a known uid cannot fail), so
//! leaving it out changes nothing. A policy in a visited leaf whose scope still
//! does not match (`principal == Mesh::Namespace::"x"`) just evaluates to
//! false. And Cedar's decision over a union of disjoint sets is a function of
//! the per-set answers: any satisfied forbid denies with the satisfied forbids
//! as reasons, else any satisfied permit allows with the satisfied permits,
//! else deny; errors are the union. The equivalence test checks all of it.

use std::collections::{BTreeSet, HashMap};

use cedar_policy::{
    ActionConstraint, Authorizer, Entities, EntityUid, Policy, PolicySet, PrincipalConstraint,
    Request, ResourceConstraint,
};

/// One level of the index: policies that name no entity in this scope, and
/// policies by the entity they name.
#[derive(Debug, Default)]
struct Level<T> {
    any: Option<T>,
    by_uid: HashMap<EntityUid, T>,
}

impl<T: Default> Level<T> {
    fn slot(&mut self, key: Option<&EntityUid>) -> &mut T {
        match key {
            None => self.any.get_or_insert_with(T::default),
            Some(uid) => self.by_uid.entry(uid.clone()).or_default(),
        }
    }

    /// The children a request with these keys can reach.
    fn visit<'a>(&'a self, keys: &'a [EntityUid]) -> impl Iterator<Item = &'a T> {
        self.any
            .iter()
            .chain(keys.iter().filter_map(|k| self.by_uid.get(k)))
    }
}

/// The policy index of one configuration.
#[derive(Debug, Default)]
pub(crate) struct Index {
    root: Level<Level<Level<PolicySet>>>,
}

/// What the visited leaves said, combined as Cedar would over their union.
#[derive(Debug, Default)]
pub(crate) struct Combined {
    pub(crate) forbids: BTreeSet<String>,
    pub(crate) permits: BTreeSet<String>,
    pub(crate) errors: BTreeSet<String>,
    /// The ids of the policies whose evaluation failed.
    pub(crate) failed: BTreeSet<String>,
}

impl Combined {
    pub(crate) fn add(&mut self, response: &cedar_policy::Response) {
        let reasons = response.diagnostics().reason().map(ToString::to_string);
        match response.decision() {
            cedar_policy::Decision::Deny => self.forbids.extend(reasons),
            cedar_policy::Decision::Allow => self.permits.extend(reasons),
        }
        self.failed
            .extend(response.diagnostics().errors().map(error_policy));
        self.errors.extend(
            response
                .diagnostics()
                .errors()
                .map(|e| format!("policy `{}`: {e}", error_policy(e))),
        );
    }
}

fn error_policy(e: &cedar_policy::AuthorizationError) -> String {
    match e {
        cedar_policy::AuthorizationError::PolicyEvaluationError(e) => e.policy_id().to_string(),
    }
}

/// The uid a principal or resource scope names, if any.
fn entity_key(c: Option<&EntityUid>) -> Option<EntityUid> {
    c.cloned()
}

impl Index {
    /// Files every policy of `policies`; they are already validated.
    pub(crate) fn new(policies: &PolicySet) -> Result<Self, String> {
        let mut index = Self::default();
        for policy in policies.policies() {
            index.insert(policy)?;
        }
        Ok(index)
    }

    fn insert(&mut self, policy: &Policy) -> Result<(), String> {
        let principal = entity_key(match &policy.principal_constraint() {
            PrincipalConstraint::Eq(u) | PrincipalConstraint::In(u) => Some(u),
            PrincipalConstraint::IsIn(_, u) => Some(u),
            PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
        });
        let resource = entity_key(match &policy.resource_constraint() {
            ResourceConstraint::Eq(u) | ResourceConstraint::In(u) => Some(u),
            ResourceConstraint::IsIn(_, u) => Some(u),
            ResourceConstraint::Any | ResourceConstraint::Is(_) => None,
        });
        // `action in [a, b]` is filed under each of `a` and `b`; a request `in`
        // both evaluates it twice, which yields the same answer, and the
        // combination keeps reasons and errors as sets.
        let actions: Vec<Option<EntityUid>> = match policy.action_constraint() {
            ActionConstraint::Any => vec![None],
            ActionConstraint::Eq(u) => vec![Some(u)],
            ActionConstraint::In(us) if us.is_empty() => vec![None],
            ActionConstraint::In(us) => {
                // `action in [a, a]` is valid Cedar; file it once.
                let mut unique: Vec<Option<EntityUid>> = Vec::new();
                for u in us {
                    if !unique.iter().flatten().any(|seen| *seen == u) {
                        unique.push(Some(u));
                    }
                }
                unique
            }
        };
        for action in actions {
            self.root
                .slot(principal.as_ref())
                .slot(action.as_ref())
                .slot(resource.as_ref())
                .add(policy.clone())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Evaluates the leaves a request can reach.
    pub(crate) fn evaluate(
        &self,
        authorizer: &Authorizer,
        request: &Request,
        entities: &Entities,
        principal_keys: &[EntityUid],
        action_keys: &[EntityUid],
        resource_keys: &[EntityUid],
    ) -> Combined {
        let mut combined = Combined::default();
        for by_action in self.root.visit(principal_keys) {
            for by_resource in by_action.visit(action_keys) {
                for leaf in by_resource.visit(resource_keys) {
                    combined.add(&authorizer.is_authorized(request, leaf, entities));
                }
            }
        }
        combined
    }

    /// How many policies a request with these keys evaluates.
    #[cfg(test)]
    pub(crate) fn reachable(&self, p: &[EntityUid], a: &[EntityUid], r: &[EntityUid]) -> usize {
        self.root
            .visit(p)
            .flat_map(|l| l.visit(a))
            .flat_map(|l| l.visit(r))
            .map(|leaf| leaf.policies().count())
            .sum()
    }
}

#[cfg(test)]
mod tests;
