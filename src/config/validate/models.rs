//! The `models` section: each name clients send, its routing and its targets on the providers.

use std::sync::Arc;

use yaml_serde::Mapping;

use super::providers::Providers;
use super::values::duration;
use crate::config::defaults::bounds;
use crate::config::defaults::model as default;
use crate::config::path::YamlPath;
use crate::config::raw::{RawHedge, RawModel};
use crate::config::{ConfigProblem, HedgeDelay, HedgePolicy, ModelConfig, Routing, TargetConfig};
use crate::outcome::AnswerCheck;

/// Every valid model, in file order.
pub(super) fn models(
    path: &YamlPath,
    entries: Mapping,
    providers: &Providers,
    out: &mut Vec<ConfigProblem>,
) -> Vec<ModelConfig> {
    let mut models = Vec::new();
    let named_any = !entries.is_empty();
    for (key, value) in entries {
        let Some(name) = super::mapping_key(path, &key, out) else {
            continue;
        };
        let model_path = path.key(&name);
        if let Some(raw) = super::read::<RawModel>(&model_path, value, out) {
            models.extend(model_config(&model_path, name, raw, providers, out));
        }
    }
    // Only a file that names no model lacks one: a model that is not valid has its own problem,
    // or its targets' providers do.
    if !named_any {
        out.push(path.problem("at least one model is required"));
    }
    models
}

fn model_config(
    path: &YamlPath,
    name: String,
    raw: RawModel,
    providers: &Providers,
    out: &mut Vec<ConfigProblem>,
) -> Option<ModelConfig> {
    let routing = match raw.routing.as_deref() {
        None => default::ROUTING,
        Some("ordered") => Routing::Ordered,
        Some("weighted") => Routing::Weighted,
        Some("least_latency") => Routing::LeastLatency,
        Some(other) => {
            out.push(path.key("routing").problem(format!(
                "unknown routing `{other}` (expected ordered, weighted or least_latency)"
            )));
            default::ROUTING
        }
    };
    if raw.degraded_response.as_deref().is_some_and(|text| text.trim().is_empty()) {
        out.push(path.key("degraded_response").problem("must not be empty (omit it for none)"));
    }
    if raw.targets.is_empty() {
        out.push(path.key("targets").problem("a model needs at least one target"));
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (index, target) in raw.targets.into_iter().enumerate() {
        let target_path = path.key("targets").index(index);
        let weight = target.weight.unwrap_or(default::WEIGHT);
        if target.context_window == Some(0) {
            out.push(target_path.key("context_window").problem("must be at least 1 token"));
        }
        if target.weight.is_some() && routing != Routing::Weighted {
            out.push(target_path.key("weight").problem("only used with `routing: weighted`"));
        } else if !(weight.is_finite() && weight > 0.0) {
            out.push(target_path.key("weight").problem("must be a number above 0"));
        }
        if target.model.trim().is_empty() {
            out.push(target_path.key("model").problem("the upstream model name is empty"));
        }
        match providers.valid.iter().find(|p| p.name == target.provider) {
            Some(provider) => targets.push(TargetConfig {
                provider: Arc::clone(provider),
                model: target.model,
                weight,
                context_window: target.context_window,
            }),
            // A provider that exists but is invalid has its own problem already.
            None if providers.names.contains(&target.provider) => {}
            None => out.push(target_path.key("provider").problem(format!(
                "unknown provider `{}` (configured: {})",
                target.provider,
                providers.names.iter().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
    let answer_checks = answer_checks(&path.key("answer_checks"), raw.answer_checks, out);
    let hedge = raw.hedge.map(|hedge| hedge_policy(&path.key("hedge"), hedge, out));
    if hedge.is_some() {
        let providers: std::collections::HashSet<&str> =
            targets.iter().map(|target| target.provider.name.as_str()).collect();
        if providers.len() < 2 && !targets.is_empty() {
            out.push(path.key("hedge").problem(
                "a hedge races another provider: the model needs targets on at least two providers",
            ));
        }
    }
    (!targets.is_empty()).then_some(ModelConfig {
        name,
        routing,
        targets,
        degraded_response: raw.degraded_response,
        cache: raw.cache.unwrap_or(default::CACHE),
        answer_checks,
        hedge,
    })
}

/// `hedge: { delay: auto | 80ms, max_share: 10% | 0.1 }`.
fn hedge_policy(path: &YamlPath, raw: RawHedge, out: &mut Vec<ConfigProblem>) -> HedgePolicy {
    let delay = match raw.delay.as_deref() {
        None | Some("auto") => HedgeDelay::Auto,
        Some(_) => HedgeDelay::Fixed(duration(
            &path.key("delay"),
            raw.delay,
            default::HEDGE_DELAY_UNKNOWN,
            bounds::MAX_TIMEOUT,
            out,
        )),
    };
    let max_share = match raw.max_share.as_deref().map(str::trim) {
        None => default::HEDGE_MAX_SHARE,
        Some(text) => {
            let parsed = match text.strip_suffix('%') {
                Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
                None => text.parse::<f64>(),
            };
            match parsed {
                Ok(share) if share > 0.0 && share <= 1.0 => share,
                _ => {
                    out.push(path.key("max_share").problem(format!(
                        "`{text}` is not a share above 0 and at most 1 (write 10% or 0.1)"
                    )));
                    default::HEDGE_MAX_SHARE
                }
            }
        }
    };
    HedgePolicy { delay, max_share }
}

/// `answer_checks: [empty, invalid_json, refusal]`, each named at most once.
fn answer_checks(
    path: &YamlPath,
    raw: Option<Vec<String>>,
    out: &mut Vec<ConfigProblem>,
) -> Vec<AnswerCheck> {
    let mut checks = Vec::new();
    for (index, name) in raw.unwrap_or_default().into_iter().enumerate() {
        match AnswerCheck::ALL.into_iter().find(|check| check.as_str() == name) {
            Some(check) if checks.contains(&check) => {
                out.push(path.index(index).problem(format!("`{name}` is listed twice")));
            }
            Some(check) => checks.push(check),
            None => out.push(path.index(index).problem(format!(
                "unknown answer check `{name}` (expected empty, invalid_json or refusal)"
            ))),
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::super::tests::problems;

    #[test]
    fn a_file_without_models_is_told_it_needs_one() {
        let found = problems("providers:\n  demo: { kind: mock }\n");
        assert_eq!(found, ["models: at least one model is required"]);
    }

    #[test]
    fn a_model_whose_only_provider_is_invalid_is_not_also_reported_as_missing() {
        let found = problems(
            "providers:\n  demo: { kind: mock, failure_rate: 2 }\nmodels:\n  m: { targets: [{ provider: demo, model: x }] }\n",
        );
        assert_eq!(found, ["providers.demo.failure_rate: must be between 0.0 and 1.0"]);
    }

    #[test]
    fn a_hedge_needs_a_share_and_a_second_provider() {
        let found = problems(
            "providers:\n  a: { kind: mock }\nmodels:\n  m:\n    hedge: { delay: 0ms, max_share: 150% }\n    targets: [{ provider: a, model: x }, { provider: a, model: y }]\n",
        );
        assert_eq!(
            found,
            [
                "models.m.hedge.delay: must be longer than zero",
                "models.m.hedge.max_share: `150%` is not a share above 0 and at most 1 (write 10% or 0.1)",
                "models.m.hedge: a hedge races another provider: the model needs targets on at least two providers",
            ]
        );
    }

    #[test]
    fn answer_checks_and_context_windows_are_checked_with_their_paths() {
        let found = problems(
            "providers:\n  demo: { kind: mock }\nmodels:\n  m:\n    answer_checks: [empty, empty, valid]\n    targets: [{ provider: demo, model: x, context_window: 0 }]\n",
        );
        assert_eq!(
            found,
            [
                "models.m.targets[0].context_window: must be at least 1 token",
                "models.m.answer_checks[1]: `empty` is listed twice",
                "models.m.answer_checks[2]: unknown answer check `valid` (expected empty, invalid_json or refusal)",
            ]
        );
    }
}
