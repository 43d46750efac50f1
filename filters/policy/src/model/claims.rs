//! An end user's verified JWT claims as the `Mesh::User` entity.

use std::collections::BTreeMap;

use cedar_policy::{Entity, EntityUid, RestrictedExpression};

use super::tags::TagFilter;
use super::{BuildError, internal, str_expr};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct UserData {
    pub(super) issuer: String,
    pub(super) subject: String,
    pub(super) audiences: Vec<String>,
    pub(super) tags: Vec<(String, Vec<String>)>,
}

pub(super) fn user_data(claims: &serde_json::Value, filter: &TagFilter) -> UserData {
    let claim_str = |name: &str| {
        claims
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut tags = BTreeMap::new();
    flatten_claims(None, claims, &mut tags);
    UserData {
        issuer: claim_str("iss"),
        subject: claim_str("sub"),
        audiences: tags.get("aud").cloned().unwrap_or_default(),
        tags: tags.into_iter().filter(|(k, _)| filter.keeps(k)).collect(),
    }
}

pub(super) fn user_entity(uid: &EntityUid, user: &UserData) -> Result<Entity, BuildError> {
    let set = |values: &[String]| {
        RestrictedExpression::new_set(values.iter().cloned().map(RestrictedExpression::new_string))
    };
    Entity::new_with_tags(
        uid.clone(),
        [
            ("issuer".to_owned(), str_expr(&user.issuer)),
            ("subject".to_owned(), str_expr(&user.subject)),
            (
                "request_principal".to_owned(),
                str_expr(&format!("{}/{}", user.issuer, user.subject)),
            ),
            ("audiences".to_owned(), set(&user.audiences)),
        ],
        [],
        user.tags.iter().map(|(k, v)| (k.clone(), set(v))),
    )
    .map_err(|e| internal(&e))
}

/// Claims as tags: each claim and each nested claim (by dotted path) becomes a
/// set of strings, so the same test works on string and array claims, as
/// Istio's claim matching does.
pub(super) fn flatten_claims(
    prefix: Option<&str>,
    value: &serde_json::Value,
    tags: &mut BTreeMap<String, Vec<String>>,
) {
    use serde_json::Value;
    let Value::Object(map) = value else { return };
    for (name, v) in map {
        let key = match prefix {
            Some(p) => format!("{p}.{name}"),
            None => name.clone(),
        };
        match v {
            Value::Object(_) => flatten_claims(Some(&key), v, tags),
            Value::Array(items) => {
                let entry = tags.entry(key).or_default();
                entry.extend(items.iter().filter_map(scalar_text));
            }
            _ => {
                if let Some(text) = scalar_text(v) {
                    tags.entry(key).or_default().push(text);
                }
            }
        }
    }
}

pub(super) fn scalar_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}
