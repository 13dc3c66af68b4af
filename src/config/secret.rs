//! `Secret`: a credential that cannot be printed, serialised or logged by accident, and
//! `redacted_url`: a configured URL as it may be shown (credentials and query values hidden).

use std::fmt;

/// A provider or gateway key. It has no `Display` and no `Serialize`, and its `Debug` prints
/// `***`; the only way to the value is [`Secret::expose`], called where a header is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The raw value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` as `ballast check` and config problems may show it: the userinfo (user and password)
/// becomes `***`, every query value becomes `***` (the names stay, they say which parameter is
/// set), and the fragment is dropped. A URL can carry a credential in any of these (`redis://
/// :password@host`, `https://host/v1?key=...`). It is parsed, not split at the first `@`, so a
/// password containing `@` is hidden whole; text that does not parse as a URL is shown as `***`.
pub fn redacted_url(url: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(url) else { return "***".to_owned() };
    url.set_fragment(None);
    if !url.username().is_empty() || url.password().is_some() {
        // Both fail only for URLs that cannot have credentials, which then have none to hide.
        let _ = url.set_password(None);
        let _ = url.set_username("***");
    }
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(name, _)| name.into_owned()).collect();
        url.set_query(None);
        if !names.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for name in &names {
                pairs.append_pair(name, "***");
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_hides_userinfo_query_values_and_fragment_but_keeps_host_and_path() {
        assert_eq!(
            redacted_url("https://user:pass@host/v1?key=abc&v=2#frag"),
            "https://***@host/v1?key=***&v=***"
        );
        assert_eq!(redacted_url("redis://:secret@cache:6379/0"), "redis://***@cache:6379/0");
        assert_eq!(redacted_url("https://api.openai.com/v1"), "https://api.openai.com/v1");
        assert_eq!(redacted_url("not a url p@ss"), "***");
    }

    #[test]
    fn a_password_containing_an_at_sign_is_hidden_whole() {
        let shown = redacted_url("redis://:p@ss@word@cache:6379");
        assert!(!shown.contains("ss") && !shown.contains("word"), "{shown}");
        assert_eq!(shown, "redis://***@cache:6379");
    }

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret::new("sk-very-secret".to_owned());
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "sk-very-secret");
    }
}
