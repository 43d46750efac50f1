//! How request facts become what policies see: the action of a method, the
//! canonical host, the headers, query parameters and claims policies read
//! and their value sets, the request time.
//!
//! Shared by the evaluator and by the Cedar reference engine
//! (`meshward-policy-cedar`), so the two decide over the same values.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::authority::{Authority, parse_authority};
use crate::facts::{InvalidRequest, RequestFacts};

/// The id of the peer when there is no peer identity; never a SPIFFE ID.
pub const ANONYMOUS: &str = "anonymous";

/// The `Mesh::Action` id for an HTTP method: methods the schema names are
/// actions of their own when spelt exactly so (methods are case-sensitive),
/// every other method and spelling is `OTHER`, which the schema puts in
/// `write`: an upstream may upper-case `delete` and execute it, so nothing
/// unknown may pass as a read.
pub fn action_id(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT" | "PATCH" | "DELETE" | "CONNECT" | "TRACE" => {
            method
        }
        _ => "OTHER",
    }
}

/// The tag names (of headers, query parameters and claims) the policies can
/// read: only those are read from a request, so that a header nobody reads
/// cannot make a request invalid, and the rest is not copied. `all` when
/// some policy reads a tag by a computed name.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    all: bool,
    names: HashSet<String>,
}

impl TagFilter {
    /// Every tag kept.
    pub fn all() -> Self {
        Self {
            all: true,
            names: HashSet::new(),
        }
    }

    /// The tag names `hasTag`/`getTag` are called with in policies in
    /// Cedar's JSON policy format.
    pub fn of_json<'a>(policies: impl IntoIterator<Item = &'a serde_json::Value>) -> Self {
        let mut filter = Self::default();
        for p in policies {
            filter.visit(p);
        }
        filter
    }

    /// Adds the tag names one more policy (Cedar's JSON policy format) reads.
    pub fn add_json(&mut self, policy: &serde_json::Value) {
        self.visit(policy);
    }

    /// Marks every tag as read (a policy the caller could not inspect).
    pub fn keep_all(&mut self) {
        self.all = true;
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

    /// Whether tag `name` is read by some policy.
    pub fn keeps(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }

    /// Whether tag `name`, once lower-cased (ASCII), is read by some policy.
    /// Allocates only for a name with upper-case letters, which Envoy never
    /// hands over (it lower-cases header names).
    pub fn keeps_lowercased(&self, name: &str) -> bool {
        if self.all {
            true
        } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.names.contains(&name.to_ascii_lowercase())
        } else {
            self.names.contains(name)
        }
    }

    /// Whether no tag at all is read.
    pub fn is_empty(&self) -> bool {
        !self.all && self.names.is_empty()
    }
}

/// Named values in name order, each with its values in arrival order.
pub type Tagged = Vec<(String, Vec<String>)>;

/// The headers policies read, by lower-case name. A value that is not UTF-8
/// is refused only when a policy reads its header: refusing every such
/// request would let any client be denied for a header nobody looks at,
/// which is harmless, but reading it lossily would let `\xff` stand for a
/// value a forbid names, which is not.
pub fn header_values(facts: &RequestFacts, tags: &TagFilter) -> Result<Tagged, InvalidRequest> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in facts.headers.iter() {
        if !tags.keeps_lowercased(name) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        let value = std::str::from_utf8(value).map_err(|_| InvalidRequest::Header(name.clone()))?;
        map.entry(name).or_default().push(value.to_owned());
    }
    Ok(map.into_iter().collect())
}

/// The query parameters policies read, by name percent-decoded and
/// lower-cased (ASCII), so `Admin`, `%61dmin` and `admin` are one parameter.
pub fn param_values(query: &str, tags: &TagFilter) -> Result<Tagged, InvalidRequest> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
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

/// Every value, and every comma-separated element of every value, trimmed:
/// however a client splits or repeats a value, it is an element.
pub fn value_set(values: &[String]) -> BTreeSet<&str> {
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

/// Decodes `%XX` and `+`; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> Vec<u8> {
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

/// An end user's verified JWT claims as policies see them (`Mesh::User`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserData {
    /// `iss`, or empty.
    pub issuer: String,
    /// `sub`, or empty.
    pub subject: String,
    /// The `aud` claim's values.
    pub audiences: Vec<String>,
    /// The claims policies read, flattened (see [`flatten_claims`]).
    pub tags: Tagged,
}

impl UserData {
    /// The user's id and `request_principal`: `<iss>/<sub>`.
    pub fn principal(&self) -> String {
        format!("{}/{}", self.issuer, self.subject)
    }
}

/// The user of verified JWT claims, with the claims policies read.
pub fn user_data(claims: &serde_json::Value, filter: &TagFilter) -> UserData {
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

/// Claims as tags: each claim and each nested claim (by dotted path) becomes a
/// set of strings, so the same test works on string and array claims, as
/// Istio's claim matching does.
pub fn flatten_claims(
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

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Seconds since the Unix epoch; times before it count as the epoch (a host
/// clock never reports them).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The first second (since the epoch) whose Cedar `datetime` text would need
/// a five-digit year, which Cedar's `datetime` does not parse: a request
/// time from then on cannot be put to a policy.
pub const DATETIME_END: u64 = 253_402_300_800;

/// Cedar's `datetime` text for a time, to the second (policies need no
/// more, and it lets consecutive requests share one value), in UTC.
pub fn cedar_datetime(time: SystemTime) -> String {
    let secs = i64::try_from(unix_seconds(time)).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (secs_of_day / 3600, secs_of_day % 3600);
    let (min, s) = (rest / 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm, rewritten here).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn datetime_text() {
        assert_eq!(cedar_datetime(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_923);
        assert_eq!(cedar_datetime(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(cedar_datetime(t), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(DATETIME_END - 1);
        assert_eq!(cedar_datetime(t), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    fn params(query: &str) -> Tagged {
        param_values(query, &TagFilter::all()).unwrap()
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            params("a=1&b=x%2Fy+z&&c&bad=%zz&A=2&%61=3"),
            [
                ("a".into(), vec!["1".into(), "2".into(), "3".into()]),
                ("b".into(), vec!["x/y z".into()]),
                ("bad".into(), vec!["%zz".into()]),
                ("c".into(), vec!["".into()]),
            ]
        );
        assert!(params("%ff=1").is_empty());
        assert_eq!(
            param_values("a=%ff", &TagFilter::all()),
            Err(InvalidRequest::Param("a".into()))
        );
    }

    #[test]
    fn value_sets() {
        let v = |vals: &[&str]| {
            let owned: Vec<String> = vals.iter().map(|s| (*s).to_owned()).collect();
            value_set(&owned)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(v(&["a, b"]), ["a", "a, b", "b"]);
        assert_eq!(v(&["1", "1"]), ["1"]);
    }

    #[test]
    fn claims_flatten() {
        let claims = serde_json::json!({
            "iss": "https://idp", "groups": ["a", "b"], "n": 3, "ok": true,
            "realm_access": {"roles": ["admin"]}, "nil": null
        });
        let mut tags = BTreeMap::new();
        flatten_claims(None, &claims, &mut tags);
        assert_eq!(tags["groups"], ["a", "b"]);
        assert_eq!(tags["n"], ["3"]);
        assert_eq!(tags["ok"], ["true"]);
        assert_eq!(tags["realm_access.roles"], ["admin"]);
        assert!(!tags.contains_key("nil"));
        let user = user_data(&claims, &TagFilter::all());
        assert_eq!(user.principal(), "https://idp/");
    }
}
