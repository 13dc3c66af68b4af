//! Logging: tracing-subscriber with the filter from `$BALLAST_LOG` (or `$RUST_LOG`), as JSON
//! or pretty text, on stderr (stdout stays for command output such as `ballast check`); and,
//! with `telemetry.otlp_endpoint`, traces (`traces`).

pub mod traces;

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. `format` defaults to pretty on a terminal, JSON otherwise.
/// With a `tracer`, ballast's spans (info and above, whatever the log filter says) also go to
/// it; each of the two layers then filters on its own.
pub fn init(format: Option<LogFormat>, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = ["BALLAST_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let is_terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if is_terminal { LogFormat::Pretty } else { LogFormat::Json });
    let installed = match tracer {
        None => {
            let builder =
                tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
            // JSON logs never carry ANSI escapes (RUSTSEC-2025-0055 is about injected ones).
            match format {
                LogFormat::Json => {
                    builder.json().with_ansi(false).with_current_span(true).try_init()
                }
                LogFormat::Pretty => builder.with_ansi(is_terminal).try_init(),
            }
        }
        Some(tracer) => {
            let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            let logs = match format {
                LogFormat::Json => {
                    logs.json().with_ansi(false).with_current_span(true).with_filter(filter).boxed()
                }
                LogFormat::Pretty => logs.with_ansi(is_terminal).with_filter(filter).boxed(),
            };
            let spans = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(Targets::new().with_target("ballast", Level::INFO))
                .boxed();
            let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![spans, logs];
            tracing_subscriber::registry().with(layers).try_init().map_err(Into::into)
        }
    };
    // A subscriber already installed (tests) is fine.
    drop(installed);
}
