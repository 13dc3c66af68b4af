//! Values read the same way in every section: durations, sizes, URLs, headers and credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue};
use reqwest::Url;
use yaml_serde::Value;

use crate::config::path::YamlPath;
use crate::config::units::{format_duration, parse_duration, parse_size};
use crate::config::{ConfigProblem, Secret, redacted_url};

/// A duration above zero and at most `max`, `default` when absent or wrong.
pub fn duration(
    path: &YamlPath,
    text: Option<String>,
    default: Duration,
    max: Duration,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    let Some(text) = text else { return default };
    match parse_duration(&text) {
        Ok(d) if d.is_zero() => {
            out.push(path.problem("must be longer than zero"));
            default
        }
        Ok(d) => at_most(path, d, default, max, out),
        Err(message) => {
            out.push(path.problem(message));
            default
        }
    }
}

/// A duration that may be zero and is at most `max`, `default` when absent or wrong.
pub fn duration_or_zero(
    path: &YamlPath,
    text: Option<String>,
    default: Duration,
    max: Duration,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    let Some(text) = text else { return default };
    match parse_duration(&text) {
        Ok(d) => at_most(path, d, default, max, out),
        Err(message) => {
            out.push(path.problem(message));
            default
        }
    }
}

/// `d` when it is at most `max` (`defaults::bounds`), else a problem and `default`.
fn at_most(
    path: &YamlPath,
    d: Duration,
    default: Duration,
    max: Duration,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    if d <= max {
        return d;
    }
    out.push(path.problem(format!("must be at most {}", format_duration(max))));
    default
}

/// A size in bytes above zero, `default` when absent or wrong.
pub fn size(
    path: &YamlPath,
    text: Option<String>,
    default: u64,
    out: &mut Vec<ConfigProblem>,
) -> u64 {
    let Some(text) = text else { return default };
    match parse_size(&text) {
        Ok(0) => {
            out.push(path.problem("must be larger than zero"));
            default
        }
        Ok(bytes) => bytes,
        Err(message) => {
            out.push(path.problem(message));
            default
        }
    }
}

/// A credential that must be there and not be empty.
pub fn required_key(
    path: &YamlPath,
    value: Option<String>,
    out: &mut Vec<ConfigProblem>,
) -> Option<Secret> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) => Some(Secret::new(value)),
        None => {
            out.push(path.problem("required (e.g. `${API_KEY}` to take it from the environment)"));
            None
        }
    }
}

/// A provider's required `http://` or `https://` URL, without a trailing slash.
pub fn base_url(
    path: &YamlPath,
    text: Option<String>,
    out: &mut Vec<ConfigProblem>,
) -> Option<Url> {
    let Some(text) = text else {
        out.push(path.problem("required for this kind (e.g. https://api.openai.com/v1)"));
        return None;
    };
    match Url::parse(text.trim_end_matches('/')) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        Ok(_) => {
            // Shown redacted: the URL may carry a password or a key in its query.
            out.push(
                path.problem(format!(
                    "`{}` is not an http:// or https:// URL",
                    redacted_url(&text)
                )),
            );
            None
        }
        Err(err) => {
            // Not echoed: text that does not parse cannot be redacted reliably.
            out.push(path.problem(format!("not a URL: {err}")));
            None
        }
    }
}

/// Static headers sent upstream, all marked sensitive since they may carry credentials.
pub fn headers(
    path: &YamlPath,
    raw: BTreeMap<String, Value>,
    out: &mut Vec<ConfigProblem>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let header_path = path.key(&name);
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                out.push(header_path.problem("a header value must be text"));
                continue;
            }
        };
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(text)) {
            // The body's framing is ballast's to write, per request: a configured one would
            // contradict the body sent.
            (Ok(name), _) if name == CONTENT_LENGTH || name == TRANSFER_ENCODING => {
                out.push(header_path.problem("framing header: ballast sets it for each request"));
            }
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.push((name, value));
            }
            (Err(_), _) => out.push(header_path.problem("not a valid HTTP header name")),
            (_, Err(_)) => out.push(header_path.problem("not a valid HTTP header value")),
        }
    }
    headers
}
