//! Request paths in one normal form, so that the path a policy decides on is
//! the path the upstream resolves.
//!
//! A policy that forbids `/admin*` must not be walked around by
//! `/api/../admin`, `/api/%2e%2e/admin` or `//admin`: the application resolves
//! all three to `/admin`. The filter therefore decides on the normal form
//! computed here and forwards exactly that form (it sets `:path` when
//! [`NormalPath::changed`] says the client sent something else), so the
//! decision and the upstream see the same request.
//!
//! The normal form of a `:path`, in this order (RFC 3986 §6.2.2):
//! 1. refused: bytes that are not UTF-8, control characters (below 0x20 and
//!    0x7F, NUL included), a fragment (`#`, which no client sends to a
//!    server: Envoy rejects it too), a raw `\` in the path (some servers treat
//!    it as `/`), a `%` not followed by two hex digits, a path that is not
//!    `*`, empty, or starting with `/`;
//! 2. percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!    decoded, every other escape is kept with upper-case hex digits; an
//!    escaped `/` or `\` (`%2F`, `%5C`) is refused, or kept as it is with
//!    [`EscapedSlashes::Keep`] (it then never separates segments);
//! 3. runs of `/` are merged into one, unless [`PathOptions::merge_slashes`]
//!    is turned off;
//! 4. dot segments are removed (RFC 3986 §5.2.4); a dot segment with a
//!    `;` parameter (`/..;/`, which Tomcat and other servlet containers
//!    resolve as `..`) is refused.
//!
//! The query (after the first `?`) is not rewritten: it is checked (no
//! control character, no bad escape) and kept apart; the engine decodes
//! parameters itself.
//!
//! Envoy can do the same before the filter runs, and the shipped bootstraps
//! turn it on: `normalize_path: true` is step 2 and 4 (Envoy decodes only
//! unreserved characters too), `merge_slashes: true` is step 3, and
//! `path_with_escaped_slashes_action: REJECT_REQUEST` is the default
//! [`EscapedSlashes::Refuse`] (`KEEP_UNCHANGED` is [`EscapedSlashes::Keep`];
//! meshward offers no equivalent of Envoy's unescaping actions, which change
//! what the application sees as a separator). Istio sets these through
//! `meshConfig.pathNormalization` (`MERGE_SLASHES` and
//! `DECODE_AND_MERGE_SLASHES`). With Envoy's normalisation on, the filter's
//! is a no-op; with it off, the filter's is what keeps the decision sound.

use std::fmt::Write as _;

use serde::Deserialize;

/// What to do with `%2F` and `%5C` (an escaped `/` or `\`) in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EscapedSlashes {
    /// Refuse the path (the default): applications disagree on whether an
    /// escaped slash separates segments, so no decision on it is safe.
    #[default]
    Refuse,
    /// Keep the escape as it is (upper-cased); it is data, never a separator.
    /// For applications that put escaped slashes in identifiers on purpose.
    Keep,
}

/// How paths are normalised. The default is the secure choice for every
/// option; a configuration can only relax it by naming the option.
///
/// As JSON: `{"merge_slashes": bool?, "escaped_slashes": "refuse"|"keep"?}`;
/// unknown fields are refused so a typo cannot silently keep a default the
/// author meant to change (or the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "PathOptionsRepr")]
pub struct PathOptions {
    merge_slashes: bool,
    escaped_slashes: EscapedSlashes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathOptionsRepr {
    #[serde(default = "yes")]
    merge_slashes: bool,
    #[serde(default)]
    escaped_slashes: EscapedSlashes,
}

fn yes() -> bool {
    true
}

impl From<PathOptionsRepr> for PathOptions {
    fn from(r: PathOptionsRepr) -> Self {
        Self {
            merge_slashes: r.merge_slashes,
            escaped_slashes: r.escaped_slashes,
        }
    }
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Refuse,
        }
    }
}

impl PathOptions {
    /// Whether runs of `/` are merged (default true).
    #[must_use]
    pub fn merge_slashes(mut self, merge: bool) -> Self {
        self.merge_slashes = merge;
        self
    }

    /// What is done with `%2F` and `%5C` (default [`EscapedSlashes::Refuse`]).
    #[must_use]
    pub fn escaped_slashes(mut self, action: EscapedSlashes) -> Self {
        self.escaped_slashes = action;
        self
    }

    /// Whether runs of `/` are merged.
    pub fn merges_slashes(&self) -> bool {
        self.merge_slashes
    }

    /// What is done with `%2F` and `%5C`.
    pub fn escaped_slashes_action(&self) -> EscapedSlashes {
        self.escaped_slashes
    }
}

/// Why a `:path` has no normal form. The request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is not valid UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// The path has a control character (NUL included).
    #[error("path has a control character")]
    Control,
    /// The path has a fragment.
    #[error("path has a fragment (`#`)")]
    Fragment,
    /// The path has a raw backslash.
    #[error("path has a backslash")]
    Backslash,
    /// A `%` is not followed by two hex digits.
    #[error("path has an invalid percent-escape")]
    InvalidEscape,
    /// The path has `%2F` or `%5C` and they are refused.
    #[error("path has an escaped slash (`%2F` or `%5C`)")]
    EscapedSlash,
    /// The path is not `*`, empty, or starting with `/`.
    #[error("path does not start with `/`")]
    NotAbsolute,
    /// A dot segment carries a `;` parameter (`/..;/`).
    #[error("path has a dot segment with a parameter (`..;`)")]
    DotSegmentParameter,
}

/// A `:path` in normal form, split from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    path: String,
    query: Option<String>,
    changed: bool,
}

impl NormalPath {
    /// The normalised path, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query without its `?`, as sent; `None` when there was no `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Whether the normal form differs from what was sent: the filter must
    /// then forward [`NormalPath::to_path_and_query`] as the new `:path`.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The `:path` to forward: the normalised path and the query as sent.
    pub fn to_path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Normalises a raw `:path` (query included), as the module documentation
/// describes; normalising a normal form changes nothing.
pub fn normalize_path(raw: impl AsRef<[u8]>, opts: &PathOptions) -> Result<NormalPath, PathError> {
    let raw = raw.as_ref();
    let text = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(PathError::Control);
    }
    if text.contains('#') {
        return Err(PathError::Fragment);
    }
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    if let Some(q) = query {
        check_escapes(q)?;
    }
    let normal = normalize_bare(path, opts)?;
    let changed = normal != path;
    Ok(NormalPath {
        path: normal,
        query: query.map(str::to_owned),
        changed,
    })
}

/// Whether `path` (without a query) is already in normal form.
pub(crate) fn is_normal(path: &str, opts: &PathOptions) -> bool {
    !path.contains(['?', '#'])
        && !path.bytes().any(|b| b < 0x20 || b == 0x7f)
        && normalize_bare(path, opts).is_ok_and(|n| n == path)
}

fn normalize_bare(path: &str, opts: &PathOptions) -> Result<String, PathError> {
    if path.is_empty() || path == "*" {
        return Ok(path.to_owned());
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    let decoded = decode_unreserved(path, opts.escaped_slashes)?;
    remove_dot_segments(&decoded, opts.merge_slashes)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn check_escapes(s: &str) -> Result<(), PathError> {
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1).copied().and_then(hex_value).is_some()
                && bytes.get(i + 2).copied().and_then(hex_value).is_some();
            if !ok {
                return Err(PathError::InvalidEscape);
            }
        }
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escaped unreserved characters, upper-cases the other escapes.
fn decode_unreserved(path: &str, slashes: EscapedSlashes) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        let (before, escape) = rest.split_at(at);
        out.push_str(before);
        let bytes = escape.as_bytes();
        let (Some(hi), Some(lo)) = (
            bytes.get(1).copied().and_then(hex_value),
            bytes.get(2).copied().and_then(hex_value),
        ) else {
            return Err(PathError::InvalidEscape);
        };
        let b = hi * 16 + lo;
        if is_unreserved(b) {
            out.push(char::from(b));
        } else if (b == b'/' || b == b'\\') && slashes == EscapedSlashes::Refuse {
            return Err(PathError::EscapedSlash);
        } else {
            // Infallible: writing to a String.
            let _ = write!(out, "%{b:02X}");
        }
        // The escape is three ASCII bytes, so this is a char boundary.
        rest = escape.get(3..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 3986 §5.2.4 on an absolute path, segment by segment.
fn remove_dot_segments(path: &str, merge_slashes: bool) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    // Whether the output ends with `/` beyond what the kept segments give: a
    // final `.`, `..` or (when merging) empty segment leaves a directory.
    let mut trailing = false;
    for segment in path.split('/').skip(1) {
        if segment.contains(';') {
            let bare = segment.split(';').next().unwrap_or_default();
            if bare == "." || bare == ".." {
                return Err(PathError::DotSegmentParameter);
            }
        }
        match segment {
            "." => trailing = true,
            ".." => {
                stack.pop();
                trailing = true;
            }
            "" if merge_slashes => trailing = true,
            _ => {
                stack.push(segment);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize_path(raw, &PathOptions::default()).map(|n| n.to_path_and_query())
    }

    #[test]
    fn dot_segments_and_slashes() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/api/../admin/users", "/admin/users"),
            ("/api/%2e%2e/admin", "/admin"),
            ("/api/%2E%2e/admin", "/admin"),
            ("/api/.%2e/admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c/", "/a/b/c/"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a/...", "/a/..."),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/%7Euser/%41", "/a/~user/A"),
            ("/a%3a%20b", "/a%3A%20b"),
            ("/%252e%252e/x", "/%252e%252e/x"),
            ("/p?x=1&y=/../z", "/p?x=1&y=/../z"),
            ("/a/../b?", "/b?"),
            ("*", "*"),
            ("", ""),
            ("/caf\u{e9}", "/caf\u{e9}"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn changed_only_when_different() {
        let opts = PathOptions::default();
        assert!(!normalize_path("/a/b?c", &opts).unwrap().changed());
        let n = normalize_path("/a/../b?c=%41", &opts).unwrap();
        assert!(n.changed());
        assert_eq!((n.path(), n.query()), ("/b", Some("c=%41")));
    }

    #[test]
    fn refusals() {
        for (raw, err) in [
            ("/a%2Fb", PathError::EscapedSlash),
            ("/a%2fb", PathError::EscapedSlash),
            ("/a%5cb", PathError::EscapedSlash),
            ("/a\\..\\admin", PathError::Backslash),
            ("/a\0b", PathError::Control),
            ("/a\nb", PathError::Control),
            ("/a?b=\x7f", PathError::Control),
            ("/a#frag", PathError::Fragment),
            ("/a%zz", PathError::InvalidEscape),
            ("/a%4", PathError::InvalidEscape),
            ("/a?q=100%", PathError::InvalidEscape),
            ("admin", PathError::NotAbsolute),
            ("http://h/admin", PathError::NotAbsolute),
            ("/api/..;/admin", PathError::DotSegmentParameter),
            ("/api/.;x/admin", PathError::DotSegmentParameter),
        ] {
            assert_eq!(norm(raw), Err(err), "{raw:?}");
        }
        assert_eq!(
            normalize_path(b"/\xff", &PathOptions::default()),
            Err(PathError::NotUtf8)
        );
    }

    #[test]
    fn options() {
        let keep = PathOptions::default()
            .merge_slashes(false)
            .escaped_slashes(EscapedSlashes::Keep);
        let n = |raw| normalize_path(raw, &keep).map(|n| n.to_path_and_query());
        assert_eq!(n("/a//b/%2f/../c").as_deref(), Ok("/a//b/c"));
        assert_eq!(n("/a%2fb%5c").as_deref(), Ok("/a%2Fb%5C"));
        let parsed: PathOptions =
            serde_json::from_str(r#"{"merge_slashes": false, "escaped_slashes": "keep"}"#).unwrap();
        assert_eq!(parsed, keep);
        let parsed: PathOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, PathOptions::default());
        assert!(serde_json::from_str::<PathOptions>(r#"{"merge_slash": false}"#).is_err());
        assert!(serde_json::from_str::<PathOptions>(r#"{"escaped_slashes": "decode"}"#).is_err());
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2e".to_owned()),
            Just("%2E".to_owned()),
            Just("%2f".to_owned()),
            Just("%41".to_owned()),
            Just("%7e".to_owned()),
            Just("%3a".to_owned()),
            Just("%25".to_owned()),
            Just(";".to_owned()),
            Just("?".to_owned()),
            "[a-zA-Z0-9_~-]{1,3}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
    }

    proptest! {
        #[test]
        fn normal_form_is_stable(raw in path_strategy(), merge in any::<bool>(), keep in any::<bool>()) {
            let action = if keep { EscapedSlashes::Keep } else { EscapedSlashes::Refuse };
            let opts = PathOptions::default().merge_slashes(merge).escaped_slashes(action);
            if let Ok(once) = normalize_path(&raw, &opts) {
                let twice = normalize_path(once.to_path_and_query(), &opts).unwrap();
                prop_assert_eq!(&twice, &NormalPath { changed: false, ..once.clone() });
                prop_assert!(is_normal(once.path(), &opts));
                let p = once.path();
                let ends = |s: &str| p.ends_with(s);
                prop_assert!(!p.contains("/./") && !p.contains("/../") && !ends("/.") && !ends("/.."));
                prop_assert!(!p.to_ascii_lowercase().contains("%2e"));
                prop_assert!(!merge || !p.contains("//"));
            }
        }

        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = normalize_path(&raw, &PathOptions::default());
        }
    }
}
