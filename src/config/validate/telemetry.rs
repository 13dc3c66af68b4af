//! The `telemetry` section: where traces are exported, under which service name.

use yaml_serde::Value;

use crate::config::defaults::telemetry as default;
use crate::config::path::YamlPath;
use crate::config::raw::RawTelemetry;
use crate::config::{ConfigProblem, TelemetryConfig, redacted_url};

pub(super) fn telemetry_config(
    path: &YamlPath,
    value: Option<Value>,
    out: &mut Vec<ConfigProblem>,
) -> TelemetryConfig {
    let raw: RawTelemetry = super::section(path, value, out);
    let otlp_endpoint =
        raw.otlp_endpoint.filter(|text| !text.is_empty()).and_then(
            |text| match reqwest::Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
                _ => {
                    out.push(path.key("otlp_endpoint").problem(format!(
                        "`{}` is not an http:// or https:// URL (e.g. http://otel-collector:4318)",
                        redacted_url(&text)
                    )));
                    None
                }
            },
        );
    let service_name = raw.service_name.unwrap_or_else(|| default::SERVICE_NAME.to_owned());
    if service_name.is_empty() {
        out.push(path.key("service_name").problem("must not be empty"));
    }
    TelemetryConfig { otlp_endpoint, service_name }
}
