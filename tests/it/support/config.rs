//! YAML configs for the gateway in front of fake upstreams: one target, two, of each kind.

use super::{FakeUpstream, UPSTREAM_KEY};

/// The cache line of the harness configs: off, so that repeated identical requests all reach
/// the upstream. Cache tests replace it.
pub const NO_CACHE: &str = "cache: { backend: none }";

/// A config with model `chat` → provider `up` (kind openai) at `base_url`; `extra` is appended
/// to the provider's flow mapping (e.g. `timeouts: { total: 200ms }`). Unless `extra` sets its
/// own `retry`, the provider makes one attempt, so a scripted failure is what the client sees.
pub fn openai_config(base_url: &str, extra: &str) -> String {
    let retry = if extra.contains("retry:") { "" } else { ", retry: { max_retries: 0 }" };
    let extra = if extra.is_empty() { retry.to_owned() } else { format!(", {extra}{retry}") };
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
providers:
  up: {{ kind: openai, base_url: '{base_url}', api_key: {UPSTREAM_KEY}{extra} }}
models:
  chat:
    targets: [ {{ provider: up, model: upstream-model }} ]
"
    )
}

/// Model `chat` → targets `primary` then `backup` (both kind openai). `primary_extra` is added
/// to the primary's settings (one attempt unless it sets `retry`), `model_extra` to the model's.
pub fn two_targets_config(
    primary: &FakeUpstream,
    backup: &FakeUpstream,
    primary_extra: &str,
    model_extra: &str,
) -> String {
    let retry = if primary_extra.contains("retry:") { "" } else { "retry: { max_retries: 0 }, " };
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
providers:
  primary: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, {retry}{primary_extra} }}
  backup: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 0 }} }}
models:
  chat:
    {model_extra}
    targets: [ {{ provider: primary, model: primary-model }}, {{ provider: backup, model: backup-model }} ]
",
        primary.base_url(),
        backup.base_url()
    )
}

/// Model `chat` → provider `claude` (kind anthropic) at `upstream`, upstream model
/// `claude-test`; `extra` is added to the provider (one attempt unless it sets `retry`).
pub fn anthropic_config(upstream: &FakeUpstream, extra: &str) -> String {
    single_target_config("claude", "anthropic", upstream, "claude-test", extra)
}

/// Model `chat` → provider `azure` (kind azure) at `upstream`, deployment `gpt4o-deploy`;
/// `extra` is added to the provider (one attempt unless it sets `retry`).
pub fn azure_config(upstream: &FakeUpstream, extra: &str) -> String {
    single_target_config("azure", "azure", upstream, "gpt4o-deploy", extra)
}

/// [`openai_config`] with provider `name` of `kind` at `upstream`'s root URL, naming `model`.
fn single_target_config(
    name: &str,
    kind: &str,
    upstream: &FakeUpstream,
    model: &str,
    extra: &str,
) -> String {
    openai_config(&upstream.base_url(), extra)
        .replacen(
            &format!("up: {{ kind: openai, base_url: '{}'", upstream.base_url()),
            &format!("{name}: {{ kind: {kind}, base_url: '{}'", upstream.root_url()),
            1,
        )
        .replacen(
            "provider: up, model: upstream-model",
            &format!("provider: {name}, model: {model}"),
            1,
        )
}

/// [`two_targets_config`] with each target's kind chosen: `primary` and `backup` are
/// `(kind, upstream)` with kind `openai`, `azure` or `anthropic`; one attempt each.
pub fn mixed_targets_config(
    primary: (&str, &FakeUpstream),
    backup: (&str, &FakeUpstream),
) -> String {
    let mut config = two_targets_config(primary.1, backup.1, "", "");
    for (kind, upstream) in [primary, backup] {
        let openai = format!("kind: openai, base_url: '{}'", upstream.base_url());
        let other = format!("kind: {kind}, base_url: '{}'", upstream.root_url());
        config = config.replacen(&openai, &other, 1);
    }
    config
}

/// Model `chat` → one target per `(name, kind, upstream, extra)`, in this order: provider `name`
/// of `kind` (`openai`, `azure` or `anthropic`) at `upstream`, naming the upstream model (or
/// Azure deployment) `{name}-model`, with `extra` added to its settings (e.g.
/// `native_responses: true`); one attempt each unless `extra` sets `retry`. `cache` is the
/// config's cache line (e.g. [`NO_CACHE`]) and `model_extra` is added to the model's settings
/// (e.g. `degraded_response: ...`).
pub fn targets_config(
    targets: &[(&str, &str, &FakeUpstream, &str)],
    cache: &str,
    model_extra: &str,
) -> String {
    let mut providers = String::new();
    let mut list = Vec::new();
    for (name, kind, upstream, extra) in targets {
        let url = if *kind == "openai" { upstream.base_url() } else { upstream.root_url() };
        let retry = if extra.contains("retry:") { "" } else { "retry: { max_retries: 0 }" };
        let settings: Vec<&str> = [*extra, retry].into_iter().filter(|s| !s.is_empty()).collect();
        providers.push_str(&format!(
            "  {name}: {{ kind: {kind}, base_url: '{url}', api_key: {UPSTREAM_KEY}, {} }}\n",
            settings.join(", ")
        ));
        list.push(format!("{{ provider: {name}, model: {name}-model }}"));
    }
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{cache}
providers:
{providers}models:
  chat:
    {model_extra}
    targets: [ {} ]
",
        list.join(", ")
    )
}
