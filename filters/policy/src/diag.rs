//! Configuration errors with their places: typed locations in the policies
//! or schema text, kept as data so a tool can point at them without reading
//! them back out of a message.

use std::fmt;

/// A place in a policies or schema text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct SourceLocation {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset of the start, from the start of the text.
    pub offset: usize,
    /// Length in bytes; 0 for a point.
    pub len: usize,
}

impl SourceLocation {
    /// The location of `len` bytes at byte `offset` of `source`. An offset
    /// past the end, or inside a character, counts as the end of the text
    /// before it.
    pub fn at(source: &str, offset: usize, len: usize) -> Self {
        let (line, column) = line_column(source, offset);
        Self {
            line,
            column,
            offset,
            len,
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in policies or a schema.
///
/// `Display` gives the locations as `line:column`, then the policy and the
/// message, as a filter logs it; a tool that knows the file names should use
/// the fields instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct ConfigDiagnostic {
    /// Where the problem is, the primary place first; empty when Cedar gave
    /// no place.
    pub locations: Vec<SourceLocation>,
    /// The policy it is about (its `@id`, else Cedar's generated `policyN`),
    /// when it is about one.
    pub policy_id: Option<String>,
    /// What is wrong, without the place or the policy.
    pub message: String,
    /// For a validation error Cedar reports once per action: the actions.
    pub actions: Vec<String>,
    /// Cedar's hint on how to fix it, if it has one.
    pub help: Option<String>,
}

impl ConfigDiagnostic {
    /// A problem with no place in the text.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            locations: Vec::new(),
            policy_id: None,
            message: message.into(),
            actions: Vec::new(),
            help: None,
        }
    }
}

impl fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.locations.is_empty() {
            let at: Vec<String> = self.locations.iter().map(ToString::to_string).collect();
            write!(f, "{}: ", at.join(", "))?;
        }
        if let Some(id) = &self.policy_id {
            write!(f, "policy `{id}`: ")?;
        }
        f.write_str(&self.message)?;
        if self.actions.len() > 1 {
            write!(f, " (actions {})", self.actions.join(", "))?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source
        .get(..offset)
        .or_else(|| {
            // Inside a character or past the end: the nearest boundary before.
            let end = (0..=offset.min(source.len()))
                .rev()
                .find(|i| source.is_char_boundary(*i))?;
            source.get(..end)
        })
        .unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let s = "ab\ncdé\nf";
        assert_eq!(line_column(s, 0), (1, 1));
        assert_eq!(line_column(s, 3), (2, 1));
        assert_eq!(line_column(s, 7), (2, 4));
        assert_eq!(line_column(s, 8), (3, 1));
        // Inside `é`, and past the end.
        assert_eq!(line_column(s, 6), (2, 3));
        assert_eq!(line_column(s, 99), (3, 2));
    }

    #[test]
    fn display_is_what_a_filter_logs() {
        let mut d = ConfigDiagnostic::new("unexpected token");
        assert_eq!(d.to_string(), "unexpected token");
        d.locations = vec![SourceLocation::at("a\nbc", 3, 1)];
        d.policy_id = Some("p".into());
        d.actions = vec!["A".into(), "B".into()];
        assert_eq!(
            d.to_string(),
            "2:2: policy `p`: unexpected token (actions A, B)"
        );
    }
}
