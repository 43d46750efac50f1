//! Locations for configuration errors: `line:column` in the policies text.

use miette::Diagnostic;

/// `message` prefixed with the `line:column` of each labelled span of
/// `error` in `source`, so an author can go straight to the problem.
pub(crate) fn located(source: &str, error: &dyn Diagnostic, message: String) -> String {
    let mut at: Vec<String> = error
        .labels()
        .into_iter()
        .flatten()
        .map(|label| {
            let (line, column) = line_column(source, label.offset());
            format!("{line}:{column}")
        })
        .collect();
    at.dedup();
    if at.is_empty() {
        message
    } else {
        format!("{}: {message}", at.join(", "))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
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
    }
}
