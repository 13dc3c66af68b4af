//! `${VAR}` and `${VAR:-default}` expansion in every string of the YAML tree.
//!
//! Expansion runs on the parsed tree rather than on the file's text, so a value can never break
//! the YAML around it and every missing variable is reported with the path of the value that
//! names it. A string that is exactly one reference (`failure_rate: ${RATE:-0.1}`) takes the type
//! its expansion reads as in YAML (a number, a bool), so numbers can come from the environment.
//! `$${` writes a literal `${`.

use yaml_serde::Value;

use super::ConfigProblem;
use super::path::YamlPath;

/// Looks a variable up; the process environment in production, a table in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, the only lookup used outside tests.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Expands every string in `value`, collecting one problem per missing variable.
pub fn expand_tree(value: &mut Value, lookup: Lookup<'_>, problems: &mut Vec<ConfigProblem>) {
    expand_at(value, lookup, &YamlPath::root(), problems);
}

fn expand_at(value: &mut Value, lookup: Lookup<'_>, path: &YamlPath, out: &mut Vec<ConfigProblem>) {
    match value {
        Value::String(text) if text.contains('$') => match expand_str(text, lookup) {
            Ok(expanded) => {
                let whole_reference = text.starts_with("${")
                    && text.ends_with('}')
                    && text.matches("${").count() == 1;
                *value = if whole_reference { retype(expanded) } else { Value::String(expanded) };
            }
            Err(message) => out.push(path.problem(message)),
        },
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
                expand_at(child, lookup, &path.key(&key), out);
            }
        }
        Value::Sequence(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                expand_at(child, lookup, &path.index(index), out);
            }
        }
        Value::Tagged(tagged) => expand_at(&mut tagged.value, lookup, path, out),
        _ => {}
    }
}

/// Replaces each reference in `text`; the error names the first variable that is missing.
pub fn expand_str(text: &str, lookup: Lookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix("${") {
            let end = reference.find('}').ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let (name, default) = match reference[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&reference[..end], None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{}}}` is not a valid variable reference",
                    &reference[..end]
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(found), _) => out.push_str(&found),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write ${{{name}:-default}} for a fallback)"
                    ));
                }
            }
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn retype(expanded: String) -> Value {
    match yaml_serde::from_str::<Value>(&expanded) {
        Ok(scalar @ (Value::Number(_) | Value::Bool(_))) => scalar,
        _ => Value::String(expanded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".to_owned()),
            "RATE" => Some("0.25".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_references_and_defaults() {
        assert_eq!(expand_str("Bearer ${KEY}", &env).unwrap(), "Bearer sk-123");
        assert_eq!(expand_str("${MISSING:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand_str("${EMPTY:-used}", &env).unwrap(), "used");
        assert_eq!(expand_str("a${KEY}b${MISSING:-}c", &env).unwrap(), "ask-123bc");
        assert_eq!(expand_str("cost $5 and $${literal}", &env).unwrap(), "cost $5 and ${literal}");
    }

    #[test]
    fn a_missing_variable_without_default_is_named() {
        let err = expand_str("${NOPE}", &env).unwrap_err();
        assert!(err.contains("`NOPE`"), "{err}");
        assert!(expand_str("${unclosed", &env).is_err());
        assert!(expand_str("${bad name}", &env).is_err());
    }

    #[test]
    fn whole_references_take_their_yaml_type_and_problems_carry_paths() {
        let mut tree: Value = yaml_serde::from_str(
            "a: ${RATE}\nb: x${RATE}\nc:\n  - ${NOPE}\nd: {e: '${ALSO_NOPE}'}\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        expand_tree(&mut tree, &env, &mut problems);
        assert_eq!(tree["a"].as_f64(), Some(0.25));
        assert_eq!(tree["b"].as_str(), Some("x0.25"));
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["c[0]", "d.e"]);
    }
}
