use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a configuration template could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template names a placeholder no value was given for.
    #[error("no value for placeholder `{{{{{0}}}}}`")]
    Missing(String),
    /// A value was given for a placeholder the template does not have:
    /// usually a misspelling on one side.
    #[error("the template has no placeholder `{{{{{0}}}}}`")]
    Unused(String),
    /// A `{{` with no closing `}}`.
    #[error("unterminated placeholder")]
    Unterminated,
}

/// An Envoy configuration with `{{NAME}}` placeholders.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
}

impl Template {
    /// Reads a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        std::fs::read_to_string(path)
            .map(|text| Self { text })
            .map_err(|source| TemplateError::Read {
                path: path.to_owned(),
                source,
            })
    }

    /// A template from text.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// The placeholders the template uses, sorted, without duplicates.
    pub fn placeholders(&self) -> Result<Vec<String>, TemplateError> {
        let mut names = Vec::new();
        self.walk(|name| {
            names.push(name.to_owned());
            Ok(String::new())
        })?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Substitutes every placeholder. Values are inserted verbatim: quote
    /// them for YAML first where needed (see [`yaml_quote`]).
    pub fn render(&self, values: &BTreeMap<&str, String>) -> Result<String, TemplateError> {
        let used = self.placeholders()?;
        for name in values.keys() {
            if !used.iter().any(|u| u == name) {
                return Err(TemplateError::Unused((*name).to_owned()));
            }
        }
        self.walk(|name| {
            values
                .get(name)
                .cloned()
                .ok_or_else(|| TemplateError::Missing(name.to_owned()))
        })
    }

    fn walk(
        &self,
        mut value: impl FnMut(&str) -> Result<String, TemplateError>,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find("{{") {
            let (before, after) = rest.split_at(start);
            out.push_str(before);
            let after = after.get(2..).unwrap_or_default();
            let end = after.find("}}").ok_or(TemplateError::Unterminated)?;
            let (name, tail) = after.split_at(end);
            out.push_str(&value(name.trim())?);
            rest = tail.get(2..).unwrap_or_default();
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `text` as a double-quoted YAML scalar (JSON string syntax is valid YAML).
pub fn yaml_quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_checks_names() {
        let t = Template::from_text("a: {{X}}\nb: {{ Y }}\nc: {{X}}\n");
        assert_eq!(t.placeholders().unwrap(), ["X", "Y"]);
        let mut v = BTreeMap::new();
        v.insert("X", "1".to_owned());
        assert!(matches!(t.render(&v), Err(TemplateError::Missing(n)) if n == "Y"));
        v.insert("Y", "2".to_owned());
        assert_eq!(t.render(&v).unwrap(), "a: 1\nb: 2\nc: 1\n");
        v.insert("Z", "3".to_owned());
        assert!(matches!(t.render(&v), Err(TemplateError::Unused(n)) if n == "Z"));
        assert!(matches!(
            Template::from_text("a: {{X").placeholders(),
            Err(TemplateError::Unterminated)
        ));
    }

    #[test]
    fn quotes_for_yaml() {
        assert_eq!(yaml_quote(r#"{"a": "b\c"}"#), r#""{\"a\": \"b\\c\"}""#);
    }
}
