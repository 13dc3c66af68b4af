//! YAML paths (`providers.openai.timeouts.connect`) for naming where a problem is.

use std::fmt;

use super::ConfigProblem;

/// A dotted path into the config file; `[n]` for sequence items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YamlPath(String);

impl YamlPath {
    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() { Self(key.to_owned()) } else { Self(format!("{}.{key}", self.0)) }
    }

    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// Appends a path reported relative to this one (by `serde_path_to_error`).
    pub fn join(&self, relative: &str) -> Self {
        match (self.0.is_empty(), relative.is_empty() || relative == ".") {
            (_, true) => self.clone(),
            (true, false) => Self(relative.to_owned()),
            (false, false) if relative.starts_with('[') => Self(format!("{}{relative}", self.0)),
            (false, false) => Self(format!("{}.{relative}", self.0)),
        }
    }

    pub fn problem(&self, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem { path: self.0.clone(), message: message.into() }
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(top level)" } else { &self.0 })
    }
}
