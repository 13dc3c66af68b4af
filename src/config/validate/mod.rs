//! Raw → validated `Config`: reads the file's sections one by one and collects every problem.
//!
//! Each section is checked by its own module, and every check pushes a [`ConfigProblem`] with its
//! YAML path and carries on with a default, so `ballast check` lists all problems at once.

mod auth;
mod cache;
mod models;
mod pricing;
mod providers;
mod resilience;
mod server;
mod telemetry;
mod values;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use super::path::YamlPath;
use super::raw::RawTop;
use super::{Config, ConfigProblem, Lookup, env};

pub(super) fn from_yaml(text: &str, lookup: Lookup<'_>) -> Result<Config, Vec<ConfigProblem>> {
    let root = YamlPath::root();
    let mut problems = Vec::new();
    let mut tree: Value = yaml_serde::from_str(text)
        .map_err(|err| vec![root.problem(format!("the file is not valid YAML: {err}"))])?;
    if tree.is_null() {
        return Err(vec![root.problem("the file is empty")]);
    }
    env::expand_tree(&mut tree, lookup, &mut problems);
    let top: RawTop = read(&root, tree, &mut problems).ok_or_else(|| problems.clone())?;

    let auth =
        top.auth.and_then(|value| auth::auth_config(&root.key("auth"), value, &mut problems));
    let cache = cache::cache_config(&root.key("cache"), top.cache, &mut problems);
    let server = server::server_config(&root.key("server"), top.server, &mut problems);
    let providers = providers::providers(
        &root.key("providers"),
        top.providers.unwrap_or_default(),
        &mut problems,
    );
    let models = models::models(
        &root.key("models"),
        top.models.unwrap_or_default(),
        &providers,
        &mut problems,
    );
    let pricing =
        pricing::pricing(&root.key("pricing"), top.pricing.unwrap_or_default(), &mut problems);
    let telemetry =
        telemetry::telemetry_config(&root.key("telemetry"), top.telemetry, &mut problems);

    if problems.is_empty() {
        Ok(Config { server, providers: providers.valid, models, pricing, cache, auth, telemetry })
    } else {
        Err(problems)
    }
}

/// Deserializes `value` into `T`, or records serde's problem at its path below `path`.
fn read<T: DeserializeOwned>(
    path: &YamlPath,
    value: Value,
    out: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            let inner = err.path().to_string();
            out.push(path.join(&inner).problem(err.into_inner().to_string()));
            None
        }
    }
}

/// A section that may be absent: its raw struct with every key absent then, and also when the
/// section cannot be read (its problem is recorded, and the defaults keep the check going).
fn section<T: DeserializeOwned + Default>(
    path: &YamlPath,
    value: Option<Value>,
    out: &mut Vec<ConfigProblem>,
) -> T {
    value.and_then(|value| read(path, value, out)).unwrap_or_default()
}

/// The name of a provider or a model: a mapping key that is non-empty text.
fn mapping_key(path: &YamlPath, key: &Value, out: &mut Vec<ConfigProblem>) -> Option<String> {
    match key.as_str() {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => {
            out.push(path.problem(format!("names must be non-empty text, found {key:?}")));
            None
        }
    }
}
