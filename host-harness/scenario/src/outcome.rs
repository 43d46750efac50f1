//! What a client, the upstream and the logs showed for one request, and
//! the field-by-field comparison with what was expected.

use serde::{Deserialize, Serialize};

use crate::spec::{Bytes, HeaderList};

/// What one request showed. In an expectation every field is optional: a
/// field left out is not compared; a header value `*` matches any value.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The status the client received (0: none, the stream was reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response headers in wire order, framing included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderList>,
    /// The response body the client received, as bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Bytes>,
    /// True when the response did not end cleanly (a reset mid-response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// The filter's log lines during the request (at info and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<String>>,
    /// Whether the request reached the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// The request headers the upstream received, in wire order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_headers: Option<HeaderList>,
    /// The request body the upstream received, as bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_body: Option<Bytes>,
}

/// The fields [`Outcome::differences`] compares, by name.
pub const FIELDS: &[&str] = &[
    "status",
    "headers",
    "body",
    "reset",
    "logs",
    "forwarded",
    "upstream_headers",
    "upstream_body",
];

impl Outcome {
    /// Every difference between this expectation and `seen`, one entry per
    /// field, each a readable multi-line text. `skip` names fields not to
    /// compare.
    pub fn differences(&self, seen: &Outcome, skip: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut scalar = |name: &str, want: Option<String>, got: Option<String>| {
            if let Some(want) = want
                && !skip.contains(&name)
                && Some(&want) != got.as_ref()
            {
                out.push((
                    name.to_owned(),
                    format!(
                        "expected {want}, got {}",
                        got.unwrap_or_else(|| "nothing".into())
                    ),
                ));
            }
        };
        scalar(
            "status",
            self.status.map(|s| s.to_string()),
            seen.status.map(|s| s.to_string()),
        );
        scalar(
            "body",
            self.body.as_ref().map(|b| format!("{b:?}")),
            seen.body.as_ref().map(|b| format!("{b:?}")),
        );
        scalar(
            "reset",
            self.reset.map(|b| b.to_string()),
            seen.reset.map(|b| b.to_string()),
        );
        scalar(
            "forwarded",
            self.forwarded.map(|b| b.to_string()),
            seen.forwarded.map(|b| b.to_string()),
        );
        scalar(
            "upstream_body",
            self.upstream_body.as_ref().map(|b| format!("{b:?}")),
            seen.upstream_body.as_ref().map(|b| format!("{b:?}")),
        );
        let mut lists = |name: &str, want: Option<Vec<String>>, got: Option<Vec<String>>| {
            if let Some(want) = want
                && !skip.contains(&name)
            {
                let got = got.unwrap_or_default();
                let same =
                    want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| matches(w, g));
                if !same {
                    out.push((
                        name.to_owned(),
                        line_diff(&want, &got, matches, Clone::clone),
                    ));
                }
            }
        };
        lists("logs", self.logs.clone(), seen.logs.clone());
        // Headers are compared as bytes, not as the lines that show them:
        // an escaped line could read like a text value.
        let mut headers = |name: &str, want: &Option<HeaderList>, got: &Option<HeaderList>| {
            if let Some(want) = want
                && !skip.contains(&name)
            {
                let got = got.clone().unwrap_or_default();
                let same = want.len() == got.len()
                    && want.iter().zip(&got).all(|(w, g)| header_matches(w, g));
                if !same {
                    out.push((
                        name.to_owned(),
                        line_diff(want, &got, header_matches, header_line),
                    ));
                }
            }
        };
        headers("headers", &self.headers, &seen.headers);
        headers(
            "upstream_headers",
            &self.upstream_headers,
            &seen.upstream_headers,
        );
        out
    }
}

/// `name: value`, a value that is not UTF-8 written `b"..."` with `\xNN`.
fn header_line((k, v): &(String, Bytes)) -> String {
    match v.to_str() {
        Some(text) => format!("{k}: {text}"),
        None => format!("{k}: {v:?}"),
    }
}

/// Names equal, and values equal as bytes or the expected one `*`.
fn header_matches(want: &(String, Bytes), got: &(String, Bytes)) -> bool {
    want.0 == got.0 && (want.1 == "*" || want.1 == got.1)
}

/// A line matches when equal, or when the expected header value is `*`.
fn matches(want: &String, got: &String) -> bool {
    if want == got {
        return true;
    }
    match (want.split_once(": "), got.split_once(": ")) {
        (Some((wk, "*")), Some((gk, _))) => wk == gk,
        _ => false,
    }
}

/// A small line diff: common lines plain, expected-only `-`, seen-only `+`
/// (longest common subsequence; the lists are short).
fn line_diff<T>(
    want: &[T],
    got: &[T],
    matches: impl Fn(&T, &T) -> bool,
    show: impl Fn(&T) -> String,
) -> String {
    let (n, m) = (want.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let here = match (want.get(i), got.get(j)) {
                (Some(w), Some(g)) if matches(w, g) => {
                    1 + lcs
                        .get(i + 1)
                        .and_then(|r| r.get(j + 1))
                        .copied()
                        .unwrap_or(0)
                }
                _ => {
                    let down = lcs.get(i + 1).and_then(|r| r.get(j)).copied().unwrap_or(0);
                    let right = lcs.get(i).and_then(|r| r.get(j + 1)).copied().unwrap_or(0);
                    down.max(right)
                }
            };
            if let Some(cell) = lcs.get_mut(i).and_then(|r| r.get_mut(j)) {
                *cell = here;
            }
        }
    }
    let at = |i: usize, j: usize| lcs.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::new();
    while i < n || j < m {
        match (want.get(i), got.get(j)) {
            (Some(w), Some(g)) if matches(w, g) => {
                lines.push(format!("      {}", show(g)));
                i += 1;
                j += 1;
            }
            (Some(w), _) if j >= m || at(i + 1, j) >= at(i, j + 1) => {
                lines.push(format!("    - {}", show(w)));
                i += 1;
            }
            (_, Some(g)) => {
                lines.push(format!("    + {}", show(g)));
                j += 1;
            }
            (Some(w), None) => {
                lines.push(format!("    - {}", show(w)));
                i += 1;
            }
            (None, None) => break,
        }
    }
    format!("(- expected, + seen)\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect()
    }

    #[test]
    fn only_expected_fields_are_compared_and_stars_match() {
        let want = Outcome {
            status: Some(200),
            headers: Some(h(&[("a", "1"), ("date", "*")])),
            ..Outcome::default()
        };
        let seen = Outcome {
            status: Some(200),
            headers: Some(h(&[("a", "1"), ("date", "today")])),
            body: Some("x".into()),
            ..Outcome::default()
        };
        assert!(want.differences(&seen, &[]).is_empty());
    }

    #[test]
    fn an_order_change_is_reported_as_a_line_diff() {
        let want = Outcome {
            headers: Some(h(&[("a", "1"), ("b", "2")])),
            status: Some(403),
            ..Outcome::default()
        };
        let seen = Outcome {
            headers: Some(h(&[("b", "2"), ("a", "1")])),
            status: Some(200),
            ..Outcome::default()
        };
        let diffs = want.differences(&seen, &[]);
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert_eq!(diffs[0].1, "expected 403, got 200");
        assert!(diffs[1].1.contains("- a: 1") && diffs[1].1.contains("+ a: 1"));
        assert!(want.differences(&seen, &["headers", "status"]).is_empty());
    }

    #[test]
    fn values_are_compared_as_bytes_and_shown_escaped() {
        let bytes = |b: &[u8]| Some(vec![("x".to_owned(), Bytes::from(b))]);
        let want = Outcome {
            headers: bytes(b"\\xe9"),
            body: Some(Bytes::from(&b"\xe9"[..])),
            ..Outcome::default()
        };
        let seen = Outcome {
            headers: bytes(b"\xe9"),
            body: Some(Bytes::from(&b"\xe9"[..])),
            ..Outcome::default()
        };
        let diffs = want.differences(&seen, &[]);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].1.contains("- x: \\xe9"), "{}", diffs[0].1);
        assert!(diffs[0].1.contains("+ x: b\"\\xe9\""), "{}", diffs[0].1);
        let same = Outcome {
            headers: bytes(b"\xe9"),
            ..Outcome::default()
        };
        assert!(same.differences(&seen, &[]).is_empty());
    }
}
