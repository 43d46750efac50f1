//! Envoy's `x-forwarded-client-cert` header.
//!
//! The header is a comma-separated list of elements, one per proxy that
//! terminated a client's TLS, each a semicolon-separated list of `Key=value`
//! pairs. Values with `,`, `;`, `=` or `"` are double-quoted, with `"` and `\`
//! escaped by a backslash. Keys are `By`, `Hash`, `Cert`, `Chain`, `Subject`,
//! `URI` and `DNS`, compared case-insensitively.
//!
//! Parsing is strict: an unknown key, a repeated single-valued key or stray
//! text after a quoted value is an error, because this header is produced by
//! proxies we trust and anything else in it was put there by someone else.
//!
//! Which element to believe: with `trusted_hops = N`, the rightmost `N`
//! elements were appended by the `N` proxies we trust (Envoy's
//! `APPEND_FORWARD` appends, so the nearest proxy's element is the last).
//! The element at index `len - N` (0-based), the `N`th from the right, was
//! written by the outermost trusted proxy and describes the client that
//! proxy saw: that is the identity. Everything to its left came from beyond
//! the trust boundary and is ignored. Fewer than `N` elements means a trusted
//! proxy did not append, and the header is refused.

use std::fmt;

/// The most elements read from one header; real meshes have one or two.
pub const MAX_XFCC_ELEMENTS: usize = 16;
/// The longest header accepted, in bytes: room for a few certificate chains.
pub const MAX_XFCC_LEN: usize = 64 * 1024;

/// Why an XFCC header was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XfccError {
    /// The header is empty.
    #[error("empty `x-forwarded-client-cert` header")]
    Empty,
    /// Longer than [`MAX_XFCC_LEN`].
    #[error("`x-forwarded-client-cert` is {0} bytes, longer than the {MAX_XFCC_LEN} allowed")]
    TooLong(usize),
    /// More than [`MAX_XFCC_ELEMENTS`] elements.
    #[error("`x-forwarded-client-cert` has more than {MAX_XFCC_ELEMENTS} elements")]
    TooManyElements,
    /// A pair without `=`, or an empty element.
    #[error("malformed `x-forwarded-client-cert` at byte {0}")]
    Syntax(usize),
    /// A quoted value without its closing quote.
    #[error("unterminated quoted value in `x-forwarded-client-cert`")]
    Unterminated,
    /// A key Envoy does not produce.
    #[error("unknown key `{0}` in `x-forwarded-client-cert`")]
    UnknownKey(String),
    /// `By`, `Hash`, `Cert`, `Chain` or `Subject` given twice in one element.
    #[error("key `{0}` repeated in one `x-forwarded-client-cert` element")]
    DuplicateKey(String),
}

/// A key of an XFCC element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XfccKey {
    /// `By`: the URI SAN of the proxy that appended the element.
    By,
    /// `Hash`: the SHA-256 of the client certificate, hex.
    Hash,
    /// `Cert`: the client certificate, URL-encoded PEM.
    Cert,
    /// `Chain`: the client's whole chain, leaf first, URL-encoded PEM.
    Chain,
    /// `Subject`: the client certificate's subject.
    Subject,
    /// `URI`: a URI SAN of the client certificate; one pair per SAN.
    Uri,
    /// `DNS`: a DNS SAN of the client certificate; one pair per SAN.
    Dns,
}

impl XfccKey {
    fn parse(key: &str) -> Option<Self> {
        const KEYS: [(&str, XfccKey); 7] = [
            ("by", XfccKey::By),
            ("hash", XfccKey::Hash),
            ("cert", XfccKey::Cert),
            ("chain", XfccKey::Chain),
            ("subject", XfccKey::Subject),
            ("uri", XfccKey::Uri),
            ("dns", XfccKey::Dns),
        ];
        KEYS.iter()
            .find(|(name, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, k)| *k)
    }

    /// The key as Envoy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::By => "By",
            Self::Hash => "Hash",
            Self::Cert => "Cert",
            Self::Chain => "Chain",
            Self::Subject => "Subject",
            Self::Uri => "URI",
            Self::Dns => "DNS",
        }
    }

    fn repeatable(self) -> bool {
        matches!(self, Self::Uri | Self::Dns)
    }
}

/// One element of the header: what one proxy said about its client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfccElement {
    pairs: Vec<(XfccKey, String)>,
}

impl XfccElement {
    /// Builds an element from pairs, e.g. for tests and fuzzing round trips.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_pairs(pairs: Vec<(XfccKey, String)>) -> Self {
        Self { pairs }
    }

    /// The pairs, in header order, with values unescaped.
    #[cfg(feature = "fuzzing")]
    pub fn pairs(&self) -> &[(XfccKey, String)] {
        &self.pairs
    }

    /// The value of a single-valued key.
    pub fn get(&self, key: XfccKey) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all(&self, key: XfccKey) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for XfccElement {
    /// Writes the element as Envoy would, quoting every value, so that
    /// parsing the output gives the element back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{}=\"", k.as_str())?;
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

/// Parses a whole XFCC header into its elements, left to right.
pub fn parse_xfcc(header: &str) -> Result<Vec<XfccElement>, XfccError> {
    if header.len() > MAX_XFCC_LEN {
        return Err(XfccError::TooLong(header.len()));
    }
    if header.trim().is_empty() {
        return Err(XfccError::Empty);
    }
    let mut p = Parser {
        bytes: header.as_bytes(),
        pos: 0,
    };
    let mut elements = Vec::new();
    loop {
        if elements.len() == MAX_XFCC_ELEMENTS {
            return Err(XfccError::TooManyElements);
        }
        elements.push(p.element()?);
        p.skip_ows();
        match p.next() {
            None => return Ok(elements),
            Some(b',') => {}
            Some(_) => return Err(XfccError::Syntax(p.pos - 1)),
        }
    }
}

/// Picks the element that describes the client, given how many proxies in
/// front of us are trusted (see the module documentation).
pub fn select_trusted(
    elements: &[XfccElement],
    trusted_hops: usize,
) -> Result<&XfccElement, TooFewElements> {
    elements
        .len()
        .checked_sub(trusted_hops)
        .filter(|_| trusted_hops > 0)
        .and_then(|i| elements.get(i))
        .ok_or(TooFewElements {
            have: elements.len(),
            need: trusted_hops,
        })
}

/// The header has fewer elements than there are trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("`x-forwarded-client-cert` has {have} elements, fewer than the {need} trusted hops")]
pub struct TooFewElements {
    /// Elements in the header.
    pub have: usize,
    /// Trusted hops configured.
    pub need: usize,
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn element(&mut self) -> Result<XfccElement, XfccError> {
        let mut pairs: Vec<(XfccKey, String)> = Vec::new();
        loop {
            self.skip_ows();
            let key_start = self.pos;
            while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            let key_text = self.text(key_start, self.pos);
            if key_text.is_empty() || self.next() != Some(b'=') {
                return Err(XfccError::Syntax(key_start));
            }
            let key =
                XfccKey::parse(&key_text).ok_or_else(|| XfccError::UnknownKey(key_text.clone()))?;
            if !key.repeatable() && pairs.iter().any(|(k, _)| *k == key) {
                return Err(XfccError::DuplicateKey(key.as_str().to_owned()));
            }
            let value = self.value()?;
            pairs.push((key, value));
            match self.peek() {
                Some(b';') => self.pos += 1,
                _ => return Ok(XfccElement { pairs }),
            }
        }
    }

    fn value(&mut self) -> Result<String, XfccError> {
        if self.peek() != Some(b'"') {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if !matches!(b, b',' | b';' | b'"' | b'=')) {
                self.pos += 1;
            }
            return Ok(self.text(start, self.pos));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(XfccError::Unterminated),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b) => out.push(b),
                    None => return Err(XfccError::Unterminated),
                },
                Some(b) => out.push(b),
            }
        }
        // Only a separator or the end may follow a closing quote.
        self.skip_ows();
        match self.peek() {
            None | Some(b',' | b';') => {}
            Some(_) => return Err(XfccError::Syntax(self.pos)),
        }
        // The input is a &str and escapes drop only ASCII backslashes, so the
        // bytes stay UTF-8; the lossy path is never taken.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.bytes
            .get(start..end)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
