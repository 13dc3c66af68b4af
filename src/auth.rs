//! Gateway keys: who is calling, and whether they may use a model.
//!
//! A client presents its key as `Authorization: Bearer <key>` (OpenAI SDKs), `api-key` (Azure
//! SDKs) or `x-api-key` (Anthropic-style clients). Keys are compared as BLAKE3 hashes, whose
//! equality is constant-time, against every configured key without stopping at a match, so the
//! time taken says nothing about how close a guess was or which key matched. Only the key's
//! name is ever logged, labelled or used as a cache space.

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::{AuthConfig, RateLimit};

pub struct Auth {
    keys: Vec<Key>,
}

struct Key {
    hash: blake3::Hash,
    caller: Caller,
}

/// An authenticated client.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: Arc<str>,
    /// Glob patterns of the models it may use; none means all.
    models: Option<Arc<[String]>>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
}

impl Auth {
    pub fn from_config(config: &AuthConfig) -> Self {
        let keys = config
            .keys
            .iter()
            .map(|key| Key {
                hash: blake3::hash(key.key.expose().as_bytes()),
                caller: Caller {
                    name: Arc::from(key.name.as_str()),
                    models: key.models.clone().map(Arc::from),
                    rate_limit: key.rate_limit,
                },
            })
            .collect();
        Self { keys }
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
        let presented = presented_key(headers).ok_or(AuthFailure::Missing)?;
        let hash = blake3::hash(presented.as_bytes());
        let mut found = None;
        for key in &self.keys {
            // `blake3::Hash` compares in constant time; every key is compared.
            if key.hash == hash {
                found = Some(&key.caller);
            }
        }
        found.cloned().ok_or(AuthFailure::Invalid)
    }

    /// The caller of the key named `name` (for `ballast warm --key-name`).
    pub fn caller(&self, name: &str) -> Option<&Caller> {
        self.keys.iter().map(|key| &key.caller).find(|caller| &*caller.name == name)
    }
}

impl Caller {
    /// A caller with no allow-list, for unit tests elsewhere.
    #[cfg(test)]
    pub fn for_tests(name: &str, rate_limit: Option<RateLimit>) -> Self {
        Self { name: Arc::from(name), models: None, rate_limit }
    }

    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|patterns| patterns.iter().any(|p| glob_matches(p, model)))
    }
}

/// The key from `Authorization: Bearer`, else `api-key`, else `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// `*` matches any run of characters, `?` any one; everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GatewayKey, Secret};

    fn auth() -> Auth {
        let key = |name: &str, secret: &str, models: Option<Vec<&str>>| GatewayKey {
            name: name.to_owned(),
            key: Secret::new(secret.to_owned()),
            models: models.map(|m| m.into_iter().map(str::to_owned).collect()),
            rate_limit: None,
        };
        Auth::from_config(&AuthConfig {
            keys: vec![
                key("team-a", "key-a-0123456789", Some(vec!["gpt-4o-mini", "fast-*"])),
                key("team-b", "key-b-0123456789", None),
            ],
        })
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn finds_the_caller_from_any_supported_header() {
        let auth = auth();
        assert_eq!(
            &*auth.authenticate(&headers("authorization", "Bearer key-a-0123456789")).unwrap().name,
            "team-a"
        );
        assert_eq!(
            &*auth
                .authenticate(&headers("authorization", "bearer  key-b-0123456789 "))
                .unwrap()
                .name,
            "team-b"
        );
        assert_eq!(
            &*auth.authenticate(&headers("api-key", "key-b-0123456789")).unwrap().name,
            "team-b"
        );
        assert_eq!(
            &*auth.authenticate(&headers("x-api-key", "key-a-0123456789")).unwrap().name,
            "team-a"
        );
        assert_eq!(auth.authenticate(&HeaderMap::new()).unwrap_err(), AuthFailure::Missing);
        assert_eq!(
            auth.authenticate(&headers("authorization", "Basic a2V5")).unwrap_err(),
            AuthFailure::Missing
        );
        assert_eq!(
            auth.authenticate(&headers("authorization", "Bearer key-a-012345678")).unwrap_err(),
            AuthFailure::Invalid
        );
    }

    #[test]
    fn the_allow_list_takes_globs() {
        let caller = auth().authenticate(&headers("x-api-key", "key-a-0123456789")).unwrap();
        assert!(caller.may_use("gpt-4o-mini"));
        assert!(caller.may_use("fast-chat"));
        assert!(!caller.may_use("gpt-4o"));
        let everything = auth().authenticate(&headers("x-api-key", "key-b-0123456789")).unwrap();
        assert!(everything.may_use("anything"));
    }

    #[test]
    fn globs_match_like_shell_patterns() {
        for (pattern, text, matches) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-4o-mini", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("**x", "abx", true),
        ] {
            assert_eq!(glob_matches(pattern, text), matches, "{pattern} ~ {text}");
        }
    }
}
