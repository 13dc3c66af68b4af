//! The command line: `ballast serve` (the default) and `ballast check`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::units::{format_duration, format_size};
use crate::config::{
    self, CacheBackend, Config, ConfigProblem, ProviderKind, Routing, redacted_url,
};
use crate::outcome::{Api, Carriage};
use crate::server::{self, Gateway};
use crate::telemetry::{self, LogFormat, traces};

#[derive(Debug, Parser)]
#[command(name = "ballast", version, about = "A resilient gateway in front of LLM providers.")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `serve`, the default command.
    #[command(flatten)]
    serve: ServeArgs,
    /// The config file [default: $BALLAST_CONFIG, else config/ballast.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format [default: pretty on a terminal, json otherwise]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default command).
    Serve(ServeArgs),
    /// Validate the config and print the route table; exit 1 listing every problem.
    Check,
    /// Pre-compute answers into the shared cache: one request body per line of FILE.
    Warm(WarmArgs),
}

#[derive(Debug, Args)]
struct WarmArgs {
    /// Requests sent at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Store in this gateway key's cache space (needs `auth` keys in the config).
    #[arg(long, value_name = "NAME")]
    key_name: Option<String>,
    /// The API of the file's request bodies: chat completions, Anthropic Messages, OpenAI
    /// Responses or embeddings.
    #[arg(long, value_enum, default_value_t = WarmApi::Chat)]
    api: WarmApi,
    /// A JSONL file: one request body per line (chat completions, or the `--api` given).
    #[arg(value_name = "FILE.jsonl")]
    file: std::path::PathBuf,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum WarmApi {
    Chat,
    Messages,
    Responses,
    Embeddings,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Listen address, overriding `server.listen` (e.g. 127.0.0.1:8080; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = config::resolve_path(cli.config);
    let format = cli.log_format;
    match cli.command {
        Some(Command::Check) => {
            telemetry::init(format, None);
            Ok(check(&path))
        }
        Some(Command::Warm(args)) => {
            telemetry::init(format, None);
            Ok(warm(&path, args).await)
        }
        Some(Command::Serve(args)) => serve(&path, args, format).await,
        None => serve(&path, cli.serve, format).await,
    }
}

fn check(path: &Path) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let (text, code) = match config::load(path) {
        Ok(config) => (route_table(path, &config), ExitCode::SUCCESS),
        Err(problems) => (problem_list(path, &problems), ExitCode::FAILURE),
    };
    // A closed stdout (`ballast check | head`) is not a config problem.
    drop(out.write_all(text.as_bytes()));
    code
}

async fn serve(
    path: &Path,
    args: ServeArgs,
    format: Option<LogFormat>,
) -> anyhow::Result<ExitCode> {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(problems) => {
            drop(std::io::stderr().lock().write_all(problem_list(path, &problems).as_bytes()));
            return Ok(ExitCode::FAILURE);
        }
    };
    let (traces, tracer) = match traces::start(&config.telemetry) {
        Ok(started) => started.unzip(),
        Err(err) => {
            telemetry::init(format, None);
            return Err(anyhow::anyhow!(err));
        }
    };
    telemetry::init(format, tracer);
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        tracing::info!(endpoint = %redacted_url(endpoint.as_str()), "exporting traces (OTLP/HTTP)");
    }
    let open = config.auth.is_none();
    crate::fd_limit::raise_and_log(config.server.max_connections);
    let gateway = Gateway::bind(config, args.listen).await?.reloading_from(path.to_path_buf());
    let addr = gateway.local_addr()?;
    if open && !addr.ip().is_loopback() {
        tracing::warn!(addr = %addr, "no `auth` keys: anyone who can reach this address can use every model");
    }
    let signal = server::shutdown_signal();
    if let Some(operator) = gateway.operator_addr() {
        tracing::info!(addr = %operator, "serving /metrics, /status and /admin/*");
    }
    tracing::info!(addr = %addr, config = %path.display(), "listening");
    gateway.serve(signal).await;
    if let Some(traces) = traces {
        traces.shutdown();
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn warm(path: &Path, args: WarmArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let config = match config::load(path) {
        Ok(config) => config,
        Err(problems) => {
            drop(out.write_all(problem_list(path, &problems).as_bytes()));
            return ExitCode::FAILURE;
        }
    };
    let summary = match crate::warm::run(
        config,
        &args.file,
        args.concurrency,
        args.key_name.as_deref(),
        match args.api {
            WarmApi::Chat => crate::dialect::Api::Chat,
            WarmApi::Messages => crate::dialect::Api::Messages,
            WarmApi::Responses => crate::dialect::Api::Responses,
            WarmApi::Embeddings => crate::dialect::Api::Embeddings,
        },
    )
    .await
    {
        Ok(summary) => summary,
        Err(err) => {
            drop(writeln!(out, "warm: {err}"));
            return ExitCode::FAILURE;
        }
    };
    let mut text = format!(
        "warm: {} stored, {} already fresh, {} failed\n",
        summary.stored,
        summary.already_fresh,
        summary.failed.len()
    );
    for (line, reason) in &summary.failed {
        let _ = writeln!(text, "  line {line}: {reason}");
    }
    drop(out.write_all(text.as_bytes()));
    if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The APIs a model's targets serve (SPEC §4): each API any target serves, and how: `responses
/// (translated)` when every target that serves it translates, `(translated on 1 of 2)` when some
/// do, `embeddings (1 of 2 targets)` when some targets cannot serve it at all.
fn served_apis(model: &crate::config::ModelConfig) -> String {
    let mut served = Vec::new();
    for api in Api::ALL {
        let carriages: Vec<Carriage> =
            model.targets.iter().map(|target| target.provider.kind.carries(api)).collect();
        let count = |wanted: Carriage| carriages.iter().filter(|c| **c == wanted).count();
        let (translated, not) = (count(Carriage::Translated), count(Carriage::Not));
        let serving = carriages.len() - not;
        if serving == 0 {
            continue;
        }
        let mut notes = Vec::new();
        if translated == serving {
            notes.push("translated".to_owned());
        } else if translated > 0 {
            notes.push(format!("translated on {translated} of {serving}"));
        }
        if not > 0 {
            notes.push(format!("{serving} of {} targets", carriages.len()));
        }
        let notes =
            if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        served.push(format!("{}{notes}", api.as_str()));
    }
    served.join(", ")
}

fn problem_list(path: &Path, problems: &[ConfigProblem]) -> String {
    let mut text = format!("{}: {} problem(s)\n", path.display(), problems.len());
    for problem in problems {
        let _ = writeln!(text, "  - {problem}");
    }
    text
}

/// What `check` prints for a valid config: server settings, providers, models → targets.
/// Keys and header values are never printed.
pub(crate) fn route_table(path: &Path, config: &Config) -> String {
    let server = &config.server;
    let mut text = format!("{}: OK\n\n", path.display());
    let _ = writeln!(
        text,
        "server: listen {}, max_connections {}, max_body_size {}, request_timeout {}, \
         header_timeout {}, shutdown_grace {}, workers {}\n",
        server.listen,
        server.max_connections,
        format_size(server.max_body_size as u64),
        format_duration(server.request_timeout),
        format_duration(server.header_timeout),
        format_duration(server.shutdown_grace),
        server.workers,
    );
    let operator = match server.metrics_listen {
        Some(addr) => format!(
            "operator listener: {addr} (/metrics, /status, /admin/reload, \
             /admin/providers/NAME/circuit)"
        ),
        None => "operator listener: none (/metrics and /status on listen; no /admin endpoints \
                 without server.metrics_listen)"
            .to_owned(),
    };
    let _ = writeln!(text, "{operator}\n");
    let _ = writeln!(text, "providers:");
    for provider in &config.providers {
        let t = &provider.timeouts;
        let detail = match &provider.kind {
            ProviderKind::OpenAi(s) => format!(
                "{} (key {}{}{})",
                redacted_url(s.base_url.as_str()),
                if s.api_key.is_some() { "set" } else { "none" },
                if s.native_responses { ", native Responses" } else { "" },
                if s.headers.is_empty() {
                    String::new()
                } else {
                    format!(", {} extra header(s)", s.headers.len())
                },
            ),
            ProviderKind::Azure(s) => {
                format!(
                    "{} (api-version {}, key set)",
                    redacted_url(s.base_url.as_str()),
                    s.api_version
                )
            }
            ProviderKind::Anthropic(s) => {
                format!(
                    "{} (key set, default max_tokens {})",
                    redacted_url(s.base_url.as_str()),
                    s.default_max_tokens
                )
            }
            ProviderKind::Mock(s) => format!(
                "offline, latency {}, failure_rate {}, failure_status {}",
                format_duration(s.latency),
                s.failure_rate,
                s.failure_status.as_u16()
            ),
        };
        let _ = writeln!(text, "  {:<16} {:<7} {detail}", provider.name, provider.kind.name());
        let _ = writeln!(
            text,
            "  {:<24} timeouts: connect {}, first_byte {}, idle {}, total {}",
            "",
            format_duration(t.connect),
            format_duration(t.first_byte),
            format_duration(t.idle),
            format_duration(t.total)
        );
        let (r, b) = (&provider.retry, &provider.breaker);
        let limit = provider.max_concurrency.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let _ = writeln!(
            text,
            "  {:<24} retry: {} × backoff {}..{}; breaker: open {} after {} failures; max_concurrency {}",
            "",
            r.max_retries,
            format_duration(r.base_delay),
            format_duration(r.max_delay),
            format_duration(b.open_for),
            b.consecutive_failures,
            limit
        );
    }
    let cache = &config.cache;
    let backend = match &cache.backend {
        CacheBackend::Memory => format!(
            "memory (max_entries {}, max_bytes {})",
            cache.max_entries,
            format_size(cache.max_bytes)
        ),
        CacheBackend::Redis(redis) => format!("redis at {}", redis.describe()),
        CacheBackend::None => "none".to_owned(),
    };
    let _ = writeln!(
        text,
        "\ncache: {backend}, ttl {}, stale_ttl {}{}",
        format_duration(cache.ttl),
        format_duration(cache.stale_ttl),
        if cache.shared_across_keys { ", shared across keys" } else { "" }
    );
    let telemetry = &config.telemetry;
    let _ = match &telemetry.otlp_endpoint {
        Some(endpoint) => writeln!(
            text,
            "telemetry: traces to {} (OTLP/HTTP), service.name {}",
            redacted_url(endpoint.as_str()),
            telemetry.service_name
        ),
        None => writeln!(text, "telemetry: no traces (telemetry.otlp_endpoint unset)"),
    };
    let _ = writeln!(text, "\nmodels:");
    for model in &config.models {
        let degraded =
            if model.degraded_response.is_some() { ", degraded_response set" } else { "" };
        let cached = if model.cache && cache.backend != CacheBackend::None { "on" } else { "off" };
        let _ = writeln!(
            text,
            "  {} (routing {}, cache {cached}{degraded})",
            model.name,
            model.routing.as_str()
        );
        let _ = writeln!(text, "    serves: {}", served_apis(model));
        if let Some(hedge) = model.hedge {
            let delay = match hedge.delay {
                crate::config::HedgeDelay::Auto => {
                    "auto (recent p95 time to first byte)".to_owned()
                }
                crate::config::HedgeDelay::Fixed(delay) => format!("{delay:?}"),
            };
            let share = (hedge.max_share * 100_000.0).round() / 1_000.0;
            let _ = writeln!(text, "    hedge: delay {delay}, max_share {share}%");
        }
        if !model.answer_checks.is_empty() {
            let checks: Vec<&str> =
                model.answer_checks.iter().map(|check| check.as_str()).collect();
            let _ = writeln!(text, "    answer checks: {}", checks.join(", "));
        }
        for (index, target) in model.targets.iter().enumerate() {
            let mut notes = if model.routing == Routing::Weighted {
                format!(", weight {}", target.weight)
            } else {
                String::new()
            };
            if let Some(window) = target.context_window {
                notes.push_str(&format!(", context window {window} tokens"));
            }
            let _ = writeln!(
                text,
                "    {}. {} → {} ({}{notes})",
                index + 1,
                target.provider.name,
                target.model,
                target.provider.kind.name()
            );
        }
    }
    text
}
