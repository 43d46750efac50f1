//! Cedar's errors with their places in the policies or schema text.

use meshward_policy::{ConfigDiagnostic, SourceLocation};
use miette::Diagnostic;

/// `message` about `error`, with the place of each labelled span of `error`
/// in `source` and Cedar's help.
pub(crate) fn located(source: &str, error: &dyn Diagnostic, message: String) -> ConfigDiagnostic {
    let mut locations: Vec<SourceLocation> = error
        .labels()
        .into_iter()
        .flatten()
        .map(|label| SourceLocation::at(source, label.offset(), label.len()))
        .collect();
    locations.dedup_by_key(|l| (l.line, l.column));
    let mut d = ConfigDiagnostic::new(message);
    d.locations = locations;
    d.help = error.help().map(|h| h.to_string());
    d
}
