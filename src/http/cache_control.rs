//! The request's `Cache-Control` directives (SPEC §3), read at the edge into the pipeline's
//! `CachePolicy`: `no-cache` (do not read, do store), `no-store` (neither), `max-age=N` (accept
//! an entry only if younger than N seconds).

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

use crate::pipeline::CachePolicy;

/// Reads every `Cache-Control` header; unknown directives are ignored.
pub fn policy(headers: &HeaderMap) -> CachePolicy {
    let mut policy = CachePolicy::default();
    let values = headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok());
    for directive in values.flat_map(|value| value.split(',')) {
        let directive = directive.trim().to_ascii_lowercase();
        match directive.split_once('=') {
            Some(("max-age", seconds)) => {
                if let Ok(seconds) = seconds.trim().trim_matches('"').parse::<u64>() {
                    policy.max_age = Some(Duration::from_secs(seconds));
                }
            }
            _ if directive == "no-cache" => policy.no_cache = true,
            _ if directive == "no-store" => policy.no_store = true,
            _ => {}
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> CachePolicy {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, value.parse().unwrap());
        }
        policy(&headers)
    }

    #[test]
    fn reads_the_three_directives_in_any_case_and_header() {
        assert_eq!(parse(&[]), CachePolicy::default());
        assert!(parse(&["No-Cache"]).no_cache);
        assert!(parse(&["private, no-store"]).no_store);
        assert_eq!(parse(&["max-age=60"]).max_age, Some(Duration::from_secs(60)));
        let both = parse(&["no-cache", "max-age=\"5\""]);
        assert!(both.no_cache && both.max_age == Some(Duration::from_secs(5)));
        assert_eq!(parse(&["max-age=soon"]).max_age, None);
    }
}
