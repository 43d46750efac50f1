//! Which headers, query parameters and claims go into a request's
//! entities, and how repeated and split values become sets.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cedar_policy::RestrictedExpression;

use super::BuildError;
use crate::facts::{InvalidRequest, RequestFacts};

/// The tag names (of headers, query parameters and claims) the policies can
/// read: only those go into the request's entities, so that the entities of
/// one peer's requests repeat and can be cached. `all` when some policy reads
/// a tag by a computed name.
#[derive(Debug, Clone, Default)]
pub(crate) struct TagFilter {
    all: bool,
    names: HashSet<String>,
}

impl TagFilter {
    /// Every tag kept: for checking shapes against the schema.
    pub(crate) fn all() -> Self {
        Self {
            all: true,
            names: HashSet::new(),
        }
    }

    /// The tag names `hasTag`/`getTag` are called with in `policies`.
    pub(crate) fn of(policies: &cedar_policy::PolicySet) -> Self {
        let mut filter = Self::default();
        for policy in policies.policies() {
            match policy.to_json() {
                Ok(json) => filter.visit(&json),
                Err(_) => filter.all = true,
            }
        }
        filter
    }

    fn visit(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k == "hasTag" || k == "getTag" {
                        match child.get("right").and_then(|r| r.get("Value")) {
                            Some(Value::String(name)) => {
                                self.names.insert(name.clone());
                            }
                            _ => self.all = true,
                        }
                    }
                    self.visit(child);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.visit(i)),
            _ => {}
        }
    }

    pub(super) fn keeps(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }
}

/// The headers policies read, by lower-case name. A value that is not UTF-8
/// is refused only when a policy reads its header: refusing every such
/// request would let any client be denied for a header nobody looks at,
/// which is harmless, but reading it lossily would let `\xff` stand for a
/// value a forbid names, which is not.
pub(super) fn header_values(
    facts: &RequestFacts,
    tags: &TagFilter,
) -> Result<Vec<(String, Vec<String>)>, BuildError> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in facts.headers.iter() {
        let name = name.to_ascii_lowercase();
        if !tags.keeps(&name) {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| InvalidRequest::Header(name.clone()))?;
        map.entry(name).or_default().push(value.to_owned());
    }
    Ok(map.into_iter().collect())
}

/// The query parameters policies read, by name percent-decoded and
/// lower-cased (ASCII), so `Admin`, `%61dmin` and `admin` are one parameter.
pub(super) fn param_values(
    query: &str,
    tags: &TagFilter,
) -> Result<Vec<(String, Vec<String>)>, BuildError> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // A name that is not text once decoded cannot equal any name a
        // policy can write (Cedar strings are text), so it is not read.
        let Ok(name) = String::from_utf8(percent_decode(k)) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if !tags.keeps(&name) {
            continue;
        }
        let value = String::from_utf8(percent_decode(v))
            .map_err(|_| InvalidRequest::Param(name.clone()))?;
        map.entry(name).or_default().push(value);
    }
    Ok(map.into_iter().collect())
}

/// Repeated names joined with `,`, as HTTP joins repeated headers.
pub(super) fn joined_tags(
    pairs: &[(String, Vec<String>)],
) -> impl Iterator<Item = (String, RestrictedExpression)> + '_ {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.join(","))))
}

/// Every value, and every comma-separated element of every value, trimmed:
/// however a client splits or repeats a value, it is an element.
pub(super) fn value_set(values: &[String]) -> BTreeSet<&str> {
    fn trim(s: &str) -> &str {
        s.trim_matches([' ', '\t'])
    }
    let mut set = BTreeSet::new();
    for v in values {
        set.insert(trim(v));
        set.extend(v.split(',').map(trim));
    }
    set
}

pub(super) fn set_tags(
    pairs: &[(String, Vec<String>)],
) -> impl Iterator<Item = (String, RestrictedExpression)> + '_ {
    pairs.iter().map(|(k, v)| {
        let set = value_set(v)
            .into_iter()
            .map(|e| RestrictedExpression::new_string(e.to_owned()));
        (k.clone(), RestrictedExpression::new_set(set))
    })
}

/// Decodes `%XX` and `+`; malformed escapes are kept as they are.
pub(super) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b),
            },
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}
