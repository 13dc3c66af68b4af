//! The `auth` section: the gateway's client keys, what each may use, and its rate limits.

use std::collections::BTreeSet;

use yaml_serde::Value;

use super::values::required_key;
use crate::config::path::YamlPath;
use crate::config::raw::RawAuth;
use crate::config::{AuthConfig, ConfigProblem, GatewayKey, RateLimit};

pub(super) fn auth_config(
    path: &YamlPath,
    value: Value,
    out: &mut Vec<ConfigProblem>,
) -> Option<AuthConfig> {
    let raw = super::read::<RawAuth>(path, value, out)?;
    Some(keys(path, raw, out))
}

fn keys(path: &YamlPath, raw: RawAuth, out: &mut Vec<ConfigProblem>) -> AuthConfig {
    let keys_path = path.key("keys");
    if raw.keys.is_empty() {
        out.push(
            keys_path.problem("at least one key is required (remove `auth` for an open gateway)"),
        );
    }
    let mut names = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (index, key) in raw.keys.into_iter().enumerate() {
        let key_path = keys_path.index(index);
        if key.name.trim().is_empty() {
            out.push(key_path.key("name").problem("must not be empty"));
        } else if !names.insert(key.name.clone()) {
            out.push(
                key_path.key("name").problem(format!("`{}` is used by another key", key.name)),
            );
        }
        let Some(secret) = required_key(&key_path.key("key"), key.key, out) else { continue };
        if secret.expose().len() < 16 {
            out.push(key_path.key("key").problem("must be at least 16 characters long"));
        } else if !secrets.insert(secret.expose().to_owned()) {
            // The message must not help find the value: it names only the other key's position.
            out.push(key_path.key("key").problem("is the same as another key's"));
        }
        for (pattern_index, pattern) in key.models.iter().flatten().enumerate() {
            if pattern.is_empty() || pattern.chars().any(|c| matches!(c, '[' | ']' | '{' | '}')) {
                out.push(
                    key_path
                        .key("models")
                        .index(pattern_index)
                        .problem("a model name or a glob with `*` and `?`"),
                );
            }
        }
        let rate_limit = key.rate_limit.map(|limit| {
            if limit.requests_per_minute == Some(0) || limit.tokens_per_minute == Some(0) {
                out.push(
                    key_path
                        .key("rate_limit")
                        .problem("limits must be at least 1 (omit one for no limit)"),
                );
            }
            RateLimit {
                requests_per_minute: limit.requests_per_minute,
                tokens_per_minute: limit.tokens_per_minute,
            }
        });
        keys.push(GatewayKey { name: key.name, key: secret, models: key.models, rate_limit });
    }
    AuthConfig { keys }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, problems};

    #[test]
    fn gateway_keys_are_checked() {
        let found = problems(&format!(
            "{MINIMAL}auth:\n  keys:\n    - {{ name: a, key: short }}\n    - {{ name: a, key: '0123456789abcdef' }}\n    - {{ name: b, key: '0123456789abcdef', rate_limit: {{ requests_per_minute: 0 }} }}\n    - {{ name: c }}\n"
        ));
        let expect = [
            "auth.keys[0].key: must be at least 16 characters",
            "auth.keys[1].name: `a` is used by another key",
            "auth.keys[2].key: is the same as another key's",
            "auth.keys[2].rate_limit: limits must be at least 1",
            "auth.keys[3].key: required",
        ];
        for prefix in expect {
            assert!(found.iter().any(|p| p.starts_with(prefix)), "{prefix} not in {found:#?}");
        }
        assert!(!found.iter().any(|p| p.contains("0123456789abcdef")), "no problem quotes a key");
    }
}
