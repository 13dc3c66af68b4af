//! Provider entries: `kind` first, then only the keys that kind accepts, into its settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::StatusCode;
use yaml_serde::{Mapping, Value};

use super::resilience;
use super::values::{base_url, duration_or_zero, headers, required_key};
use crate::config::defaults;
use crate::config::keys;
use crate::config::path::YamlPath;
use crate::config::raw::{RawAnthropic, RawAzure, RawMock, RawOpenAi, RawProviderCommon};
use crate::config::{
    AnthropicSettings, AzureSettings, ConfigProblem, MockBadAnswer, MockSettings, OpenAiSettings,
    ProviderConfig, ProviderKind, Secret,
};

/// The key read before all others, since it says which keys the others may be.
const KIND: &str = "kind";

/// The providers of the file.
pub(super) struct Providers {
    /// The valid ones, in file order.
    pub valid: Vec<Arc<ProviderConfig>>,
    /// Every name in the file, valid or not, so that a target naming an invalid provider is not
    /// reported a second time as naming an unknown one.
    pub names: BTreeSet<String>,
}

pub(super) fn providers(
    path: &YamlPath,
    entries: Mapping,
    out: &mut Vec<ConfigProblem>,
) -> Providers {
    let mut valid = Vec::new();
    let mut names = BTreeSet::new();
    for (key, value) in entries {
        let Some(name) = super::mapping_key(path, &key, out) else {
            continue;
        };
        let provider_path = path.key(&name);
        names.insert(name.clone());
        valid.extend(provider_config(&provider_path, name, value, out).map(Arc::new));
    }
    if names.is_empty() {
        out.push(path.problem("at least one provider is required"));
    }
    Providers { valid, names }
}

/// The provider kinds, as `kind:` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Azure,
    Anthropic,
    Mock,
}

impl Kind {
    /// Every kind, in the order messages list them.
    const ALL: [Self; 4] = [Self::OpenAi, Self::Azure, Self::Anthropic, Self::Mock];

    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
            Self::Mock => "mock",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The keys this kind accepts besides `kind` and the shared ones: its raw struct's fields.
    fn own_keys(self) -> &'static [&'static str] {
        match self {
            Self::OpenAi => keys::of::<RawOpenAi>(),
            Self::Azure => keys::of::<RawAzure>(),
            Self::Anthropic => keys::of::<RawAnthropic>(),
            Self::Mock => keys::of::<RawMock>(),
        }
    }

    /// Reads this kind's own keys into its raw struct, then into its settings.
    fn settings(
        self,
        path: &YamlPath,
        own: Mapping,
        out: &mut Vec<ConfigProblem>,
    ) -> Option<ProviderKind> {
        let own = Value::Mapping(own);
        match self {
            Self::OpenAi => openai(path, super::read(path, own, out)?, out),
            Self::Azure => azure(path, super::read(path, own, out)?, out),
            Self::Anthropic => anthropic(path, super::read(path, own, out)?, out),
            Self::Mock => Some(ProviderKind::Mock(mock(path, super::read(path, own, out)?, out))),
        }
    }
}

fn provider_config(
    path: &YamlPath,
    name: String,
    value: Value,
    out: &mut Vec<ConfigProblem>,
) -> Option<ProviderConfig> {
    let entry: Mapping = super::read(path, value, out)?;
    let kind = kind_of(path, &entry, out);
    let (shared, own) = split(path, kind, entry, out);
    // Both parts are read even when the other one, or the kind, is wrong, so that the problems
    // of all three are reported together.
    let shared = super::read::<RawProviderCommon>(path, Value::Mapping(shared), out)
        .map(|raw| resilience::shared(path, raw, out));
    let kind = kind.and_then(|kind| kind.settings(path, own, out));
    let shared = shared?;
    Some(ProviderConfig {
        name,
        kind: kind?,
        timeouts: shared.timeouts,
        retry: shared.retry,
        breaker: shared.breaker,
        max_concurrency: shared.max_concurrency,
    })
}

/// The entry's `kind`, or its problem at `kind`'s path.
fn kind_of(path: &YamlPath, entry: &Mapping, out: &mut Vec<ConfigProblem>) -> Option<Kind> {
    let kind_path = path.key(KIND);
    let every_kind = list(Kind::ALL.map(|kind| kind.name().to_owned()), "or");
    let Some(value) = entry.get(KIND) else {
        out.push(kind_path.problem(format!("required: {every_kind}")));
        return None;
    };
    let name: String = super::read(&kind_path, value.clone(), out)?;
    let kind = Kind::named(&name);
    if kind.is_none() {
        out.push(
            kind_path.problem(format!("unknown provider kind `{name}` (expected {every_kind})")),
        );
    }
    kind
}

/// Splits an entry's keys into the shared ones and the kind's own ones, and refuses every other
/// key with its path. Each key is refused on its own, so a file lists all of them at once.
///
/// Without a known kind only the keys no kind has are refused: the kind is what is wrong then.
fn split(
    path: &YamlPath,
    kind: Option<Kind>,
    entry: Mapping,
    out: &mut Vec<ConfigProblem>,
) -> (Mapping, Mapping) {
    let shared_keys = keys::of::<RawProviderCommon>();
    let mut shared = Mapping::new();
    let mut own = Mapping::new();
    for (key, value) in entry {
        let Some(name) = key.as_str().map(str::to_owned) else {
            out.push(path.problem(format!("keys must be text, found {key:?}")));
            continue;
        };
        if name == KIND {
            // Read already, by `kind_of`.
            continue;
        }
        if shared_keys.contains(&name.as_str()) {
            shared.insert(key, value);
        } else if accepts(kind, &name) {
            own.insert(key, value);
        } else {
            out.push(path.key(&name).problem(refusal(kind, &name)));
        }
    }
    (shared, own)
}

/// Whether `key` is one of the kind's own keys or, with no known kind, of any kind's.
fn accepts(kind: Option<Kind>, key: &str) -> bool {
    match kind {
        Some(kind) => kind.own_keys().contains(&key),
        None => !owners(key).is_empty(),
    }
}

/// The kinds that have `key` among their own keys.
fn owners(key: &str) -> Vec<Kind> {
    Kind::ALL.into_iter().filter(|kind| kind.own_keys().contains(&key)).collect()
}

/// Why `key` is refused on a provider of `kind`: it belongs to other kinds, or to none.
fn refusal(kind: Option<Kind>, key: &str) -> String {
    let owners = owners(key);
    match kind {
        Some(kind) if !owners.is_empty() => format!(
            "not a setting of kind `{}`, only of {}",
            kind.name(),
            list(owners.iter().map(|owner| format!("`{}`", owner.name())), "and")
        ),
        Some(kind) => {
            let accepted =
                [KIND].iter().chain(keys::of::<RawProviderCommon>()).chain(kind.own_keys());
            format!(
                "unknown field `{key}` (kind `{}` accepts {})",
                kind.name(),
                list(accepted.map(|key| format!("`{key}`")), "and")
            )
        }
        None => format!("unknown field `{key}`: no provider kind has it"),
    }
}

/// `a`, `a or b`, `a, b or c`.
fn list(items: impl IntoIterator<Item = String>, conjunction: &str) -> String {
    let mut items: Vec<String> = items.into_iter().collect();
    match items.pop() {
        None => String::new(),
        Some(last) if items.is_empty() => last,
        Some(last) => format!("{} {conjunction} {last}", items.join(", ")),
    }
}

fn openai(path: &YamlPath, raw: RawOpenAi, out: &mut Vec<ConfigProblem>) -> Option<ProviderKind> {
    let base_url = base_url(&path.key("base_url"), raw.base_url, out);
    let headers = headers(&path.key("headers"), raw.headers, out);
    let base_url = base_url?;
    let is_openai = base_url.host_str() == Some("api.openai.com");
    Some(ProviderKind::OpenAi(OpenAiSettings {
        native_responses: raw.native_responses.unwrap_or(is_openai),
        base_url,
        // The key is optional here, and an empty one (`${KEY:-}` with KEY unset) is no key.
        api_key: raw.api_key.filter(|key| !key.is_empty()).map(Secret::new),
        headers,
    }))
}

fn azure(path: &YamlPath, raw: RawAzure, out: &mut Vec<ConfigProblem>) -> Option<ProviderKind> {
    let base_url = base_url(&path.key("base_url"), raw.base_url, out);
    let api_key = required_key(&path.key("api_key"), raw.api_key, out);
    let headers = headers(&path.key("headers"), raw.headers, out);
    Some(ProviderKind::Azure(AzureSettings {
        base_url: base_url?,
        api_key: api_key?,
        api_version: raw.api_version.unwrap_or_else(|| defaults::azure::API_VERSION.to_owned()),
        headers,
    }))
}

fn anthropic(
    path: &YamlPath,
    raw: RawAnthropic,
    out: &mut Vec<ConfigProblem>,
) -> Option<ProviderKind> {
    let base_url = base_url(&path.key("base_url"), raw.base_url, out);
    let api_key = required_key(&path.key("api_key"), raw.api_key, out);
    let headers = headers(&path.key("headers"), raw.headers, out);
    if raw.default_max_tokens == Some(0) {
        out.push(path.key("default_max_tokens").problem("must be at least 1"));
    }
    Some(ProviderKind::Anthropic(AnthropicSettings {
        base_url: base_url?,
        api_key: api_key?,
        headers,
        default_max_tokens: raw
            .default_max_tokens
            .unwrap_or(defaults::anthropic::DEFAULT_MAX_TOKENS)
            .max(1),
    }))
}

fn mock(path: &YamlPath, raw: RawMock, out: &mut Vec<ConfigProblem>) -> MockSettings {
    let failure_rate = raw.failure_rate.unwrap_or(defaults::mock::FAILURE_RATE);
    if !(0.0..=1.0).contains(&failure_rate) {
        out.push(path.key("failure_rate").problem("must be between 0.0 and 1.0"));
    }
    let failure_status = match raw.failure_status.map(StatusCode::from_u16) {
        None => defaults::mock::FAILURE_STATUS,
        Some(Ok(code)) if code.is_client_error() || code.is_server_error() => code,
        Some(_) => {
            out.push(path.key("failure_status").problem("must be an HTTP error status (400-599)"));
            defaults::mock::FAILURE_STATUS
        }
    };
    MockSettings {
        latency: duration_or_zero(
            &path.key("latency"),
            raw.latency,
            defaults::mock::LATENCY,
            defaults::bounds::MAX_TIMEOUT,
            out,
        ),
        chunk_interval: duration_or_zero(
            &path.key("chunk_interval"),
            raw.chunk_interval,
            defaults::mock::CHUNK_INTERVAL,
            defaults::bounds::MAX_TIMEOUT,
            out,
        ),
        failure_rate,
        failure_status,
        bad_answer: mock_bad_answer(path, raw.bad_answer.as_deref(), raw.bad_answer_rate, out),
        context_limit: match raw.context_limit {
            Some(0) => {
                out.push(path.key("context_limit").problem("must be at least 1 token"));
                None
            }
            limit => limit,
        },
    }
}

/// `bad_answer` and its `bad_answer_rate`, which means nothing without it.
fn mock_bad_answer(
    path: &YamlPath,
    kind: Option<&str>,
    rate: Option<f64>,
    out: &mut Vec<ConfigProblem>,
) -> Option<(MockBadAnswer, f64)> {
    let rate_value = rate.unwrap_or(defaults::mock::BAD_ANSWER_RATE);
    if !(0.0..=1.0).contains(&rate_value) {
        out.push(path.key("bad_answer_rate").problem("must be between 0.0 and 1.0"));
    }
    let kind = match kind {
        None => {
            if rate.is_some() {
                out.push(path.key("bad_answer_rate").problem("only used with `bad_answer`"));
            }
            return None;
        }
        Some("empty") => MockBadAnswer::Empty,
        Some("invalid_json") => MockBadAnswer::InvalidJson,
        Some("refusal") => MockBadAnswer::Refusal,
        Some(other) => {
            out.push(path.key("bad_answer").problem(format!(
                "unknown bad answer `{other}` (expected empty, invalid_json or refusal)"
            )));
            return None;
        }
    };
    Some((kind, rate_value))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{config, problems};
    use super::*;

    /// A valid entry of `kind` in flow style, left open so a test can add keys and close it.
    fn open_entry(kind: Kind) -> &'static str {
        match kind {
            Kind::OpenAi => "{ kind: openai, base_url: 'http://127.0.0.1:9/v1'",
            Kind::Azure => "{ kind: azure, base_url: 'https://r.openai.azure.com', api_key: k",
            Kind::Anthropic => {
                "{ kind: anthropic, base_url: 'https://api.anthropic.com', api_key: k"
            }
            Kind::Mock => "{ kind: mock",
        }
    }

    /// A file whose first provider `p` is `entry`. The model has a second target on a valid
    /// provider, so that it stays valid and only `p`'s problems are reported.
    fn file(entry: &str) -> String {
        format!(
            "providers:\n  p: {entry}\n  spare: {{ kind: mock }}\nmodels:\n  m:\n    targets:\n      \
             - {{ provider: p, model: x }}\n      - {{ provider: spare, model: y }}\n"
        )
    }

    #[test]
    fn refuses_an_azure_key_on_an_openai_provider() {
        let found = problems(&file(
            "{ kind: openai, base_url: 'http://127.0.0.1:9/v1', api_version: '2024-10-21' }",
        ));
        assert_eq!(
            found,
            ["providers.p.api_version: not a setting of kind `openai`, only of `azure`"]
        );
    }

    #[test]
    fn refuses_an_http_key_on_a_mock_provider_naming_the_kinds_that_have_it() {
        let found = problems(&file("{ kind: mock, base_url: 'http://127.0.0.1:9/v1' }"));
        assert_eq!(
            found,
            [
                "providers.p.base_url: not a setting of kind `mock`, only of `openai`, `azure` and `anthropic`"
            ]
        );
    }

    #[test]
    fn refuses_an_unknown_key_on_every_kind() {
        for kind in Kind::ALL {
            let found = problems(&file(&format!("{}, colour: red }}", open_entry(kind))));
            let expected = format!(
                "providers.p.colour: unknown field `colour` (kind `{}` accepts `kind`, `timeouts`",
                kind.name()
            );
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(found[0].starts_with(&expected), "{expected} not in {found:#?}");
        }
    }

    #[test]
    fn refuses_each_key_of_another_kind_on_every_kind_and_reports_them_all() {
        for kind in Kind::ALL {
            let foreign: BTreeSet<&str> = Kind::ALL
                .into_iter()
                .flat_map(Kind::own_keys)
                .copied()
                .filter(|key| !kind.own_keys().contains(key))
                .collect();
            assert!(!foreign.is_empty(), "every kind lacks some key of another");
            let extra: String = foreign.iter().map(|key| format!(", {key}: 1")).collect();
            let found = problems(&file(&format!("{}{extra} }}", open_entry(kind))));
            let expected: Vec<String> = foreign
                .iter()
                .map(|key| {
                    format!("providers.p.{key}: not a setting of kind `{}`, only of", kind.name())
                })
                .collect();
            assert_eq!(found.len(), expected.len(), "{found:#?}");
            for prefix in expected {
                assert!(found.iter().any(|p| p.starts_with(&prefix)), "{prefix} not in {found:#?}");
            }
        }
    }

    #[test]
    fn accepts_every_key_of_each_kind() {
        let config = config(
            "
providers:
  open:
    kind: openai
    base_url: https://api.openai.com/v1
    api_key: sk-1
    headers: { OpenAI-Project: p }
    timeouts: { connect: 1s, first_byte: 2s, idle: 3s, total: 4s }
    retry: { max_retries: 1, base_delay: 10ms, max_delay: 1s }
    circuit_breaker: { consecutive_failures: 3, open_for: 5s }
    max_concurrency: 8
  az: { kind: azure, base_url: 'https://r.openai.azure.com', api_key: k, api_version: '2025-01-01', headers: { x-a: b } }
  claude: { kind: anthropic, base_url: 'https://api.anthropic.com', api_key: k, headers: { anthropic-beta: b }, default_max_tokens: 100 }
  demo: { kind: mock, latency: 5ms, chunk_interval: 1ms, failure_rate: 0.5, failure_status: 500 }
models:
  m: { targets: [{ provider: open, model: x }] }
",
        );
        let open = &config.providers[0];
        assert_eq!(open.max_concurrency, Some(8));
        assert_eq!(open.timeouts.idle, Duration::from_secs(3));
        assert_eq!(open.retry.max_retries, 1);
        assert_eq!(open.breaker.consecutive_failures, 3);
        let ProviderKind::Azure(azure) = &config.providers[1].kind else { panic!("azure") };
        assert_eq!(azure.api_version, "2025-01-01");
        let ProviderKind::Anthropic(anthropic) = &config.providers[2].kind else {
            panic!("anthropic")
        };
        assert_eq!(anthropic.default_max_tokens, 100);
        let ProviderKind::Mock(mock) = &config.providers[3].kind else { panic!("mock") };
        assert_eq!(mock.failure_status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The key lists come from the structs; this fails if a struct stops denying unknown keys,
    /// since the split would then be the only guard left.
    #[test]
    fn every_raw_provider_struct_refuses_a_key_it_does_not_declare() {
        fn refuses<T: serde::de::DeserializeOwned>() -> bool {
            yaml_serde::from_str::<T>("not_a_key: 1")
                .is_err_and(|err| err.to_string().contains("unknown field `not_a_key`"))
        }
        assert!(refuses::<RawProviderCommon>());
        assert!(refuses::<RawOpenAi>());
        assert!(refuses::<RawAzure>());
        assert!(refuses::<RawAnthropic>());
        assert!(refuses::<RawMock>());
    }

    #[test]
    fn the_shared_keys_and_each_kinds_own_keys_are_apart() {
        let shared = keys::of::<RawProviderCommon>();
        assert_eq!(shared, ["timeouts", "retry", "circuit_breaker", "max_concurrency"]);
        for kind in Kind::ALL {
            let own = kind.own_keys();
            assert!(!own.is_empty(), "{kind:?} has its own keys");
            assert!(!own.contains(&KIND), "{kind:?} does not declare `kind`");
            assert!(own.iter().all(|key| !shared.contains(key)), "{kind:?} repeats a shared key");
        }
    }

    #[test]
    fn each_kind_is_named_as_the_runtime_kind_names_itself() {
        for kind in Kind::ALL {
            let config = config(&file(&format!("{} }}", open_entry(kind))));
            assert_eq!(config.providers[0].kind.name(), kind.name());
            assert_eq!(Kind::named(kind.name()), Some(kind));
        }
    }

    #[test]
    fn a_provider_without_a_kind_is_refused_at_the_kind_path() {
        let found = problems(&file("{ base_url: 'http://127.0.0.1:9/v1' }"));
        assert_eq!(found, ["providers.p.kind: required: openai, azure, anthropic or mock"]);
    }

    #[test]
    fn an_unknown_kind_still_reports_keys_no_kind_has_and_its_shared_settings() {
        let found = problems(&file(
            "{ kind: pigeon, latency: 1s, colour: red, circuit_breaker: { consecutive_failures: 0 } }",
        ));
        assert_eq!(
            found,
            [
                "providers.p.kind: unknown provider kind `pigeon` (expected openai, azure, anthropic or mock)",
                "providers.p.colour: unknown field `colour`: no provider kind has it",
                "providers.p.circuit_breaker.consecutive_failures: must be at least 1",
            ]
        );
    }

    #[test]
    fn a_configured_framing_header_is_refused() {
        let found = problems(&file(
            "{ kind: openai, base_url: 'http://llm.internal/v1', api_key: k, headers: { Content-Length: 5, transfer-encoding: chunked, x-ok: y } }",
        ));
        assert_eq!(
            found,
            [
                "providers.p.headers.Content-Length: framing header: ballast sets it for each request",
                "providers.p.headers.transfer-encoding: framing header: ballast sets it for each request",
            ]
        );
    }

    #[test]
    fn every_problem_of_one_provider_is_reported_together() {
        let found = problems(&file(
            "{ kind: azure, headers: { 'bad header': x }, timeouts: { conect: 1s }, latency: 1s }",
        ));
        let expect = [
            "providers.p.latency: not a setting of kind `azure`, only of `mock`",
            "providers.p.timeouts",
            "providers.p.base_url: required",
            "providers.p.api_key: required",
            "providers.p.headers.bad header: not a valid HTTP header name",
        ];
        for prefix in expect {
            assert!(found.iter().any(|p| p.starts_with(prefix)), "{prefix} not in {found:#?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }
}
