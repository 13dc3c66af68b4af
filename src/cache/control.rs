//! The request's `Cache-Control` directives (SPEC §3): `no-cache` (do not read, do store),
//! `no-store` (neither), `max-age=N` (accept an entry only if younger than N seconds).

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<Duration>,
}

impl Directives {
    /// Reads every `Cache-Control` header; unknown directives are ignored.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        let values = headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok());
        for directive in values.flat_map(|value| value.split(',')) {
            let directive = directive.trim().to_ascii_lowercase();
            match directive.split_once('=') {
                Some(("max-age", seconds)) => {
                    if let Ok(seconds) = seconds.trim().trim_matches('"').parse::<u64>() {
                        directives.max_age = Some(Duration::from_secs(seconds));
                    }
                }
                _ if directive == "no-cache" => directives.no_cache = true,
                _ if directive == "no-store" => directives.no_store = true,
                _ => {}
            }
        }
        directives
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Directives {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, value.parse().unwrap());
        }
        Directives::from_headers(&headers)
    }

    #[test]
    fn reads_the_three_directives_in_any_case_and_header() {
        assert_eq!(parse(&[]), Directives::default());
        assert!(parse(&["No-Cache"]).no_cache);
        assert!(parse(&["private, no-store"]).no_store);
        assert_eq!(parse(&["max-age=60"]).max_age, Some(Duration::from_secs(60)));
        let both = parse(&["no-cache", "max-age=\"5\""]);
        assert!(both.no_cache && both.max_age == Some(Duration::from_secs(5)));
        assert_eq!(parse(&["max-age=soon"]).max_age, None);
    }
}
